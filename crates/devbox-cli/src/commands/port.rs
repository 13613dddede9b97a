//! `port ls|set|share`: the ports of a devbox as the ingress serves them,
//! their access levels, and signed links to private ones.

use clap::{Args, Subcommand};
use devbox_model::DevboxName;
use devbox_model::api::{Port, PortAccess, SetPort, ShareLink, ShareRequest};
use reqwest::Method;

use crate::client::Client;
use crate::{duration, output};

#[derive(Debug, Subcommand)]
pub enum PortCommand {
    /// List the ports a devbox listens on (and those with settings), with
    /// their URLs and access levels.
    Ls(LsArgs),
    /// Set who may reach a port: private (your token or the web page's
    /// session, or a signed link) or public (anyone).
    Set(SetArgs),
    /// Print a signed URL that reaches a private port without a token until
    /// it expires; --revoke makes every link of the port stop working.
    Share(ShareArgs),
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Name of the devbox.
    pub name: DevboxName,
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// Name of the devbox.
    pub name: DevboxName,
    /// The port inside the devbox.
    #[arg(value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// Who may reach it.
    #[arg(long, value_enum)]
    pub access: Access,
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShareArgs {
    /// Name of the devbox.
    pub name: DevboxName,
    /// The port inside the devbox.
    #[arg(value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// How long the link works, e.g. 30m, 1h or 24h (at most 30 days).
    #[arg(long, default_value = "1h", value_name = "DURATION", value_parser = parse_expires, conflicts_with = "revoke")]
    pub expires: u64,
    /// Revoke every link to the port made so far instead.
    #[arg(long)]
    pub revoke: bool,
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
}

/// Access levels as the command line spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Access {
    Private,
    Public,
}

fn parse_expires(s: &str) -> Result<u64, String> {
    match duration::parse(s)? {
        0 => Err("a link that expires at once is no link: give a duration like 1h".into()),
        n if n > 30 * 86400 => Err(format!("{s} is longer than the 30 days a link may last")),
        n => Ok(n),
    }
}

pub async fn run(client: &Client, cmd: PortCommand) -> anyhow::Result<i32> {
    match cmd {
        PortCommand::Ls(a) => {
            let url = client.api_url(&["devboxes", a.name.as_str(), "ports"]);
            let ports = client.get_json::<Vec<Port>>(url).await?;
            if a.json {
                output::print_raw(&ports.raw)?;
            } else {
                output::print(&table(&ports.value))?;
            }
        }
        PortCommand::Set(a) => {
            let port = a.port.to_string();
            let url = client.api_url(&["devboxes", a.name.as_str(), "ports", &port]);
            let body = SetPort {
                access: match a.access {
                    Access::Private => PortAccess::Private,
                    Access::Public => PortAccess::Public,
                },
            };
            let resp = client
                .send(client.request(Method::PUT, url).json(&body))
                .await?;
            let raw = resp.bytes().await?;
            let p: Port = serde_json::from_slice(&raw)?;
            if a.json {
                output::print_raw(&raw)?;
            } else {
                output::print(&table(std::slice::from_ref(&p)))?;
            }
        }
        PortCommand::Share(a) => {
            let port = a.port.to_string();
            let url = client.api_url(&["devboxes", a.name.as_str(), "ports", &port, "share"]);
            if a.revoke {
                client.delete(url).await?;
                eprintln!(
                    "every link to port {} of {} made so far is revoked",
                    a.port, a.name
                );
                return Ok(0);
            }
            let body = ShareRequest {
                expires_in: Some(a.expires),
            };
            let link = client.post_json::<ShareLink>(url, &body).await?;
            if a.json {
                output::print_raw(&link.raw)?;
            } else {
                // The URL alone on stdout, so that scripts can take it.
                println!("{}", link.value.url);
                eprintln!(
                    "works without a token until {} (by path: {})",
                    link.value
                        .expires_at
                        .with_timezone(&chrono::Local)
                        .format("%Y-%m-%d %H:%M:%S"),
                    link.value.path_url
                );
            }
        }
    }
    Ok(0)
}

/// PORT, ACCESS, LISTENING, URL.
pub fn table(ports: &[Port]) -> String {
    let rows: Vec<Vec<String>> = ports
        .iter()
        .map(|p| {
            vec![
                p.port.to_string(),
                p.access.to_string(),
                if p.listening { "yes" } else { "no" }.to_owned(),
                p.url.clone(),
            ]
        })
        .collect();
    output::table(&["PORT", "ACCESS", "LISTENING", "URL"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_last_between_a_second_and_thirty_days() {
        assert_eq!(parse_expires("1h"), Ok(3600));
        assert!(parse_expires("0s").is_err());
        assert!(parse_expires("721h").unwrap_err().contains("30 days"));
        assert!(parse_expires("soon").is_err());
    }

    #[test]
    fn the_table_shows_access_and_listening() {
        let t = table(&[Port {
            port: 8080,
            access: PortAccess::Public,
            listening: true,
            url: "http://8080-web.localhost:7070/".into(),
            path_url: String::new(),
        }]);
        assert!(
            t.contains("8080") && t.contains("public") && t.contains("yes"),
            "{t}"
        );
    }
}
