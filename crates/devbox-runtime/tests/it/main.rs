//! Privileged tests of the runtime: real overlay mounts, runc containers and
//! network namespaces. They need root, runc, iproute2, iptables and
//! busybox-static, and fail (never skip) when one is missing.
//!
//! Each test claims its own bridge and subnet (`dbxtestN`, 10.78.N.0/24,
//! see `common::TestNet`) and removes them when it ends, and uses a
//! temporary root, so tests run side by side, next to concurrent runs and a
//! server on the same machine, and leave no network behind.

mod agent_ssh;
mod commits;
mod common;
mod layers;
mod lifecycle;
mod network;
mod seams;
mod shim;
