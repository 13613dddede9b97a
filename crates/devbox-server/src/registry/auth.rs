//! Who is asking the registry, and what for: HTTP Basic with an API token as
//! the password (any user name), an API token as a Bearer token, or a
//! registry token from the Docker token flow.
//!
//! The token flow: a request without credentials is answered 401 with a
//! `WWW-Authenticate: Bearer realm="<this server>/v2/token",service=...,scope=...`
//! challenge; the client sends its Basic credentials to `/v2/token` and gets
//! a short-lived token granting the scopes it asked for, as far as the
//! caller may have them; it sends that token as a Bearer token from then on.
//! Registry tokens are HMAC-SHA256 signed with a key made at server start,
//! so they are checked without the database and end with the server.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::auth::{AuthError, Caller, authenticate};
use crate::ops::registry::{Action, may, may_list_catalog};
use crate::state::AppState;

/// How long a registry token is good for. Clients ask for a new one when a
/// request is refused, so this bounds how long a revoked API token's
/// registry tokens keep working.
pub const TOKEN_LIFETIME_SECS: u64 = 15 * 60;

/// The key registry tokens are signed with.
#[derive(Clone)]
pub struct TokenKey([u8; 32]);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

/// One scope of a registry token, as the Docker token flow writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The name of the API token the registry token was issued for.
    sub: String,
    /// Expiry, in seconds since the epoch.
    exp: u64,
    access: Vec<Grant>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenKey {
    /// A fresh random key.
    pub fn random() -> anyhow::Result<Self> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("cannot get random bytes: {e}"))?;
        Ok(Self(key))
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any size")
    }

    /// A token for `caller` granting `access`, good for `lifetime` seconds.
    fn sign(&self, caller: &Caller, access: Vec<Grant>, lifetime: u64) -> String {
        let claims = Claims {
            sub: caller.token_name.clone(),
            exp: now() + lifetime,
            access,
        };
        let payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("claims serialize"));
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    /// The claims of a token this key signed and that has not expired.
    fn verify(&self, token: &str) -> Result<Claims, Refusal> {
        let (payload, signature) = token.split_once('.').ok_or(Refusal::Invalid)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| Refusal::Invalid)?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&signature).map_err(|_| Refusal::Invalid)?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|raw| serde_json::from_slice(&raw).ok())
            .ok_or(Refusal::Invalid)?;
        if claims.exp <= now() {
            return Err(Refusal::Expired);
        }
        Ok(claims)
    }
}

/// Why a request is not let through. Each becomes a 401 with a challenge,
/// except [`Refusal::Store`].
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("authentication required: log in with an API token as the password")]
    Missing,
    #[error("invalid credentials: the password must be a Devbox API token")]
    Invalid,
    #[error("the registry token has expired; log in again")]
    Expired,
    #[error(
        "the registry token does not grant {action} on {resource}; ask for a token with that scope"
    )]
    InsufficientScope {
        resource: String,
        action: &'static str,
    },
    #[error(transparent)]
    Store(devbox_store::StoreError),
}

impl From<AuthError> for Refusal {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing => Refusal::Missing,
            // Registry clients send no web page session, so the CSRF check
            // never applies to them; were it to fail, the credentials are
            // what is refused.
            AuthError::Invalid | AuthError::Csrf => Refusal::Invalid,
            AuthError::Store(s) => Refusal::Store(s),
        }
    }
}

/// An authenticated request: its caller, and when it came with a registry
/// token, the scopes that token grants (an API token grants all the
/// caller's rights).
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub caller: Caller,
    grants: Option<Vec<Grant>>,
}

impl Authenticated {
    /// Refuses unless the credentials cover `action` on `repository`, or on
    /// the catalog when `repository` is `None`.
    pub fn check_scope(&self, repository: Option<&str>, action: Action) -> Result<(), Refusal> {
        let Some(grants) = &self.grants else {
            return Ok(());
        };
        let (kind, name, action) = match repository {
            Some(r) => ("repository", r, action.as_str()),
            None => ("registry", "catalog", "*"),
        };
        let granted = grants.iter().any(|g| {
            g.kind == kind && g.name == name && g.actions.iter().any(|a| a == action || a == "*")
        });
        if granted {
            Ok(())
        } else {
            Err(Refusal::InsufficientScope {
                resource: format!("{kind}:{name}"),
                action,
            })
        }
    }
}

