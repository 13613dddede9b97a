//! `GET /api/v1/events`: the event stream as server-sent events. A client
//! that reconnects with `Last-Event-ID` gets what it missed first, or a
//! `gap` event saying it cannot.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use devbox_model::api::{Event, EventKind};
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;

use crate::events::EventBus;
use crate::state::AppState;

fn sse(bus: &EventBus, event: &Event) -> SseEvent {
    let data = serde_json::to_string(event).unwrap_or_default();
    let out = SseEvent::default().data(data);
    // A gap has no ID: the client keeps resuming from the last real event.
    match event.kind {
        EventKind::Gap { .. } => out,
        _ => out.id(bus.id(event)),
    }
}

fn gap(message: String) -> Event {
    Event {
        seq: 0,
        time: chrono::Utc::now(),
        kind: EventKind::Gap { message },
    }
}

#[utoipa::path(get, path = "/api/v1/events",
    params(("Last-Event-ID" = Option<String>, Header, description = "resume after this event")),
    responses((status = 200, content_type = "text/event-stream", body = Event)),
    security(("bearer" = [])))]
pub async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let bus = state.events.clone();
    let sub = bus.subscribe(last);
    let head: Vec<Event> = sub.gap.map(gap).into_iter().chain(sub.backlog).collect();
    let stream = async_stream(bus, head, sub.live);
    Sse::new(stream).keep_alive(KeepAlive::default())
}

fn async_stream(
    bus: EventBus,
    head: Vec<Event>,
    live: tokio::sync::broadcast::Receiver<Event>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let head = futures::stream::iter(head.into_iter().map({
        let bus = bus.clone();
        move |e| Ok(sse(&bus, &e))
    }));
    let live = futures::stream::unfold((bus, live), |(bus, mut live)| async move {
        let event = match live.recv().await {
            Ok(e) => e,
            // A client that reads too slowly is told what it lost.
            Err(RecvError::Lagged(n)) => gap(format!(
                "{n} events were dropped because the client read too slowly: reload what you show"
            )),
            Err(RecvError::Closed) => return None,
        };
        let out = sse(&bus, &event);
        Some((Ok(out), (bus, live)))
    });
    futures::StreamExt::chain(head, live)
}
