//! How the API shows the store's records.

use devbox_model::api::Devbox;
use devbox_store::DevboxRecord;

/// The API's view of a devbox record. Settings that differ from those the
/// current (or last) run started with are `pending`: they apply at the
/// next start.
pub fn devbox(record: DevboxRecord) -> Devbox {
    let mut pending = Vec::new();
    if let Some(applied) = &record.applied {
        if applied.env != record.env {
            pending.push("env".to_owned());
        }
        if applied.command != record.command {
            pending.push("command".to_owned());
        }
    }
    Devbox {
        id: record.id,
        name: record.name,
        image: record.image,
        image_digest: record.image_digest,
        state: record.state,
        error: record.error,
        reason: record.reason,
        resources: record.resources,
        env: record.env,
        command: record.command,
        ip: record.ip.map(|ip| ip.to_string()).unwrap_or_default(),
        oom_kills: record.oom_kills,
        command_status: record.command_status,
        pending,
        created_at: record.created_at,
        updated_at: record.updated_at,
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use devbox_model::{DevboxId, Digest, Resources, State};
    use devbox_store::AppliedSettings;

    use super::*;

    fn record() -> DevboxRecord {
        DevboxRecord {
            id: DevboxId::from_random([1; 8]),
            name: "web".parse().unwrap(),
            image: "base:1".into(),
            image_digest: Digest::of(b"m"),
            state: State::Running,
            error: None,
            reason: None,
            resources: Resources::default(),
            env: vec!["A=1".parse().unwrap()],
            command: None,
            applied: None,
            ip: None,
            oom_kills: 0,
            command_status: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn settings_changed_since_the_start_are_pending() {
        let mut r = record();
        assert!(devbox(r.clone()).pending.is_empty(), "never started");
        r.applied = Some(AppliedSettings {
            env: r.env.clone(),
            command: None,
        });
        assert!(devbox(r.clone()).pending.is_empty());
        r.command = Some(vec!["sh".into()]);
        assert_eq!(devbox(r.clone()).pending, ["command"]);
        r.env.clear();
        assert_eq!(devbox(r).pending, ["env", "command"]);
    }

    #[test]
    fn an_address_shows_once_the_runtime_gave_one() {
        let mut r = record();
        assert_eq!(devbox(r.clone()).ip, "");
        r.ip = Some("10.77.0.2".parse().unwrap());
        assert_eq!(devbox(r).ip, "10.77.0.2");
    }
}
