//! Checking a layer tar against the unpacker's rules without writing it
//! anywhere, so that an image whose layers would be refused at start is
//! refused when it arrives instead.

use std::io::{self, Read};

use super::{UnpackError, UnpackStats};

/// Reads the uncompressed OCI layer tar `tar` and applies exactly the
/// refusals of [`super::unpack`] (absolute names, `..`, symlinked or
/// non-directory parents, hard links outside the layer or to entries it
/// does not hold, overlay-private xattrs, device nodes outside `dev/`,
/// malformed headers), writing nothing. The rules are checked against the
/// names seen so far, as [`crate::normalize::normalize`] does, so a layer
/// this accepts unpacks.
///
/// Reading stops at the tar's end-of-archive marker: a caller hashing the
/// stream reads whatever follows itself. The stats count the entries that
/// would be written (the layer root and ignored entries left out).
pub fn validate<R: Read>(tar: R) -> Result<UnpackStats, UnpackError> {
    let stats = crate::normalize::normalize(tar, io::sink())?;
    Ok(UnpackStats {
        entries: stats.entries,
        bytes: stats.bytes,
        whiteouts: stats.whiteouts,
        dropped_devices: stats.dropped_devices,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_tar::TarBuilder;
    use crate::unpack::Refusal;

    #[test]
    fn a_clean_layer_passes_with_its_counts() {
        let tar = TarBuilder::new()
            .dir("etc")
            .file("etc/hostname", b"box\n")
            .file("usr/.wh.old", b"")
            .build();
        let stats = validate(&tar[..]).unwrap();
        assert_eq!((stats.entries, stats.bytes, stats.whiteouts), (3, 4, 1));
    }

    #[test]
    fn what_unpack_refuses_is_refused_with_its_reason() {
        let symlinked = TarBuilder::new()
            .symlink("escape", "/")
            .file("escape/etc/passwd", b"evil")
            .build();
        match validate(&symlinked[..]) {
            Err(UnpackError::Refused {
                entry,
                reason: Refusal::SymlinkParent { parent },
            }) => assert_eq!(
                (entry.as_str(), parent.as_str()),
                ("escape/etc/passwd", "escape")
            ),
            other => panic!("expected a symlinked parent to be refused, got {other:?}"),
        }
        let outside = TarBuilder::new().hardlink("h", "../etc/shadow").build();
        assert!(
            matches!(validate(&outside[..]), Err(UnpackError::Refused { .. })),
            "a hard link outside the layer must be refused"
        );
        let dir = tempfile::tempdir().unwrap();
        for tar in [symlinked, outside] {
            let target = dir.path().join(format!("l{}", tar.len()));
            std::fs::create_dir(&target).unwrap();
            assert!(
                crate::unpack(&tar[..], &target).is_err(),
                "unpack must refuse what validate refuses"
            );
        }
    }
}
