//! Reading a devbox's console log as a stream.
//!
//! The log is a pair of files (see `paths.rs`): `console.log` holds the
//! newest output and `console.log.1` the output before the last rotation.
//! A reader starts with the older file, then follows the newer one through
//! an open descriptor: when the writer rotates, the descriptor still reads
//! the renamed file to its end before the reader moves on to the new
//! `console.log`, so no line is lost or repeated across a rotation.

use std::fs::File;
use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use crate::error::RuntimeError;
use crate::runtime::{LogOptions, LogStream};

/// How often a followed log is checked for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// How many polls pass between checks that the container still runs.
const POLLS_PER_LIVENESS_CHECK: u32 = 5;

/// The most a single read hands out, so one chunk never holds a whole log.
const CHUNK: usize = 256 * 1024;

/// Whether the devbox's container still runs; asked while following.
pub(crate) type Liveness =
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// The last `n` lines of `data`.
pub(crate) fn last_lines(data: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &[];
    }
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    match body
        .iter()
        .rev()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(n - 1)
    {
        Some((i, _)) => &data[body.len() - i..],
        None => data,
    }
}

fn open(path: &Path) -> Result<Option<File>, RuntimeError> {
    match File::open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RuntimeError::io("open", path)(e)),
    }
}

/// Reads `f` from its position to its end, at most `CHUNK` bytes.
fn read_some(f: &mut File, path: &Path) -> Result<Vec<u8>, RuntimeError> {
    let mut buf = Vec::new();
    f.take(CHUNK as u64)
        .read_to_end(&mut buf)
        .map_err(RuntimeError::io("read", path))?;
    Ok(buf)
}

/// Where a follower is: the open `console.log` and how far it read.
struct Cursor {
    current: PathBuf,
    file: Option<File>,
}

impl Cursor {
    /// New output since the last call, across a rotation or a truncation.
    fn poll(&mut self) -> Result<Vec<u8>, RuntimeError> {
        let mut out = Vec::new();
        loop {
            if self.file.is_none() {
                self.file = open(&self.current)?;
            }
            let Some(f) = self.file.as_mut() else {
                return Ok(out);
            };
            let pos = f
                .stream_position()
                .map_err(RuntimeError::io("read", &self.current))?;
            let meta = f
                .metadata()
                .map_err(RuntimeError::io("stat", &self.current))?;
            if meta.len() < pos {
                // Truncated in place: start over.
                f.seek(SeekFrom::Start(0))
                    .map_err(RuntimeError::io("read", &self.current))?;
            }
            let chunk = read_some(f, &self.current)?;
            let got = !chunk.is_empty();
            out.extend_from_slice(&chunk);
            if out.len() >= CHUNK {
                return Ok(out);
            }
            if got {
                continue;
            }
            // At the end of the open file: it may have been rotated away.
            let rotated = match std::fs::metadata(&self.current) {
                Ok(now) => now.ino() != meta.ino() || now.dev() != meta.dev(),
                Err(_) => false,
            };
            if !rotated {
                return Ok(out);
            }
            self.file = None;
        }
    }
}

