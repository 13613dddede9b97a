//! A devbox's active changes (its overlay upper directory) as a layer tar
//! stream, produced by a thread of its own while the consumer reads.
//!
//! A plain pipe would turn a failed walk into a clean end of file, and a
//! consumer hashing the bytes would store a truncated layer as if it were
//! whole. The channel below carries the failure to the reader instead.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use devbox_layer::pack::{PackOptions, pack_dir};

/// Chunks in flight between the walk and the reader: enough to keep both
/// busy, little enough that memory stays flat whatever the layer's size.
const CHUNKS_IN_FLIGHT: usize = 8;
const CHUNK: usize = 256 * 1024;

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

/// Starts packing `upper` (an overlay upper directory) on a thread of its
/// own. `after` runs on that thread once the walk ended, successfully or
/// not (it thaws a frozen devbox).
pub(crate) fn read_upper(
    upper: PathBuf,
    after: impl FnOnce() + Send + 'static,
) -> io::Result<ChangeReader> {
    let (tx, rx) = sync_channel(CHUNKS_IN_FLIGHT);
    let fail = tx.clone();
    std::thread::Builder::new()
        .name("devbox-changes".into())
        .spawn(move || {
            let mut w = ChannelWriter {
                tx,
                buf: Vec::with_capacity(CHUNK),
            };
            let result = pack_dir(&upper, &mut w, &PackOptions { overlay: true })
                .map_err(|e| io::Error::other(e.to_string()))
                .and_then(|_| w.flush());
            after();
            if let Err(e) = result {
                let _ = fail.send(Err(e));
            }
        })?;
    Ok(ChangeReader {
        rx,
        buf: Vec::new(),
        pos: 0,
        failed: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_walk_that_fails_is_a_read_error_not_an_end_of_file() {
        let missing = PathBuf::from("/nonexistent/upper");
        let mut r = read_upper(missing, || {}).unwrap();
        let mut out = Vec::new();
        let e = r.read_to_end(&mut out).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/upper"), "{e}");
    }

    #[test]
    fn a_directory_comes_out_as_a_tar_and_the_hook_runs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"hello").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let mut r = read_upper(dir.path().to_owned(), move || tx.send(()).unwrap()).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        rx.recv().unwrap();
        let mut names = Vec::new();
        for e in tar::Archive::new(&out[..]).entries().unwrap() {
            names.push(e.unwrap().path().unwrap().display().to_string());
        }
        assert_eq!(names, ["a"]);
    }
}
