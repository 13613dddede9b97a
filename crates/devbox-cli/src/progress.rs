//! Progress of an image pull or import: reading the server's NDJSON event
//! stream, drawing one bar per layer, and returning the stored image.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::Context as _;
use devbox_model::api::{Image, ProgressEvent};
use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::client::ApiError;
use crate::ndjson::LineSplitter;
use crate::output::short_digest;

/// Whether bars are drawn: only for people, on a terminal.
pub fn bars_visible(json: bool) -> bool {
    !json && std::io::stderr().is_terminal()
}

/// A `MultiProgress` drawing on stderr, or nowhere.
pub fn multi(visible: bool) -> MultiProgress {
    let target = if visible {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    MultiProgress::with_draw_target(target)
}

/// One bar per layer, keyed by digest.
#[derive(Debug)]
pub struct LayerBars {
    multi: MultiProgress,
    bars: HashMap<String, ProgressBar>,
}

impl LayerBars {
    pub fn new(multi: MultiProgress) -> Self {
        Self {
            multi,
            bars: HashMap::new(),
        }
    }

    fn bar(&mut self, digest: &str, total: u64) -> &ProgressBar {
        self.bars.entry(digest.to_owned()).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new(total));
            bar.set_style(layer_style());
            bar.set_prefix(short_digest(digest).to_owned());
            bar
        })
    }

    /// Draws one event.
    pub fn show(&mut self, event: &ProgressEvent) {
        match event {
            ProgressEvent::Resolved { layers, .. } => {
                for l in layers {
                    self.bar(&l.digest, l.size);
                }
            }
            ProgressEvent::Progress {
                digest,
                current,
                total,
            } => {
                let bar = self.bar(digest, *total);
                bar.set_length(*total);
                bar.set_position(*current);
            }
            ProgressEvent::LayerDone { digest, cached } => {
                let bar = self.bar(digest, 0);
                let msg = if *cached { "already stored" } else { "done" };
                if let Some(len) = bar.length() {
                    bar.set_position(len);
                }
                bar.finish_with_message(msg);
            }
            ProgressEvent::Done { .. } => {}
            ProgressEvent::Error { .. } => {
                for bar in self.bars.values().filter(|b| !b.is_finished()) {
                    bar.abandon_with_message("failed");
                }
            }
        }
    }
}

fn layer_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix}  [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}",
    )
    .expect("a valid progress template")
    .progress_chars("=> ")
}

/// Upload bar: a bar when the size is known, else a running byte count.
pub fn upload_bar(multi: &MultiProgress, total: Option<u64>) -> ProgressBar {
    let (bar, template) = match total {
        Some(n) => (
            ProgressBar::new(n),
            "upload  [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}",
        ),
        None => (
            ProgressBar::no_length(),
            "upload  {spinner} {bytes} {binary_bytes_per_sec} {msg}",
        ),
    };
    let bar = multi.add(bar);
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("a valid progress template")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Reads the event stream of an import or pull to its end. With `echo`
/// (`--json`) every line is copied to stdout as it arrives.
pub async fn follow(
    resp: reqwest::Response,
    bars: &mut LayerBars,
    echo: bool,
) -> anyhow::Result<Image> {
    let mut stream = resp.bytes_stream();
    let mut splitter = LineSplitter::default();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.context("the progress stream from the server broke off")?;
        for line in splitter.push(&chunk)? {
            if let Some(done) = handle_line(&line, bars, echo)? {
                return Ok(done);
            }
        }
    }
    if let Some(line) = splitter.finish()
        && let Some(done) = handle_line(&line, bars, echo)?
    {
        return Ok(done);
    }
    anyhow::bail!("the server ended the progress stream before the image was stored")
}

/// Shows one line; returns the image once the stream says it is stored.
fn handle_line(line: &[u8], bars: &mut LayerBars, echo: bool) -> anyhow::Result<Option<Image>> {
    if echo {
        let mut out = std::io::stdout().lock();
        out.write_all(line)?;
        out.write_all(b"\n")?;
        out.flush()?;
    }
    let event = match serde_json::from_slice::<ProgressEvent>(line) {
        Ok(e) => e,
        Err(e) => {
            // Events this client does not know yet are skipped, so a newer
            // server can report more without breaking older clients.
            tracing::debug!("skipping a progress line this client does not understand: {e}");
            return Ok(None);
        }
    };
    bars.show(&event);
    match event {
        ProgressEvent::Done { image } => Ok(Some(image)),
        ProgressEvent::Error { error } => Err(ApiError::from_detail(&error).into()),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devbox_model::api::{ErrorCode, ErrorDetail, LayerInfo};

    fn hidden_bars() -> LayerBars {
        LayerBars::new(multi(false))
    }

    #[test]
    fn bars_follow_layer_events() {
        let mut bars = hidden_bars();
        bars.show(&ProgressEvent::Resolved {
            digest: "sha256:m".into(),
            layers: vec![
                LayerInfo {
                    digest: "sha256:aaa".into(),
                    size: 100,
                },
                LayerInfo {
                    digest: "sha256:bbb".into(),
                    size: 50,
                },
            ],
        });
        assert_eq!(bars.bars.len(), 2);
        bars.show(&ProgressEvent::Progress {
            digest: "sha256:aaa".into(),
            current: 40,
            total: 100,
        });
        assert_eq!(bars.bars["sha256:aaa"].position(), 40);
        bars.show(&ProgressEvent::LayerDone {
            digest: "sha256:bbb".into(),
            cached: true,
        });
        assert!(bars.bars["sha256:bbb"].is_finished());
        bars.show(&ProgressEvent::Error {
            error: ErrorDetail {
                code: ErrorCode::Upstream,
                message: "x".into(),
            },
        });
        assert!(bars.bars["sha256:aaa"].is_finished());
    }

    #[test]
    fn lines_end_the_stream_on_done_or_error() {
        let mut bars = hidden_bars();
        let progress = br#"{"type":"progress","digest":"sha256:a","current":1,"total":2}"#;
        assert!(handle_line(progress, &mut bars, false).unwrap().is_none());
        assert!(
            handle_line(br#"{"type":"future_event"}"#, &mut bars, false)
                .unwrap()
                .is_none()
        );
        let err = br#"{"type":"error","error":{"code":"not_found","message":"manifest unknown"}}"#;
        let e = handle_line(err, &mut bars, false).unwrap_err();
        assert_eq!(e.to_string(), "manifest unknown");
        assert_eq!(crate::client::error::exit_code(&e), 3);
        let done = serde_json::json!({"type":"done","image":{
            "reference":"busybox:1","repository":"busybox","tag":"1",
            "digest":format!("sha256:{}", "a".repeat(64)),"size":5,"layers":1,
            "created_at":"2026-01-01T00:00:00Z"}});
        let img = handle_line(done.to_string().as_bytes(), &mut bars, false)
            .unwrap()
            .unwrap();
        assert_eq!(img.reference, "busybox:1");
    }
}
