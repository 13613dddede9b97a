//! Runs the compiled `devbox` binary against a fake API server to check the
//! wire format, the output and the exit codes, and end to end against a real
//! server (`e2e`). The same runner works against
//! a real server: point it at any URL with a token.

mod cli;
mod commit_settings;
mod commits;
mod devboxes;
mod e2e;
mod errors;
mod exec;
mod fake;
mod images;
mod update;