/// The password of an `Authorization: Basic` header.
fn basic_password(value: &str) -> Option<String> {
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let raw = STANDARD.decode(encoded.trim()).ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (_user, password) = raw.split_once(':')?;
    Some(password.to_owned())
}

/// The caller an API token stands for.
async fn api_token(state: &AppState, token: &str) -> Result<Caller, Refusal> {
    if token.is_empty() {
        return Err(Refusal::Invalid);
    }
    Ok(authenticate(&state.store, Some(&format!("Bearer {token}"))).await?)
}

/// Who sent the request, from its `Authorization` header.
pub async fn authenticate_request(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Authenticated, Refusal> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(Refusal::Missing)?;
    if let Some(token) = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
    {
        let token = token.trim();
        // Registry tokens have a dot; API tokens do not.
        if token.contains('.') {
            let claims = state.registry.key.verify(token)?;
            return Ok(Authenticated {
                caller: Caller {
                    token_name: claims.sub,
                },
                grants: Some(claims.access),
            });
        }
        return Ok(Authenticated {
            caller: api_token(state, token).await?,
            grants: None,
        });
    }
    let password = basic_password(value).ok_or(Refusal::Invalid)?;
    Ok(Authenticated {
        caller: api_token(state, &password).await?,
        grants: None,
    })
}

/// The `WWW-Authenticate` challenge for a request to `host` that needs
/// `scope` (e.g. `repository:bb:pull`).
pub fn challenge(host: &str, scope: Option<&str>, insufficient: bool) -> String {
    let mut c = format!("Bearer realm=\"http://{host}/v2/token\",service=\"{host}\"");
    if let Some(s) = scope {
        c.push_str(&format!(",scope=\"{s}\""));
    }
    if insufficient {
        c.push_str(",error=\"insufficient_scope\"");
    }
    c
}

/// The host a client reached this server by, for the realm of challenges.
/// A Host header that could not be quoted safely is replaced.
pub fn request_host(headers: &HeaderMap) -> String {
    headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost")
        .to_owned()
}

/// The scopes a token request asks for: `repository:<name>:<actions>` and
/// `registry:catalog:*`; several may come in one parameter, space separated.
pub fn parse_scopes<'a>(scopes: impl Iterator<Item = &'a str>) -> Vec<Grant> {
    let mut out = Vec::new();
    for scope in scopes.flat_map(str::split_whitespace) {
        let Some((kind, rest)) = scope.split_once(':') else {
            continue;
        };
        let Some((name, actions)) = rest.rsplit_once(':') else {
            continue;
        };
        out.push(Grant {
            kind: kind.to_owned(),
            name: name.to_owned(),
            actions: actions.split(',').map(str::to_owned).collect(),
        });
    }
    out
}

/// The part of `requested` the caller may have.
fn allowed(caller: &Caller, requested: Vec<Grant>) -> Vec<Grant> {
    requested
        .into_iter()
        .filter_map(|mut g| {
            match g.kind.as_str() {
                "repository" => {
                    let mut actions: Vec<String> = Vec::new();
                    for a in &g.actions {
                        for action in Action::parse_all(a) {
                            let name = action.as_str().to_owned();
                            if may(caller, &g.name, action) && !actions.contains(&name) {
                                actions.push(name);
                            }
                        }
                    }
                    g.actions = actions;
                }
                "registry" if g.name == "catalog" && may_list_catalog(caller) => {
                    g.actions = vec!["*".to_owned()];
                }
                _ => return None,
            }
            (!g.actions.is_empty()).then_some(g)
        })
        .collect()
}

