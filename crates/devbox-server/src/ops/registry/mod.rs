//! Operations of the OCI distribution API: reading (`pull`), writing
//! (`push`) and deleting (`delete`) repositories' content, each authorized
//! for its caller by [`may`] before the content store is touched.

pub mod delete;
pub mod pull;
pub mod push;

use devbox_image::distribution::DistributionError;

use crate::auth::Caller;

/// What a caller wants to do to a repository, as the Docker token flow's
/// scopes name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Pull,
    Push,
    Delete,
}

impl Action {
    /// The scope's name of the action.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }

    /// The action a scope names; `*` is every action.
    pub fn parse_all(s: &str) -> Vec<Action> {
        match s {
            "pull" => vec![Action::Pull],
            "push" => vec![Action::Push],
            "delete" => vec![Action::Delete],
            "*" => vec![Action::Pull, Action::Push, Action::Delete],
            _ => Vec::new(),
        }
    }
}

/// Whether `caller` may do `action` to `repository`. Every repository is
/// private: only an authenticated caller reaches this, and today every API
/// token acts as the admin, who may do everything. With users this is where
/// a user's own namespace (`<user>/...`), shared repositories and public
/// pulls are decided.
pub fn may(caller: &Caller, repository: &str, action: Action) -> bool {
    let _ = (caller, repository, action);
    true
}

/// Whether `caller` may list the repositories of the registry (each listed
/// one is still filtered by [`may`] for pulls).
pub fn may_list_catalog(caller: &Caller) -> bool {
    let _ = caller;
    true
}

/// Why a registry operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The caller is authenticated but may not do this.
    #[error("{caller} may not {} repository {repository}", action.as_str())]
    Denied {
        caller: String,
        repository: String,
        action: Action,
    },

    /// The caller may not list the repositories.
    #[error("{caller} may not list the repositories of this registry")]
    CatalogDenied { caller: String },

    #[error(transparent)]
    Content(#[from] DistributionError),
}

impl From<devbox_image::ImageError> for RegistryError {
    fn from(e: devbox_image::ImageError) -> Self {
        RegistryError::Content(e.into())
    }
}

pub type RegistryResult<T> = Result<T, RegistryError>;

/// Refuses unless `caller` may do `action` to `repository`.
pub fn authorize(caller: &Caller, repository: &str, action: Action) -> RegistryResult<()> {
    if may(caller, repository, action) {
        Ok(())
    } else {
        Err(RegistryError::Denied {
            caller: caller.to_string(),
            repository: repository.to_owned(),
            action,
        })
    }
}
