//! Telling an image archive (OCI layout, `docker save`) from a plain rootfs
//! tarball by the names of its entries.
//!
//! Image archives hold only a few kinds of top-level names: `oci-layout`,
//! `index.json`, `manifest.json`, `repositories`, `blobs/...` and names made
//! of a hex digest (`<hex>.json`, `<hex>.tar`, `<hex>/layer.tar`). The first
//! entry that is none of these proves the upload is a rootfs tarball, so
//! detection of a rootfs stops after a handful of entries.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use devbox_layer::compression::{self, Compression};

use crate::ImageError;
use crate::origin::Origin;

/// What an upload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OciLayout,
    DockerArchive,
    Rootfs,
}

/// Watches entry names go by and decides the format.
#[derive(Debug, Default)]
pub struct Classifier {
    oci_layout: bool,
    index_json: bool,
    manifest_json: bool,
    entries: u64,
}

impl Classifier {
    /// Looks at one entry name; returns the format once it is certain.
    pub fn observe(&mut self, name: &str) -> Option<Format> {
        self.entries += 1;
        let name = clean(name);
        if name.is_empty() {
            return None;
        }
        let (top, rest) = match name.split_once('/') {
            Some((t, r)) => (t, Some(r)),
            None => (name, None),
        };
        match (top, rest) {
            ("oci-layout", None) => self.oci_layout = true,
            ("index.json", None) => self.index_json = true,
            ("manifest.json", None) => self.manifest_json = true,
            ("repositories", None) | ("blobs", _) => {}
            (t, _) if is_digest_name(t) => {}
            _ => return Some(Format::Rootfs),
        }
        None
    }

    /// The format, once every entry was observed.
    pub fn finish(&self) -> Format {
        if self.oci_layout && self.index_json {
            Format::OciLayout
        } else if self.manifest_json {
            Format::DockerArchive
        } else {
            Format::Rootfs
        }
    }

    /// How many entries were observed.
    pub fn entries(&self) -> u64 {
        self.entries
    }
}

/// An entry name without leading `./` or `/` and trailing `/`.
pub fn clean(name: &str) -> &str {
    let mut n = name;
    loop {
        if let Some(r) = n.strip_prefix("./") {
            n = r;
        } else if let Some(r) = n.strip_prefix('/') {
            n = r;
        } else {
            break;
        }
    }
    let n = n.trim_end_matches('/');
    if n == "." { "" } else { n }
}

/// `<64 hex>` optionally followed by an extension.
fn is_digest_name(s: &str) -> bool {
    let hex = s.split_once('.').map_or(s, |(h, _)| h);
    hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The result of detection.
#[derive(Debug, Clone, Copy)]
pub struct Detected {
    pub format: Format,
    /// How the upload as a whole is compressed.
    pub compression: Compression,
}

/// Detects the format of an uploaded file (blocking). Errors name the
/// upload by `origin`.
pub fn detect(path: &Path, origin: &Origin) -> Result<Detected, ImageError> {
    let mut file = File::open(path).map_err(|e| ImageError::io(path, e))?;
    let mut magic = [0u8; 8];
    let n = read_up_to(&mut file, &mut magic).map_err(|e| ImageError::io(path, e))?;
    if n == 0 {
        return Err(ImageError::archive(origin, "the upload is empty"));
    }
    let compression = compression::Compression::detect(&magic[..n]);
    let file = File::open(path).map_err(|e| ImageError::io(path, e))?;
    let bad =
        |e: io::Error| ImageError::archive(origin, format!("not a readable tar archive: {e}"));
    let mut classifier = Classifier::default();
    let decided = if compression == Compression::None {
        // Seeking over entry data makes scanning an image archive cheap.
        let mut archive = tar::Archive::new(file);
        scan(archive.entries_with_seek().map_err(bad)?, &mut classifier).map_err(bad)?
    } else {
        let input = compression::decompress(file, compression)
            .map_err(|e| ImageError::archive(origin, format!("cannot decompress: {e}")))?;
        let mut archive = tar::Archive::new(input);
        scan(archive.entries().map_err(bad)?, &mut classifier).map_err(bad)?
    };
    if classifier.entries() == 0 {
        return Err(ImageError::archive(origin, "the archive has no entries"));
    }
    Ok(Detected {
        format: decided.unwrap_or_else(|| classifier.finish()),
        compression,
    })
}

fn scan<'a, R: Read + 'a>(
    entries: tar::Entries<'a, R>,
    classifier: &mut Classifier,
) -> io::Result<Option<Format>> {
    for entry in entries {
        let entry = entry?;
        let path = entry.path()?;
        if let Some(f) = classifier.observe(&path.to_string_lossy()) {
            return Ok(Some(f));
        }
    }
    Ok(None)
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(names: &[&str]) -> Format {
        let mut c = Classifier::default();
        for n in names {
            if let Some(f) = c.observe(n) {
                return f;
            }
        }
        c.finish()
    }

    const HEX: &str = "4a6ec0c7bbd0ba8a4c6bb8b3f6e1b3b9a3b1f1e4d5c6b7a8f9e0d1c2b3a49586";

    #[test]
    fn oci_layouts_are_recognized_in_any_order() {
        assert_eq!(
            classify(&[
                "blobs/",
                "blobs/sha256/",
                &format!("blobs/sha256/{HEX}"),
                "index.json",
                "oci-layout"
            ]),
            Format::OciLayout
        );
        assert_eq!(
            classify(&["./oci-layout", "./index.json", "./blobs/sha256/x"]),
            Format::OciLayout
        );
    }

    #[test]
    fn docker_archives_are_recognized() {
        // skopeo's docker-archive layout
        assert_eq!(
            classify(&[
                &format!("{HEX}.tar"),
                &format!("{HEX}.json"),
                "manifest.json",
                "repositories"
            ]),
            Format::DockerArchive
        );
        // docker's legacy layout
        assert_eq!(
            classify(&[
                &format!("{HEX}/"),
                &format!("{HEX}/layer.tar"),
                &format!("{HEX}/VERSION"),
                "manifest.json"
            ]),
            Format::DockerArchive
        );
        // docker 25+ writes both; the OCI layout wins.
        assert_eq!(
            classify(&[
                "blobs/sha256/a",
                "index.json",
                "manifest.json",
                "oci-layout"
            ]),
            Format::OciLayout
        );
    }

    #[test]
    fn anything_else_is_a_rootfs() {
        assert_eq!(classify(&["./", "./bin/", "./bin/sh"]), Format::Rootfs);
        assert_eq!(classify(&["bin/busybox", "manifest.json"]), Format::Rootfs);
        assert_eq!(classify(&["etc/passwd"]), Format::Rootfs);
        // A rootfs that happens to start with a digest-named file is still
        // detected at its first ordinary entry.
        assert_eq!(classify(&[&format!("{HEX}.json"), "usr/"]), Format::Rootfs);
        // blobs without oci-layout and index.json: not a layout.
        assert_eq!(classify(&["blobs/sha256/a"]), Format::Rootfs);
    }

    #[test]
    fn names_are_cleaned() {
        assert_eq!(clean("./a/b/"), "a/b");
        assert_eq!(clean("/./x"), "x");
        assert_eq!(clean("./"), "");
        assert_eq!(clean("."), "");
    }
}
