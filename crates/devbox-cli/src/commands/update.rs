//! `update`: changes a devbox's limits, environment, startup command or
//! commit settings. Limits apply at once to a running devbox; the server says
//! which of the other settings wait for its next start.

use chrono::Utc;
use clap::{ArgGroup, Args};
use devbox_model::api::{Devbox, UpdateDevbox};
use devbox_model::{ByteSize, DevboxName, EnvVar};

use super::devbox::{
    exclude_list, parse_cmd, parse_cpus, parse_exclude, parse_memory, parse_pids, shell_command,
};
use crate::client::{Client, UsageError};
use crate::{duration, output};

#[derive(Debug, Args)]
#[command(
    override_usage = "devbox update NAME [--cpus N] [--memory SIZE] [--pids N] [--env KEY=VALUE]... \
                      [--unset-env KEY]... [--cmd CMD | --no-cmd] [--auto-commit INTERVAL|off] \
                      [--commit-exclude PATTERNS | --no-commit-exclude] [--auto-stop DURATION|off]",
    group(
    ArgGroup::new("change")
        .required(true)
        .multiple(true)
        .args([
            "cpus", "memory", "pids", "env", "unset_env", "cmd", "no_cmd", "auto_commit",
            "commit_exclude", "no_commit_exclude", "auto_stop",
        ])
    )
)]
pub struct UpdateArgs {
    /// Name of the devbox.
    pub name: DevboxName,
    /// CPU cores (fractions allowed); applies at once.
    #[arg(long, value_name = "N", value_parser = parse_cpus)]
    pub cpus: Option<f64>,
    /// Memory limit, e.g. 512m or 2GiB (binary units, as docker's -m);
    /// applies at once, refused below what the devbox uses now.
    #[arg(long, value_name = "SIZE", value_parser = parse_memory)]
    pub memory: Option<ByteSize>,
    /// Maximum number of processes; applies at once.
    #[arg(long, value_name = "N", value_parser = parse_pids)]
    pub pids: Option<u32>,
    /// Set the environment variable KEY=VALUE (repeatable); applies at the next start.
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    pub env: Vec<EnvVar>,
    /// Remove the environment variable KEY (repeatable); applies at the next start.
    #[arg(long, value_name = "KEY", value_parser = parse_env_key)]
    pub unset_env: Vec<String>,
    /// New startup command, run by `/bin/sh -c`; applies at the next start.
    #[arg(long, value_parser = parse_cmd, conflicts_with = "no_cmd")]
    pub cmd: Option<String>,
    /// Remove the startup command; applies at the next start.
    #[arg(long)]
    pub no_cmd: bool,
    /// Commit the running devbox this often when something changed, e.g.
    /// 30m or 1h30m; off turns it off.
    #[arg(long, value_name = "INTERVAL", value_parser = duration::parse_auto_commit)]
    pub auto_commit: Option<u64>,
    /// Replace the paths its commits leave out (gitignore syntax,
    /// comma-separated or repeated); the defaults /tmp, /var/tmp and /run stay.
    #[arg(
        long,
        value_name = "PATTERNS",
        value_delimiter = ',',
        value_parser = parse_exclude,
        conflicts_with = "no_commit_exclude"
    )]
    pub commit_exclude: Vec<String>,
    /// Remove the devbox's own commit exclude patterns (the defaults stay).
    #[arg(long)]
    pub no_commit_exclude: bool,
    /// Stop it once it has been idle this long, e.g. 30m; off turns it off.
    #[arg(long, value_name = "DURATION", value_parser = duration::parse_auto_stop)]
    pub auto_stop: Option<u64>,
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_env_key(s: &str) -> Result<String, String> {
    // The rules of a key are those of `KEY=VALUE`, checked in one place.
    if !s.contains('=') && format!("{s}=").parse::<EnvVar>().is_ok() {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "invalid environment variable name {s:?}: expected letters, digits and '_', \
             not starting with a digit"
        ))
    }
}

