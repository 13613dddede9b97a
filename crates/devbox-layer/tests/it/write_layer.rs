//! One-pass layer writing: digests, sizes and decompression agree.

use std::io::Read;

use devbox_layer::compression::{Compression, decompress, write_layer};
use devbox_layer::digest::Digest;
use devbox_layer::unpack::unpack;

use crate::round_trip::build_rich_tree;
use crate::support::{describe, pack, require_root};

#[test]
fn write_layer_hashes_both_sides_and_decompresses_back() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let socket = build_rich_tree(&src);
    std::fs::remove_file(socket).unwrap();
    let tar = pack(&src, false);

    for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let mut blob = Vec::new();
        let d = write_layer(&tar[..], &mut blob, c).unwrap();
        assert_eq!(d.diff_id, Digest::of(&tar), "{c}");
        assert_eq!(d.digest, Digest::of(&blob), "{c}");
        assert_eq!(d.size, blob.len() as u64, "{c}");
        assert_eq!(d.uncompressed_size, tar.len() as u64, "{c}");
        assert_eq!(Compression::detect(&blob), c);
        if c != Compression::None {
            assert!(blob.len() < tar.len(), "{c} compresses");
        }

        let mut back = Vec::new();
        decompress(&blob[..], c)
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == tar, "{c}: decompressed blob differs from the tar");

        let dest = tmp.path().join(format!("dest-{c}"));
        std::fs::create_dir(&dest).unwrap();
        unpack(decompress(&blob[..], c).unwrap(), &dest).unwrap();
        assert_eq!(describe(&dest), describe(&src), "{c}");
    }
}

#[test]
fn decompress_rejects_corrupt_blobs() {
    let mut blob = Vec::new();
    write_layer(&b"not really a tar"[..], &mut blob, Compression::Gzip).unwrap();
    let last = blob.len() - 5;
    blob[last] ^= 0xff;
    let mut out = Vec::new();
    let result = decompress(&blob[..], Compression::Gzip)
        .unwrap()
        .read_to_end(&mut out);
    assert!(result.is_err(), "a corrupted gzip trailer must be detected");
}
