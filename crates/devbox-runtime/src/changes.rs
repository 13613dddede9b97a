//! A devbox's active changes (its overlay upper directory) as a layer tar
//! stream, produced by a thread of its own while the consumer reads; the
//! indexes that make later reads incremental; the ignore rules; and the
//! pruning that makes a committed upper directory show what its layers do.
//!
//! A plain pipe would turn a failed walk into a clean end of file, and a
//! consumer hashing the bytes would store a truncated layer as if it were
//! whole. The channel below carries the failure to the reader instead.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use devbox_layer::{IgnoreSet, Watermark, pack_changes};

use crate::runtime::ChangeStats;

/// Chunks in flight between the walk and the reader: enough to keep both
/// busy, little enough that memory stays flat whatever the layer's size.
const CHUNKS_IN_FLIGHT: usize = 8;
const CHUNK: usize = 256 * 1024;

/// Where the devbox's own ignore file is, relative to its root.
const IGNORE_FILE: &str = "etc/devbox/commit-ignore";

/// The reading end: yields the tar's bytes, then either a clean end or the
/// walk's error.
pub(crate) struct ChangeReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    pos: usize,
    failed: Option<io::Error>,
}

struct ChannelWriter {
    tx: SyncSender<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the reader went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

impl Read for ChangeReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(e) = &self.failed {
                return Err(io::Error::new(e.kind(), e.to_string()));
            }
            if self.pos < self.buf.len() {
                let n = out.len().min(self.buf.len() - self.pos);
                out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.buf = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => self.failed = Some(e),
                // The walk finished and said so by closing the channel.
                Err(_) => return Ok(0),
            }
        }
    }
}

/// A read of an upper directory's changes.
pub(crate) struct Job {
    pub upper: PathBuf,
    pub index_dir: PathBuf,
    /// The name the new index is kept under.
    pub mark: String,
    /// The index the read counts from, if it exists.
    pub since: Option<String>,
    pub ignore: IgnoreSet,
    pub watermark: Watermark,
}

fn index_file(dir: &Path, mark: &str) -> PathBuf {
    dir.join(mark)
}

