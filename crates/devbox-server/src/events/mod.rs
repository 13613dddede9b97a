//! The server's event bus: every state change, operation start and end and
//! error, numbered in order, kept in a bounded ring for clients that
//! reconnect, and broadcast to the live subscribers of `/api/v1/events`.
//!
//! Events are published from two places only: `ops::transition` (where
//! every state change is persisted, by requests and the reconciler alike)
//! and `ops::task` (where every operation runs), plus the reconciler's own
//! errors.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use devbox_model::api::{Event, EventKind};
use tokio::sync::broadcast;

/// Events kept for clients that resume with `Last-Event-ID`.
pub const RING: usize = 1024;

/// Publishes and replays events; cheap to clone.
#[derive(Debug, Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Names this run of the server in event IDs, so an ID of an earlier
    /// run is never taken for one of this run.
    boot: String,
    ring: Mutex<Ring>,
    tx: broadcast::Sender<Event>,
}

#[derive(Debug)]
struct Ring {
    next: u64,
    events: VecDeque<Event>,
}

/// Where a subscriber starts: what it missed, and the live feed after it.
#[derive(Debug)]
pub struct Subscription {
    /// Events after the one the client saw last, oldest first.
    pub backlog: Vec<Event>,
    /// Why the stream cannot resume where the client asked, if it cannot.
    pub gap: Option<String>,
    pub live: broadcast::Receiver<Event>,
}

impl EventBus {
    /// A bus whose event IDs carry `boot`.
    pub fn new(boot: String) -> Self {
        let (tx, _) = broadcast::channel(RING);
        Self {
            inner: Arc::new(Inner {
                boot,
                ring: Mutex::new(Ring {
                    next: 1,
                    events: VecDeque::with_capacity(RING),
                }),
                tx,
            }),
        }
    }

    /// A bus named by a random boot ID.
    pub fn random() -> Self {
        let mut b = [0u8; 4];
        // The kernel's random source does not fail once the system has booted.
        getrandom::fill(&mut b).expect("random bytes for the boot ID");
        Self::new(hex::encode(b))
    }

    /// The SSE ID of an event: `<boot>-<seq>`.
    pub fn id(&self, event: &Event) -> String {
        format!("{}-{}", self.inner.boot, event.seq)
    }

    /// Numbers `kind`, keeps it in the ring and sends it to every live
    /// subscriber. Returns its sequence number.
    pub fn publish(&self, kind: EventKind) -> u64 {
        let mut ring = self.inner.ring.lock().unwrap_or_else(|p| p.into_inner());
        let event = Event {
            seq: ring.next,
            time: Utc::now(),
            kind,
        };
        ring.next += 1;
        if ring.events.len() == RING {
            ring.events.pop_front();
        }
        ring.events.push_back(event.clone());
        // Sent under the lock, so subscribers see events in sequence order.
        // No subscriber is not an error.
        let _ = self.inner.tx.send(event);
        ring.next - 1
    }

    /// Subscribes after the event with SSE ID `last` (none: from now on).
    pub fn subscribe(&self, last: Option<&str>) -> Subscription {
        let ring = self.inner.ring.lock().unwrap_or_else(|p| p.into_inner());
        // Subscribing under the lock: nothing published is both in the
        // backlog and in the live feed, or in neither.
        let live = self.inner.tx.subscribe();
        let Some(last) = last else {
            return Subscription {
                backlog: Vec::new(),
                gap: None,
                live,
            };
        };
        let newest = ring.next - 1;
        let oldest = ring.events.front().map_or(ring.next, |e| e.seq);
        let seq = match last.rsplit_once('-') {
            Some((boot, seq)) if boot == self.inner.boot => seq.parse::<u64>().ok(),
            _ => None,
        };
        let (from, gap) = match seq {
            None => (
                oldest,
                Some(format!(
                    "event {last:?} is not of this run of the server (it restarted since, or the ID is malformed): earlier events are lost, reload what you show"
                )),
            ),
            Some(s) if s > newest => (
                oldest,
                Some(format!(
                    "event {last:?} was never sent by this server: reload what you show"
                )),
            ),
            Some(s) if s + 1 < oldest => (
                oldest,
                Some(format!(
                    "event {last:?} is older than the last {RING} events the server keeps: events in between are lost, reload what you show"
                )),
            ),
            Some(s) => (s + 1, None),
        };
        Subscription {
            backlog: ring
                .events
                .iter()
                .filter(|e| e.seq >= from)
                .cloned()
                .collect(),
            gap,
            live,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(n: u64) -> EventKind {
        EventKind::Error {
            devbox: None,
            message: format!("e{n}"),
        }
    }

    #[test]
    fn a_subscriber_resumes_after_the_event_it_saw_last() {
        let bus = EventBus::new("b".into());
        for n in 1..=5 {
            assert_eq!(bus.publish(error(n)), n);
        }
        let sub = bus.subscribe(Some("b-3"));
        assert_eq!(sub.gap, None);
        let seqs: Vec<u64> = sub.backlog.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [4, 5]);
        let sub = bus.subscribe(Some("b-5"));
        assert!(sub.backlog.is_empty() && sub.gap.is_none());
    }

    #[tokio::test]
    async fn live_events_follow_the_backlog_without_loss_or_repeat() {
        let bus = EventBus::new("b".into());
        bus.publish(error(1));
        let mut sub = bus.subscribe(Some("b-0"));
        bus.publish(error(2));
        assert_eq!(sub.backlog.len(), 1);
        assert_eq!(sub.backlog[0].seq, 1);
        assert_eq!(sub.live.recv().await.unwrap().seq, 2);
    }

    #[test]
    fn an_id_too_old_or_of_another_run_is_a_gap() {
        let bus = EventBus::new("b".into());
        for n in 1..=(RING as u64 + 10) {
            bus.publish(error(n));
        }
        let sub = bus.subscribe(Some("b-3"));
        assert!(
            sub.gap.as_deref().unwrap().contains("older than"),
            "{:?}",
            sub.gap
        );
        assert_eq!(sub.backlog.len(), RING);
        assert_eq!(sub.backlog[0].seq, 11);
        for other in ["a-3", "garbage", "b-x", "b-999999"] {
            let sub = bus.subscribe(Some(other));
            assert!(sub.gap.is_some(), "{other}");
        }
        assert!(bus.subscribe(None).gap.is_none());
    }

    #[test]
    fn event_ids_name_the_run() {
        let bus = EventBus::new("cafe".into());
        bus.publish(error(1));
        let sub = bus.subscribe(Some("cafe-0"));
        assert_eq!(bus.id(&sub.backlog[0]), "cafe-1");
    }
}
