//! The vocabulary of Devbox: names and IDs with their validation, resource
//! specs, the lifecycle state machine, and the request and response types of
//! the REST API.
//!
//! This crate does no IO. Every other crate speaks these types, so a value that
//! passed validation here is valid everywhere.

pub mod api;
pub mod digest;
pub mod env;
pub mod id;
pub mod name;
pub mod resources;
pub mod signal;
pub mod state;

pub use digest::{Digest, DigestError};
pub use env::{EnvError, EnvVar};
pub use id::DevboxId;
pub use name::{DevboxName, ImageRef, NameError, is_repository_name, is_tag};
pub use resources::{ByteSize, ResourceError, ResourceLimits, Resources};
pub use signal::{Signal, UnknownSignal};
pub use state::{Observed, Operation, Plan, Recovery, State, TransitionError, plan, recover};
