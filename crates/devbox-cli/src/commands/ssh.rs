//! `ssh`, `ssh --stdio` and `ssh-config`: OpenSSH to a devbox through the
//! HTTPS API alone, for networks where only HTTPS reaches the server.
//!
//! `ssh --stdio NAME` carries one SSH stream over the API's WebSocket
//! tunnel on its standard input and output: it is the ProxyCommand that
//! `ssh NAME` runs the system `ssh` with, and that `ssh-config` writes into
//! Host entries for VS Code Remote-SSH, JetBrains Gateway and plain `ssh`.
//! The gateway's host key goes into a known hosts file, so the first
//! connection asks nothing.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use devbox_model::DevboxName;
use devbox_model::api::{Devbox, SshInfo};
use futures::{SinkExt, StreamExt};
use reqwest::Method;
use reqwest::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::client::{Client, UsageError};
use crate::output;

#[derive(Debug, Args)]
pub struct SshArgs {
    /// Carry one SSH stream on standard input and output (a ProxyCommand).
    #[arg(long)]
    pub stdio: bool,
    /// Name of the devbox.
    pub name: DevboxName,
    /// Identity (private key) file for ssh, as `ssh -i`.
    #[arg(short = 'i', long = "identity", value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// An option for ssh, as `ssh -o` (repeatable).
    #[arg(short = 'o', long = "option", value_name = "OPTION")]
    pub options: Vec<String>,
    /// The command to run instead of a login shell.
    #[arg(last = true)]
    pub command: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct SshConfigArgs {
    /// Where the gateway's host key is written (default ~/.ssh/devbox_known_hosts).
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
}

/// The SSH host name of devbox `name` in the Host entries.
pub fn host_alias(name: &str) -> String {
    format!("{name}.devbox")
}

type Socket = WebSocketStream<reqwest::Upgraded>;

/// Opens the devbox's SSH tunnel through the HTTP client, so the token and
/// error answers are handled as for every other request.
async fn tunnel(client: &Client, name: &DevboxName) -> anyhow::Result<Socket> {
    let url = client.api_url(&["devboxes", name.as_str(), "ssh"]);
    let key = generate_key();
    let request = client
        .request(Method::GET, url)
        .header(CONNECTION, "Upgrade")
        .header(UPGRADE, "websocket")
        .header(SEC_WEBSOCKET_VERSION, "13")
        .header(SEC_WEBSOCKET_KEY, &key);
    let resp = client.send(request).await?;
    if resp.status() != reqwest::StatusCode::SWITCHING_PROTOCOLS {
        anyhow::bail!(
            "the server answered {} instead of opening the SSH tunnel",
            resp.status()
        );
    }
    let accept = resp
        .headers()
        .get(SEC_WEBSOCKET_ACCEPT)
        .and_then(|v| v.to_str().ok());
    if accept != Some(derive_accept_key(key.as_bytes()).as_str()) {
        anyhow::bail!("the server answered the WebSocket handshake with a wrong accept key");
    }
    let upgraded = resp
        .upgrade()
        .await
        .context("the SSH tunnel could not be opened")?;
    Ok(WebSocketStream::from_raw_socket(upgraded, Role::Client, None).await)
}

/// `ssh --stdio NAME`: copies standard input into the tunnel and the
/// tunnel to standard output until either ends.
async fn stdio(client: &Client, name: &DevboxName) -> anyhow::Result<i32> {
    let ws = tunnel(client, name).await?;
    let (mut tx, mut rx) = ws.split();
    let up = async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(Message::binary(buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = tx.send(Message::Close(None)).await;
    };
    let down = async move {
        let mut stdout = tokio::io::stdout();
        while let Some(Ok(msg)) = rx.next().await {
            match msg {
                Message::Binary(b)
                    if stdout.write_all(&b).await.is_err() || stdout.flush().await.is_err() =>
                {
                    break;
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    };
    // The stream ends when the server closes it; input may still be open.
    tokio::select! {
        () = down => {}
        () = async { up.await; std::future::pending::<()>().await } => {}
    }
    Ok(0)
}

/// Writes the gateway's host key for `hosts` into `path` (mode 0600).
fn write_known_hosts(path: &Path, hosts: &[String], key: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut text =
        String::from("# The devbox SSH gateway's host key, written by `devbox ssh-config`.\n");
    for h in hosts {
        text.push_str(&format!("{h} {key}\n"));
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(text.as_bytes())?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// The absolute path of this program, for ProxyCommands.
fn this_program() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("cannot tell where the devbox program is")
}

/// A ProxyCommand word, quoted for ssh's shell when needed.
fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:+@=".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The ProxyCommand through the tunnel of devbox `name`.
fn proxy_command(program: &Path, url: &str, name: &str) -> String {
    format!(
        "{} --url {} ssh --stdio {}",
        quote(&program.to_string_lossy()),
        quote(url),
        quote(name)
    )
}

/// The Host entry of one devbox.
pub fn host_entry(name: &str, proxy: &str, known_hosts: &Path) -> String {
    format!(
        "Host {host}\n  HostName {host}\n  User {name}\n  ProxyCommand {proxy}\n  UserKnownHostsFile {kh}\n  StrictHostKeyChecking yes\n",
        host = host_alias(name),
        kh = quote(&known_hosts.to_string_lossy()),
    )
}

fn default_known_hosts() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME")
        .ok_or_else(|| UsageError("HOME is not set: pass --known-hosts FILE".into()))?;
    Ok(PathBuf::from(home).join(".ssh/devbox_known_hosts"))
}

/// `ssh-config`: Host entries for every devbox, and the known hosts file.
pub async fn config(client: &Client, args: SshConfigArgs) -> anyhow::Result<i32> {
    let info = client
        .get_json::<SshInfo>(client.api_url(&["ssh"]))
        .await?
        .value;
    let devboxes = client
        .get_json::<Vec<Devbox>>(client.api_url(&["devboxes"]))
        .await?
        .value;
    let known_hosts = match args.known_hosts {
        Some(p) => p,
        None => default_known_hosts()?,
    };
    let known_hosts = std::path::absolute(&known_hosts).unwrap_or(known_hosts);
    let mut hosts: Vec<String> = devboxes
        .iter()
        .map(|d| host_alias(d.name.as_str()))
        .collect();
    // The gateway itself, for `ssh -p PORT NAME@host`.
    if let Ok(url) = url::Url::parse(client.base_url())
        && let Some(host) = url.host_str()
    {
        hosts.push(format!("[{host}]:{}", info.port));
    }
    write_known_hosts(&known_hosts, &hosts, &info.host_key)?;
    let program = this_program()?;
    let mut out = format!(
        "# Devboxes of {} (`devbox ssh-config`); host keys in {}\n",
        client.base_url(),
        known_hosts.display()
    );
    for d in &devboxes {
        let proxy = proxy_command(&program, client.base_url(), d.name.as_str());
        out.push_str(&host_entry(d.name.as_str(), &proxy, &known_hosts));
    }
    output::print(&out)?;
    Ok(0)
}

/// `ssh NAME`: the system `ssh` through the tunnel.
pub async fn run(client: &Client, args: SshArgs) -> anyhow::Result<i32> {
    if args.stdio {
        return stdio(client, &args.name).await;
    }
    let info = client
        .get_json::<SshInfo>(client.api_url(&["ssh"]))
        .await?
        .value;
    let alias = host_alias(args.name.as_str());
    let known_hosts = std::env::temp_dir().join(format!(
        "devbox-known-hosts-{}-{}",
        rustix::process::getuid().as_raw(),
        std::process::id()
    ));
    write_known_hosts(&known_hosts, std::slice::from_ref(&alias), &info.host_key)?;
    let program = this_program()?;
    let mut cmd = std::process::Command::new("ssh");
    cmd.arg("-o")
        .arg(format!(
            "ProxyCommand={}",
            proxy_command(&program, client.base_url(), args.name.as_str())
        ))
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args(["-o", "StrictHostKeyChecking=yes"]);
    if let Some(token) = client.token() {
        // The ProxyCommand finds the token where this command did.
        cmd.env("DEVBOX_TOKEN", token);
    }
    if let Some(id) = &args.identity {
        cmd.arg("-i").arg(id);
    }
    for o in &args.options {
        cmd.arg("-o").arg(o);
    }
    cmd.arg(format!("{}@{alias}", args.name));
    if !args.command.is_empty() {
        cmd.arg("--").args(&args.command);
    }
    let status = cmd.status().map_err(|e| {
        UsageError(format!(
            "cannot run ssh: {e}; install it with `apt-get install openssh-client`"
        ))
    });
    let _ = std::fs::remove_file(&known_hosts);
    Ok(status?.code().unwrap_or(255))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_entries_go_through_the_tunnel_and_trust_the_written_key() {
        let proxy = proxy_command(Path::new("/usr/bin/devbox"), "http://127.0.0.1:7070", "web");
        assert_eq!(
            proxy,
            "/usr/bin/devbox --url http://127.0.0.1:7070 ssh --stdio web"
        );
        let e = host_entry("web", &proxy, Path::new("/home/me/.ssh/devbox_known_hosts"));
        assert!(
            e.starts_with("Host web.devbox\n  HostName web.devbox\n  User web\n"),
            "{e}"
        );
        assert!(e.contains("  ProxyCommand /usr/bin/devbox --url"), "{e}");
        assert!(
            e.contains("  UserKnownHostsFile /home/me/.ssh/devbox_known_hosts\n"),
            "{e}"
        );
    }

    #[test]
    fn odd_words_are_quoted_for_the_shell() {
        assert_eq!(quote("/opt/my tools/devbox"), "'/opt/my tools/devbox'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("plain-word"), "plain-word");
    }
}
