//! `image import`: streams a tar (a file sent as it is, or a directory
//! archived on the fly) to the server, then follows its progress events.
//! Nothing is buffered whole: an image of any size passes through a small
//! channel.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use bytes::Bytes;
use chrono::Utc;
use clap::Args;
use devbox_model::ImageRef;
use futures::{Stream, StreamExt};
use indicatif::ProgressBar;
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::io::ReaderStream;

use crate::client::Client;
use crate::output;
use crate::progress::{self, LayerBars};

/// Size of the pieces the upload is cut into.
const CHUNK: usize = 256 * 1024;
/// Pieces in flight between the archiver thread and the upload.
const CHANNEL_DEPTH: usize = 8;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A tar, tar.gz or tar.zst file (OCI layout, docker save or root
    /// filesystem), an OCI layout directory, or a root filesystem directory.
    pub path: PathBuf,
    /// Reference to store the image under, e.g. base:1.
    #[arg(long)]
    pub name: ImageRef,
    /// Print the server's progress events (NDJSON) instead of bars.
    #[arg(long)]
    pub json: bool,
}

/// What the path holds, which decides how it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file, sent byte for byte; the server recognizes its format.
    File { len: u64 },
    /// A directory, archived on the fly: an OCI image layout or a root
    /// filesystem, which the server tells apart.
    Dir,
}

impl Source {
    pub fn detect(path: &Path) -> anyhow::Result<Self> {
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        if meta.is_dir() {
            Ok(Self::Dir)
        } else if meta.is_file() {
            Ok(Self::File { len: meta.len() })
        } else {
            anyhow::bail!("{} is neither a file nor a directory", path.display())
        }
    }
}

type Chunks = std::pin::Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

pub async fn run(client: &Client, args: ImportArgs) -> anyhow::Result<i32> {
    let source = Source::detect(&args.path)?;
    let multi = progress::multi(progress::bars_visible(args.json));
    let total = match source {
        Source::File { len } => Some(len),
        Source::Dir => None,
    };
    let bar = progress::upload_bar(&multi, total);
    let (chunks, archiver) = match source {
        Source::File { .. } => (open_file(&args.path).await?, None),
        Source::Dir => {
            let (chunks, handle) = archive_dir(args.path.clone());
            (chunks, Some(handle))
        }
    };
    let reference = args.name.to_string();
    let mut url = client.api_url(&["images", "import"]);
    // The server names the upload by this in its errors, not by its spool file.
    url.query_pairs_mut()
        .append_pair("name", &reference)
        .append_pair("source", &args.path.display().to_string());
    let request = client
        .request(Method::POST, url)
        .header(CONTENT_TYPE, "application/x-tar")
        .body(reqwest::Body::wrap_stream(counted(chunks, bar.clone())));
    let resp = client.send(request).await;
    let resp = match (resp, archiver) {
        (Err(e), Some(archiver)) => {
            // A failed archive breaks the upload on purpose (so the server
            // never stores a truncated image); its own error is the cause.
            // An archive that stopped because the upload did is not: the
            // request's error (the server's answer) is.
            if let Ok(Err(cause)) = archiver.await
                && !upload_stopped(&cause)
            {
                bar.abandon();
                return Err(anyhow::Error::new(cause)
                    .context(format!("cannot archive {}", args.path.display())));
            }
            Err(e)
        }
        (resp, _) => resp,
    };
    let resp = resp.inspect_err(|_| bar.abandon())?;
    let mut bars = LayerBars::new(multi);
    let image = progress::follow(resp, &mut bars, args.json).await?;
    if !bar.is_finished() {
        bar.finish();
    }
    if !args.json {
        output::print(&output::image_detail(&image, Utc::now()))?;
    }
    Ok(0)
}

/// Whether an archiving error only means that the upload it fed stopped
/// (whatever wraps it, the cause is a broken pipe).
fn upload_stopped(e: &io::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
        {
            return true;
        }
        cause = c.source();
    }
    false
}

