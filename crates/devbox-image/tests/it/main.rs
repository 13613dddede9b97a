//! Integration tests of the content store: imports of rootfs tarballs, OCI
//! layouts and `docker save` archives; pulls from Debian's reference
//! registry and from a scripted registry (token auth, corrupt blobs,
//! indexes).

mod common;
mod fake_registry;
mod import_archives;
mod import_checks;
mod import_rootfs;
mod pull_errors;
mod pull_fake;
mod pull_registry;
