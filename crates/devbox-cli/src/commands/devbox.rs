//! `create`, `rm`, `ls` and `show`, and the checks of resource, command
//! and commit flags that `update` shares.

use chrono::Utc;
use clap::{ArgGroup, Args};
use devbox_model::api::{CreateDevbox, Devbox};
use devbox_model::{ByteSize, DevboxName, EnvVar, ImageRef, Resources};

use crate::client::Client;
use crate::commit_ref::ForkSource;
use crate::{duration, output};

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["image", "from"])))]
pub struct CreateArgs {
    /// Name of the devbox: lowercase letters, digits and '-', starting with a letter.
    pub name: DevboxName,
    /// Image to create it from, e.g. busybox:1 or localhost:5000/tools/base:2.
    #[arg(long)]
    pub image: Option<ImageRef>,
    /// Fork: start from another devbox's latest commit (NAME) or one of its
    /// commits (NAME@COMMIT, an ID from `devbox history NAME`).
    #[arg(long, value_name = "NAME[@COMMIT]")]
    pub from: Option<ForkSource>,
    /// Commit the running devbox this often when something changed, e.g.
    /// 10m or 1h30m; off (the default) for never.
    #[arg(long, value_name = "INTERVAL", value_parser = duration::parse_auto_commit)]
    pub auto_commit: Option<u64>,
    /// Paths its commits leave out, in gitignore syntax, comma-separated or
    /// repeated, e.g. /root/.cache/**; /tmp, /var/tmp and /run are left out
    /// anyway, and so is what /etc/devbox/commit-ignore inside it lists.
    #[arg(
        long,
        value_name = "PATTERNS",
        value_delimiter = ',',
        value_parser = parse_exclude
    )]
    pub commit_exclude: Vec<String>,
    /// Stop it (committing, as every stop does) once it has been idle this
    /// long, e.g. 30m: no exec, terminal or SSH session, no ingress request,
    /// and almost no CPU use; off (the default) for never.
    #[arg(long, value_name = "DURATION", value_parser = duration::parse_auto_stop)]
    pub auto_stop: Option<u64>,
    /// CPU cores (fractions allowed); default 1.
    #[arg(long, value_name = "N", value_parser = parse_cpus)]
    pub cpus: Option<f64>,
    /// Memory limit, e.g. 512m or 2GiB (binary units, as docker's -m); default 1GiB.
    #[arg(long, value_name = "SIZE", value_parser = parse_memory)]
    pub memory: Option<ByteSize>,
    /// Maximum number of processes; default 4096.
    #[arg(long, value_name = "N", value_parser = parse_pids)]
    pub pids: Option<u32>,
    /// Environment variable KEY=VALUE for the startup command and every exec (repeatable).
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    pub env: Vec<EnvVar>,
    /// Command run by `/bin/sh -c` at every start; its output goes to `devbox logs`.
    #[arg(long, value_parser = parse_cmd)]
    pub cmd: Option<String>,
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct NameArgs {
    /// Name of the devbox.
    pub name: DevboxName,
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Name of the devbox.
    pub name: DevboxName,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn parse_cpus(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n >= Resources::MIN_CPUS => Ok(n),
        _ => Err(format!(
            "cpus must be a number of cores of at least {}, got {s:?}",
            Resources::MIN_CPUS
        )),
    }
}

pub fn parse_memory(s: &str) -> Result<ByteSize, String> {
    let size: ByteSize = s.parse().map_err(|e| format!("{e}"))?;
    if size < Resources::MIN_MEMORY {
        return Err(format!(
            "memory must be at least {}, got {size}",
            Resources::MIN_MEMORY
        ));
    }
    Ok(size)
}

pub fn parse_pids(s: &str) -> Result<u32, String> {
    let range = Resources::MIN_PIDS..=Resources::MAX_PIDS;
    match s.trim().parse::<u32>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(format!(
            "pids must be a whole number between {} and {}, got {s:?}",
            range.start(),
            range.end()
        )),
    }
}

/// An empty startup command would run a shell that exits at once: not a
/// way to have none, which is leaving `--cmd` out (or `update --no-cmd`).
pub fn parse_cmd(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err(
            "the startup command is empty: to have none, leave --cmd out \
                    (`devbox update NAME --no-cmd` removes one)"
                .to_owned(),
        );
    }
    Ok(s.to_owned())
}

/// One ignore pattern, checked by the rules the server applies, so that a
/// pattern that does not parse is refused before any request.
pub fn parse_exclude(s: &str) -> Result<String, String> {
    let pattern = s.trim();
    devbox_layer::IgnoreSet::empty()
        .add_list([pattern], "--commit-exclude")
        .map_err(|e| e.to_string())?;
    Ok(pattern.to_owned())
}

/// The patterns to send: blank items (`a,,b`, a trailing comma) say nothing.
pub fn exclude_list(patterns: &[String]) -> Vec<String> {
    patterns.iter().filter(|p| !p.is_empty()).cloned().collect()
}

/// A startup command as the API takes it: run by a shell, so that users
/// write it as they would type it.
pub fn shell_command(cmd: &str) -> Vec<String> {
    vec!["/bin/sh".to_owned(), "-c".to_owned(), cmd.to_owned()]
}

