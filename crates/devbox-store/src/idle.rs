//! Each devbox's idle policy: how long it may be idle before the server
//! stops it.

use std::time::Duration;

use async_trait::async_trait;
use devbox_model::DevboxId;

use crate::StoreError;

/// Idle auto-stop settings.
#[async_trait]
pub trait IdleStore: Send + Sync + std::fmt::Debug {
    /// How long the devbox may be idle before it is stopped; `None`: never.
    async fn auto_stop(&self, devbox: &DevboxId) -> Result<Option<Duration>, StoreError>;

    /// Sets (or with `None` removes) the devbox's idle time. Fails with
    /// [`StoreError::NotFound`] when the devbox is gone.
    async fn set_auto_stop(
        &self,
        devbox: &DevboxId,
        after: Option<Duration>,
    ) -> Result<(), StoreError>;
}
