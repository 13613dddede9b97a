//! `events`: the server's live stream of state changes and operations
//! (server-sent events under `/api/v1/events`), one line per event, until
//! interrupted. A stream that breaks off is resumed where it stopped.

use std::time::Duration;

use anyhow::Context as _;
use chrono::Local;
use clap::Args;
use devbox_model::api::{Event, EventKind};
use futures::StreamExt;
use reqwest::Method;
use tokio::io::AsyncWriteExt;

use crate::client::Client;

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Print each event as the API's JSON, one object per line.
    #[arg(long)]
    pub json: bool,
    /// Begin after this event ID (an SSE `id`, as `--json` does not show
    /// it: `<boot>-<seq>`) instead of now.
    #[arg(long, value_name = "ID")]
    pub after: Option<String>,
}

/// One event of the stream as it was sent: its ID (if any) and its data.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SseFrame {
    pub id: Option<String>,
    pub data: String,
}

/// Reads SSE frames from lines; comments (keep-alives) and unknown fields
/// are skipped.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    frame: SseFrame,
    has_data: bool,
}

impl SseParser {
    /// Feeds bytes; returns the frames they completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseFrame> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if self.has_data {
                    out.push(std::mem::take(&mut self.frame));
                }
                self.frame = SseFrame::default();
                self.has_data = false;
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "data" => {
                    if self.has_data {
                        self.frame.data.push('\n');
                    }
                    self.frame.data.push_str(value);
                    self.has_data = true;
                }
                "id" => self.frame.id = Some(value.to_owned()),
                _ => {}
            }
        }
        out
    }
}

pub async fn run(client: &Client, args: EventsArgs) -> anyhow::Result<i32> {
    let mut last = args.after.clone();
    let mut stdout = tokio::io::stdout();
    loop {
        let mut req = client.request(Method::GET, client.api_url(&["events"]));
        if let Some(id) = &last {
            req = req.header("Last-Event-ID", id);
        }
        let resp = client.send(req).await?;
        let mut body = resp.bytes_stream();
        let mut parser = SseParser::default();
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else { break };
            for frame in parser.push(&chunk) {
                let event: Event = serde_json::from_str(&frame.data).with_context(|| {
                    format!(
                        "the server sent an event this client does not understand: {}",
                        frame.data
                    )
                })?;
                if frame.id.is_some() {
                    last = frame.id;
                }
                let line = if args.json {
                    frame.data
                } else {
                    render(&event)
                };
                stdout.write_all(format!("{line}\n").as_bytes()).await?;
                stdout.flush().await?;
            }
        }
        // The connection broke (or the server restarted): resume after the
        // last event printed; the server says if that is no longer possible.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One line for people: local time, sequence number, what happened.
pub fn render(e: &Event) -> String {
    let time = e.time.with_timezone(&Local).format("%H:%M:%S");
    let on = |d: &Option<devbox_model::DevboxName>| {
        d.as_ref().map(|d| format!(" {d}")).unwrap_or_default()
    };
    let what = match &e.kind {
        EventKind::State {
            devbox,
            from,
            to,
            error,
            reason,
        } => {
            let mut s = match from {
                Some(f) => format!("{devbox}: {f} -> {to}"),
                None => format!("{devbox}: created, {to}"),
            };
            if let Some(r) = reason {
                s.push_str(&format!(" ({r})"));
            }
            if let Some(err) = error {
                s.push_str(&format!(": {err}"));
            }
            s
        }
        EventKind::Deleted { devbox } => format!("{devbox}: deleted"),
        EventKind::OperationStarted { op, devbox, caller } => {
            format!("{op}{} began ({caller})", on(devbox))
        }
        EventKind::OperationFinished { op, devbox, caller } => {
            format!("{op}{} done ({caller})", on(devbox))
        }
        EventKind::OperationFailed {
            op,
            devbox,
            caller,
            message,
        } => format!("{op}{} failed ({caller}): {message}", on(devbox)),
        EventKind::Error { devbox, message } => match devbox {
            Some(d) => format!("{d}: error: {message}"),
            None => format!("error: {message}"),
        },
        EventKind::Gap { message } => format!("(events missed: {message})"),
    };
    match e.kind {
        EventKind::Gap { .. } => format!("{time}  {what}"),
        _ => format!("{time}  {:>5}  {what}", e.seq),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_end_at_a_blank_line_and_keep_their_id() {
        let mut p = SseParser::default();
        assert!(p.push(b": keep-alive\n\nid: b-1\nda").is_empty());
        let frames = p.push(b"ta: {\"x\":1}\n\ndata: a\ndata: b\n\n");
        assert_eq!(
            frames,
            [
                SseFrame {
                    id: Some("b-1".into()),
                    data: "{\"x\":1}".into()
                },
                SseFrame {
                    id: None,
                    data: "a\nb".into()
                }
            ]
        );
    }

    #[test]
    fn state_changes_read_as_sentences() {
        let e = Event {
            seq: 7,
            time: chrono::Utc::now(),
            kind: EventKind::State {
                devbox: "web".parse().unwrap(),
                from: Some(devbox_model::State::Running),
                to: devbox_model::State::Stopping,
                error: None,
                reason: Some("idle for 30m".into()),
            },
        };
        let line = render(&e);
        assert!(
            line.ends_with("    7  web: running -> stopping (idle for 30m)"),
            "{line}"
        );
    }
}
