//! End-to-end tests: the built `devbox` binary against a real server running
//! real runc containers (root required).

mod auto_stop;
mod commit_cli;
mod commits;
mod errors;
mod events;
mod harness;
mod images;
mod ingress;
mod lifecycle;
mod network;
mod pty;
mod pull;
mod reconcile;
mod registry;
mod release;
mod restart;
mod ssh;
mod update;
mod web;
