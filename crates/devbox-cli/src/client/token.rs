//! Finding the API token: the `--token` flag or `DEVBOX_TOKEN`, else the admin
//! token file that `devbox server` writes into its data directory.

use std::io;
use std::path::{Path, PathBuf};

/// Data directory of a server started without `--data-dir`.
pub use devbox_server::DEFAULT_DATA_DIR;

/// The token a request carries, and where it came from, so that a 401 can
/// tell the user what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub value: Option<String>,
    pub source: TokenSource,
}

/// Where the token was found, or where it was looked for in vain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `--token` or `DEVBOX_TOKEN`.
    Given,
    /// The admin token file of a local server.
    File(PathBuf),
    /// No token: the file could not be read for this reason.
    Missing { file: PathBuf, reason: String },
}

/// The admin token file of the server whose data directory is `data_dir`
/// (`DEVBOX_DATA_DIR`), or of a server using the default one.
pub fn token_file(data_dir: Option<&Path>) -> PathBuf {
    data_dir
        .unwrap_or(Path::new(DEFAULT_DATA_DIR))
        .join(devbox_server::ADMIN_TOKEN_FILE)
}

/// Picks the token: an explicit one wins, else the admin token file is read.
/// An empty explicit token counts as none, so `DEVBOX_TOKEN=` falls back to
/// the file like an unset variable does.
pub fn discover(given: Option<String>, data_dir: Option<&Path>) -> Token {
    if let Some(t) = given.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()) {
        return Token {
            value: Some(t),
            source: TokenSource::Given,
        };
    }
    let file = token_file(data_dir);
    match read_token_file(&file) {
        Ok(t) => Token {
            value: Some(t),
            source: TokenSource::File(file),
        },
        Err(e) => Token {
            value: None,
            source: TokenSource::Missing {
                file,
                reason: e.to_string(),
            },
        },
    }
}

fn read_token_file(file: &Path) -> io::Result<String> {
    let t = std::fs::read_to_string(file)?;
    let t = t.trim();
    if t.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the file is empty",
        ));
    }
    Ok(t.to_owned())
}

/// What to tell a user whose request was refused with 401. A server started
/// with `--data-dir X` writes its token to `X/admin-token`, while the CLI
/// reads the default data directory's unless told otherwise, so the hint
/// names the file that was used and the variable that points elsewhere.
pub fn unauthorized_hint(token: &Token) -> String {
    let how = "pass --token TOKEN or set DEVBOX_TOKEN";
    let data_dir = "if the server was started with --data-dir DIR, set DEVBOX_DATA_DIR=DIR \
                    so that DIR/admin-token is read";
    match &token.source {
        TokenSource::Given => format!("the server refused the token given: {how} with a valid one"),
        TokenSource::File(f) => format!(
            "the server refused the admin token read from {}, which belongs to another server: \
             {data_dir}, or {how}",
            f.display()
        ),
        TokenSource::Missing { file, reason } => format!(
            "the server requires a token and none could be read from {} ({reason}): {data_dir} \
             (as a user who can read it; `devbox server` writes it), or {how}",
            file.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_token_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin-token"), "from-file\n").unwrap();
        let t = discover(Some("flag".into()), Some(dir.path()));
        assert_eq!(t.value.as_deref(), Some("flag"));
        assert_eq!(t.source, TokenSource::Given);
    }

    #[test]
    fn the_admin_token_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("admin-token");
        std::fs::write(&file, "  secret\n").unwrap();
        let t = discover(None, Some(dir.path()));
        assert_eq!(t.value.as_deref(), Some("secret"));
        assert_eq!(t.source, TokenSource::File(file));
        let t = discover(Some(" ".into()), Some(dir.path()));
        assert_eq!(t.value.as_deref(), Some("secret"));
    }

    #[test]
    fn a_missing_file_leaves_no_token_and_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let t = discover(None, Some(dir.path()));
        assert_eq!(t.value, None);
        let hint = unauthorized_hint(&t);
        assert!(hint.contains("--token"), "{hint}");
        assert!(hint.contains("DEVBOX_TOKEN"), "{hint}");
        assert!(
            hint.contains(&dir.path().join("admin-token").display().to_string()),
            "{hint}"
        );
    }

    #[test]
    fn a_refused_admin_token_names_its_file_and_the_variable_that_points_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("admin-token");
        std::fs::write(&file, "other\n").unwrap();
        let hint = unauthorized_hint(&discover(None, Some(dir.path())));
        assert!(hint.contains(&file.display().to_string()), "{hint}");
        assert!(hint.contains("DEVBOX_DATA_DIR=DIR"), "{hint}");
        assert!(hint.contains("--data-dir DIR"), "{hint}");
        assert!(hint.contains("DEVBOX_TOKEN"), "{hint}");
    }

    #[test]
    fn an_empty_file_is_no_token() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin-token"), "\n").unwrap();
        let t = discover(None, Some(dir.path()));
        assert_eq!(t.value, None);
        assert!(matches!(t.source, TokenSource::Missing { .. }));
    }

    #[test]
    fn the_default_data_dir_is_used_without_one() {
        assert_eq!(
            token_file(None),
            Path::new("/var/lib/devbox").join(devbox_server::ADMIN_TOKEN_FILE)
        );
    }
}
