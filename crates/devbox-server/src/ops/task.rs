//! Operations run in tasks of their own, under the devbox's lock, and
//! announce their start and end on the event bus.

use std::future::Future;

use devbox_model::DevboxName;
use devbox_model::api::EventKind;

use super::{OpError, OpResult};
use crate::auth::Caller;
use crate::events::EventBus;

/// Runs `f`, the operation `op` on devbox `name` asked by `caller`, to
/// completion in its own task, whatever happens to the caller: a client
/// that disconnects mid-way does not cancel an operation half done, and
/// its end is announced all the same.
pub(crate) async fn detached<T: Send + 'static>(
    events: EventBus,
    caller: &Caller,
    op: &'static str,
    name: &DevboxName,
    f: impl Future<Output = OpResult<T>> + Send + 'static,
) -> OpResult<T> {
    let (devbox, who) = (Some(name.clone()), caller.to_string());
    events.publish(EventKind::OperationStarted {
        op: op.to_owned(),
        devbox: devbox.clone(),
        caller: who.clone(),
    });
    let task = async move {
        let result = f.await;
        events.publish(match &result {
            Ok(_) => EventKind::OperationFinished {
                op: op.to_owned(),
                devbox,
                caller: who,
            },
            Err(e) => EventKind::OperationFailed {
                op: op.to_owned(),
                devbox,
                caller: who,
                message: e.to_string(),
            },
        });
        result
    };
    tokio::spawn(task).await.map_err(|e| OpError::Aborted {
        name: name.clone(),
        message: e.to_string(),
    })?
}
