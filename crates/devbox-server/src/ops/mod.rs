//! The control plane's operations, one file per verb. Every API handler and
//! the reconciler go through these functions and nothing else: they check
//! the request, take the devbox's lock, persist each transient state before
//! they touch the runtime and the settled state after it (so the reconciler
//! can finish or undo an operation cut short by a crash, see
//! `devbox_model::state`), and drive the runtime only through its trait.
//! Each takes the [`Caller`](crate::auth::Caller), which is where access will
//! be checked once users exist.

pub mod auto_stop;
pub mod commit;
pub mod create;
pub mod delete;
pub mod diff;
pub mod exec;
pub mod gc;
pub mod history;
pub mod images;
pub mod keys;
pub mod logs;
pub mod open;
pub mod ports;
pub mod push;
pub mod read;
pub mod registry;
pub mod release;
pub mod restart;
pub mod rollback;
pub mod squash;
pub mod ssh;
pub mod start;
pub mod stop;
pub mod update;

mod error;
mod run;
mod spec;
mod task;
pub(crate) mod transition;

pub use error::{OpError, OpResult, StepError};
pub(crate) use run::{STOP_GRACE, settle_stop};
