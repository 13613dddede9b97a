//! `diff`: what a devbox's next commit would hold, one path a line as
//! `git status --short` prints them, then what the exclude patterns leave
//! out, then the totals.

use clap::Args;
use devbox_model::DevboxName;
use devbox_model::api::{Diff, DiffEntry, IgnoredEntry, PathChange};

use crate::client::Client;
use crate::output;

/// Paths longer than this do not widen the path column: one deep path
/// would push every size far to the right.
const MAX_PATH_COLUMN: usize = 60;

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Name of the devbox.
    pub name: DevboxName,
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(client: &Client, args: DiffArgs) -> anyhow::Result<i32> {
    let url = client.api_url(&["devboxes", args.name.as_str(), "diff"]);
    let diff = client.get_json::<Diff>(url).await?;
    if args.json {
        output::print_raw(&diff.raw)?;
    } else {
        output::print(&render(&diff.value))?;
    }
    Ok(0)
}

fn letter(change: PathChange) -> char {
    match change {
        PathChange::Added => 'A',
        PathChange::Modified => 'M',
        PathChange::Deleted => 'D',
    }
}

/// A directory's path ends in `/`, as `ls -p` and gitignore write them.
fn shown_path(path: &str, dir: bool) -> String {
    if dir && !path.ends_with('/') {
        format!("{path}/")
    } else {
        path.to_owned()
    }
}

/// What the size column says: a regular file's size, or the kind of what
/// is not one (`dir`, `symlink`, ...); a deleted path has none.
fn size_cell(e: &DiffEntry) -> String {
    match (e.change, e.kind.as_deref()) {
        (PathChange::Deleted, _) => String::new(),
        (_, Some("file") | None) => output::size(e.size),
        (_, Some(kind)) => kind.to_owned(),
    }
}

/// Lines of `cells` with the first columns padded, the widest capped at
/// [`MAX_PATH_COLUMN`]; no line ends in spaces.
fn columns(rows: &[Vec<String>], indent: &str) -> String {
    let count = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; count];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count().min(MAX_PATH_COLUMN));
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = indent.to_owned();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                line.extend(std::iter::repeat_n(' ', pad + 3));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The whole human output of `diff`.
pub fn render(diff: &Diff) -> String {
    let mut out = String::new();
    let rows: Vec<Vec<String>> = diff
        .entries
        .iter()
        .map(|e| {
            let dir = e.kind.as_deref() == Some("dir");
            vec![
                letter(e.change).to_string(),
                shown_path(&e.path, dir),
                size_cell(e),
            ]
        })
        .collect();
    out.push_str(&columns(&rows, ""));
    if !diff.ignored.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str("left out by the exclude patterns:\n");
        let rows: Vec<Vec<String>> = diff.ignored.iter().map(ignored_row).collect();
        out.push_str(&columns(&rows, "  "));
        out.push('\n');
    }
    out.push_str(&totals(diff));
    out
}

fn ignored_row(i: &IgnoredEntry) -> Vec<String> {
    let entries = if i.dir {
        format!(
            "{} entr{}",
            i.entries,
            if i.entries == 1 { "y" } else { "ies" }
        )
    } else {
        String::new()
    };
    vec![shown_path(&i.path, i.dir), entries, output::size(i.bytes)]
}

/// The last line: counts, bytes, and what they are counted from.
fn totals(diff: &Diff) -> String {
    let since = match &diff.since {
        Some(id) => format!("commit {id}"),
        None => "the image it started from".to_owned(),
    };
    let mut line = if diff.entries.is_empty() {
        format!("no changes since {since}")
    } else {
        format!(
            "{} added, {} modified, {} deleted since {since}: {} to commit",
            diff.added,
            diff.modified,
            diff.deleted,
            output::size(diff.bytes)
        )
    };
    if diff.ignored_bytes > 0 || !diff.ignored.is_empty() {
        line.push_str(&format!("; {} left out", output::size(diff.ignored_bytes)));
    }
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, change: PathChange, kind: Option<&str>, size: u64) -> DiffEntry {
        DiffEntry {
            path: path.into(),
            change,
            kind: kind.map(str::to_owned),
            size,
        }
    }

    #[test]
    fn changes_read_like_git_status_then_what_was_left_out_then_totals() {
        let diff = Diff {
            since: Some("3333333333333333".into()),
            entries: vec![
                entry("/root/state", PathChange::Added, Some("file"), 3),
                entry("/etc/passwd", PathChange::Modified, Some("file"), 1536),
                entry("/root/.config", PathChange::Added, Some("dir"), 0),
                entry("/root/link", PathChange::Added, Some("symlink"), 0),
                entry("/usr/share/doc", PathChange::Deleted, None, 0),
            ],
            ignored: vec![
                IgnoredEntry {
                    path: "/root/.cache".into(),
                    dir: true,
                    entries: 120,
                    bytes: 35 << 20,
                },
                IgnoredEntry {
                    path: "/srv/big.iso".into(),
                    dir: false,
                    entries: 1,
                    bytes: 1 << 30,
                },
            ],
            added: 3,
            modified: 1,
            deleted: 1,
            bytes: 1539,
            ignored_bytes: (35 << 20) + (1 << 30),
        };
        assert_eq!(
            render(&diff),
            "A   /root/state      3B\n\
             M   /etc/passwd      1.5KiB\n\
             A   /root/.config/   dir\n\
             A   /root/link       symlink\n\
             D   /usr/share/doc\n\
             \n\
             left out by the exclude patterns:\n  \
               /root/.cache/   120 entries   35MiB\n  \
               /srv/big.iso                  1GiB\n\
             \n\
             3 added, 1 modified, 1 deleted since commit 3333333333333333: 1.5KiB to commit; \
             1.0GiB left out\n"
        );
    }

    #[test]
    fn no_changes_is_one_line_saying_since_when() {
        let diff = Diff {
            since: Some("aaaaaaaaaaaaaaaa".into()),
            ..Diff::default()
        };
        assert_eq!(render(&diff), "no changes since commit aaaaaaaaaaaaaaaa\n");
        let diff = Diff::default();
        assert_eq!(
            render(&diff),
            "no changes since the image it started from\n"
        );
    }

    #[test]
    fn a_long_path_does_not_push_every_size_to_the_right() {
        let long = format!("/{}", "x".repeat(100));
        let diff = Diff {
            entries: vec![
                entry(&long, PathChange::Added, Some("file"), 1),
                entry("/a", PathChange::Added, Some("file"), 2),
            ],
            added: 2,
            bytes: 3,
            ..Diff::default()
        };
        let out = render(&diff);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], format!("A   {long}   1B"));
        assert_eq!(
            lines[1],
            format!("A   /a{}   2B", " ".repeat(MAX_PATH_COLUMN - 2))
        );
    }
}
