//! The node runtime of Devbox: it runs devboxes on this machine.
//!
//! It owns the local layer store (unpacked image layers, shared by every
//! devbox), each devbox's overlay root filesystem (its layers below, its own
//! upper directory on top, kept across stops), the runc bundle and container,
//! the devbox network (a bridge, NAT, one network namespace per devbox) and
//! the cgroup limits. It also embeds the in-devbox agent, the static binary
//! every container runs as PID 1, and which on the host serves as each
//! container's shim (its parent, keeper of its console log and exit record).
//!
//! It decides no policy: the server says when to start, stop or commit and
//! with what. Every mount, and the one `unsafe` call (registering a terminal
//! with tokio), is in the `sys` module.

mod activity;
mod addresses;
mod agent;
mod agent_keys;
mod bundle;
pub mod cgroup;
mod changes;
mod cmd;
pub mod command_status;
mod config;
mod connect;
mod diff;
mod error;
mod exact_exec;
mod exec;
mod hostfiles;
mod layers;
mod local;
mod logs;
mod network;
mod overlay;
mod paths;
mod ports;
mod runc;
mod runtime;
mod seccomp;
mod shim;
mod stub;
mod sys;
mod users;

pub use activity::AgentActivity;
pub use agent::AGENT;
pub use agent_keys::AgentKeys;
pub use bundle::{
    AGENT_PATH, AGENT_SSH_PORT, CAPABILITIES, DEFAULT_PATH, KEYS_PATH, RUN_PATH, cgroup_path,
};
pub use config::{DEFAULT_BRIDGE, DEFAULT_CONSOLE_LOG_MAX, DEFAULT_SUBNET, RuntimeConfig, Subnet};
pub use devbox_model::{Signal, UnknownSignal};
pub use error::RuntimeError;
pub use exact_exec::is_exact_exec;
pub use exec::ExecProcess;
pub use layers::LayerStore;
pub use local::LocalRuntime;
pub use network::{netns_name, netns_path, veth_name};
pub use runtime::{
    ChangeStats, Changes, ChangesRequest, Connection, ContainerState, ContainerStatus, ExecControl,
    ExecReader, ExecSession, ExecSpec, ExecWriter, ExitInfo, LayerPrune, LogOptions, LogStream,
    Runtime, StartSpec, Started,
};
pub use seccomp::DENIED as SECCOMP_DENIED;
pub use shim::ExitRecord;
pub use users::ResolvedUser;