/// The log as a stream: the whole retained log (or its last `tail` lines),
/// then, when following, new output until `alive` says the container ended.
pub(crate) fn stream(
    current: PathBuf,
    older: PathBuf,
    opts: LogOptions,
    alive: Liveness,
) -> Result<LogStream, RuntimeError> {
    let mut cursor = Cursor {
        current: current.clone(),
        file: open(&current)?,
    };
    let mut first = Vec::new();
    if let Some(mut f) = open(&older)? {
        f.read_to_end(&mut first)
            .map_err(RuntimeError::io("read", &older))?;
    }
    if let Some(f) = cursor.file.as_mut() {
        f.read_to_end(&mut first)
            .map_err(RuntimeError::io("read", &current))?;
    }
    if let Some(n) = opts.tail {
        first = last_lines(&first, n).to_vec();
    }
    let head = futures::stream::iter((!first.is_empty()).then(|| Ok(Bytes::from(first))));
    if !opts.follow {
        return Ok(head.boxed());
    }
    let rest = futures::stream::unfold(
        (cursor, alive, 0u32, false),
        |(mut cursor, alive, mut polls, ended)| async move {
            if ended {
                return None;
            }
            loop {
                match cursor.poll() {
                    Ok(data) if !data.is_empty() => {
                        return Some((Ok(Bytes::from(data)), (cursor, alive, polls, false)));
                    }
                    Ok(_) => {}
                    Err(e) => return Some((Err(e), (cursor, alive, polls, true))),
                }
                polls += 1;
                if polls.is_multiple_of(POLLS_PER_LIVENESS_CHECK) && !alive().await {
                    // The container ended: send what it wrote last, then end.
                    return match cursor.poll() {
                        Ok(data) if !data.is_empty() => {
                            Some((Ok(Bytes::from(data)), (cursor, alive, polls, true)))
                        }
                        Ok(_) => None,
                        Err(e) => Some((Err(e), (cursor, alive, polls, true))),
                    };
                }
                tokio::time::sleep(FOLLOW_POLL).await;
            }
        },
    );
    Ok(head.chain(rest).boxed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(last_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(last_lines(b"a\nb\nc", 2), b"b\nc");
        assert_eq!(last_lines(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(last_lines(b"a\nb\n", 0), b"");
        assert_eq!(last_lines(b"", 3), b"");
    }

    fn append(path: &Path, data: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(data.as_bytes()).unwrap();
    }

    fn flag(alive: &Arc<AtomicBool>) -> Liveness {
        let alive = alive.clone();
        Box::new(move || {
            let v = alive.load(Ordering::SeqCst);
            Box::pin(async move { v })
        })
    }

    async fn collect(mut s: LogStream) -> String {
        let mut out = Vec::new();
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn the_older_file_comes_first_and_tail_spans_both() {
        let dir = tempfile::tempdir().unwrap();
        let (cur, old) = (
            dir.path().join("console.log"),
            dir.path().join("console.log.1"),
        );
        append(&old, "1\n2\n");
        append(&cur, "3\n4\n");
        let alive = Arc::new(AtomicBool::new(false));
        let all = stream(
            cur.clone(),
            old.clone(),
            LogOptions::default(),
            flag(&alive),
        )
        .unwrap();
        assert_eq!(collect(all).await, "1\n2\n3\n4\n");
        let opts = LogOptions {
            tail: Some(3),
            ..LogOptions::default()
        };
        let tail = stream(cur, old, opts, flag(&alive)).unwrap();
        assert_eq!(collect(tail).await, "2\n3\n4\n");
    }

    #[tokio::test]
    async fn a_missing_log_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let alive = Arc::new(AtomicBool::new(false));
        let s = stream(
            dir.path().join("console.log"),
            dir.path().join("console.log.1"),
            LogOptions::default(),
            flag(&alive),
        )
        .unwrap();
        assert_eq!(collect(s).await, "");
    }

    #[tokio::test]
    async fn a_follower_crosses_a_rotation_and_ends_when_the_container_does() {
        let dir = tempfile::tempdir().unwrap();
        let (cur, old) = (
            dir.path().join("console.log"),
            dir.path().join("console.log.1"),
        );
        append(&cur, "before\n");
        let alive = Arc::new(AtomicBool::new(true));
        let opts = LogOptions {
            follow: true,
            tail: None,
        };
        let mut s = stream(cur.clone(), old.clone(), opts, flag(&alive)).unwrap();
        assert_eq!(&s.next().await.unwrap().unwrap()[..], b"before\n");
        append(&cur, "last of the old file\n");
        std::fs::rename(&cur, &old).unwrap();
        append(&cur, "first of the new file\n");
        let mut seen = String::new();
        while !seen.contains("first of the new file") {
            seen.push_str(std::str::from_utf8(&s.next().await.unwrap().unwrap()).unwrap());
        }
        assert_eq!(seen, "last of the old file\nfirst of the new file\n");
        append(&cur, "final words\n");
        alive.store(false, Ordering::SeqCst);
        assert_eq!(collect(s).await, "final words\n");
    }
}
