//! Who may reach a port: public ports anyone, private ones the owner's
//! token as a bearer, the web page's session cookie, or a signed link.
//!
//! A signed link carries `devbox_link=<expiry>.<signature>` in its query:
//! an HMAC with the server's secret over the devbox's ID, the port, the
//! expiry and the port's link key, so replacing the key revokes every
//! link made with it. The first request with a link gets it as a cookie
//! for that port (so the page's own requests carry it); the devbox never
//! sees the link, the cookie, a session or a token of the server.

use axum::http::{HeaderMap, HeaderValue, Request, header};
use chrono::{DateTime, TimeZone, Utc};
use devbox_model::DevboxId;
use devbox_store::{DevboxRecord, PortAccess, PortRecord};

use super::{IngressError, Target};
use crate::secret::{Purpose, ServerSecret};
use crate::state::AppState;

/// Query parameter of a signed link.
pub const LINK_PARAM: &str = "devbox_link";

/// The cookie a signed link becomes, per port.
fn link_cookie(port: u16) -> String {
    format!("devbox_link_{port}")
}

/// What let a request through, and the cookie to set in its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    Public,
    Token,
    Session,
    Link { set_cookie: Option<String> },
}

fn link_message(devbox: &DevboxId, port: u16, expires: i64, key: &str) -> String {
    format!("{devbox}\n{port}\n{expires}\n{key}")
}

/// The query value of a link to `port` of `devbox` valid until `expires`.
pub fn sign_link(
    secret: &ServerSecret,
    devbox: &DevboxId,
    port: u16,
    expires: DateTime<Utc>,
    key: &str,
) -> String {
    let exp = expires.timestamp();
    let sig = secret.sign(Purpose::Link, &link_message(devbox, port, exp, key));
    format!("{exp}.{sig}")
}

/// Checks a link's value; its expiry when it holds.
fn check_link(
    secret: &ServerSecret,
    record: &PortRecord,
    value: &str,
    now: DateTime<Utc>,
    err: (String, u16),
) -> Result<DateTime<Utc>, IngressError> {
    let invalid = || IngressError::LinkInvalid {
        devbox: err.0.clone(),
        port: err.1,
    };
    let (exp, sig) = value.split_once('.').ok_or_else(invalid)?;
    let exp: i64 = exp.parse().map_err(|_| invalid())?;
    let message = link_message(&record.devbox, record.port, exp, &record.link_key);
    if !secret.verify(Purpose::Link, &message, sig) {
        return Err(invalid());
    }
    let expires = Utc.timestamp_opt(exp, 0).single().ok_or_else(invalid)?;
    if expires <= now {
        return Err(IngressError::LinkExpired {
            devbox: err.0,
            port: err.1,
        });
    }
    Ok(expires)
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The query without the link parameter; and the link's value, if any.
pub fn split_link(query: &str) -> (String, Option<String>) {
    let mut link = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| {
            match kv
                .strip_prefix(LINK_PARAM)
                .and_then(|r| r.strip_prefix('='))
            {
                Some(v) => {
                    link = Some(v.to_owned());
                    false
                }
                None => !kv.is_empty(),
            }
        })
        .collect();
    (kept.join("&"), link)
}

/// Removes the server's credentials from what the devbox receives: its
/// bearer tokens, its session and link cookies.
pub fn strip_credentials(headers: &mut HeaderMap) {
    let ours = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer dbx_"));
    if ours {
        headers.remove(header::AUTHORIZATION);
    }
    let cookies: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|c| {
            let name = c.split_once('=').map_or(*c, |(k, _)| k);
            !c.is_empty() && name != crate::session::COOKIE && !name.starts_with("devbox_link_")
        })
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if !cookies.is_empty()
        && let Ok(v) = HeaderValue::from_str(&cookies.join("; "))
    {
        headers.insert(header::COOKIE, v);
    }
}

