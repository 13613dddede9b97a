//! `commit`, `history` and `rollback`: a devbox's changes saved as image
//! layers, the list of those commits, and choosing the one the next start
//! runs from.

use chrono::{DateTime, Utc};
use clap::Args;
use devbox_model::api::{Commit, CommitRequest, CommitTrigger, Devbox, RollbackRequest};
use devbox_model::{DevboxName, State};

use crate::client::Client;
use crate::commit_ref::CommitId;
use crate::{output, waiting};

#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Name of the running devbox.
    pub name: DevboxName,
    /// A message for its history.
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Freeze the devbox's processes while its files are read, so the commit
    /// is one point in time (they pause for as long as the walk takes).
    #[arg(long)]
    pub consistent: bool,
    /// Keep this commit's image whatever the retention says.
    #[arg(long)]
    pub pin: bool,
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Name of the devbox.
    pub name: DevboxName,
    /// Print the API's JSON array, newest first.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Name of the devbox.
    pub name: DevboxName,
    /// The commit its next start runs from, as `devbox history NAME` shows it.
    pub commit: CommitId,
    /// Seconds a running devbox's processes get to exit after SIGTERM, as
    /// with `devbox stop`; default 10.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
}

/// The request body of `commit`.
pub fn commit_request(args: &CommitArgs) -> CommitRequest {
    CommitRequest {
        message: args.message.clone(),
        consistent: args.consistent,
        pin: args.pin,
    }
}

pub async fn commit(client: &Client, args: CommitArgs) -> anyhow::Result<i32> {
    let url = client.api_url(&["devboxes", args.name.as_str(), "commits"]);
    let notice = if args.consistent {
        format!(
            "committing {}: its processes are frozen while its files are read",
            args.name
        )
    } else {
        format!("committing {}: reading and packing its changes", args.name)
    };
    let body = commit_request(&args);
    let c = waiting::with_notice(notice, client.post_json::<Commit>(url, &body)).await?;
    if args.json {
        output::print_raw(&c.raw)?;
    } else {
        output::print(&commit_detail(&c.value))?;
    }
    Ok(0)
}

/// What `commit` prints: the commit's ID and its image first.
pub fn commit_detail(c: &Commit) -> String {
    let mut fields = vec![
        ("Commit", c.id.clone()),
        ("Digest", digest(c)),
        ("Reference", c.reference.clone()),
    ];
    let mut layer = output::size(c.layer_size);
    if c.excluded_bytes > 0 {
        layer.push_str(&format!(
            " ({} left out by the exclude patterns)",
            output::size(c.excluded_bytes)
        ));
    }
    fields.push(("Layer", layer));
    if c.pinned {
        fields.push(("Pinned", "yes".to_owned()));
    }
    output::fields_list(&fields)
}

fn digest(c: &Commit) -> String {
    match &c.digest {
        Some(d) => d.to_string(),
        None => "- (reclaimed by retention)".to_owned(),
    }
}

pub async fn history(client: &Client, args: HistoryArgs) -> anyhow::Result<i32> {
    let url = client.api_url(&["devboxes", args.name.as_str(), "commits"]);
    let list = client.get_json::<Vec<Commit>>(url).await?;
    if args.json {
        output::print_raw(&list.raw)?;
        return Ok(0);
    }
    output::print(&history_table(&list.value, Utc::now()))?;
    if list.value.is_empty() {
        eprintln!(
            "note: {name} has no commits yet; `devbox commit {name}` makes one, and so does its stop",
            name = args.name
        );
    }
    Ok(0)
}

/// What a history row says beyond its columns: pinned, merged into a later
/// image, or its image reclaimed (it can no longer be rolled back to).
fn notes(c: &Commit) -> String {
    let mut notes = Vec::new();
    if c.pinned {
        notes.push("pinned".to_owned());
    }
    if let Some(into) = &c.merged_into {
        notes.push(format!("merged into {into}"));
    }
    if c.digest.is_none() {
        notes.push("image reclaimed".to_owned());
    }
    if notes.is_empty() {
        "-".to_owned()
    } else {
        notes.join(", ")
    }
}

/// `devbox history`: newest first, as the API lists them, `*` on the head.
pub fn history_table(commits: &[Commit], now: DateTime<Utc>) -> String {
    let rows: Vec<Vec<String>> = commits
        .iter()
        .map(|c| {
            vec![
                if c.head { "*" } else { "" }.to_owned(),
                c.id.clone(),
                output::age(c.created_at, now),
                trigger(c),
                output::size(c.layer_size),
                notes(c),
                if c.message.is_empty() {
                    "-".to_owned()
                } else {
                    c.message.clone()
                },
            ]
        })
        .collect();
    output::table(
        &["", "ID", "CREATED", "TRIGGER", "SIZE", "NOTES", "MESSAGE"],
        &rows,
    )
}

/// `manual`, `auto`, `stop` or `release`, as the API spells them.
fn trigger(c: &Commit) -> String {
    match c.trigger {
        CommitTrigger::Manual => "manual",
        CommitTrigger::Auto => "auto",
        CommitTrigger::Stop => "stop",
        CommitTrigger::Release => "release",
    }
    .to_owned()
}

