//! The options of a devbox's overlay mount.
//!
//! The upper directory must be self-contained, because a commit packs it as
//! a layer on its own and a later start may mount it as a lower directory:
//! `index=off` (no hard links into a shared index), `metacopy=off` (every
//! changed file is copied up whole, not as metadata pointing below),
//! `redirect_dir=off` (a renamed directory is copied, not recorded as a
//! redirect to a lower path) and `xino=off` (inode numbers are not remapped
//! with bits that mean nothing in another stack).

use std::path::{Path, PathBuf};

/// One `fsconfig` key and value.
pub(crate) type MountOption = (&'static str, String);

/// The options for a mount with `lowers` (topmost first), `upper` and `work`.
/// Lower directories are passed one per `lowerdir+` option, so their number
/// is not limited by the size of one page of mount data.
pub(crate) fn options(lowers: &[PathBuf], upper: &Path, work: &Path) -> Vec<MountOption> {
    let mut opts: Vec<MountOption> = lowers
        .iter()
        .map(|l| ("lowerdir+", l.display().to_string()))
        .collect();
    opts.push(("upperdir", upper.display().to_string()));
    opts.push(("workdir", work.display().to_string()));
    for key in ["index", "metacopy", "redirect_dir", "xino"] {
        opts.push((key, "off".to_owned()));
    }
    opts
}

/// The options as the classic `mount -o` string, for logs and messages.
pub(crate) fn describe(opts: &[MountOption]) -> String {
    let lowers: Vec<&str> = opts
        .iter()
        .filter(|(k, _)| *k == "lowerdir+")
        .map(|(_, v)| v.as_str())
        .collect();
    let mut parts = Vec::new();
    if !lowers.is_empty() {
        parts.push(format!("lowerdir={}", lowers.join(":")));
    }
    parts.extend(
        opts.iter()
            .filter(|(k, _)| *k != "lowerdir+")
            .map(|(k, v)| format!("{k}={v}")),
    );
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upper_directory_is_self_contained() {
        let lowers = [
            PathBuf::from("/r/d/1/stub"),
            PathBuf::from("/r/layers/sha256/bb"),
            PathBuf::from("/r/layers/sha256/aa"),
        ];
        let opts = options(&lowers, Path::new("/r/d/1/upper"), Path::new("/r/d/1/work"));
        assert_eq!(
            describe(&opts),
            "lowerdir=/r/d/1/stub:/r/layers/sha256/bb:/r/layers/sha256/aa,\
             upperdir=/r/d/1/upper,workdir=/r/d/1/work,\
             index=off,metacopy=off,redirect_dir=off,xino=off"
        );
        // Each lower is its own option: no page-size limit on the stack.
        assert_eq!(opts.iter().filter(|(k, _)| *k == "lowerdir+").count(), 3);
        assert_eq!(opts[0], ("lowerdir+", "/r/d/1/stub".to_owned()));
    }

    #[test]
    fn hundreds_of_lowers_fit() {
        let lowers: Vec<PathBuf> = (0..500)
            .map(|i| PathBuf::from(format!("/var/lib/devbox/runtime/layers/sha256/{i:064}")))
            .collect();
        let opts = options(&lowers, Path::new("/u"), Path::new("/w"));
        assert_eq!(opts.len(), 500 + 6);
        assert!(opts.iter().all(|(_, v)| v.len() < 4096));
        assert!(describe(&opts).len() > 4096);
    }
}
