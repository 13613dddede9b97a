//! The control plane's secrets for SSH: the gateway's host key, which
//! clients remember, and the secret every devbox's agent credential is
//! derived from. Both live in the data directory (mode 0600) and stay the
//! same across restarts, so known hosts stay valid and running devboxes
//! keep accepting the credential they were started with.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;
use devbox_model::DevboxId;
use devbox_runtime::AgentKeys;
use russh::keys::PrivateKey;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::{Ed25519Keypair, KeypairData};
use sha2::{Digest, Sha256};

/// The file of the gateway's host key in the data directory.
pub const HOST_KEY_FILE: &str = "ssh_host_ed25519_key";

/// The file of the agent secret in the data directory.
pub const AGENT_SECRET_FILE: &str = "agent-secret";

fn random_seed() -> anyhow::Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("cannot get random bytes: {e}"))?;
    Ok(seed)
}

/// Writes `content` to `path` (mode 0600) unless something is there.
fn create_private(path: &Path, content: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(content)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// The gateway's host key, made on first use.
pub fn host_key(path: &Path) -> anyhow::Result<PrivateKey> {
    if path.exists() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the SSH host key {}", path.display()))?;
        return PrivateKey::from_openssh(text.trim()).with_context(|| {
            format!(
                "{} is not an OpenSSH private key; move it away and a new one is made",
                path.display()
            )
        });
    }
    let pair = Ed25519Keypair::from_seed(&random_seed()?);
    let key = PrivateKey::new(KeypairData::Ed25519(pair), "devbox-gateway")
        .context("cannot make an SSH host key")?;
    let text = key
        .to_openssh(LineEnding::LF)
        .context("cannot encode the SSH host key")?;
    create_private(path, text.as_bytes())?;
    tracing::info!("created the SSH host key {}", path.display());
    Ok(key)
}

/// The secret agent credentials are derived from.
#[derive(Clone)]
pub struct AgentSecret([u8; 32]);

impl std::fmt::Debug for AgentSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgentSecret(..)")
    }
}

/// HMAC-SHA256 (RFC 2104) of `msg` under `key`.
fn hmac(key: &[u8; 32], msg: &[u8]) -> [u8; 32] {
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for (i, b) in key.iter().enumerate() {
        ipad[i] ^= b;
        opad[i] ^= b;
    }
    let inner = Sha256::new()
        .chain_update(ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize()
        .into()
}

impl AgentSecret {
    /// Reads the secret at `path`, making it on first use.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        if !path.exists() {
            create_private(path, hex::encode(random_seed()?).as_bytes())?;
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let bytes = hex::decode(text.trim()).ok().filter(|b| b.len() == 32);
        let bytes = bytes.with_context(|| {
            format!(
                "{} is damaged; remove it and restart the server, then restart running devboxes",
                path.display()
            )
        })?;
        Ok(AgentSecret(bytes.try_into().expect("32 bytes")))
    }

    #[cfg(test)]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        AgentSecret(bytes)
    }

    /// The credential of the agent of devbox `id`: the same for the same
    /// secret and devbox, unrelated between devboxes.
    pub fn keys_for(&self, id: &DevboxId) -> AgentKeys {
        let label = |what: &str| format!("devbox-agent {what} {id}");
        AgentKeys {
            client: hmac(&self.0, label("client").as_bytes()),
            host: hmac(&self.0, label("host").as_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2 of RFC 4231, with the key padded to 32 bytes by
        // zeros, which HMAC does itself for short keys.
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        assert_eq!(
            hex::encode(hmac(&key, b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn credentials_differ_per_devbox_and_stay_the_same_per_secret() {
        let s = AgentSecret::from_bytes([3; 32]);
        let a: DevboxId = "0123456789abcdef".parse().unwrap();
        let b: DevboxId = "fedcba9876543210".parse().unwrap();
        assert_eq!(s.keys_for(&a), s.keys_for(&a));
        assert_ne!(s.keys_for(&a), s.keys_for(&b));
        assert_ne!(s.keys_for(&a).client, s.keys_for(&a).host);
        assert_ne!(
            AgentSecret::from_bytes([4; 32]).keys_for(&a),
            s.keys_for(&a)
        );
    }

    #[test]
    fn secrets_and_host_keys_are_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(AGENT_SECRET_FILE);
        let id: DevboxId = "0123456789abcdef".parse().unwrap();
        let first = AgentSecret::load_or_create(&path).unwrap().keys_for(&id);
        let again = AgentSecret::load_or_create(&path).unwrap().keys_for(&id);
        assert_eq!(first, again);
        std::fs::write(&path, "garbage").unwrap();
        let e = AgentSecret::load_or_create(&path).unwrap_err();
        assert!(e.to_string().contains("is damaged"), "{e}");

        let key_path = dir.path().join(HOST_KEY_FILE);
        let k1 = host_key(&key_path).unwrap();
        let k2 = host_key(&key_path).unwrap();
        assert_eq!(k1.public_key().key_data(), k2.public_key().key_data());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