/// What `/v2/token` answers.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub token: String,
    pub access_token: String,
    pub expires_in: u64,
    pub issued_at: String,
}

/// Issues a registry token for the Basic credentials in `headers` (or the
/// `password` of an OAuth2 form), granting what the caller may have of
/// `requested`.
pub async fn issue(
    state: &AppState,
    headers: &HeaderMap,
    form_password: Option<&str>,
    requested: Vec<Grant>,
) -> Result<TokenResponse, Refusal> {
    let caller = match form_password {
        Some(p) => api_token(state, p).await?,
        None => {
            let value = headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .ok_or(Refusal::Missing)?;
            // A registry token cannot buy another one: only a login does.
            let password = basic_password(value).ok_or(Refusal::Invalid)?;
            api_token(state, &password).await?
        }
    };
    let access = allowed(&caller, requested);
    let token = state
        .registry
        .key
        .sign(&caller, access, TOKEN_LIFETIME_SECS);
    tracing::debug!(%caller, "issued a registry token");
    Ok(TokenResponse {
        access_token: token.clone(),
        token,
        expires_in: TOKEN_LIFETIME_SECS,
        issued_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin() -> Caller {
        Caller {
            token_name: "admin".into(),
        }
    }

    #[test]
    fn a_signed_token_verifies_and_a_tampered_one_does_not() {
        let key = TokenKey::random().unwrap();
        let grants = parse_scopes(["repository:admin/web:pull,push"].into_iter());
        let token = key.sign(&admin(), grants.clone(), 60);
        let claims = key.verify(&token).unwrap();
        assert_eq!(claims.sub, "admin");
        assert_eq!(claims.access, grants);

        let (payload, sig) = token.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode(
            br#"{"sub":"admin","exp":99999999999,"access":[{"type":"repository","name":"x","actions":["*"]}]}"#,
        );
        assert!(matches!(
            key.verify(&format!("{forged}.{sig}")),
            Err(Refusal::Invalid)
        ));
        assert!(matches!(
            TokenKey::random().unwrap().verify(&token),
            Err(Refusal::Invalid)
        ));
        assert!(matches!(key.verify(payload), Err(Refusal::Invalid)));
        let expired = key.sign(&admin(), grants, 0);
        assert!(matches!(key.verify(&expired), Err(Refusal::Expired)));
    }

    #[test]
    fn a_token_covers_only_its_scopes() {
        let grants = allowed(
            &admin(),
            parse_scopes(
                [
                    "repository:bb:pull repository:cc:*",
                    "registry:catalog:*",
                    "bogus",
                ]
                .into_iter(),
            ),
        );
        let auth = Authenticated {
            caller: admin(),
            grants: Some(grants),
        };
        assert!(auth.check_scope(Some("bb"), Action::Pull).is_ok());
        assert!(matches!(
            auth.check_scope(Some("bb"), Action::Push),
            Err(Refusal::InsufficientScope { .. })
        ));
        assert!(auth.check_scope(Some("cc"), Action::Delete).is_ok());
        assert!(auth.check_scope(None, Action::Pull).is_ok());
        assert!(auth.check_scope(Some("dd"), Action::Pull).is_err());
    }

    #[test]
    fn basic_credentials_give_their_password() {
        let h = format!("Basic {}", STANDARD.encode("anyone:dbx_secret"));
        assert_eq!(basic_password(&h).as_deref(), Some("dbx_secret"));
        assert_eq!(basic_password("Basic !!!"), None);
        assert_eq!(basic_password("Digest x"), None);
    }

    #[test]
    fn challenges_name_the_realm_service_and_scope() {
        assert_eq!(
            challenge("127.0.0.1:7070", Some("repository:bb:pull"), false),
            r#"Bearer realm="http://127.0.0.1:7070/v2/token",service="127.0.0.1:7070",scope="repository:bb:pull""#
        );
        let mut h = HeaderMap::new();
        h.insert(axum::http::header::HOST, "evil\"x".parse().unwrap());
        assert_eq!(request_host(&h), "localhost");
    }
}
