//! The watermark of a commit: the filesystem's own clock when the commit
//! starts, read from the change time of a file created for the purpose.
//!
//! Filesystems stamp files with a coarse clock (one tick is several
//! milliseconds), so a file changed in the tick a commit starts in, or during
//! the walk, may look unchanged to the next commit if only its metadata were
//! compared. Every entry whose change time is at or after the watermark is
//! therefore packed again by the next commit. The system clock would not do:
//! it is not the clock the filesystem stamps with, nor kept at its granularity.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, CWD, Mode, OFlags};
use rustix::io::Errno;

use crate::stat;

/// The filesystem time at the start of a commit, and the filesystem it was read on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermark {
    ns: i64,
    dev: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read the filesystem clock by creating a file in {}: {source}", path.display())]
pub struct WatermarkError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

impl Watermark {
    /// Reads the clock of the filesystem holding `dir`, by creating a
    /// scratch file there (unnamed where the filesystem allows, otherwise
    /// named and removed at once). `dir` must be on the upperdir's
    /// filesystem but outside the upperdir: the directory holding it, or the
    /// overlay work directory.
    pub fn take(dir: &Path) -> Result<Watermark, WatermarkError> {
        let err = |source: Errno| WatermarkError {
            path: dir.to_path_buf(),
            source: source.into(),
        };
        let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let dir_fd = rustix::fs::openat(CWD, dir, dir_flags, Mode::empty()).map_err(err)?;
        let mode = Mode::from_raw_mode(0o600);
        let st = match rustix::fs::openat(
            &dir_fd,
            ".",
            OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC,
            mode,
        ) {
            Ok(fd) => rustix::fs::fstat(&fd).map_err(err)?,
            Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL) => {
                static NEXT: AtomicU64 = AtomicU64::new(0);
                let n = NEXT.fetch_add(1, Ordering::Relaxed);
                let name = format!(".devbox-watermark-{}-{n}", std::process::id());
                let flags = OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC;
                let fd = rustix::fs::openat(&dir_fd, name.as_str(), flags, mode).map_err(err)?;
                let st = rustix::fs::fstat(&fd);
                rustix::fs::unlinkat(&dir_fd, name.as_str(), AtFlags::empty()).map_err(err)?;
                st.map_err(err)?
            }
            Err(e) => return Err(err(e)),
        };
        Ok(Watermark {
            ns: stat::ctime_ns(&st),
            dev: stat::dev(&st),
        })
    }

    /// A watermark at `ns` on the filesystem `dev`, for callers that keep
    /// one (and for tests that need every entry to count as just changed).
    pub fn at(ns: i64, dev: u64) -> Watermark {
        Watermark { ns, dev }
    }

    /// Nanoseconds since the epoch.
    pub fn as_nanos(&self) -> i64 {
        self.ns
    }

    /// The device number of the filesystem the watermark was read on.
    pub fn dev(&self) -> u64 {
        self.dev
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_follows_the_clock_of_the_filesystem() {
        let tmp = tempfile::tempdir().unwrap();
        let before = Watermark::take(tmp.path()).unwrap();
        std::fs::write(tmp.path().join("f"), b"x").unwrap();
        let st = rustix::fs::stat(tmp.path().join("f")).unwrap();
        let after = Watermark::take(tmp.path()).unwrap();
        assert!(before.as_nanos() <= stat::ctime_ns(&st));
        assert!(stat::ctime_ns(&st) <= after.as_nanos());
        assert_eq!(before.dev(), stat::dev(&st));
        let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no scratch file is left behind");
    }

    #[test]
    fn a_missing_directory_is_named_in_the_error() {
        let err = Watermark::take(Path::new("/nonexistent/dir")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/dir"), "{err}");
    }
}
