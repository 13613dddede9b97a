//! `key add`, `key ls`, `key rm`: the SSH public keys a caller logs in to
//! its devboxes with, and the gateway's look-up of the key a client
//! offers.

use chrono::Utc;
use devbox_store::KeyRecord;
use russh::keys::ssh_key::public::KeyData;
use russh::keys::{HashAlg, PublicKey};

use super::{OpError, OpResult};
use crate::auth::Caller;
use crate::state::AppState;

/// The smallest RSA key accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// Longest public key line accepted: an RSA key of 16384 bits fits.
const MAX_KEY_LINE: usize = 16 * 1024;

/// A public key as registered: its algorithm, its line without the
/// comment, its fingerprint and its comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedKey {
    pub algorithm: String,
    pub public_key: String,
    pub fingerprint: String,
    pub comment: String,
}

fn invalid(reason: impl Into<String>) -> OpError {
    OpError::InvalidKey {
        reason: reason.into(),
    }
}

/// The size of an RSA modulus in bits.
fn rsa_bits(key: &KeyData) -> Option<usize> {
    let n = key.rsa()?.n().as_positive_bytes()?;
    let first = *n.first()?;
    Some(n.len() * 8 - first.leading_zeros() as usize)
}

/// The fingerprint of a key, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Parses one OpenSSH public key line (`ssh-ed25519 AAAA... comment`).
/// Ed25519, ECDSA (P-256, P-384, P-521) and RSA of at least
/// [`MIN_RSA_BITS`] bits are accepted.
pub fn parse(text: &str) -> OpResult<ParsedKey> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or_else(|| invalid("no public key given: pass the contents of a .pub file"))?;
    if line.len() > MAX_KEY_LINE {
        return Err(invalid("the public key is longer than any supported key"));
    }
    if line.starts_with("-----BEGIN") {
        return Err(invalid(
            "this is a private key; register the public one (the .pub file beside it)",
        ));
    }
    let key = PublicKey::from_openssh(line).map_err(|e| {
        invalid(format!(
            "not an OpenSSH public key ({e}); expected a line like `ssh-ed25519 AAAA... you@host`"
        ))
    })?;
    let data = key.key_data();
    match data {
        KeyData::Ed25519(_) | KeyData::Ecdsa(_) => {}
        KeyData::Rsa(_) => {
            let bits = rsa_bits(data).unwrap_or(0);
            if bits < MIN_RSA_BITS {
                return Err(invalid(format!(
                    "this RSA key has {bits} bits; at least {MIN_RSA_BITS} are needed \
                     (make one with `ssh-keygen -t ed25519`)"
                )));
            }
        }
        _ => {
            return Err(invalid(format!(
                "{} keys are not supported; use ed25519, ecdsa or rsa (at least {MIN_RSA_BITS} bits)",
                key.algorithm()
            )));
        }
    }
    let mut bare = key.clone();
    bare.set_comment("");
    Ok(ParsedKey {
        algorithm: key.algorithm().to_string(),
        public_key: bare
            .to_openssh()
            .map_err(|e| invalid(format!("cannot encode the key: {e}")))?,
        fingerprint: fingerprint(&key),
        comment: key.comment().to_string(),
    })
}

/// Registers a key for the caller.
pub async fn add(
    state: &AppState,
    caller: &Caller,
    text: &str,
    name: Option<String>,
) -> OpResult<KeyRecord> {
    let parsed = parse(text)?;
    if state.store.find_key(&parsed.fingerprint).await?.is_some() {
        return Err(OpError::KeyExists {
            fingerprint: parsed.fingerprint,
        });
    }
    let name = name
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or(parsed.comment);
    if name.len() > 256 || name.contains(['\n', '\r']) {
        return Err(invalid(
            "the key's name must be one line of at most 256 bytes",
        ));
    }
    let record = KeyRecord {
        id: parsed
            .fingerprint
            .trim_start_matches("SHA256:")
            .chars()
            .take(12)
            .collect(),
        owner: caller.token_name.clone(),
        name,
        algorithm: parsed.algorithm,
        public_key: parsed.public_key,
        fingerprint: parsed.fingerprint.clone(),
        created_at: Utc::now(),
    };
    match state.store.insert_key(&record).await {
        Ok(()) => {}
        Err(devbox_store::StoreError::AlreadyExists { .. }) => {
            return Err(OpError::KeyExists {
                fingerprint: parsed.fingerprint,
            });
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(%caller, fingerprint = %record.fingerprint, "SSH key added");
    Ok(record)
}

/// The caller's keys.
pub async fn list(state: &AppState, caller: &Caller) -> OpResult<Vec<KeyRecord>> {
    Ok(state.store.list_keys(&caller.token_name).await?)
}

/// Removes one of the caller's keys, by ID or fingerprint.
pub async fn remove(state: &AppState, caller: &Caller, id: &str) -> OpResult<()> {
    if state.store.delete_key(&caller.token_name, id).await? {
        tracing::info!(%caller, key = %id, "SSH key removed");
        Ok(())
    } else {
        Err(OpError::KeyNotFound { id: id.to_owned() })
    }
}

/// Who a key a client offers belongs to, if anyone.
pub async fn caller_of(state: &AppState, key: &PublicKey) -> OpResult<Option<Caller>> {
    Ok(state
        .store
        .find_key(&fingerprint(key))
        .await?
        .map(|k| Caller {
            token_name: k.owner,
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@laptop";

    #[test]
    fn an_ed25519_key_parses_with_its_comment_and_fingerprint() {
        let k = parse(&format!("\n# mine\n{ED25519}\n")).unwrap();
        assert_eq!(k.algorithm, "ssh-ed25519");
        assert_eq!(k.comment, "me@laptop");
        assert!(k.fingerprint.starts_with("SHA256:"), "{}", k.fingerprint);
        assert!(!k.public_key.contains("me@laptop"));
        assert_eq!(parse(&k.public_key).unwrap().fingerprint, k.fingerprint);
    }

    #[test]
    fn bad_keys_are_refused_saying_why() {
        let msg = |t: &str| parse(t).unwrap_err().to_string();
        assert!(msg("").contains("no public key given"));
        assert!(msg("-----BEGIN OPENSSH PRIVATE KEY-----").contains("private key"));
        assert!(msg("ssh-ed25519 notbase64").contains("not an OpenSSH public key"));
        // A 1024-bit RSA key.
        let small = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDJ0yVcoMK8oBfyMwKUxKCBI5Ym4VNeNLBtJeK7EzuPZsbNuYGVAo2/4J5oKXEYoa9DF8qW6MvfGqJZLxdNV3eOq/bQKFYXn7PzFPkWp6+JmUgW1LR8Hqi9cVUV+V5M+6a0dw8yXOJnrzmZxGkXoF5aFAR2OpvZ1aCDcNUM2s3bDQ== small";
        assert!(msg(small).contains("at least 2048"), "{}", msg(small));
    }
}
