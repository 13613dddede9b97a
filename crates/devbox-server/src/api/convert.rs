//! The store's records as the API shows them.

use devbox_model::State;
use devbox_model::api::{self, Devbox};
use devbox_store::{CommitRecord, CommitState, CommitTrigger, DevboxRecord};

use crate::state::repository;

/// The settings of a running devbox that differ from what its run started
/// with, and so apply at its next start.
fn pending(d: &DevboxRecord) -> Vec<String> {
    let running = matches!(d.state, State::Running | State::Starting);
    let Some(applied) = d.applied.as_ref().filter(|_| running) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if applied.env != d.env {
        out.push("env".to_owned());
    }
    if applied.command != d.command {
        out.push("command".to_owned());
    }
    out
}

/// A devbox as the API shows it, with its commit state.
pub fn devbox_with(d: DevboxRecord, cs: &CommitState) -> Devbox {
    let mut out = devbox(d);
    out.head = cs.head.clone();
    out.auto_commit = cs.auto_commit.map(|d| d.as_secs());
    out.commit_exclude = cs.exclude.clone();
    out
}

/// A commit as the API shows it.
pub fn commit(
    c: CommitRecord,
    devbox: &devbox_model::DevboxName,
    head: Option<&str>,
) -> api::Commit {
    api::Commit {
        reference: format!("{}:{}", repository(devbox), c.id),
        head: head == Some(c.id.as_str()),
        id: c.id,
        created_at: c.created_at,
        trigger: match c.trigger {
            CommitTrigger::Manual => api::CommitTrigger::Manual,
            CommitTrigger::Auto => api::CommitTrigger::Auto,
            CommitTrigger::Stop => api::CommitTrigger::Stop,
            CommitTrigger::Release => api::CommitTrigger::Release,
        },
        message: c.message,
        digest: c.manifest,
        layer_size: c.layer_size,
        excluded_bytes: c.excluded_bytes,
        parent: c.parent,
        pinned: c.pinned,
        merged_into: c.merged_into,
    }
}

pub fn devbox(d: DevboxRecord) -> Devbox {
    let pending = pending(&d);
    Devbox {
        id: d.id,
        name: d.name,
        image: d.image,
        image_digest: d.image_digest,
        state: d.state,
        error: d.error,
        reason: d.reason,
        resources: d.resources,
        env: d.env,
        command: d.command,
        ip: d.ip.map(|ip| ip.to_string()).unwrap_or_default(),
        oom_kills: d.oom_kills,
        command_status: d.command_status,
        pending,
        head: None,
        auto_commit: None,
        commit_exclude: Vec::new(),
        auto_stop: None,
        last_activity: None,
        created_at: d.created_at,
        updated_at: d.updated_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devbox_store::AppliedSettings;

    fn record(state: State) -> DevboxRecord {
        DevboxRecord {
            id: devbox_model::DevboxId::from_random([1; 8]),
            name: "web".parse().unwrap(),
            image: "base:1".into(),
            image_digest: devbox_model::Digest::of(b"m"),
            state,
            error: None,
            reason: None,
            resources: Default::default(),
            env: vec!["A=1".parse().unwrap()],
            command: None,
            applied: Some(AppliedSettings {
                env: vec!["A=1".parse().unwrap()],
                command: None,
            }),
            ip: Some("10.77.0.2".parse().unwrap()),
            oom_kills: 0,
            command_status: None,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn settings_changed_while_running_are_pending() {
        let mut d = record(State::Running);
        assert!(pending(&d).is_empty());
        d.env.push("B=2".parse().unwrap());
        d.command = Some(vec!["sleep".into(), "1".into()]);
        assert_eq!(pending(&d), ["env", "command"]);
        d.state = State::Stopped;
        assert!(
            pending(&d).is_empty(),
            "a stopped devbox applies them at start"
        );
        assert_eq!(devbox(d).ip, "10.77.0.2");
    }
}
