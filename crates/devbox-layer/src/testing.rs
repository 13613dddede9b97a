//! Helpers for tests, here and in other crates: a digest of a directory
//! tree, and applying layer tars in order onto a directory, so a test can
//! assert that unpacking an image's layers in order gives exactly a
//! devbox's view. Plain library code, cheap to keep in the build.

mod apply;
mod tree_digest;

pub use apply::{ApplyError, apply_layers};
pub use tree_digest::{tree_digest, tree_listing};
