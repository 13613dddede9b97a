//! `devbox diff`: what the next commit of a devbox would hold, in the
//! API's terms.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use devbox_layer::{Change, DiffItem, FileKind, IgnoreSet, diff_changes};
use devbox_model::api::{Diff, DiffEntry, IgnoredEntry, PathChange};

/// The most paths a listing holds; the totals still count every one.
const MAX_ENTRIES: usize = 100_000;

fn absolute(rel: &[u8]) -> String {
    let mut s = String::from("/");
    s.push_str(&String::from_utf8_lossy(rel));
    s
}

fn kind(k: FileKind) -> &'static str {
    match k {
        FileKind::File => "file",
        FileKind::Dir => "dir",
        FileKind::Symlink => "symlink",
        FileKind::Fifo => "fifo",
    }
}

/// Lists the changes of `upper` since the index at `previous` (none: every
/// change), as [`devbox_layer::diff_changes`] decides them.
pub(crate) fn list(
    upper: &Path,
    previous: Option<&Path>,
    ignore: &IgnoreSet,
    since: Option<String>,
) -> Result<Diff, String> {
    let mut prev = previous
        .map(File::open)
        .transpose()
        .map_err(|e| format!("open the index: {e}"))?
        .map(BufReader::new);
    let mut out = Diff {
        since,
        ..Diff::default()
    };
    let stats = diff_changes(
        upper,
        prev.as_mut().map(|r| r as &mut dyn Read),
        ignore,
        |item| match item {
            DiffItem::Changed {
                path,
                change,
                kind: k,
                size,
                ..
            } if out.entries.len() < MAX_ENTRIES => out.entries.push(DiffEntry {
                path: absolute(&path),
                change: match change {
                    Change::Added => PathChange::Added,
                    Change::Modified => PathChange::Modified,
                    Change::Deleted => PathChange::Deleted,
                },
                kind: k.map(|k| kind(k).to_owned()),
                size,
            }),
            DiffItem::Ignored {
                path,
                dir,
                entries,
                bytes,
            } if out.ignored.len() < MAX_ENTRIES => out.ignored.push(IgnoredEntry {
                path: absolute(&path),
                dir,
                entries,
                bytes,
            }),
            _ => {}
        },
    )
    .map_err(|e| e.to_string())?;
    out.added = stats.added;
    out.modified = stats.modified;
    out.deleted = stats.deleted;
    out.bytes = stats.bytes;
    out.ignored_bytes = stats.ignored_bytes;
    Ok(out)
}
