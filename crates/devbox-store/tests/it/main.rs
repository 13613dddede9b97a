//! Integration tests of the SQLite store through its traits.

mod devboxes;
mod images;
mod keys;
mod migrations;
mod support;
mod tokens;
