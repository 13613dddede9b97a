//! Devbox addresses on the node's devbox network: allocated at a devbox's
//! first start, kept across stops and restarts of the runtime, released when
//! the devbox is removed.
//!
//! A claim is a file `<root>/addresses/<ip>` holding the devbox's ID,
//! created with `O_EXCL`: two runtimes (or two racing starts) can never
//! claim the same address, and a crash between claiming and using an
//! address leaves a claim that [`Addresses::release_orphans`] finds. The
//! devbox's own directory records which address it holds, so a start after
//! a restart of the runtime reuses it.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use devbox_model::DevboxId;

use crate::config::Subnet;
use crate::error::RuntimeError;

#[derive(Debug, Clone)]
pub(crate) struct Addresses {
    dir: PathBuf,
    subnet: Subnet,
}

impl Addresses {
    pub fn new(dir: PathBuf, subnet: Subnet) -> Self {
        Self { dir, subnet }
    }

    fn claim_path(&self, ip: Ipv4Addr) -> PathBuf {
        self.dir.join(ip.to_string())
    }

    /// The address the devbox holds, if it holds one.
    pub fn of(&self, record: &Path) -> Result<Option<Ipv4Addr>, RuntimeError> {
        match fs::read_to_string(record) {
            Ok(s) => Ok(s.trim().parse().ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RuntimeError::io("read", record)(e)),
        }
    }

    /// The devbox's address: the one it holds (recorded in `record`, a file
    /// of its own directory), else the lowest free one, claimed now.
    pub fn ensure(&self, id: &DevboxId, record: &Path) -> Result<Ipv4Addr, RuntimeError> {
        fs::create_dir_all(&self.dir).map_err(RuntimeError::io("create", &self.dir))?;
        if let Some(ip) = self.of(record)?
            && self.subnet.is_devbox_address(ip)
            && self.holder(ip)?.as_ref() == Some(id)
        {
            return Ok(ip);
        }
        let mut used = self.claimed()?;
        loop {
            let ip = self
                .subnet
                .allocate(&used)
                .ok_or_else(|| RuntimeError::NoFreeAddress {
                    subnet: self.subnet.to_string(),
                })?;
            let path = self.claim_path(ip);
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(id.as_str().as_bytes())
                        .and_then(|()| f.sync_all())
                        .map_err(RuntimeError::io("write", &path))?;
                    write_atomically(record, &ip.to_string())?;
                    return Ok(ip);
                }
                // Claimed meanwhile by another start: try the next one.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    used.insert(ip);
                }
                Err(e) => return Err(RuntimeError::io("create", &path)(e)),
            }
        }
    }

    /// Records that the devbox holds `ip` (found in its own files), unless
    /// another devbox claimed it meanwhile.
    pub fn adopt(&self, id: &DevboxId, record: &Path, ip: Ipv4Addr) -> Result<(), RuntimeError> {
        fs::create_dir_all(&self.dir).map_err(RuntimeError::io("create", &self.dir))?;
        if !self.subnet.is_devbox_address(ip) {
            return Ok(());
        }
        let path = self.claim_path(ip);
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(id.as_str().as_bytes())
                    .map_err(RuntimeError::io("write", &path))?;
                write_atomically(record, &ip.to_string())
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(RuntimeError::io("create", &path)(e)),
        }
    }

    /// Gives up the devbox's address. Idempotent.
    pub fn release(&self, id: &DevboxId, record: &Path) -> Result<(), RuntimeError> {
        if let Some(ip) = self.of(record)?
            && self.holder(ip)?.as_ref() == Some(id)
        {
            remove_file(&self.claim_path(ip))?;
        }
        remove_file(record)
    }

    /// Releases claims whose devbox has no directory any more (a removal or
    /// a first start cut short by a crash).
    pub fn release_orphans(
        &self,
        devbox_dir: impl Fn(&DevboxId) -> PathBuf,
    ) -> Result<(), RuntimeError> {
        for ip in self.claimed()? {
            if let Some(id) = self.holder(ip)?
                && !devbox_dir(&id).exists()
            {
                tracing::info!(%ip, devbox = %id, "releasing the address of a devbox that is gone");
                remove_file(&self.claim_path(ip))?;
            }
        }
        Ok(())
    }

    /// The devbox holding `ip`, if any.
    fn holder(&self, ip: Ipv4Addr) -> Result<Option<DevboxId>, RuntimeError> {
        let path = self.claim_path(ip);
        match fs::read_to_string(&path) {
            Ok(s) => Ok(s.trim().parse().ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RuntimeError::io("read", &path)(e)),
        }
    }

    /// Every claimed address of this subnet.
    fn claimed(&self) -> Result<HashSet<Ipv4Addr>, RuntimeError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HashSet::new()),
            Err(e) => return Err(RuntimeError::io("list", &self.dir)(e)),
        };
        let mut out = HashSet::new();
        for entry in entries {
            let entry = entry.map_err(RuntimeError::io("list", &self.dir))?;
            if let Some(ip) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<Ipv4Addr>().ok())
                && self.subnet.contains(ip)
            {
                out.insert(ip);
            }
        }
        Ok(out)
    }
}

