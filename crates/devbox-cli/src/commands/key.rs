//! `key add|ls|rm`: the SSH public keys that log in to your devboxes
//! through the gateway (`ssh -p 2222 NAME@host`) and `devbox ssh`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use devbox_model::api::{AddSshKey, SshKey};

use crate::client::{Client, UsageError};
use crate::output;

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Register a public key (a .pub file, or - for standard input).
    Add(AddArgs),
    /// List your registered keys.
    Ls(LsArgs),
    /// Remove a key by its ID or fingerprint.
    Rm(RmArgs),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The public key file, e.g. ~/.ssh/id_ed25519.pub; - reads standard input.
    pub file: PathBuf,
    /// A name for the key (default: its comment).
    #[arg(long)]
    pub name: Option<String>,
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// The key's ID (from `devbox key ls`) or fingerprint.
    pub id: String,
}

fn read_key(file: &PathBuf) -> anyhow::Result<String> {
    if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("cannot read the public key from standard input")?;
        return Ok(s);
    }
    let meta = std::fs::metadata(file)
        .map_err(|e| UsageError(format!("cannot read {}: {e}", file.display())))?;
    if meta.len() > 64 * 1024 {
        return Err(UsageError(format!(
            "{} is too large to be a public key; pass the .pub file",
            file.display()
        ))
        .into());
    }
    std::fs::read_to_string(file)
        .map_err(|e| UsageError(format!("cannot read {}: {e}", file.display())).into())
}

/// The table of `key ls`.
pub fn table(keys: &[SshKey]) -> String {
    let mut rows = vec![vec![
        "ID".to_owned(),
        "NAME".to_owned(),
        "TYPE".to_owned(),
        "FINGERPRINT".to_owned(),
    ]];
    for k in keys {
        rows.push(vec![
            k.id.clone(),
            k.name.clone(),
            k.algorithm.clone(),
            k.fingerprint.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

pub async fn run(client: &Client, command: KeyCommand) -> anyhow::Result<i32> {
    match command {
        KeyCommand::Add(a) => {
            let body = AddSshKey {
                public_key: read_key(&a.file)?,
                name: a.name,
            };
            let k = client
                .post_json::<SshKey>(client.api_url(&["keys"]), &body)
                .await?;
            if a.json {
                output::print_raw(&k.raw)?;
            } else {
                output::print(&format!(
                    "added {} key {} ({})\n",
                    k.value.algorithm, k.value.fingerprint, k.value.id
                ))?;
            }
        }
        KeyCommand::Ls(a) => {
            let list = client
                .get_json::<Vec<SshKey>>(client.api_url(&["keys"]))
                .await?;
            if a.json {
                output::print_raw(&list.raw)?;
            } else {
                output::print(&table(&list.value))?;
            }
        }
        KeyCommand::Rm(a) => {
            client.delete(client.api_url(&["keys", &a.id])).await?;
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_aligns_its_columns() {
        let k = SshKey {
            id: "abc".into(),
            name: "me@laptop".into(),
            algorithm: "ssh-ed25519".into(),
            fingerprint: "SHA256:x".into(),
            public_key: "ssh-ed25519 AAAA".into(),
            created_at: chrono::Utc::now(),
        };
        let t = table(&[k]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "ID   NAME       TYPE         FINGERPRINT");
        assert_eq!(lines[1], "abc  me@laptop  ssh-ed25519  SHA256:x");
    }
}
