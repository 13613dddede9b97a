//! `release`: publish a devbox's commit as a version, the tag
//! `admin/<devbox>:<version>` of the commit's image, so registry clients
//! pull and run it; list and remove releases.
//!
//! A release names its image by a tag of its own, so it outlives the
//! commit's tag: retention leaves a released commit's image alone, and the
//! devbox's deletion leaves its releases' images in the image store (as
//! `devbox image ls` shows them) until they are removed there.

use chrono::Utc;
use devbox_model::api::CreateRelease;
use devbox_model::{DevboxName, State, is_tag};
use devbox_store::{CommitRecord, CommitTrigger, DevboxRecord, ReleaseRecord, StoreError};

use super::commit::commit_run;
use super::read::find;
use super::task::detached;
use super::{OpError, OpResult};
use crate::auth::Caller;
use crate::state::{AppState, repository};

/// Longest release notes accepted, in bytes.
pub const MAX_NOTES: usize = 64 * 1024;

/// Refuses a version that is not an image tag, or that has a commit ID's
/// form (16 hex digits), which would take the place of a commit's tag.
pub fn check_version(version: &str) -> OpResult<()> {
    let invalid = |reason| OpError::InvalidVersion {
        version: version.to_owned(),
        reason,
    };
    if !is_tag(version) {
        return Err(invalid(
            "a version is an image tag: 1 to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'",
        ));
    }
    if version.len() == 16 && version.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(
            "16 hex digits is the form of a commit ID, whose tag it would take; add a prefix such as 'v'",
        ));
    }
    Ok(())
}

/// `devbox release`: tags the commit (by default the head, after
/// committing a running devbox's changes with the trigger `release`) as
/// `version` in the devbox's repository.
pub async fn release(
    state: &AppState,
    caller: &Caller,
    name: &DevboxName,
    req: CreateRelease,
) -> OpResult<ReleaseRecord> {
    tracing::info!(%caller, devbox = %name, version = %req.version, "release");
    let CreateRelease {
        version,
        notes,
        commit,
    } = req;
    check_version(&version)?;
    let notes = notes.unwrap_or_default();
    if notes.len() > MAX_NOTES {
        return Err(OpError::NotesTooLong { max: MAX_NOTES });
    }
    let (state, name) = (state.clone(), name.clone());
    detached(
        state.events.clone(),
        caller,
        "release",
        &name.clone(),
        async move {
            let _guard = state.locks.lock(&name).await?;
            let devbox = find(&state, &name).await?;
            devbox_model::plan(devbox.state, devbox_model::Operation::Update).map_err(
                |source| OpError::Transition {
                    name: name.clone(),
                    source,
                },
            )?;
            let repo = repository(&name);
            // Checked before anything is committed, so a refused release
            // leaves no commit behind.
            if state.store.get_release(&devbox.id, &version).await?.is_some() {
                return Err(OpError::ReleaseExists { name, version });
            }
            let taken = || OpError::VersionTaken {
                reference: format!("{repo}:{version}"),
            };
            if state.store.get_tag(&repo, &version).await?.is_some() {
                return Err(taken());
            }
            let commit = match &commit {
                Some(id) => own_commit(&state, &devbox, id).await?,
                None => latest(&state, &devbox, &version).await?,
            };
            let Some(digest) = commit.manifest else {
                return Err(OpError::CommitReclaimed {
                    name,
                    commit: commit.id,
                });
            };
            let record = ReleaseRecord {
                devbox: devbox.id.clone(),
                version: version.clone(),
                commit: commit.id,
                digest,
                notes,
                created_at: Utc::now(),
            };
            match state.store.insert_release(&record, &repo).await {
                Ok(r) => {
                    tracing::info!(devbox = %name, version = %r.version, commit = %r.commit, digest = %r.digest, "released");
                    Ok(r)
                }
                Err(StoreError::AlreadyExists { .. }) => Err(taken()),
                Err(e) => Err(e.into()),
            }
        },
    )
    .await
}

/// The devbox's own commit `id`.
async fn own_commit(state: &AppState, devbox: &DevboxRecord, id: &str) -> OpResult<CommitRecord> {
    state
        .store
        .get_commit(id)
        .await?
        .filter(|c| c.devbox == devbox.id)
        .ok_or_else(|| OpError::UnknownCommit {
            name: devbox.name.clone(),
            commit: id.to_owned(),
        })
}

/// The commit a release without `--commit` publishes: a running devbox's
/// changes since its last commit, committed now, or else its head.
async fn latest(state: &AppState, devbox: &DevboxRecord, version: &str) -> OpResult<CommitRecord> {
    if devbox.state == State::Running {
        let message = format!("release {version}");
        if let Some(c) = commit_run(state, devbox, CommitTrigger::Release, &message, false).await? {
            return Ok(c);
        }
    } else {
        // A stop that could not commit left changes its head does not hold:
        // releasing the head would silently leave them out.
        let cs = state.store.commit_state(&devbox.id).await?;
        let status = state
            .runtime
            .status(&devbox.id)
            .await
            .map_err(OpError::runtime(&devbox.name, devbox.state))?;
        if cs.active_base.is_some() && status.active_changes {
            return Err(OpError::Uncommitted {
                name: devbox.name.clone(),
            });
        }
    }
    let cs = state.store.commit_state(&devbox.id).await?;
    let Some(head) = cs.head else {
        return Err(OpError::NothingToRelease {
            name: devbox.name.clone(),
        });
    };
    own_commit(state, devbox, &head).await
}

/// `devbox releases`: the devbox's releases, newest first.
pub async fn list(
    state: &AppState,
    _caller: &Caller,
    name: &DevboxName,
) -> OpResult<Vec<ReleaseRecord>> {
    let devbox = find(state, name).await?;
    Ok(state.store.list_releases(&devbox.id).await?)
}

/// `devbox release rm`: removes the release and its tag; its image goes
/// with the next garbage collection once nothing else names it (its
/// commit's tag may, while retention keeps it).
pub async fn delete(
    state: &AppState,
    caller: &Caller,
    name: &DevboxName,
    version: &str,
) -> OpResult<()> {
    tracing::info!(%caller, devbox = %name, version, "release rm");
    let devbox = find(state, name).await?;
    match state.store.delete_release(&devbox.id, version).await {
        Ok(_) => Ok(()),
        Err(StoreError::NotFound { .. }) => Err(OpError::UnknownRelease {
            name: name.clone(),
            version: version.to_owned(),
        }),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_a_tag_that_cannot_pass_for_a_commit_id() {
        for ok in [
            "v1.0",
            "1.0.0",
            "latest",
            "_x",
            "0123456789abcde",
            "v0123456789abcdef",
        ] {
            assert!(check_version(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".v1",
            "-v1",
            "v 1",
            "v1/2",
            "0123456789abcdef",
            "0123456789ABCDEF",
        ] {
            let e = check_version(bad).unwrap_err();
            assert!(matches!(e, OpError::InvalidVersion { .. }), "{bad}: {e}");
        }
        assert!(check_version(&"v".repeat(129)).is_err());
        let e = check_version("0123456789abcdef").unwrap_err().to_string();
        assert!(e.contains("commit ID"), "{e}");
    }
}
