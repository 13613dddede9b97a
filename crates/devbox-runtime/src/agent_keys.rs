//! The control plane's credential for a devbox's agent, and where the
//! runtime puts it.
//!
//! The credential is two Ed25519 seeds the control plane chooses: the
//! client key it (and the runtime's own execs) log in to the agent with,
//! and the agent's host key, which the client checks, so a process of the
//! devbox that took the agent's port cannot pass for the agent. At every
//! start the runtime writes the agent's host key and the client's public
//! key into the devbox's keys directory, mounted read-only (root's files,
//! mode 0600 for the private one), and keeps the credential itself beside
//! the devbox's other host-side files, never inside it.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::{Ed25519Keypair, KeypairData};
use russh::keys::{PrivateKey, PublicKey};

use crate::error::RuntimeError;

/// The two seeds of a devbox's agent credential.
#[derive(Clone, PartialEq, Eq)]
pub struct AgentKeys {
    /// The seed of the key the control plane logs in with.
    pub client: [u8; 32],
    /// The seed of the agent's host key.
    pub host: [u8; 32],
}

impl fmt::Debug for AgentKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AgentKeys(..)")
    }
}

fn key_of(seed: &[u8; 32], comment: &str) -> PrivateKey {
    let pair = Ed25519Keypair::from_seed(seed);
    PrivateKey::new(KeypairData::Ed25519(pair), comment).expect("an Ed25519 key pair is valid")
}

impl AgentKeys {
    /// The key the agent accepts.
    pub fn client_key(&self) -> PrivateKey {
        key_of(&self.client, "devbox-control-plane")
    }

    /// The agent's host key.
    pub fn host_key(&self) -> PrivateKey {
        key_of(&self.host, "devbox-agent")
    }

    /// The public half of the agent's host key, which clients check.
    pub fn host_public_key(&self) -> PublicKey {
        self.host_key().public_key().clone()
    }

    fn to_hex(&self) -> String {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        format!("{} {}\n", hex(&self.client), hex(&self.host))
    }

    #[cfg_attr(not(test), allow(dead_code))]
    fn from_hex(text: &str) -> Option<AgentKeys> {
        let seed = |s: &str| -> Option<[u8; 32]> {
            if s.len() != 64 {
                return None;
            }
            let mut out = [0u8; 32];
            for (i, b) in out.iter_mut().enumerate() {
                *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
            }
            Some(out)
        };
        let mut parts = text.split_whitespace();
        let keys = AgentKeys {
            client: seed(parts.next()?)?,
            host: seed(parts.next()?)?,
        };
        parts.next().is_none().then_some(keys)
    }
}

fn write_private(path: &Path, content: &[u8]) -> Result<(), RuntimeError> {
    let tmp = path.with_extension("new");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(RuntimeError::io("create", &tmp))?;
    f.write_all(content)
        .map_err(RuntimeError::io("write", &tmp))?;
    fs::rename(&tmp, path).map_err(RuntimeError::io("rename into place", path))
}

/// Prepares the keys directory `dir` (empty without a credential, so the
/// agent serves no SSH) and keeps the credential at `credential`.
pub(crate) fn install(
    dir: &Path,
    credential: &Path,
    keys: Option<&AgentKeys>,
) -> Result<(), RuntimeError> {
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(RuntimeError::io("remove", dir))?;
    }
    fs::create_dir(dir).map_err(RuntimeError::io("create", dir))?;
    let Some(keys) = keys else {
        let _ = fs::remove_file(credential);
        return Ok(());
    };
    let host = keys
        .host_key()
        .to_openssh(LineEnding::LF)
        .expect("an Ed25519 key encodes");
    write_private(&dir.join("host_key"), host.as_bytes())?;
    let client = keys
        .client_key()
        .public_key()
        .to_openssh()
        .expect("an Ed25519 key encodes");
    let authorized = dir.join("authorized_keys");
    fs::write(&authorized, format!("{client}\n"))
        .map_err(RuntimeError::io("write", &authorized))?;
    write_private(credential, keys.to_hex().as_bytes())
}

/// The credential the devbox's current run was started with, if any.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn read(credential: &Path) -> Option<AgentKeys> {
    AgentKeys::from_hex(&fs::read_to_string(credential).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn sample() -> AgentKeys {
        AgentKeys {
            client: [7; 32],
            host: [9; 32],
        }
    }

    #[test]
    fn keys_are_derived_from_their_seeds_alone() {
        let k = sample();
        assert_eq!(
            k.client_key().public_key(),
            sample().client_key().public_key()
        );
        assert_ne!(k.client_key().public_key(), k.host_key().public_key());
        assert_eq!(format!("{k:?}"), "AgentKeys(..)");
    }

    #[test]
    fn install_writes_openssh_files_and_the_credential_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let keys_dir = dir.path().join("keys");
        let credential = dir.path().join("agent.credential");
        install(&keys_dir, &credential, Some(&sample())).unwrap();
        let host = fs::read_to_string(keys_dir.join("host_key")).unwrap();
        let parsed = PrivateKey::from_openssh(&host).unwrap();
        assert_eq!(parsed.public_key(), &sample().host_public_key());
        let mode = fs::metadata(keys_dir.join("host_key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let authorized = fs::read_to_string(keys_dir.join("authorized_keys")).unwrap();
        let public = PublicKey::from_openssh(authorized.trim()).unwrap();
        assert_eq!(&public, sample().client_key().public_key());
        assert_eq!(read(&credential), Some(sample()));
        // Without a credential the directory is empty and none is kept.
        install(&keys_dir, &credential, None).unwrap();
        assert_eq!(fs::read_dir(&keys_dir).unwrap().count(), 0);
        assert_eq!(read(&credential), None);
    }

    #[test]
    fn a_damaged_credential_reads_as_none() {
        assert_eq!(AgentKeys::from_hex("00 11"), None);
        assert_eq!(AgentKeys::from_hex(&"zz".repeat(64)), None);
        let good = sample().to_hex();
        assert_eq!(AgentKeys::from_hex(&good), Some(sample()));
        assert_eq!(AgentKeys::from_hex(&format!("{good} extra")), None);
    }
}