fn remove_file(path: &Path) -> Result<(), RuntimeError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RuntimeError::io("remove", path)(e)),
    }
}

fn write_atomically(path: &Path, content: &str) -> Result<(), RuntimeError> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, content).map_err(RuntimeError::io("write", &tmp))?;
    fs::rename(&tmp, path).map_err(RuntimeError::io("rename", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> DevboxId {
        DevboxId::from_random([n; 8])
    }

    fn setup(subnet: &str) -> (tempfile::TempDir, Addresses) {
        let dir = tempfile::tempdir().unwrap();
        let a = Addresses::new(dir.path().join("addresses"), subnet.parse().unwrap());
        (dir, a)
    }

    #[test]
    fn a_devbox_keeps_its_address_until_it_is_released() {
        let (dir, a) = setup("10.78.0.0/24");
        let rec1 = dir.path().join("one");
        let rec2 = dir.path().join("two");
        let ip1 = a.ensure(&id(1), &rec1).unwrap();
        assert_eq!(ip1, "10.78.0.2".parse::<Ipv4Addr>().unwrap());
        assert_eq!(
            a.ensure(&id(1), &rec1).unwrap(),
            ip1,
            "the same address again"
        );
        let ip2 = a.ensure(&id(2), &rec2).unwrap();
        assert_eq!(ip2, "10.78.0.3".parse::<Ipv4Addr>().unwrap());
        a.release(&id(1), &rec1).unwrap();
        a.release(&id(1), &rec1).unwrap();
        assert_eq!(a.of(&rec1).unwrap(), None);
        let rec3 = dir.path().join("three");
        assert_eq!(
            a.ensure(&id(3), &rec3).unwrap(),
            ip1,
            "a released address is reused"
        );
    }

    #[test]
    fn a_new_runtime_on_the_same_directory_never_hands_out_a_live_address() {
        let (dir, a) = setup("10.78.0.0/24");
        let ip1 = a.ensure(&id(1), &dir.path().join("one")).unwrap();
        let again = Addresses::new(
            dir.path().join("addresses"),
            "10.78.0.0/24".parse().unwrap(),
        );
        let ip2 = again.ensure(&id(2), &dir.path().join("two")).unwrap();
        assert_ne!(ip1, ip2);
    }

    #[test]
    fn a_record_naming_an_address_someone_else_holds_is_not_trusted() {
        let (dir, a) = setup("10.78.0.0/24");
        let ip1 = a.ensure(&id(1), &dir.path().join("one")).unwrap();
        let forged = dir.path().join("two");
        fs::write(&forged, ip1.to_string()).unwrap();
        assert_ne!(a.ensure(&id(2), &forged).unwrap(), ip1);
    }

    #[test]
    fn a_full_subnet_is_a_clear_error() {
        let (dir, a) = setup("10.0.0.16/28");
        for n in 0..13 {
            a.ensure(&id(n), &dir.path().join(format!("r{n}"))).unwrap();
        }
        let e = a.ensure(&id(99), &dir.path().join("last")).unwrap_err();
        assert!(e.to_string().contains("no free address"), "{e}");
        assert!(e.to_string().contains("10.0.0.16/28"), "{e}");
    }

    #[test]
    fn claims_of_devboxes_that_are_gone_are_released() {
        let (dir, a) = setup("10.78.0.0/24");
        let kept = dir.path().join("kept");
        fs::create_dir(&kept).unwrap();
        let ip_kept = a.ensure(&id(1), &kept.join("address")).unwrap();
        let ip_gone = a.ensure(&id(2), &dir.path().join("gone")).unwrap();
        a.release_orphans(|i| {
            if *i == id(1) {
                kept.clone()
            } else {
                dir.path().join("nope")
            }
        })
        .unwrap();
        let claimed = a.claimed().unwrap();
        assert!(claimed.contains(&ip_kept));
        assert!(!claimed.contains(&ip_gone));
    }
}