pub async fn rollback(client: &Client, args: RollbackArgs) -> anyhow::Result<i32> {
    let name = args.name.as_str();
    // Asked first so that a running devbox's restart is announced before it
    // happens, not discovered afterwards.
    let before = client
        .get_json::<Devbox>(client.api_url(&["devboxes", name]))
        .await?;
    let running = before.value.state == State::Running;
    if running {
        eprintln!(
            "note: {name} is running: rolling back restarts it to run from commit {} \
             (its stop commits its changes first, and they stay in the history)",
            args.commit
        );
    }
    let mut url = client.api_url(&["devboxes", name, "rollback"]);
    if let Some(t) = args.timeout {
        url.query_pairs_mut().append_pair("timeout", &t.to_string());
    }
    let body = RollbackRequest {
        commit: args.commit.to_string(),
    };
    let notice = format!("rolling back {name}: waiting for the server");
    let d = waiting::with_notice(notice, client.post_json::<Devbox>(url, &body)).await?;
    if args.json {
        output::print_raw(&d.raw)?;
    } else {
        output::print(&rollback_outcome(&d.value, &args.commit))?;
    }
    Ok(0)
}

/// What `rollback` says once the server has moved the head.
pub fn rollback_outcome(d: &Devbox, commit: &CommitId) -> String {
    if d.state == State::Running {
        format!("{}: restarted, running from commit {commit}\n", d.name)
    } else {
        format!(
            "{}: {}; its next start runs from commit {commit}\n",
            d.name,
            output::state(d)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
    }

    fn commit(id: &str, trigger: CommitTrigger, at: i64) -> Commit {
        Commit {
            id: id.to_owned(),
            created_at: t(at),
            trigger,
            message: String::new(),
            digest: Some(format!("sha256:{}", "d".repeat(64)).parse().unwrap()),
            reference: format!("admin/web:{id}"),
            layer_size: 1024,
            excluded_bytes: 0,
            parent: None,
            pinned: false,
            merged_into: None,
            head: false,
        }
    }

    #[test]
    fn the_request_carries_message_consistency_and_pin() {
        let args = CommitArgs {
            name: "web".parse().unwrap(),
            message: Some("installed toolchain".into()),
            consistent: true,
            pin: false,
            json: false,
        };
        assert_eq!(
            serde_json::to_value(commit_request(&args)).unwrap(),
            serde_json::json!({"message": "installed toolchain", "consistent": true, "pin": false})
        );
    }

    #[test]
    fn a_commit_prints_its_id_and_digest_first() {
        let mut c = commit("0123456789abcdef", CommitTrigger::Manual, 0);
        let out = commit_detail(&c);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "Commit:     0123456789abcdef");
        assert_eq!(lines[1], format!("Digest:     sha256:{}", "d".repeat(64)));
        assert_eq!(lines[2], "Reference:  admin/web:0123456789abcdef");
        assert_eq!(lines[3], "Layer:      1KiB");
        assert_eq!(lines.len(), 4, "{out}");
        c.excluded_bytes = 3 << 20;
        c.pinned = true;
        let out = commit_detail(&c);
        assert!(
            out.contains("Layer:      1KiB (3MiB left out by the exclude patterns)\n"),
            "{out}"
        );
        assert!(out.ends_with("Pinned:     yes\n"), "{out}");
    }

    #[test]
    fn history_marks_the_head_and_says_what_became_of_each_commit() {
        let mut head = commit("3333333333333333", CommitTrigger::Manual, 3300);
        head.head = true;
        head.pinned = true;
        head.message = "installed toolchain".into();
        head.layer_size = 12 << 20;
        let mut merged = commit("2222222222222222", CommitTrigger::Auto, 0);
        merged.merged_into = Some("3333333333333333".into());
        let mut gone = commit("1111111111111111", CommitTrigger::Stop, -86_400);
        gone.digest = None;
        let out = history_table(&[head, merged, gone], t(3600));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                "    ID                 CREATED   TRIGGER   SIZE    NOTES                          MESSAGE",
                "*   3333333333333333   5m ago    manual    12MiB   pinned                         installed toolchain",
                "    2222222222222222   1h ago    auto      1KiB    merged into 3333333333333333   -",
                "    1111111111111111   1d ago    stop      1KiB    image reclaimed                -",
            ]
        );
    }

    #[test]
    fn an_empty_history_is_its_header() {
        assert_eq!(
            history_table(&[], t(0)),
            "   ID   CREATED   TRIGGER   SIZE   NOTES   MESSAGE\n"
        );
    }

    fn devbox(state: State) -> Devbox {
        serde_json::from_value(serde_json::json!({
            "id": "0123456789abcdef", "name": "web", "image": "base:1",
            "image_digest": format!("sha256:{}", "a".repeat(64)), "state": state,
            "error": null, "resources": {"cpus": 1.0, "memory": 1073741824u64, "pids": 4096},
            "env": [], "command": null, "ip": "", "head": "2222222222222222",
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
        }))
        .unwrap()
    }

    #[test]
    fn a_rollback_says_whether_the_devbox_restarted_or_waits_for_its_next_start() {
        let id: CommitId = "2222222222222222".parse().unwrap();
        assert_eq!(
            rollback_outcome(&devbox(State::Running), &id),
            "web: restarted, running from commit 2222222222222222\n"
        );
        assert_eq!(
            rollback_outcome(&devbox(State::Stopped), &id),
            "web: stopped; its next start runs from commit 2222222222222222\n"
        );
    }
}
