//! What the runtime is asked to run: a devbox's start spec and the specs of
//! its execs, from its record and its image's config.

use devbox_image::ResolvedImage;
use devbox_model::EnvVar;
use devbox_runtime::{ExecSpec, StartSpec};
use devbox_store::{AppliedSettings, DevboxRecord};

use super::{OpError, OpResult};

/// The image's environment with the devbox's on top (same key: devbox wins).
pub(crate) fn merge_env(image_env: &[String], devbox_env: &[EnvVar]) -> Vec<EnvVar> {
    let base = image_env.iter().filter_map(|e| e.parse().ok()).collect();
    overlay_env(base, devbox_env)
}

/// `base` with every variable of `over` set on top (same key: `over` wins).
pub(crate) fn overlay_env(mut base: Vec<EnvVar>, over: &[EnvVar]) -> Vec<EnvVar> {
    for e in over {
        base.retain(|x| x.key != e.key);
        base.push(e.clone());
    }
    base
}

fn image_workdir(image: &ResolvedImage) -> String {
    image
        .config
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into())
}

fn image_user(image: &ResolvedImage) -> Option<String> {
    image.config.user.clone().filter(|u| !u.is_empty())
}

/// The start spec of `devbox` on `image`, and the settings it applies.
pub(crate) fn start_spec(
    devbox: &DevboxRecord,
    image: &ResolvedImage,
) -> (StartSpec, AppliedSettings) {
    let spec = StartSpec {
        id: devbox.id.clone(),
        hostname: devbox.name.clone(),
        layers: image.layers.iter().map(|l| l.descriptor()).collect(),
        resources: devbox.resources,
        env: merge_env(&image.config.env, &devbox.env),
        workdir: image_workdir(image),
        user: image_user(image),
        command: devbox.command.clone(),
        // The caller adds the agent's credential, which it holds.
        agent: None,
    };
    let applied = AppliedSettings {
        env: devbox.env.clone(),
        command: devbox.command.clone(),
    };
    (spec, applied)
}

/// An exec in `devbox`: the command with the devbox's environment (as its
/// current run applied it) and the request's on top.
pub(crate) fn exec_spec(
    devbox: &DevboxRecord,
    image: &ResolvedImage,
    cmd: Vec<String>,
    env: &[EnvVar],
    workdir: Option<String>,
    tty: Option<(u16, u16)>,
) -> OpResult<ExecSpec> {
    if cmd.first().is_none_or(|c| c.is_empty()) {
        return Err(OpError::Empty {
            what: "the command",
        });
    }
    let devbox_env = devbox.applied.as_ref().map_or(&devbox.env, |a| &a.env);
    let merged = overlay_env(merge_env(&image.config.env, devbox_env), env);
    let workdir = workdir
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| image_workdir(image));
    if !workdir.starts_with('/') {
        return Err(OpError::Workdir { workdir });
    }
    Ok(ExecSpec {
        cmd,
        env: merged,
        workdir,
        user: image_user(image),
        tty,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devbox_env_overrides_image_env() {
        let image = vec![
            "PATH=/bin".to_owned(),
            "FOO=image".to_owned(),
            "junk".to_owned(),
        ];
        let devbox = vec!["FOO=bar".parse().unwrap(), "NEW=1".parse().unwrap()];
        let merged: Vec<String> = merge_env(&image, &devbox)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(merged, ["PATH=/bin", "FOO=bar", "NEW=1"]);
    }
}
