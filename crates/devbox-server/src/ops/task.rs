//! Operations run in tasks of their own, under the devbox's lock.

use std::future::Future;

use devbox_model::DevboxName;

use super::{OpError, OpResult};

/// Runs `f` to completion in its own task, whatever happens to the caller:
/// a client that disconnects mid-way does not cancel an operation half done.
pub(crate) async fn detached<T: Send + 'static>(
    name: &DevboxName,
    f: impl Future<Output = OpResult<T>> + Send + 'static,
) -> OpResult<T> {
    tokio::spawn(f).await.map_err(|e| OpError::Aborted {
        name: name.clone(),
        message: e.to_string(),
    })?
}
