//! Integration tests of the SQLite store through its traits.

mod commits;
mod devboxes;
mod images;
mod keys;
mod migrations;
mod ports;
mod registry;
mod releases;
mod support;
mod tokens;
