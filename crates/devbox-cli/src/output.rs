//! What people read: aligned tables, ages and sizes. Scripts use `--json`,
//! which prints the API's answer unchanged instead.

use std::io::Write;

use chrono::{DateTime, Utc};
use devbox_model::ByteSize;
use devbox_model::api::{CommandStatus, Devbox, Image};

/// Space between columns.
const GAP: &str = "   ";

/// Columns padded to their widest cell; the last column is not padded, so
/// lines carry no trailing spaces.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let last = row.len().saturating_sub(1);
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = widths[i] - cell.chars().count();
                out.extend(std::iter::repeat_n(' ', pad));
                out.push_str(GAP);
            }
        }
        out.push('\n');
    }
    out
}

/// How long ago `then` was, in the largest whole unit: `12s ago`, `3m ago`,
/// `5h ago`, `2d ago`. A time in the future (clocks disagree) is `just now`.
pub fn age(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - then).num_seconds();
    if secs < 1 {
        return "just now".to_owned();
    }
    let (n, unit) = match secs {
        s if s < 60 => (s, "s"),
        s if s < 3600 => (s / 60, "m"),
        s if s < 86_400 => (s / 3600, "h"),
        s => (s / 86_400, "d"),
    };
    format!("{n}{unit} ago")
}

/// A byte count as people read it: `512MiB`, `1.5GiB`, `10B`.
pub fn size(bytes: u64) -> String {
    ByteSize(bytes).to_string()
}

/// A CPU count without a useless fraction: `1`, `0.5`, `2.25`.
pub fn cpus(n: f64) -> String {
    format!("{n}")
}

/// The hex of a digest shortened to twelve characters, as Docker shows IDs.
pub fn short_digest(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    &hex[..hex.len().min(12)]
}

/// `-` for an empty value, so columns never collapse.
fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else {
        s.to_owned()
    }
}

/// A command line written so that a shell would split it the same way.
pub fn shell_join(args: &[String]) -> String {
    let quote = |a: &String| {
        let plain = !a.is_empty()
            && a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
        if plain {
            a.clone()
        } else {
            format!("'{}'", a.replace('\'', r"'\''"))
        }
    };
    args.iter().map(quote).collect::<Vec<_>>().join(" ")
}

/// The state with the reason the devbox is in it, when it got there on its
/// own: `stopped (exited with 137: out of memory)`.
pub fn state(d: &Devbox) -> String {
    match d.reason.as_deref().filter(|r| !r.is_empty()) {
        Some(reason) => format!("{} ({reason})", d.state),
        None => d.state.to_string(),
    }
}

/// Whether the startup command ended badly: a non-zero exit code, or no
/// start at all. A command that exits 0 did its job (a one-shot setup).
pub fn command_failed(status: Option<&CommandStatus>) -> bool {
    match status {
        Some(CommandStatus::Exited { code }) => *code != 0,
        Some(CommandStatus::Failed { .. }) => true,
        Some(CommandStatus::Running) | None => false,
    }
}

/// `3 OOM kills`, `1 OOM kill`.
fn oom_kills(n: u64) -> String {
    format!("{n} OOM kill{}", if n == 1 { "" } else { "s" })
}

/// The settings waiting for the next start: `env, command`.
pub fn pending(d: &Devbox) -> String {
    d.pending.join(", ")
}

/// What `ls` says beyond the state: a failed startup command, OOM kills and
/// pending settings, or `-`.
fn notes(d: &Devbox) -> String {
    let mut notes = Vec::new();
    if command_failed(d.command_status.as_ref())
        && let Some(status) = &d.command_status
    {
        notes.push(format!("startup command {status}"));
    }
    if d.oom_kills > 0 {
        notes.push(oom_kills(d.oom_kills));
    }
    if !d.pending.is_empty() {
        notes.push(format!("pending: {}", pending(d)));
    }
    or_dash(&notes.join("; "))
}

/// `devbox ls`.
pub fn devbox_table(devboxes: &[Devbox], now: DateTime<Utc>) -> String {
    let rows: Vec<Vec<String>> = devboxes
        .iter()
        .map(|d| {
            vec![
                d.name.to_string(),
                state(d),
                d.image.clone(),
                cpus(d.resources.cpus),
                d.resources.memory.to_string(),
                or_dash(&d.ip),
                age(d.created_at, now),
                d.last_activity
                    .map_or_else(|| "-".to_owned(), |t| age(t, now)),
                notes(d),
            ]
        })
        .collect();
    table(
        &[
            "NAME", "STATE", "IMAGE", "CPUS", "MEMORY", "IP", "CREATED", "ACTIVE", "NOTES",
        ],
        &rows,
    )
}

