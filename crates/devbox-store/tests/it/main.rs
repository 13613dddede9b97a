//! Integration tests of the SQLite store through its traits.

mod commits;
mod devboxes;
mod images;
mod migrations;
mod ports;
mod support;
mod tokens;
