//! `release`, `release rm` and `releases`: a devbox's commit published as
//! a version (`admin/<devbox>:<version>` in the server's registry), removed,
//! and listed.

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use devbox_model::DevboxName;
use devbox_model::api::{CreateRelease, Release};

use crate::client::Client;
use crate::commit_ref::CommitId;
use crate::connection::Connection;
use crate::{output, waiting};

/// `release NAME VERSION`, or `release rm NAME VERSION`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ReleaseArgs {
    #[command(subcommand)]
    pub command: Option<ReleaseCommand>,
    /// Name of the devbox.
    #[arg(required = true)]
    pub name: Option<DevboxName>,
    /// The version, an image tag such as v1.0 (16 hex digits, a commit ID's
    /// form, is refused).
    #[arg(required = true)]
    pub version: Option<String>,
    /// What the release is, for people.
    #[arg(long)]
    pub notes: Option<String>,
    /// Release this commit (as `devbox history NAME` shows it) instead of
    /// the latest.
    #[arg(long, value_name = "ID")]
    pub commit: Option<CommitId>,
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
}

#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Remove a release: its tag goes, and its image once nothing else names it.
    Rm(RmArgs),
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Name of the devbox.
    pub name: DevboxName,
    /// The version to remove.
    pub version: String,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Name of the devbox.
    pub name: DevboxName,
    /// Print the API's JSON array, newest first.
    #[arg(long)]
    pub json: bool,
}

/// The request body of `release`.
pub fn request(version: &str, args: &ReleaseArgs) -> CreateRelease {
    CreateRelease {
        version: version.to_owned(),
        notes: args.notes.clone(),
        commit: args.commit.as_ref().map(ToString::to_string),
    }
}

pub async fn run(client: &Client, args: ReleaseArgs) -> anyhow::Result<i32> {
    if let Some(ReleaseCommand::Rm(rm)) = &args.command {
        let url = client.api_url(&["devboxes", rm.name.as_str(), "releases", &rm.version]);
        client.delete(url).await?;
        output::print(&format!("removed release {} of {}\n", rm.version, rm.name))?;
        return Ok(0);
    }
    let (Some(name), Some(version)) = (&args.name, &args.version) else {
        unreachable!("clap requires NAME and VERSION without a subcommand")
    };
    let url = client.api_url(&["devboxes", name.as_str(), "releases"]);
    let body = request(version, &args);
    let notice = format!("releasing {name} as {version}: committing its changes first if it runs");
    let r = waiting::with_notice(notice, client.post_json::<Release>(url, &body)).await?;
    if args.json {
        output::print_raw(&r.raw)?;
    } else {
        output::print(&detail(&r.value))?;
    }
    Ok(0)
}

/// What `release` prints.
pub fn detail(r: &Release) -> String {
    let mut fields = vec![
        ("Release", r.version.clone()),
        ("Reference", r.reference.clone()),
        ("Commit", r.commit.clone()),
        ("Digest", r.digest.to_string()),
    ];
    if !r.notes.is_empty() {
        fields.push(("Notes", r.notes.clone()));
    }
    output::fields_list(&fields)
}

pub async fn list(client: &Client, args: ListArgs) -> anyhow::Result<i32> {
    let url = client.api_url(&["devboxes", args.name.as_str(), "releases"]);
    let list = client.get_json::<Vec<Release>>(url).await?;
    if args.json {
        output::print_raw(&list.raw)?;
        return Ok(0);
    }
    output::print(&table(&list.value, Utc::now()))?;
    if list.value.is_empty() {
        eprintln!(
            "note: {name} has no releases; `devbox release {name} VERSION` makes one",
            name = args.name
        );
    }
    Ok(0)
}

/// `devbox releases`: newest first; notes shortened to their first line.
pub fn table(releases: &[Release], now: DateTime<Utc>) -> String {
    let rows: Vec<Vec<String>> = releases
        .iter()
        .map(|r| {
            vec![
                r.version.clone(),
                r.commit.clone(),
                output::short_digest(r.digest.as_str()).to_owned(),
                output::age(r.created_at, now),
                match r.notes.lines().next() {
                    Some(first) if !first.is_empty() => first.to_owned(),
                    _ => "-".to_owned(),
                },
            ]
        })
        .collect();
    output::table(&["VERSION", "COMMIT", "DIGEST", "CREATED", "NOTES"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn release(version: &str, notes: &str, at: i64) -> Release {
        Release {
            version: version.into(),
            commit: "0123456789abcdef".into(),
            digest: format!("sha256:{}", "d".repeat(64)).parse().unwrap(),
            reference: format!("admin/web:{version}"),
            notes: notes.into(),
            created_at: Utc.timestamp_opt(1_700_000_000 + at, 0).unwrap(),
        }
    }

    #[test]
    fn releases_list_newest_first_with_the_first_line_of_their_notes() {
        let now = Utc.timestamp_opt(1_700_003_600, 0).unwrap();
        let out = table(
            &[release("v2", "second\nmore", 3300), release("v1", "", 0)],
            now,
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                "VERSION   COMMIT             DIGEST         CREATED   NOTES",
                "v2        0123456789abcdef   dddddddddddd   5m ago    second",
                "v1        0123456789abcdef   dddddddddddd   1h ago    -",
            ]
        );
    }

    #[test]
    fn a_release_prints_its_reference_and_digest() {
        let out = detail(&release("v1.0", "first", 0));
        assert!(
            out.starts_with("Release:    v1.0\nReference:  admin/web:v1.0\n"),
            "{out}"
        );
        assert!(out.ends_with("Notes:      first\n"), "{out}");
        assert!(!detail(&release("v1.0", "", 0)).contains("Notes"));
    }
}