/// The startup command with how it is doing: `/bin/sh -c 'make' (exited with 2)`.
fn command(d: &Devbox) -> String {
    let Some(cmd) = d.command.as_deref() else {
        return "-".to_owned();
    };
    match &d.command_status {
        Some(status) => format!("{} ({status})", shell_join(cmd)),
        None => shell_join(cmd),
    }
}

/// `devbox show`: one field per line.
pub fn devbox_detail(d: &Devbox, now: DateTime<Utc>) -> String {
    let mut fields: Vec<(&str, String)> = vec![
        ("Name", d.name.to_string()),
        ("ID", d.id.to_string()),
        ("State", state(d)),
    ];
    if let Some(e) = &d.error {
        fields.push(("Error", e.clone()));
    }
    fields.extend([
        ("Image", d.image.clone()),
        ("Image digest", d.image_digest.to_string()),
        ("CPUs", cpus(d.resources.cpus)),
        ("Memory", d.resources.memory.to_string()),
    ]);
    if d.oom_kills > 0 {
        fields.push(("OOM kills", d.oom_kills.to_string()));
    }
    fields.extend([
        ("PIDs", d.resources.pids.to_string()),
        ("IP", or_dash(&d.ip)),
        ("Command", command(d)),
    ]);
    if d.env.is_empty() {
        fields.push(("Env", "-".to_owned()));
    }
    for (i, e) in d.env.iter().enumerate() {
        fields.push((if i == 0 { "Env" } else { "" }, e.to_string()));
    }
    if !d.pending.is_empty() {
        fields.push(("Pending", format!("{} (at the next start)", pending(d))));
    }
    commit_fields(d, &mut fields);
    let auto_stop = match d.auto_stop.filter(|&secs| secs > 0) {
        Some(secs) => format!("after {} idle", crate::duration::format(secs)),
        None => "off".to_owned(),
    };
    fields.push(("Auto-stop", auto_stop));
    if let Some(t) = d.last_activity {
        fields.push(("Last used", format_time(t, now)));
    }
    fields.extend([
        ("Created", format_time(d.created_at, now)),
        ("Updated", format_time(d.updated_at, now)),
    ]);
    fields_list(&fields)
}

/// What `show` says of commits: the head the next start runs from, the
/// auto-commit interval and the devbox's own exclude patterns.
fn commit_fields(d: &Devbox, fields: &mut Vec<(&str, String)>) {
    let head = d
        .head
        .clone()
        .unwrap_or_else(|| "- (no commit yet)".to_owned());
    fields.push(("Head", head));
    let auto = match d.auto_commit.filter(|&secs| secs > 0) {
        Some(secs) => format!(
            "every {} when something changed",
            crate::duration::format(secs)
        ),
        None => "off".to_owned(),
    };
    fields.push(("Auto-commit", auto));
    if d.commit_exclude.is_empty() {
        fields.push(("Excludes", "-".to_owned()));
    }
    for (i, p) in d.commit_exclude.iter().enumerate() {
        fields.push((if i == 0 { "Excludes" } else { "" }, p.clone()));
    }
}

/// `devbox image ls`.
pub fn image_table(images: &[Image], now: DateTime<Utc>) -> String {
    let rows: Vec<Vec<String>> = images
        .iter()
        .map(|i| {
            vec![
                i.reference.clone(),
                short_digest(i.digest.as_str()).to_owned(),
                size(i.size),
                i.layers.to_string(),
                age(i.created_at, now),
            ]
        })
        .collect();
    table(&["REFERENCE", "DIGEST", "SIZE", "LAYERS", "CREATED"], &rows)
}

/// An image after import or pull.
pub fn image_detail(i: &Image, now: DateTime<Utc>) -> String {
    fields_list(&[
        ("Reference", i.reference.clone()),
        ("Digest", i.digest.to_string()),
        ("Size", size(i.size)),
        ("Layers", i.layers.to_string()),
        ("Created", format_time(i.created_at, now)),
    ])
}

fn format_time(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!("{} ({})", t.format("%Y-%m-%d %H:%M:%S UTC"), age(t, now))
}

/// `Key:   value` lines with the values aligned.
pub fn fields_list(fields: &[(&str, String)]) -> String {
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut out = String::new();
    for (k, v) in fields {
        let key = if k.is_empty() {
            String::new()
        } else {
            format!("{k}:")
        };
        out.push_str(&format!("{key:<width$}  {v}\n"));
    }
    out
}