/// Decides whether the request may reach the target port. `link` is the
/// signed link of the request's query, already taken out of it.
pub async fn check<B>(
    state: &AppState,
    target: &Target,
    devbox: &DevboxRecord,
    record: Option<&PortRecord>,
    link: Option<&str>,
    req: &Request<B>,
) -> Result<Grant, IngressError> {
    let access = record.map_or(PortAccess::Private, |r| r.access);
    if access == PortAccess::Public {
        return Ok(Grant::Public);
    }
    let who = (devbox.name.to_string(), target.port);
    let headers = req.headers();
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && auth.starts_with("Bearer ")
    {
        return match crate::auth::authenticate(&state.store, Some(auth)).await {
            Ok(_) => Ok(Grant::Token),
            Err(crate::auth::AuthError::Store(e)) => Err(e.into()),
            Err(_) => Err(IngressError::BadToken {
                devbox: who.0,
                port: who.1,
            }),
        };
    }
    if let Some(value) = cookie(headers, crate::session::COOKIE)
        && crate::session::verify(state, value).await.is_some()
    {
        return Ok(Grant::Session);
    }
    let now = Utc::now();
    if let Some(value) = link {
        // A link on a port without settings cannot be valid: it has no key.
        let record = record.ok_or(IngressError::LinkInvalid {
            devbox: who.0.clone(),
            port: who.1,
        })?;
        let expires = check_link(&state.secret, record, value, now, who)?;
        let max_age = (expires - now).num_seconds().max(1);
        let set_cookie = format!(
            "{}={value}; Path={}; Max-Age={max_age}; HttpOnly; SameSite=Lax",
            link_cookie(target.port),
            target.cookie_path()
        );
        return Ok(Grant::Link {
            set_cookie: Some(set_cookie),
        });
    }
    if let Some(value) = cookie(headers, &link_cookie(target.port)) {
        let record = record.ok_or(IngressError::LinkInvalid {
            devbox: who.0.clone(),
            port: who.1,
        })?;
        check_link(&state.secret, record, value, now, who)?;
        return Ok(Grant::Link { set_cookie: None });
    }
    Err(IngressError::SignIn {
        devbox: who.0,
        port: who.1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str) -> PortRecord {
        PortRecord {
            devbox: DevboxId::from_random([1; 8]),
            port: 8080,
            access: PortAccess::Private,
            link_key: key.into(),
        }
    }

    #[test]
    fn a_link_holds_until_it_expires_or_its_key_changes() {
        let secret = ServerSecret::from_bytes([3; 32]);
        let r = record("k1");
        let now = Utc::now();
        let who = || ("web".to_owned(), 8080);
        let link = sign_link(
            &secret,
            &r.devbox,
            8080,
            now + chrono::Duration::hours(1),
            "k1",
        );
        assert!(check_link(&secret, &r, &link, now, who()).is_ok());
        let late = now + chrono::Duration::hours(2);
        assert!(matches!(
            check_link(&secret, &r, &link, late, who()),
            Err(IngressError::LinkExpired { .. })
        ));
        assert!(matches!(
            check_link(&secret, &record("k2"), &link, now, who()),
            Err(IngressError::LinkInvalid { .. })
        ));
        // A later expiry with the old signature is a tampered link.
        let (_, sig) = link.split_once('.').unwrap();
        let forged = format!("{}.{sig}", (now + chrono::Duration::days(9)).timestamp());
        assert!(matches!(
            check_link(&secret, &r, &forged, now, who()),
            Err(IngressError::LinkInvalid { .. })
        ));
        let other_port = PortRecord {
            port: 8081,
            ..r.clone()
        };
        assert!(check_link(&secret, &other_port, &link, now, who()).is_err());
    }

    #[test]
    fn the_link_leaves_the_query_and_the_rest_stays() {
        assert_eq!(
            split_link("a=1&devbox_link=9.ab&b=2"),
            ("a=1&b=2".to_owned(), Some("9.ab".to_owned()))
        );
        assert_eq!(
            split_link("devbox_links=1"),
            ("devbox_links=1".to_owned(), None)
        );
        assert_eq!(split_link(""), (String::new(), None));
    }

    #[test]
    fn the_devbox_never_sees_the_servers_credentials() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer dbx_secret".parse().unwrap());
        h.append(
            header::COOKIE,
            "app=1; devbox_session=s; devbox_link_8080=l"
                .parse()
                .unwrap(),
        );
        h.append(header::COOKIE, "other=2".parse().unwrap());
        strip_credentials(&mut h);
        assert!(h.get(header::AUTHORIZATION).is_none());
        assert_eq!(h[header::COOKIE], "app=1; other=2");
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Basic YTpi".parse().unwrap());
        strip_credentials(&mut h);
        assert_eq!(
            h[header::AUTHORIZATION],
            "Basic YTpi",
            "the app's own scheme passes"
        );
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; devbox_session=xyz".parse().unwrap());
        assert_eq!(cookie(&h, "devbox_session"), Some("xyz"));
        assert_eq!(cookie(&h, "b"), None);
    }
}
