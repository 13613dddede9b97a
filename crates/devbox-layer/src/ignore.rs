//! Paths a commit leaves out, in gitignore syntax (`*`, `**`, `?`, `[...]`,
//! leading `/` anchors, trailing `/` for directories, `!` negation, `#`
//! comments, backslash escapes), written here without a dependency.
//!
//! Patterns are relative to the devbox's root, whichever file they come from.
//! As in git, the last matching pattern decides, and a path inside an ignored
//! directory stays ignored whatever a later `!` says, because the directory is
//! never looked into.

mod pattern;

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use rustix::fs::{CWD, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use pattern::Pattern;
pub use pattern::PatternError;

/// Paths no commit carries unless a pattern says `!`: scratch space that
/// the system clears at boot anyway.
pub const DEFAULT_PATTERNS: [&str; 3] = ["/tmp", "/var/tmp", "/run"];

/// The ignore file a devbox may hold, relative to its root.
pub const COMMIT_IGNORE_FILE: &str = "etc/devbox/commit-ignore";

/// An ignore file larger than this is refused rather than read.
const MAX_FILE_LEN: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum IgnoreError {
    #[error("ignore pattern {pattern:?} from {origin} does not parse: {reason}; fix or remove it")]
    Pattern {
        pattern: String,
        origin: String,
        reason: PatternError,
    },
    #[error("cannot read the ignore file /{file} in {}: {source}", root.display())]
    Read {
        root: PathBuf,
        file: String,
        source: std::io::Error,
    },
    #[error(
        "the ignore file /{file} in {} is not a regular file of at most 1 MiB; replace it",
        root.display()
    )]
    NotAFile { root: PathBuf, file: String },
}

/// An ordered list of ignore patterns.
#[derive(Debug, Clone, Default)]
pub struct IgnoreSet {
    /// In the order given: the last match decides.
    rules: Vec<Pattern>,
}

impl IgnoreSet {
    /// No patterns: nothing is ignored.
    pub fn empty() -> IgnoreSet {
        IgnoreSet::default()
    }

    /// [`DEFAULT_PATTERNS`] only.
    pub fn defaults() -> IgnoreSet {
        let mut set = IgnoreSet::empty();
        set.add_list(DEFAULT_PATTERNS, "the defaults")
            .expect("the default patterns parse");
        set
    }

    /// The patterns of a commit of the devbox whose root (its upperdir, or a
    /// merged view of it) is `root`: the defaults, then the devbox's own
    /// [`COMMIT_IGNORE_FILE`] if it has one, then `list` (the devbox's
    /// setting, which has the last word, as git's command line does).
    pub fn for_commit<S: AsRef<str>>(root: &Path, list: &[S]) -> Result<IgnoreSet, IgnoreError> {
        let mut set = IgnoreSet::defaults();
        set.add_file_in(root, COMMIT_IGNORE_FILE)?;
        set.add_list(list, "the devbox's commit-exclude setting")?;
        Ok(set)
    }

    /// Appends one pattern per item; blank items are skipped and surrounding
    /// whitespace is trimmed (a list is typed as `/tmp, /root/.cache/**`).
    /// `origin` names the list in errors.
    pub fn add_list<S: AsRef<str>>(
        &mut self,
        list: impl IntoIterator<Item = S>,
        origin: &str,
    ) -> Result<(), IgnoreError> {
        for item in list {
            let item = item.as_ref().trim();
            self.add_line(item.as_bytes(), || origin.to_owned())?;
        }
        Ok(())
    }

    /// Appends the patterns of a gitignore-syntax text, one per line.
    /// `origin` names the file in errors, which also give the line number.
    pub fn add_text(&mut self, text: &[u8], origin: &str) -> Result<(), IgnoreError> {
        let text = text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text);
        for (n, line) in text.split(|&b| b == b'\n').enumerate() {
            self.add_line(line, || format!("{origin} line {}", n + 1))?;
        }
        Ok(())
    }

    /// Appends the patterns of the file `file` (relative) inside `root`,
    /// resolved as if `root` were `/`, so a symlink in the devbox cannot
    /// make the server read a file of its own. A missing file (or a whiteout
    /// in its place) adds nothing. Returns whether the file was there.
    pub fn add_file_in(&mut self, root: &Path, file: &str) -> Result<bool, IgnoreError> {
        let read_err = |source| IgnoreError::Read {
            root: root.to_path_buf(),
            file: file.to_owned(),
            source,
        };
        let not_a_file = || IgnoreError::NotAFile {
            root: root.to_path_buf(),
            file: file.to_owned(),
        };
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let dir =
            rustix::fs::openat(CWD, root, flags, Mode::empty()).map_err(|e| read_err(e.into()))?;
        // O_PATH first: opening a device node for reading could have effects.
        let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        let path_flags = OFlags::PATH | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat2(&dir, file, path_flags, Mode::empty(), how) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::NOTDIR) => return Ok(false),
            Err(e) => return Err(read_err(e.into())),
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| read_err(e.into()))?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile if st.st_size as u64 <= MAX_FILE_LEN => {}
            FileType::CharacterDevice if st.st_rdev == 0 => return Ok(false),
            _ => return Err(not_a_file()),
        }
        // Reopening through the descriptor reaches this very inode, not a path.
        let reopen = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let file_fd = rustix::fs::open(
            reopen.as_str(),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| read_err(e.into()))?;
        let mut text = Vec::new();
        std::fs::File::from(file_fd)
            .take(MAX_FILE_LEN + 1)
            .read_to_end(&mut text)
            .map_err(read_err)?;
        if text.len() as u64 > MAX_FILE_LEN {
            return Err(not_a_file());
        }
        self.add_text(&text, &format!("/{file}"))?;
        Ok(true)
    }

    fn add_line(&mut self, line: &[u8], origin: impl Fn() -> String) -> Result<(), IgnoreError> {
        match Pattern::parse(line) {
            Ok(Some(pattern)) => self.rules.push(pattern),
            Ok(None) => {}
            Err(reason) => {
                return Err(IgnoreError::Pattern {
                    pattern: String::from_utf8_lossy(line).into_owned(),
                    origin: origin(),
                    reason,
                });
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether `path` (relative to the root, components joined by `/`) is
    /// ignored. Its parents are not consulted: callers walk top-down and
    /// never descend into an ignored directory.
    pub fn is_ignored(&self, path: &[u8], is_dir: bool) -> bool {
        for p in self.rules.iter().rev() {
            if (!p.dir_only || is_dir) && p.matches(path) {
                return !p.negated;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests;