/// The request body of `create`.
pub fn create_request(args: &CreateArgs) -> CreateDevbox {
    CreateDevbox {
        name: args.name.clone(),
        image: args.image.clone(),
        from: args.from.as_ref().map(ToString::to_string),
        // Off is the API's absence of an interval, not an interval of 0.
        auto_commit: args.auto_commit.filter(|&secs| secs > 0),
        commit_exclude: exclude_list(&args.commit_exclude),
        cpus: args.cpus,
        memory: args.memory.map(|m| m.0),
        pids: args.pids,
        env: args.env.clone(),
        command: args.cmd.as_deref().map(shell_command),
        auto_stop: args.auto_stop.filter(|&secs| secs > 0),
    }
}

pub async fn create(client: &Client, args: CreateArgs) -> anyhow::Result<i32> {
    let body = create_request(&args);
    let d = client
        .post_json::<Devbox>(client.api_url(&["devboxes"]), &body)
        .await?;
    print_devbox(&d.value, &d.raw, args.json)
}

pub async fn rm(client: &Client, args: RmArgs) -> anyhow::Result<i32> {
    client
        .delete(client.api_url(&["devboxes", args.name.as_str()]))
        .await?;
    Ok(0)
}

pub async fn ls(client: &Client, args: LsArgs) -> anyhow::Result<i32> {
    let list = client
        .get_json::<Vec<Devbox>>(client.api_url(&["devboxes"]))
        .await?;
    if args.json {
        output::print_raw(&list.raw)?;
    } else {
        output::print(&output::devbox_table(&list.value, Utc::now()))?;
    }
    Ok(0)
}

pub async fn show(client: &Client, args: NameArgs) -> anyhow::Result<i32> {
    let d = client
        .get_json::<Devbox>(client.api_url(&["devboxes", args.name.as_str()]))
        .await?;
    print_devbox(&d.value, &d.raw, args.json)
}

fn print_devbox(d: &Devbox, raw: &[u8], json: bool) -> anyhow::Result<i32> {
    if json {
        output::print_raw(raw)?;
    } else {
        output::print(&output::devbox_detail(d, Utc::now()))?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_startup_command_runs_through_a_shell() {
        let args = CreateArgs {
            name: "web".parse().unwrap(),
            image: Some("busybox".parse().unwrap()),
            from: None,
            auto_commit: None,
            commit_exclude: Vec::new(),
            cpus: None,
            memory: Some(ByteSize::mib(512)),
            pids: None,
            env: vec!["A=1".parse().unwrap()],
            cmd: Some("while true; do date; sleep 1; done".into()),
            auto_stop: None,
            json: false,
        };
        let body = serde_json::to_value(create_request(&args)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "name": "web",
                "image": "busybox:latest",
                "from": null,
                "auto_commit": null,
                "commit_exclude": [],
                "cpus": null,
                "memory": 536870912u64,
                "pids": null,
                "env": ["A=1"],
                "command": ["/bin/sh", "-c", "while true; do date; sleep 1; done"],
            })
        );
    }

    #[test]
    fn a_fork_sends_its_source_and_commit_settings() {
        let args = CreateArgs {
            name: "dev2".parse().unwrap(),
            image: None,
            from: Some("dev@0123456789abcdef".parse().unwrap()),
            auto_commit: Some(600),
            commit_exclude: vec!["/root/.cache/**".into(), String::new(), "/srv".into()],
            cpus: None,
            memory: None,
            pids: None,
            env: Vec::new(),
            cmd: None,
            auto_stop: None,
            json: false,
        };
        let body = create_request(&args);
        assert_eq!(body.image, None);
        assert_eq!(body.from.as_deref(), Some("dev@0123456789abcdef"));
        assert_eq!(body.auto_commit, Some(600));
        assert_eq!(body.commit_exclude, ["/root/.cache/**", "/srv"]);
        let off = CreateArgs {
            auto_commit: Some(0),
            ..args
        };
        assert_eq!(create_request(&off).auto_commit, None);
    }

    #[test]
    fn exclude_patterns_are_checked_as_the_server_checks_them() {
        assert_eq!(parse_exclude(" /tmp "), Ok("/tmp".to_owned()));
        assert_eq!(
            parse_exclude("/root/.cache/**"),
            Ok("/root/.cache/**".to_owned())
        );
        assert_eq!(parse_exclude(""), Ok(String::new()));
        let e = parse_exclude("/data/[abc").unwrap_err();
        assert!(e.contains("\"/data/[abc\""), "{e}");
        assert!(
            e.contains("--commit-exclude") && e.contains("never closed"),
            "{e}"
        );
    }

    #[test]
    fn resource_flags_are_checked_against_the_fixed_bounds() {
        assert_eq!(parse_cpus("2"), Ok(2.0));
        assert!(parse_cpus("0.001").is_err());
        assert!(parse_cpus("inf").is_err());
        assert_eq!(parse_memory("1GiB"), Ok(ByteSize::gib(1)));
        assert!(parse_memory("1MiB").unwrap_err().contains("at least 16MiB"));
        assert_eq!(parse_pids("16"), Ok(16));
        assert!(parse_pids("15").is_err());
        assert!(parse_pids("-3").is_err());
    }

    #[test]
    fn memory_follows_docker_units() {
        assert_eq!(parse_memory("64M"), Ok(ByteSize::mib(64)));
        assert_eq!(parse_memory("64m"), Ok(ByteSize::mib(64)));
        assert_eq!(parse_memory("64mb"), Ok(ByteSize::mib(64)));
        assert_eq!(parse_memory("2g"), Ok(ByteSize::gib(2)));
    }

    #[test]
    fn an_empty_startup_command_is_refused() {
        assert_eq!(parse_cmd("sleep 1"), Ok("sleep 1".to_owned()));
        for empty in ["", "  "] {
            assert!(parse_cmd(empty).unwrap_err().contains("--no-cmd"));
        }
    }
}
