//! API tokens: the admin token made on first start, and the bearer check
//! every API route goes through. Only SHA-256 hashes of tokens are stored;
//! tokens are 256 random bits, so a fast hash is as good as a slow one.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use chrono::Utc;
use devbox_store::{Store, TokenRecord};
use sha2::{Digest, Sha256};

/// Prefix that makes a Devbox token recognizable in logs and secret scanners.
const TOKEN_PREFIX: &str = "dbx_";

/// Hex SHA-256 of a token, as stored.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| anyhow::anyhow!("cannot get random bytes: {e}"))?;
    Ok(hex::encode(buf))
}

/// On a database without tokens, creates the admin token and writes it to
/// `token_file` (mode 0600) for the CLI on this machine.
pub async fn ensure_admin_token(store: &Arc<dyn Store>, token_file: &Path) -> anyhow::Result<()> {
    if store.count_tokens().await? > 0 {
        if !token_file.exists() {
            tracing::warn!(
                "the admin token file {} is missing; API clients need DEVBOX_TOKEN",
                token_file.display()
            );
        }
        return Ok(());
    }
    let token = format!("{TOKEN_PREFIX}{}", random_hex(32)?);
    // Write the file first: a token recorded in the database but never
    // written anywhere would lock everyone out.
    let tmp = token_file.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| anyhow::anyhow!("cannot write token file {}: {e}", tmp.display()))?;
    f.write_all(format!("{token}\n").as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, token_file)?;
    store
        .insert_token(&TokenRecord {
            id: random_hex(8)?,
            name: "admin".into(),
            hash: hash_token(&token),
            created_at: Utc::now(),
        })
        .await?;
    tracing::info!("created the admin API token in {}", token_file.display());
    Ok(())
}

/// Who asks for an operation: the token that authenticated the request.
/// Operations take it so that access is checked in one place once users
/// and roles exist; today every token acts as the admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The name the token was created with.
    pub token_name: String,
}

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "token:{}", self.token_name)
    }
}

/// Why a request is not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token: send Authorization: Bearer <token>")]
    Missing,
    #[error("invalid API token")]
    Invalid,
    #[error(
        "a request made with the web page's session lacks its CSRF token, or comes from another site: send X-CSRF-Token from `GET /api/v1/session`"
    )]
    Csrf,
    #[error(transparent)]
    Store(#[from] devbox_store::StoreError),
}

/// The caller a bearer token (the `Authorization` header's value, if any)
/// stands for.
pub async fn authenticate(
    store: &Arc<dyn Store>,
    header: Option<&str>,
) -> Result<Caller, AuthError> {
    let token = header
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(AuthError::Missing)?;
    let record = store
        .find_token(&hash_token(token))
        .await?
        .ok_or(AuthError::Invalid)?;
    Ok(Caller {
        token_name: record.name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_hex_sha256() {
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[tokio::test]
    async fn the_admin_token_is_made_once_and_stored_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("admin-token");
        let store: Arc<dyn Store> = Arc::new(devbox_store::SqliteStore::open_in_memory().unwrap());
        ensure_admin_token(&store, &file).await.unwrap();
        let token = std::fs::read_to_string(&file).unwrap().trim().to_owned();
        assert!(token.starts_with(TOKEN_PREFIX));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(
            store
                .find_token(&hash_token(&token))
                .await
                .unwrap()
                .is_some()
        );
        assert!(store.find_token(&token).await.unwrap().is_none());
        ensure_admin_token(&store, &file).await.unwrap();
        assert_eq!(store.count_tokens().await.unwrap(), 1);
        assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);
    }
}
