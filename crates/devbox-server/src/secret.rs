//! The server's secret: 256 random bits in `<data>/server-secret` (0600),
//! made on first start. Signed links to devbox ports and the web page's
//! session cookies carry an HMAC-SHA256 made with it, each purpose with a
//! label of its own, so a value signed for one purpose is worthless for
//! another. Replacing the file revokes every link and session at once.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Name of the file in the data directory.
pub const SECRET_FILE: &str = "server-secret";

/// What a signature is for; part of every signed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A link to a devbox port (`devbox port share`).
    Link,
    /// A web page session.
    Session,
    /// The web page's token against cross-site requests.
    Csrf,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Link => b"devbox link\n",
            Purpose::Session => b"devbox session\n",
            Purpose::Csrf => b"devbox csrf\n",
        }
    }
}

/// The secret; cheap to clone. Its bytes never leave this module.
#[derive(Clone)]
pub struct ServerSecret {
    key: Arc<[u8; 32]>,
}

impl std::fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerSecret(..)")
    }
}

impl ServerSecret {
    /// A secret from its bytes, for tests.
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self { key: Arc::new(key) }
    }

    /// Reads the secret from `dir`, making it first if there is none.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(SECRET_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim())
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok());
                let key = bytes.with_context(|| {
                    format!(
                        "the server secret {} is not 64 hex digits: remove it to make a new one (signed links and web sessions made before stop working)",
                        path.display()
                    )
                })?;
                Ok(Self::from_bytes(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key)
                    .map_err(|e| anyhow::anyhow!("cannot get random bytes: {e}"))?;
                let tmp = path.with_extension("tmp");
                let _ = std::fs::remove_file(&tmp);
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)
                    .with_context(|| format!("cannot write {}", tmp.display()))?;
                f.write_all(format!("{}\n", hex::encode(key)).as_bytes())?;
                f.sync_all()?;
                std::fs::rename(&tmp, &path)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                Ok(Self::from_bytes(key))
            }
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    fn mac(&self, purpose: Purpose, message: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key[..]).expect("HMAC takes any key");
        mac.update(purpose.label());
        mac.update(message.as_bytes());
        mac
    }

    /// The signature of `message` for `purpose`, in hex.
    pub fn sign(&self, purpose: Purpose, message: &str) -> String {
        hex::encode(self.mac(purpose, message).finalize().into_bytes())
    }

    /// Whether `signature` (hex) is `message`'s for `purpose`, compared in
    /// constant time.
    pub fn verify(&self, purpose: Purpose, message: &str, signature: &str) -> bool {
        match hex::decode(signature) {
            Ok(sig) => self.mac(purpose, message).verify_slice(&sig).is_ok(),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_holds_for_its_message_and_purpose_only() {
        let s = ServerSecret::from_bytes([7; 32]);
        let sig = s.sign(Purpose::Link, "a");
        assert!(s.verify(Purpose::Link, "a", &sig));
        assert!(!s.verify(Purpose::Link, "b", &sig));
        assert!(!s.verify(Purpose::Session, "a", &sig));
        assert!(!s.verify(Purpose::Link, "a", "zz"));
        let other = ServerSecret::from_bytes([8; 32]);
        assert!(!other.verify(Purpose::Link, "a", &sig));
    }

    #[test]
    fn the_secret_is_made_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = ServerSecret::load_or_create(dir.path()).unwrap();
        let b = ServerSecret::load_or_create(dir.path()).unwrap();
        assert_eq!(a.sign(Purpose::Csrf, "x"), b.sign(Purpose::Csrf, "x"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(SECRET_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(dir.path().join(SECRET_FILE), "short").unwrap();
        let e = ServerSecret::load_or_create(dir.path()).unwrap_err();
        assert!(e.to_string().contains("64 hex digits"), "{e}");
    }
}
