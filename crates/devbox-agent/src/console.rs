//! The console log of a devbox, capped by rotation.
//!
//! Output goes to `console.log`. When a write would take it past half the
//! maximum, it is renamed to `console.log.1` (replacing the older one) and a
//! new `console.log` begins, so the pair never holds more than the maximum
//! and the newest output is always in `console.log`. Readers read
//! `console.log.1`, then `console.log`. A rotation happens after the last
//! complete line that fits when there is one, so lines shorter than half the
//! maximum are never split between the two files.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct Console {
    path: PathBuf,
    old: PathBuf,
    /// Most bytes in one file: half the maximum.
    half: u64,
    file: File,
    size: u64,
}

/// `console.log.1` beside `console.log`.
pub fn rotated_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".1");
    path.with_file_name(name)
}

fn open(path: &Path) -> io::Result<File> {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

impl Console {
    /// Opens (appends to) the log at `path`, keeping the pair within `max`
    /// bytes (at least 2).
    pub fn open(path: &Path, max: u64) -> io::Result<Self> {
        let file = open(path)?;
        let size = file.metadata()?.len();
        let mut console = Console {
            path: path.to_owned(),
            old: rotated_path(path),
            half: (max / 2).max(1),
            file,
            size,
        };
        // A log from an earlier run with a larger maximum.
        if console.size > console.half {
            console.rotate()?;
        }
        Ok(console)
    }

    fn rotate(&mut self) -> io::Result<()> {
        fs::rename(&self.path, &self.old)?;
        self.file = open(&self.path)?;
        self.size = 0;
        Ok(())
    }

    /// Appends `data`, rotating as often as needed. An error leaves the log
    /// as it is; the caller goes on reading the container's output, so the
    /// devbox never blocks on a log it cannot write.
    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let room = usize::try_from(self.half - self.size).unwrap_or(usize::MAX);
            if data.len() <= room {
                self.file.write_all(data)?;
                self.size += data.len() as u64;
                return Ok(());
            }
            let whole_lines = data[..room]
                .iter()
                .rposition(|&b| b == b'\n')
                .map(|i| i + 1);
            let n = match whole_lines {
                Some(n) => n,
                // A line longer than a whole file is split.
                None if self.size == 0 => room,
                // The line does not fit here: it starts the next file.
                None => 0,
            };
            self.file.write_all(&data[..n])?;
            self.size += n as u64;
            data = &data[n..];
            self.rotate()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(p: &Path) -> String {
        fs::read_to_string(p).unwrap_or_default()
    }

    #[test]
    fn the_pair_stays_within_the_maximum_and_the_newest_line_is_current() {
        let dir = crate::testing::temp_dir("console");
        let path = dir.join("console.log");
        let mut c = Console::open(&path, 100).unwrap();
        let mut all = String::new();
        for i in 0..200 {
            let line = format!("line {i}\n");
            all.push_str(&line);
            c.write(line.as_bytes()).unwrap();
            let (cur, old) = (read(&path), read(&rotated_path(&path)));
            assert!(cur.len() + old.len() <= 100, "{old:?} + {cur:?}");
            assert!(cur.ends_with(&line), "{cur:?}");
            // Lines are never split between the two files.
            assert!(old.is_empty() || old.ends_with('\n'));
            assert!(all.ends_with(&(old + &cur)));
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_chunk_larger_than_a_file_keeps_only_its_end() {
        let dir = crate::testing::temp_dir("console-big");
        let path = dir.join("console.log");
        let mut c = Console::open(&path, 10).unwrap();
        c.write(b"abcdefghijklmnopqrstuvwxyz").unwrap();
        assert_eq!(read(&rotated_path(&path)), "uvwxy");
        assert_eq!(read(&path), "z");
        c.write(b"12\n34\n").unwrap();
        let (cur, old) = (read(&path), read(&rotated_path(&path)));
        assert!(cur.len() <= 5 && old.len() <= 5, "{old:?} {cur:?}");
        assert!(
            format!("{old}{cur}").ends_with("12\n34\n"),
            "{old:?} {cur:?}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_oversized_log_from_an_earlier_run_is_rotated_at_open() {
        let dir = crate::testing::temp_dir("console-old");
        let path = dir.join("console.log");
        fs::write(&path, "x".repeat(80)).unwrap();
        fs::write(rotated_path(&path), "older").unwrap();
        let mut c = Console::open(&path, 100).unwrap();
        assert_eq!(read(&rotated_path(&path)).len(), 80);
        c.write(b"new\n").unwrap();
        assert_eq!(read(&path), "new\n");
        // A log within the limit is appended to.
        drop(c);
        let mut c = Console::open(&path, 100).unwrap();
        c.write(b"more\n").unwrap();
        assert_eq!(read(&path), "new\nmore\n");
        fs::remove_dir_all(&dir).unwrap();
    }
}
