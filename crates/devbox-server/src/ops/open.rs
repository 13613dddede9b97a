//! `open`: the link that opens a devbox in an IDE over SSH.
//!
//! VS Code goes through the `Host NAME.devbox` entry `devbox ssh-config`
//! writes (whose ProxyCommand is the HTTPS tunnel), so its link names that
//! host; JetBrains Gateway connects to the SSH gateway itself, with the
//! devbox's name as the user.

use devbox_model::DevboxName;
use devbox_model::api::{Ide, IdeLink};

use super::OpResult;
use super::read::find;
use crate::auth::Caller;
use crate::state::AppState;

/// The SSH host name `devbox ssh-config` gives devbox `name`.
pub fn host_alias(name: &DevboxName) -> String {
    format!("{name}.devbox")
}

/// Percent-encodes a URL fragment or path value, keeping `/`.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The link for `ide`, given the devbox's working directory and where the
/// gateway is reached.
pub fn make_link(
    ide: Ide,
    name: &DevboxName,
    workdir: &str,
    gateway_host: &str,
    port: u16,
) -> IdeLink {
    let workdir = if workdir.starts_with('/') {
        workdir.to_owned()
    } else {
        format!("/{workdir}")
    };
    match ide {
        Ide::Vscode => {
            let host = host_alias(name);
            IdeLink {
                ide,
                url: format!(
                    "vscode://vscode-remote/ssh-remote+{host}{}",
                    encode(&workdir)
                ),
                host,
                port: 22,
                user: name.to_string(),
                workdir,
            }
        }
        Ide::Jetbrains => IdeLink {
            ide,
            url: format!(
                "jetbrains-gateway://connect#type=ssh&deploy=false&host={}&port={port}&user={}&projectPath={}",
                encode(gateway_host),
                encode(name.as_str()),
                encode(&workdir)
            ),
            host: gateway_host.to_owned(),
            port,
            user: name.to_string(),
            workdir,
        },
    }
}

/// The link that opens devbox `name` in `ide`, in its image's working
/// directory (the login's home when the image names none).
pub async fn link(
    state: &AppState,
    caller: &Caller,
    name: &DevboxName,
    ide: &Ide,
    gateway_host: &str,
    port: u16,
) -> OpResult<IdeLink> {
    tracing::debug!(%caller, devbox = %name, ?ide, "open");
    let devbox = find(state, name).await?;
    let image = state.images.resolve_digest(&devbox.image_digest).await?;
    let workdir = image
        .config
        .working_dir
        .clone()
        .filter(|w| !w.is_empty() && w != "/")
        .unwrap_or_else(|| "/root".to_owned());
    Ok(make_link(*ide, name, &workdir, gateway_host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vscode_links_name_the_ssh_config_host_and_the_directory() {
        let name: DevboxName = "web".parse().unwrap();
        let l = make_link(Ide::Vscode, &name, "/src/my app", "example.org", 2222);
        assert_eq!(
            l.url,
            "vscode://vscode-remote/ssh-remote+web.devbox/src/my%20app"
        );
        assert_eq!(l.host, "web.devbox");
    }

    #[test]
    fn jetbrains_links_name_the_gateway_port_and_user() {
        let name: DevboxName = "web".parse().unwrap();
        let l = make_link(Ide::Jetbrains, &name, "/root", "127.0.0.1", 2222);
        assert_eq!(
            l.url,
            "jetbrains-gateway://connect#type=ssh&deploy=false&host=127.0.0.1&port=2222&user=web&projectPath=/root"
        );
        assert_eq!((l.port, l.user.as_str()), (2222, "web"));
    }
}