async fn open_file(path: &Path) -> anyhow::Result<Chunks> {
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    Ok(Box::pin(ReaderStream::with_capacity(file, CHUNK)))
}

/// Archives `dir` on a blocking thread into a bounded channel, so the upload
/// reads the tar as it is written.
fn archive_dir(dir: PathBuf) -> (Chunks, JoinHandle<io::Result<()>>) {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_DEPTH);
    let handle = tokio::task::spawn_blocking(move || {
        let mut writer = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let options = devbox_layer::pack::PackOptions { overlay: false };
        let result = devbox_layer::pack::pack_dir(&dir, &mut writer, &options)
            .map_err(io::Error::other)
            .and_then(|_| writer.send_buffered());
        if let Err(e) = &result {
            // The error travels down the stream too, so the request fails
            // instead of ending as if the tar were complete.
            let _ = tx.blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
        }
        result
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (Box::pin(stream), handle)
}

/// Counts the bytes of the upload on its bar, and finishes the bar at the end.
fn counted(chunks: Chunks, bar: ProgressBar) -> impl Stream<Item = io::Result<Bytes>> + Send {
    futures::stream::unfold((chunks, bar), |(mut chunks, bar)| async move {
        match chunks.next().await {
            Some(item) => {
                if let Ok(c) = &item {
                    bar.inc(c.len() as u64);
                }
                Some((item, (chunks, bar)))
            }
            None => {
                bar.finish();
                None
            }
        }
    })
}

/// A `Write` that hands fixed-size pieces to the async side.
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send_buffered(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(Bytes::from(piece)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send_buffered()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buffered()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_told_apart() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(Source::detect(d.path()).unwrap(), Source::Dir);
        let f = d.path().join("image.tar");
        std::fs::write(&f, [0u8; 1024]).unwrap();
        assert_eq!(Source::detect(&f).unwrap(), Source::File { len: 1024 });
        let e = Source::detect(&d.path().join("missing")).unwrap_err();
        assert!(format!("{e:#}").contains("missing"), "{e:#}");
    }

    #[tokio::test]
    async fn a_directory_streams_as_a_complete_tar() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("big"), vec![7u8; CHUNK * 3 + 5]).unwrap();
        std::fs::write(d.path().join("small"), "x").unwrap();
        let (mut chunks, handle) = archive_dir(d.path().to_owned());
        let mut all = Vec::new();
        let mut pieces = 0;
        while let Some(c) = chunks.next().await {
            let c = c.unwrap();
            assert!(c.len() <= CHUNK);
            all.extend_from_slice(&c);
            pieces += 1;
        }
        handle.await.unwrap().unwrap();
        assert!(pieces > 3, "{pieces}");
        let mut ar = tar::Archive::new(&all[..]);
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["big", "small"]);
    }

    #[tokio::test]
    async fn an_archive_that_stopped_with_its_upload_blames_the_upload() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("big"), vec![7u8; CHUNK * (CHANNEL_DEPTH + 4)]).unwrap();
        let (chunks, handle) = archive_dir(d.path().to_owned());
        // The upload ends (the server answered, or the connection broke).
        drop(chunks);
        let e = handle.await.unwrap().unwrap_err();
        assert!(upload_stopped(&e), "{e}");

        let (mut chunks, handle) = archive_dir("/nonexistent/rootfs".into());
        while chunks.next().await.is_some() {}
        let e = handle.await.unwrap().unwrap_err();
        assert!(
            !upload_stopped(&e),
            "a missing directory is the directory's fault: {e}"
        );
    }

    #[tokio::test]
    async fn an_archive_error_breaks_the_stream() {
        let (mut chunks, handle) = archive_dir("/nonexistent/rootfs".into());
        let mut saw_error = false;
        while let Some(c) = chunks.next().await {
            saw_error |= c.is_err();
        }
        assert!(saw_error);
        assert!(handle.await.unwrap().is_err());
    }
}
