//! The two spellings of a deletion: OCI layer tars say `.wh.<name>` and
//! `.wh..wh..opq`; an overlayfs directory says "character device 0/0" and
//! `trusted.overlay.opaque=y`. These helpers translate names between them.

/// Prefix of an OCI whiteout file name: `.wh.<name>` deletes `<name>` from lower layers.
pub const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// File name marking its directory opaque: lower layers' content of it is hidden.
pub const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// Prefix of names reserved for whiteout metadata (AUFS wrote `.wh..wh.plnk` and the like).
pub const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
/// The overlayfs xattr marking a directory opaque.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// The value of [`OVERLAY_OPAQUE_XATTR`] that means "opaque".
pub const OVERLAY_OPAQUE_VALUE: &[u8] = b"y";

/// What a file name found in a layer tar means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TarName<'a> {
    /// An ordinary file name.
    Plain,
    /// `.wh.<name>`: `<name>` is deleted from the lower layers.
    Whiteout(&'a [u8]),
    /// `.wh..wh..opq`: the containing directory is opaque.
    Opaque,
    /// Another `.wh..wh.` name: whiteout metadata that carries no file and is ignored.
    Meta,
    /// `.wh.` followed by nothing, `.` or `..`: meaningless and refused.
    Invalid,
}

/// Classifies the last component `file_name` of a tar entry name.
pub fn classify(file_name: &[u8]) -> TarName<'_> {
    if file_name == OPAQUE_MARKER {
        return TarName::Opaque;
    }
    if file_name.starts_with(WHITEOUT_META_PREFIX) {
        return TarName::Meta;
    }
    match file_name.strip_prefix(WHITEOUT_PREFIX) {
        None => TarName::Plain,
        Some(b"" | b"." | b"..") => TarName::Invalid,
        Some(hidden) if hidden.contains(&b'/') || hidden.contains(&0) => TarName::Invalid,
        Some(hidden) => TarName::Whiteout(hidden),
    }
}

/// The tar file name `.wh.<hidden>` that deletes `hidden`.
pub fn whiteout_name(hidden: &[u8]) -> Vec<u8> {
    let mut name = WHITEOUT_PREFIX.to_vec();
    name.extend_from_slice(hidden);
    name
}

/// Whether an xattr belongs to overlayfs itself (`trusted.overlay.*`, or
/// `user.overlay.*` for mounts with `userxattr`). Such xattrs are the kernel's
/// bookkeeping: they never travel inside a layer, because one planted in a tar
/// could redirect or hide files when the layer is mounted.
pub fn is_overlay_private_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

/// Whether a file with this `st_mode` and `st_rdev` is an overlayfs whiteout:
/// a character device numbered 0/0.
pub fn is_overlay_whiteout(st_mode: u32, st_rdev: u64) -> bool {
    rustix::fs::FileType::from_raw_mode(st_mode) == rustix::fs::FileType::CharacterDevice
        && st_rdev == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_tar_names() {
        assert_eq!(classify(b"passwd"), TarName::Plain);
        assert_eq!(classify(b".whx"), TarName::Plain);
        assert_eq!(classify(b".wh.passwd"), TarName::Whiteout(b"passwd"));
        assert_eq!(classify(b".wh..bashrc"), TarName::Whiteout(b".bashrc"));
        assert_eq!(classify(b".wh..wh..opq"), TarName::Opaque);
        assert_eq!(classify(b".wh..wh.plnk"), TarName::Meta);
        for invalid in [&b".wh."[..], b".wh..", b".wh...", b".wh.a\0b"] {
            assert_eq!(classify(invalid), TarName::Invalid, "{invalid:?}");
        }
    }

    #[test]
    fn whiteout_names_round_trip() {
        for hidden in [&b"x"[..], b".hidden", b"with space", b"\xff\xfe"] {
            let name = whiteout_name(hidden);
            assert_eq!(classify(&name), TarName::Whiteout(hidden));
        }
    }

    #[test]
    fn recognises_overlay_private_xattrs_and_whiteouts() {
        assert!(is_overlay_private_xattr(b"trusted.overlay.opaque"));
        assert!(is_overlay_private_xattr(b"user.overlay.redirect"));
        assert!(!is_overlay_private_xattr(b"user.overlayish"));
        assert!(!is_overlay_private_xattr(b"security.capability"));
        assert!(is_overlay_whiteout(0o020000, 0));
        assert!(!is_overlay_whiteout(0o020644, 0x103));
        assert!(!is_overlay_whiteout(0o100644, 0));
    }
}
