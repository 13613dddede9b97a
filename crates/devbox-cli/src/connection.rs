//! `--url` and `--token`: which server a client command talks to, and with
//! which token.
//!
//! The flags are accepted before the subcommand (`devbox --url U ls`) and
//! after it (`devbox ls --url U`), but are not clap-global: a global flag
//! would also appear in `devbox server --help`, where it means nothing. So
//! the root command has one copy, reading the environment and the default,
//! and every client subcommand flattens [`Connection`], whose values win
//! because they were typed last.

use clap::Args;

use crate::client::DEFAULT_URL;

/// The flags as the root command takes them, with the environment and the
/// default filled in.
#[derive(Debug, Clone, Args)]
pub struct RootConnection {
    /// URL of the devbox server.
    #[arg(
        long,
        env = "DEVBOX_URL",
        hide_env_values = true,
        default_value = DEFAULT_URL,
        value_name = "URL",
        display_order = 900
    )]
    pub url: String,
    /// API token; without one the admin token of a local server is used.
    #[arg(
        long,
        env = "DEVBOX_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        display_order = 901
    )]
    pub token: Option<String>,
}

/// The same flags given after a client subcommand.
#[derive(Debug, Clone, Default, Args)]
pub struct Connection {
    /// URL of the devbox server [env: DEVBOX_URL] [default: http://127.0.0.1:7070].
    // Global, so that `devbox image ls --url U` reaches the `image` level.
    #[arg(long, global = true, value_name = "URL", display_order = 900)]
    pub url: Option<String>,
    /// API token [env: DEVBOX_TOKEN]; without one the admin token of a local server is used.
    #[arg(long, global = true, value_name = "TOKEN", display_order = 901)]
    pub token: Option<String>,
}

/// A client subcommand's own arguments and its connection flags.
#[derive(Debug, Args)]
pub struct On<A: Args> {
    #[command(flatten)]
    pub args: A,
    #[command(flatten)]
    pub conn: Connection,
}

/// The URL and the explicit token a command uses: a flag after the
/// subcommand, else one before it, else the environment, else the default.
pub fn resolve(root: &RootConnection, sub: &Connection) -> (String, Option<String>) {
    let url = sub.url.clone().unwrap_or_else(|| root.url.clone());
    let token = sub.token.clone().or_else(|| root.token.clone());
    (url, token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_after_the_subcommand_wins_over_one_before_it() {
        let root = RootConnection {
            url: "http://before:1".into(),
            token: Some("before".into()),
        };
        let after = Connection {
            url: Some("http://after:2".into()),
            token: Some("after".into()),
        };
        assert_eq!(
            resolve(&root, &after),
            ("http://after:2".into(), Some("after".into()))
        );
        assert_eq!(
            resolve(&root, &Connection::default()),
            ("http://before:1".into(), Some("before".into()))
        );
    }
}
