//! The agent binary, built statically by `build.rs` and embedded here, and
//! its installation under the runtime's root.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::RuntimeError;

/// The statically linked `devbox-agent` executable.
pub static AGENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/devbox-agent"));

/// Writes the agent to `dest` (mode 0755) unless an identical file is there.
///
/// A new version is written beside the old one and renamed over it: running
/// devboxes have the old file bind-mounted, so they keep that inode, and no
/// one ever sees a half-written binary (or hits ETXTBSY writing over it).
pub(crate) fn install(dest: &Path) -> Result<(), RuntimeError> {
    // Only a file of the right size and mode is read to compare contents.
    if let Ok(meta) = fs::metadata(dest)
        && meta.len() == AGENT.len() as u64
        && meta.permissions().mode() & 0o7777 == 0o755
        && fs::read(dest).is_ok_and(|existing| existing == AGENT)
    {
        return Ok(());
    }
    let tmp = dest.with_extension("new");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o755)
        .open(&tmp)
        .map_err(RuntimeError::io("create", &tmp))?;
    f.write_all(AGENT)
        .map_err(RuntimeError::io("write", &tmp))?;
    f.set_permissions(fs::Permissions::from_mode(0o755))
        .map_err(RuntimeError::io("chmod", &tmp))?;
    f.sync_all().map_err(RuntimeError::io("sync", &tmp))?;
    fs::rename(&tmp, dest).map_err(RuntimeError::io("rename into place", dest))
}

/// Whether an ELF executable names a program interpreter (a dynamic loader).
#[cfg(test)]
fn has_interpreter(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap());
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap());
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(elf[4], 2, "not a 64-bit ELF file");
    assert_eq!(elf[5], 1, "not a little-endian ELF file");
    let phoff = u64_at(0x20) as usize;
    let phentsize = usize::from(u16_at(0x36));
    let phnum = usize::from(u16_at(0x38));
    (0..phnum).any(|i| u32_at(phoff + i * phentsize) == PT_INTERP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_agent_is_static() {
        assert!(AGENT.len() > 1024, "the agent binary is missing");
        assert!(
            !has_interpreter(AGENT),
            "the agent needs a dynamic loader; it must be statically linked"
        );
    }

    #[test]
    fn a_dynamic_executable_is_recognised() {
        // The test binary itself is linked dynamically, which proves the check
        // can fail.
        let me = fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(has_interpreter(&me));
    }

    #[test]
    fn install_writes_once_and_replaces_a_different_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("devbox-agent");
        install(&dest).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), AGENT);
        let meta = fs::metadata(&dest).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
        let ino = std::os::unix::fs::MetadataExt::ino(&meta);
        install(&dest).unwrap();
        let again = std::os::unix::fs::MetadataExt::ino(&fs::metadata(&dest).unwrap());
        assert_eq!(ino, again, "an identical agent was rewritten");
        fs::write(&dest, b"old").unwrap();
        install(&dest).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), AGENT);
    }
}
