//! Helpers shared by the integration tests.

#[path = "../../../src/test_tar.rs"]
pub mod tar_builder;
#[path = "../../../src/test_tree.rs"]
pub mod tree_snapshot;

pub mod describe;
pub mod mount;

pub use describe::{describe, set_mtime, set_xattr, xattr_of};
pub use mount::{Mount, devbox_options};
pub use tar_builder::TarBuilder;
pub use tree_snapshot::{require_root, snapshot};

use devbox_layer::pack::{PackOptions, pack_dir};
use std::path::Path;

/// Packs `src` into an in-memory tar.
pub fn pack(src: &Path, overlay: bool) -> Vec<u8> {
    let mut tar = Vec::new();
    pack_dir(src, &mut tar, &PackOptions { overlay }).unwrap();
    tar
}

/// The (name, type, link target, PAX keys) of every entry of a tar.
pub fn list_tar(tar: &[u8]) -> Vec<(String, tar::EntryType, Option<String>, Vec<String>)> {
    let mut archive = tar::Archive::new(tar);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let kind = e.header().entry_type();
            let link = e
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned());
            let keys = match e.pax_extensions().unwrap() {
                Some(records) => records
                    .map(|r| r.unwrap().key().unwrap().to_owned())
                    .collect(),
                None => Vec::new(),
            };
            (name, kind, link, keys)
        })
        .collect()
}