/// Writes `--json` output: the server's bytes, ending with one newline.
pub fn print_raw(raw: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(raw)?;
    if !raw.ends_with(b"\n") {
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Writes human output to stdout.
pub fn print(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use devbox_model::{Resources, State};

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn tables_align_columns_without_trailing_spaces() {
        let out = table(
            &["NAME", "STATE"],
            &[
                vec!["web".into(), "running".into()],
                vec!["database".into(), "-".into()],
            ],
        );
        assert_eq!(
            out,
            "NAME       STATE\n\
             web        running\n\
             database   -\n"
        );
        assert!(out.lines().all(|l| !l.ends_with(' ')));
    }

    #[test]
    fn widths_count_characters_not_bytes() {
        let out = table(&["A", "B"], &[vec!["é".into(), "x".into()]]);
        assert_eq!(out, "A   B\né   x\n");
    }

    #[test]
    fn an_empty_table_is_its_header() {
        assert_eq!(table(&["NAME", "STATE"], &[]), "NAME   STATE\n");
    }

    #[test]
    fn ages_use_the_largest_whole_unit() {
        assert_eq!(age(t(0), t(0)), "just now");
        assert_eq!(age(t(10), t(0)), "just now");
        assert_eq!(age(t(0), t(12)), "12s ago");
        assert_eq!(age(t(0), t(180)), "3m ago");
        assert_eq!(age(t(0), t(3599)), "59m ago");
        assert_eq!(age(t(0), t(3600 * 5 + 59)), "5h ago");
        assert_eq!(age(t(0), t(86_400 * 2 + 7)), "2d ago");
    }

    #[test]
    fn sizes_and_cpus_read_naturally() {
        assert_eq!(size(512 * 1024 * 1024), "512MiB");
        assert_eq!(size(3 * 1024 * 1024 * 1024 / 2), "1.5GiB");
        assert_eq!(size(10), "10B");
        assert_eq!(cpus(1.0), "1");
        assert_eq!(cpus(0.5), "0.5");
        assert_eq!(cpus(2.25), "2.25");
    }

    #[test]
    fn digests_are_shortened() {
        let d = format!("sha256:{}", "0123456789ab".repeat(5));
        assert_eq!(short_digest(&d), "0123456789ab");
        assert_eq!(short_digest("abc"), "abc");
    }

    #[test]
    fn commands_are_quoted_for_a_shell() {
        let args: Vec<String> = ["/bin/sh", "-c", "echo 'hi' there", ""]
            .map(String::from)
            .to_vec();
        assert_eq!(
            shell_join(&args),
            r#"/bin/sh -c 'echo '\''hi'\'' there' ''"#
        );
    }

    fn devbox(name: &str, ip: &str, created: i64) -> Devbox {
        Devbox {
            id: "00112233445566ff".parse().unwrap(),
            name: name.parse().unwrap(),
            image: "busybox:1".into(),
            image_digest: format!("sha256:{}", "a".repeat(64)).parse().unwrap(),
            reason: None,
            oom_kills: 0,
            command_status: None,
            pending: Vec::new(),
            head: None,
            auto_commit: None,
            commit_exclude: Vec::new(),
            auto_stop: None,
            state: State::Running,
            error: None,
            resources: Resources::default(),
            env: vec!["FOO=bar".parse().unwrap(), "X=1".parse().unwrap()],
            command: None,
            ip: ip.into(),
            created_at: t(created),
            updated_at: t(created),
            last_activity: (created == 0).then(|| t(250)),
        }
    }

    #[test]
    fn devbox_ls_has_the_documented_columns() {
        let out = devbox_table(
            &[devbox("web", "10.77.0.2", 0), devbox("db", "", 100)],
            t(280),
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "NAME   STATE     IMAGE       CPUS   MEMORY   IP          CREATED   ACTIVE    NOTES"
        );
        assert_eq!(
            lines[1],
            "web    running   busybox:1   1      1GiB     10.77.0.2   4m ago    30s ago   -"
        );
        assert_eq!(
            lines[2],
            "db     running   busybox:1   1      1GiB     -           3m ago    -         -"
        );
    }

    fn troubled() -> Devbox {
        let mut d = devbox("web", "10.77.0.2", 0);
        d.state = State::Stopped;
        d.reason = Some("exited with 137: out of memory".into());
        d.oom_kills = 2;
        d.command = Some(vec!["/bin/sh".into(), "-c".into(), "make run".into()]);
        d.command_status = Some(CommandStatus::Exited { code: 137 });
        d.pending = vec!["env".into(), "command".into()];
        d
    }

    #[test]
    fn devbox_ls_shows_the_reason_oom_kills_a_failed_command_and_pending_settings() {
        let out = devbox_table(&[troubled()], t(60));
        let row = out.lines().nth(1).unwrap();
        assert!(
            row.starts_with("web    stopped (exited with 137: out of memory)   busybox:1"),
            "{out}"
        );
        assert!(
            row.ends_with("   startup command exited with 137; 2 OOM kills; pending: env, command"),
            "{out}"
        );
    }

    #[test]
    fn devbox_ls_keeps_quiet_about_a_command_that_runs_or_succeeded() {
        let mut d = devbox("web", "10.77.0.2", 0);
        for status in [CommandStatus::Running, CommandStatus::Exited { code: 0 }] {
            d.command_status = Some(status);
            let out = devbox_table(std::slice::from_ref(&d), t(60));
            assert!(out.lines().nth(1).unwrap().ends_with("   -"), "{out}");
        }
        d.command_status = Some(CommandStatus::Failed {
            message: "/bin/sh: not found".into(),
        });
        d.oom_kills = 1;
        let out = devbox_table(&[d], t(60));
        assert!(
            out.ends_with("   startup command failed to start: /bin/sh: not found; 1 OOM kill\n"),
            "{out}"
        );
    }

    #[test]
    fn devbox_show_lists_every_field() {
        let out = devbox_detail(&devbox("web", "10.77.0.2", 0), t(60));
        assert!(out.contains("Name:          web\n"), "{out}");
        assert!(out.contains("State:         running\n"), "{out}");
        assert!(out.contains("Memory:        1GiB\n"), "{out}");
        assert!(
            out.contains("Env:           FOO=bar\n               X=1\n"),
            "{out}"
        );
        assert!(out.contains("Command:       -\n"), "{out}");
        assert!(out.contains("(1m ago)"), "{out}");
        for absent in ["Error:", "OOM kills:", "Pending:"] {
            assert!(!out.contains(absent), "{absent}: {out}");
        }
    }

    #[test]
    fn devbox_show_gives_the_head_and_commit_settings() {
        let mut d = devbox("web", "10.77.0.2", 0);
        let out = devbox_detail(&d, t(60));
        assert!(out.contains("Head:          - (no commit yet)\n"), "{out}");
        assert!(out.contains("Auto-commit:   off\n"), "{out}");
        assert!(out.contains("Excludes:      -\n"), "{out}");
        d.head = Some("0123456789abcdef".into());
        d.auto_commit = Some(5400);
        d.commit_exclude = vec!["/root/.cache/**".into(), "/srv".into()];
        let out = devbox_detail(&d, t(60));
        assert!(out.contains("Head:          0123456789abcdef\n"), "{out}");
        assert!(
            out.contains("Auto-commit:   every 1h30m when something changed\n"),
            "{out}"
        );
        assert!(
            out.contains("Excludes:      /root/.cache/**\n               /srv\n"),
            "{out}"
        );
    }

    #[test]
    fn devbox_show_explains_a_devbox_that_stopped_on_its_own() {
        let out = devbox_detail(&troubled(), t(60));
        assert!(
            out.contains("State:         stopped (exited with 137: out of memory)\n"),
            "{out}"
        );
        assert!(out.contains("OOM kills:     2\n"), "{out}");
        assert!(
            out.contains("Command:       /bin/sh -c 'make run' (exited with 137)\n"),
            "{out}"
        );
        assert!(
            out.contains("Pending:       env, command (at the next start)\n"),
            "{out}"
        );
    }

    #[test]
    fn a_startup_command_fails_when_it_exits_non_zero_or_cannot_start() {
        assert!(!command_failed(None));
        assert!(!command_failed(Some(&CommandStatus::Running)));
        assert!(!command_failed(Some(&CommandStatus::Exited { code: 0 })));
        assert!(command_failed(Some(&CommandStatus::Exited { code: 1 })));
        assert!(command_failed(Some(&CommandStatus::Failed {
            message: "no".into()
        })));
    }

    #[test]
    fn image_ls_shows_short_digests_and_sizes() {
        let img = Image {
            reference: "localhost:5000/busybox:1".into(),
            repository: "localhost:5000/busybox".into(),
            tag: "1".into(),
            digest: format!("sha256:{}", "b".repeat(64)).parse().unwrap(),
            size: 2 * 1024 * 1024,
            layers: 1,
            created_at: t(0),
        };
        let out = image_table(&[img], t(7200));
        assert_eq!(
            out,
            "REFERENCE                  DIGEST         SIZE   LAYERS   CREATED\n\
             localhost:5000/busybox:1   bbbbbbbbbbbb   2MiB   1        2h ago\n"
        );
    }
}
