//! Web page sessions: signing in with an API token gives a cookie
//! (`HttpOnly`, `SameSite=Strict`) holding the token's hash, an expiry and
//! the server's signature over both; never the token itself. A session
//! ends when it expires, when its token is removed, or when the server's
//! secret changes. Requests that change something with a session also
//! send its CSRF token (a second signature over the cookie, which the
//! page gets when it signs in) in `X-CSRF-Token`, so a page of another
//! site cannot make them even where a browser sends the cookie along.

use chrono::{DateTime, TimeZone, Utc};

use crate::auth::Caller;
use crate::secret::{Purpose, ServerSecret};
use crate::state::AppState;

/// Name of the session cookie.
pub const COOKIE: &str = "devbox_session";

/// Header carrying the CSRF token of a session.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How long a session lasts.
pub const LIFETIME: chrono::Duration = chrono::Duration::days(7);

/// A new session for the token with hash `token_hash`: the cookie's value
/// and its expiry.
pub fn issue(
    secret: &ServerSecret,
    token_hash: &str,
    now: DateTime<Utc>,
) -> (String, DateTime<Utc>) {
    let expires = now + LIFETIME;
    let body = format!("{token_hash}.{}", expires.timestamp());
    let sig = secret.sign(Purpose::Session, &body);
    (format!("{body}.{sig}"), expires)
}

/// The CSRF token that goes with a session cookie's value.
pub fn csrf(secret: &ServerSecret, value: &str) -> String {
    secret.sign(Purpose::Csrf, value)
}

/// Whether `token` is the CSRF token of the session `value`.
pub fn csrf_ok(secret: &ServerSecret, value: &str, token: &str) -> bool {
    secret.verify(Purpose::Csrf, value, token)
}

/// The token hash of a well-signed, unexpired session cookie value.
fn check(secret: &ServerSecret, value: &str, now: DateTime<Utc>) -> Option<String> {
    let (body, sig) = value.rsplit_once('.')?;
    if !secret.verify(Purpose::Session, body, sig) {
        return None;
    }
    let (hash, exp) = body.split_once('.')?;
    let expires = Utc.timestamp_opt(exp.parse().ok()?, 0).single()?;
    (expires > now).then(|| hash.to_owned())
}

/// The caller a session cookie's value stands for, if it is valid and its
/// token still exists.
pub async fn verify(state: &AppState, value: &str) -> Option<Caller> {
    let hash = check(&state.secret, value, Utc::now())?;
    let record = state.store.find_token(&hash).await.ok()??;
    Some(Caller {
        token_name: record.name,
    })
}

/// The expiry of a session cookie's value (unchecked).
pub fn expiry(value: &str) -> Option<DateTime<Utc>> {
    let exp = value.split('.').nth(1)?.parse().ok()?;
    Utc.timestamp_opt(exp, 0).single()
}

/// The `Set-Cookie` value of a session, for the whole server.
pub fn set_cookie(value: &str, expires: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let max_age = (expires - now).num_seconds().max(0);
    format!("{COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict")
}

/// The `Set-Cookie` value that ends a session.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_valid_until_it_expires_and_cannot_be_altered() {
        let state = ServerSecret::from_bytes([5; 32]);
        let now = Utc::now();
        let (value, expires) = issue(&state, "abc", now);
        assert_eq!(expires, now + LIFETIME);
        assert_eq!(check(&state, &value, now).as_deref(), Some("abc"));
        assert_eq!(
            check(&state, &value, expires + chrono::Duration::seconds(1)),
            None
        );
        let forged = value.replacen("abc", "abd", 1);
        assert_eq!(check(&state, &forged, now), None);
        let csrf_token = csrf(&state, &value);
        assert!(csrf_ok(&state, &value, &csrf_token));
        assert!(!csrf_ok(&state, &forged, &csrf_token));
        assert!(set_cookie(&value, expires, now).contains("HttpOnly; SameSite=Strict"));
    }
}