/// Whether a mark is a plain name (it becomes a file name).
pub(crate) fn valid_mark(mark: &str) -> bool {
    !mark.is_empty()
        && mark.len() <= 64
        && mark
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The index `since` names, if the node still has it.
pub(crate) fn previous_index(dir: &Path, since: Option<&str>) -> Option<PathBuf> {
    let since = since.filter(|s| valid_mark(s))?;
    let path = index_file(dir, since);
    path.is_file().then_some(path)
}

/// Starts packing on a thread of its own. `after` runs on that thread once
/// the walk ended, successfully or not (it thaws a frozen devbox). The new
/// index is kept under the job's mark only if the walk succeeded; every
/// other index but the one counted from is dropped then.
pub(crate) fn start(
    job: Job,
    after: impl FnOnce() + Send + 'static,
) -> io::Result<(ChangeReader, Receiver<ChangeStats>)> {
    let (tx, rx) = sync_channel(CHUNKS_IN_FLIGHT);
    let (stats_tx, stats_rx) = sync_channel(1);
    std::thread::Builder::new()
        .name("devbox-changes".into())
        .spawn(move || {
            let result = run(&job, &tx);
            after();
            // The totals go out before the data channel closes, so a reader
            // that reached the end of the tar finds them waiting.
            match result {
                Ok(stats) => {
                    let _ = stats_tx.send(stats);
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
            drop(tx);
        })?;
    Ok((
        ChangeReader {
            rx,
            buf: Vec::new(),
            pos: 0,
            failed: None,
        },
        stats_rx,
    ))
}

fn run(job: &Job, tx: &SyncSender<io::Result<Vec<u8>>>) -> io::Result<ChangeStats> {
    fs::create_dir_all(&job.index_dir)?;
    let mut previous = previous_index(&job.index_dir, job.since.as_deref())
        .map(File::open)
        .transpose()?
        .map(io::BufReader::new);
    let tmp = job.index_dir.join(format!(".{}.tmp", job.mark));
    let index = BufWriter::new(File::create(&tmp)?);
    let mut w = ChannelWriter {
        tx: tx.clone(),
        buf: Vec::with_capacity(CHUNK),
    };
    let packed = pack_changes(
        &job.upper,
        previous.as_mut().map(|r| r as &mut dyn Read),
        &job.ignore,
        job.watermark,
        &mut w,
        index,
    );
    let stats = match packed {
        Ok(stats) => stats,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(io::Error::other(e.to_string()));
        }
    };
    w.flush()?;
    drop(w);
    File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, index_file(&job.index_dir, &job.mark))?;
    // Only the new index and the one it counted from can still be asked for.
    for entry in fs::read_dir(&job.index_dir)?.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name != job.mark.as_str() && Some(name.as_ref()) != job.since.as_deref() {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(ChangeStats {
        changes: stats.changes,
        bytes: stats.bytes,
        ignored: stats.ignored,
        ignored_bytes: stats.ignored_bytes,
    })
}

/// The ignore rules of a devbox: the defaults, then its own ignore file
/// (from the first of `roots` that has one: its merged view, or its upper
/// directory and then its layers, topmost first), then `exclude`.
pub(crate) fn ignore_set(roots: &[PathBuf], exclude: &[String]) -> Result<IgnoreSet, String> {
    let mut set = IgnoreSet::defaults();
    for root in roots {
        if set
            .add_file_in(root, IGNORE_FILE)
            .map_err(|e| e.to_string())?
        {
            break;
        }
    }
    set.add_list(exclude, "the devbox's commit-exclude setting")
        .map_err(|e| e.to_string())?;
    Ok(set)
}

/// Removes from a stopped devbox's upper directory what its commits left
/// out (ignored paths, and the sockets and device nodes no layer carries),
/// so that the directory shows what its layers do on any other node.
/// Whiteouts are kept: they are part of what the layers say.
pub(crate) fn prune(upper: &Path, ignore: &IgnoreSet) -> io::Result<u64> {
    fn walk(
        rel: &mut Vec<u8>,
        dir: &Path,
        ignore: &IgnoreSet,
        removed: &mut u64,
    ) -> io::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::FileTypeExt;
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let ft = entry.file_type()?;
            let name = entry.file_name();
            let len = rel.len();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(name.as_bytes());
            let path = entry.path();
            let whiteout = ft.is_char_device()
                && std::os::unix::fs::MetadataExt::rdev(&entry.metadata()?) == 0;
            if ignore.is_ignored(rel, ft.is_dir()) {
                if ft.is_dir() {
                    fs::remove_dir_all(&path)?;
                } else {
                    fs::remove_file(&path)?;
                }
                *removed += 1;
            } else if ft.is_socket() || (ft.is_char_device() && !whiteout) || ft.is_block_device() {
                fs::remove_file(&path)?;
                *removed += 1;
            } else if ft.is_dir() {
                walk(rel, &path, ignore, removed)?;
            }
            rel.truncate(len);
        }
        Ok(())
    }
    let mut removed = 0;
    walk(&mut Vec::new(), upper, ignore, &mut removed)?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(upper: &Path, index_dir: &Path, mark: &str, since: Option<&str>) -> Job {
        Job {
            upper: upper.to_owned(),
            index_dir: index_dir.to_owned(),
            mark: mark.into(),
            since: since.map(str::to_owned),
            ignore: IgnoreSet::defaults(),
            watermark: Watermark::take(index_dir.parent().unwrap()).unwrap(),
        }
    }

    fn names(tar: &[u8]) -> Vec<String> {
        tar::Archive::new(tar)
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    }

    fn read_all(
        upper: &Path,
        index_dir: &Path,
        mark: &str,
        since: Option<&str>,
    ) -> (Vec<u8>, ChangeStats) {
        let (mut r, stats) = start(job(upper, index_dir, mark, since), || {}).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        (out, stats.recv().unwrap())
    }

    #[test]
    fn a_walk_that_fails_is_a_read_error_not_an_end_of_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nonexistent-upper");
        let (mut r, _) =
            start(job(&missing, &dir.path().join("index"), "c1", None), || {}).unwrap();
        let mut out = Vec::new();
        let e = r.read_to_end(&mut out).unwrap_err();
        assert!(e.to_string().contains("nonexistent-upper"), "{e}");
    }

    #[test]
    fn a_later_read_holds_only_what_changed_since_the_mark() {
        let dir = tempfile::tempdir().unwrap();
        let upper = dir.path().join("upper");
        let index = dir.path().join("index");
        fs::create_dir_all(upper.join("tmp")).unwrap();
        fs::write(upper.join("a"), b"hello").unwrap();
        fs::write(upper.join("tmp/scratch"), b"left out").unwrap();
        let (tar, stats) = read_all(&upper, &index, "c1", None);
        assert_eq!(names(&tar), ["a"], "/tmp is left out by default");
        assert_eq!(stats.ignored_bytes, 8);

        fs::write(upper.join("b"), b"new").unwrap();
        fs::remove_file(upper.join("a")).unwrap();
        let (tar, _) = read_all(&upper, &index, "c2", Some("c1"));
        let mut got = names(&tar);
        got.sort();
        assert_eq!(got, [".wh.a", "b"]);
        // Only the new index and the one it counted from are kept.
        let (_, _) = read_all(&upper, &index, "c3", Some("c2"));
        let mut kept: Vec<String> = fs::read_dir(&index)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        kept.sort();
        assert_eq!(kept, ["c2", "c3"]);
        // An unknown mark reads everything.
        let (tar, _) = read_all(&upper, &index, "c4", Some("gone"));
        assert_eq!(names(&tar), ["b"]);
    }

    #[test]
    fn pruning_removes_what_commits_leave_out_and_keeps_whiteouts() {
        let dir = tempfile::tempdir().unwrap();
        let upper = dir.path();
        fs::create_dir_all(upper.join("tmp/deep")).unwrap();
        fs::write(upper.join("tmp/deep/x"), b"x").unwrap();
        fs::create_dir_all(upper.join("root/.cache")).unwrap();
        fs::write(upper.join("root/keep"), b"k").unwrap();
        fs::write(upper.join("root/.cache/c"), b"c").unwrap();
        let mut set = IgnoreSet::defaults();
        set.add_list(["/root/.cache/**"], "test").unwrap();
        let removed = prune(upper, &set).unwrap();
        assert!(removed >= 2, "{removed}");
        assert!(!upper.join("tmp").exists());
        assert!(upper.join("root/keep").exists());
        assert!(!upper.join("root/.cache/c").exists());
    }

    #[test]
    fn marks_are_plain_names() {
        assert!(valid_mark("0123abcd"));
        assert!(!valid_mark("../x"));
        assert!(!valid_mark(""));
        assert!(!valid_mark(&"a".repeat(65)));
    }
}
