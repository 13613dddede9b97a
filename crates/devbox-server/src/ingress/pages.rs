//! What the ingress answers instead of the devbox's port: a small page for
//! browsers, the API's JSON error for every other client.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use super::IngressError;
use crate::api::error::ApiError;

/// Whether the client is a browser navigating (it asks for HTML), which
/// gets pages instead of JSON.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A page with a heading and a message; `reload` makes it reload itself
/// every second (the devbox is starting), `sign_in` links the web page.
pub fn page(title: &str, message: &str, reload: bool, sign_in: bool) -> String {
    let refresh = if reload {
        r#"<meta http-equiv="refresh" content="1">"#
    } else {
        ""
    };
    let link = if sign_in {
        r#"<p><a href="/ui/">Sign in to Devbox</a>, then open this address again.</p>"#
    } else {
        ""
    };
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">{refresh}<title>{title}</title>
<style>body{{font:16px system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}}h1{{font-size:1.4em}}code{{background:#eee;padding:0 .2em}}</style></head>
<body><h1>{title}</h1><p>{message}</p>{link}<p><small>Devbox ingress</small></p></body></html>"#,
        title = escape(title),
        message = escape(message),
    )
}

/// The answer for `e`: its status, and a page or the API's JSON body.
pub fn error_response(e: &IngressError, browser: bool) -> Response<Body> {
    let api = ApiError::from(e.clone());
    let status = StatusCode::from_u16(api.code.http_status()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut resp = if browser {
        let (title, reload, sign_in) = match e {
            IngressError::Starting { .. } => ("Starting…", true, false),
            IngressError::SignIn { .. } => ("Sign in", false, true),
            IngressError::NothingListens { .. } => ("Nothing listens there", false, false),
            _ => ("Devbox ingress", false, false),
        };
        let mut r = Response::new(Body::from(page(title, &api.message, reload, sign_in)));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        r
    } else {
        let mut r = Response::new(Body::from(
            serde_json::to_vec(&api.body()).unwrap_or_default(),
        ));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    *resp.status_mut() = status;
    if matches!(e, IngressError::Starting { .. }) {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_what_they_show() {
        let p = page("<t>", "a & <script>", true, false);
        assert!(
            p.contains("&lt;t&gt;") && p.contains("a &amp; &lt;script&gt;"),
            "{p}"
        );
        assert!(p.contains("http-equiv=\"refresh\""));
        assert!(!page("t", "m", false, false).contains("refresh"));
    }

    #[test]
    fn browsers_get_pages_and_others_json() {
        let e = IngressError::Starting {
            devbox: "web".into(),
        };
        let r = error_response(&e, true);
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        assert!(
            r.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let r = error_response(&e, false);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    }
}