/// The request body of `update`; a key both set and removed is refused,
/// since either outcome would surprise someone.
pub fn update_request(args: &UpdateArgs) -> Result<UpdateDevbox, UsageError> {
    if let Some(e) = args.env.iter().find(|e| args.unset_env.contains(&e.key)) {
        return Err(UsageError(format!(
            "{} is both set with --env and removed with --unset-env: pass one of them",
            e.key
        )));
    }
    let command = match (&args.cmd, args.no_cmd) {
        (Some(cmd), _) => Some(shell_command(cmd)),
        (None, true) => Some(Vec::new()),
        (None, false) => None,
    };
    Ok(UpdateDevbox {
        cpus: args.cpus,
        memory: args.memory.map(|m| m.0),
        pids: args.pids,
        env: args.env.clone(),
        unset_env: args.unset_env.clone(),
        command,
        auto_commit: args.auto_commit,
        commit_exclude: if args.no_commit_exclude {
            Some(Vec::new())
        } else {
            (!args.commit_exclude.is_empty()).then(|| exclude_list(&args.commit_exclude))
        },
        auto_stop: args.auto_stop,
    })
}

pub async fn run(client: &Client, args: UpdateArgs) -> anyhow::Result<i32> {
    let body = update_request(&args)?;
    let url = client.api_url(&["devboxes", args.name.as_str()]);
    let d = client.patch_json::<Devbox>(url, &body).await?;
    if args.json {
        output::print_raw(&d.raw)?;
        return Ok(0);
    }
    output::print(&output::devbox_detail(&d.value, Utc::now()))?;
    if !d.value.pending.is_empty() {
        eprintln!(
            "note: {} of {name} apply at its next start; `devbox restart {name}` applies them now",
            output::pending(&d.value),
            name = d.value.name
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> UpdateArgs {
        UpdateArgs {
            name: "web".parse().unwrap(),
            cpus: None,
            memory: None,
            pids: None,
            env: Vec::new(),
            unset_env: Vec::new(),
            cmd: None,
            no_cmd: false,
            auto_commit: None,
            commit_exclude: Vec::new(),
            no_commit_exclude: false,
            auto_stop: None,
            json: false,
        }
    }

    #[test]
    fn only_the_given_settings_are_sent() {
        let a = UpdateArgs {
            memory: Some(ByteSize::mib(64)),
            env: vec!["A=1".parse().unwrap()],
            unset_env: vec!["B".into()],
            ..args()
        };
        let body = serde_json::to_value(update_request(&a).unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "cpus": null, "memory": 67108864u64, "pids": null,
                "env": ["A=1"], "unset_env": ["B"], "command": null,
                "auto_commit": null, "commit_exclude": null,
            })
        );
    }

    #[test]
    fn a_new_command_runs_through_a_shell_and_no_cmd_removes_it() {
        let a = UpdateArgs {
            cmd: Some("make run".into()),
            ..args()
        };
        assert_eq!(
            update_request(&a).unwrap().command,
            Some(vec!["/bin/sh".into(), "-c".into(), "make run".into()])
        );
        let a = UpdateArgs {
            no_cmd: true,
            ..args()
        };
        assert_eq!(update_request(&a).unwrap().command, Some(Vec::new()));
    }

    #[test]
    fn commit_settings_are_sent_only_when_given() {
        let body = update_request(&args()).unwrap();
        assert_eq!((body.auto_commit, body.commit_exclude), (None, None));
        let a = UpdateArgs {
            auto_commit: Some(0),
            commit_exclude: vec!["/srv/**".into(), String::new()],
            ..args()
        };
        let body = update_request(&a).unwrap();
        assert_eq!(body.auto_commit, Some(0));
        assert_eq!(body.commit_exclude, Some(vec!["/srv/**".to_owned()]));
        let a = UpdateArgs {
            no_commit_exclude: true,
            auto_stop: None,
            ..args()
        };
        assert_eq!(update_request(&a).unwrap().commit_exclude, Some(Vec::new()));
    }

    #[test]
    fn a_key_both_set_and_removed_is_refused() {
        let a = UpdateArgs {
            env: vec!["A=1".parse().unwrap()],
            unset_env: vec!["A".into()],
            ..args()
        };
        let e = update_request(&a).unwrap_err();
        assert!(e.0.contains("A is both set"), "{e}");
    }

    #[test]
    fn keys_to_remove_follow_the_rules_of_variables() {
        assert_eq!(parse_env_key("FOO_1"), Ok("FOO_1".into()));
        for bad in ["", "1A", "A=1", "A-B", "A B"] {
            let e = parse_env_key(bad).unwrap_err();
            assert!(
                e.contains("invalid environment variable name"),
                "{bad}: {e}"
            );
        }
    }
}
