//! The ingress against a real server, with `curl` as the client and
//! busybox `httpd` in the devbox: routing by Host and by path, a 100 MiB
//! answer streamed whole, a WebSocket echo through the devbox, the access
//! levels (private, public, signed and expiring links, revocation), and a
//! request that wakes a stopped devbox.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};

use super::harness::{Server, busybox_rootfs, require_tool};

/// `curl ARGS`: the status code and the body.
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-S", "--max-time", "120", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// A busybox image serving `/www` on port 8080, and a pipe on port 9000
/// to `peer` (an address on the host) for the WebSocket test.
fn web_image(s: &Server, peer: &str) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    busybox_rootfs(root);
    std::fs::create_dir_all(root.join("www/sub")).unwrap();
    std::fs::write(root.join("www/index.html"), "hello from web\n").unwrap();
    std::fs::write(root.join("www/sub/page.html"), "a sub page\n").unwrap();
    let (host, port) = peer.rsplit_once(':').unwrap();
    let fwd = root.join("bin/fwd");
    std::fs::write(&fwd, format!("#!/bin/sh\nexec nc {host} {port}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fwd, std::fs::Permissions::from_mode(0o755)).unwrap();
    s.ok(&["image", "import", root.to_str().unwrap(), "--name", "web:1"]);
}

/// Waits until the devbox listens on `port`.
fn wait_listening(s: &Server, name: &str, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ports = s.json(&["port", "ls", name, "--json"]);
        let listening = ports
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["port"] == port && p["listening"] == true);
        if listening {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} does not listen on {port}: {ports}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An echo WebSocket server on the bridge's gateway address, for the
/// devbox to reach; its address.
async fn echo_peer(gateway: &str) -> String {
    let listener = tokio::net::TcpListener::bind(format!("{gateway}:0"))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() || msg.is_binary() {
                        let _ = ws.send(msg).await;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ingress_routes_streams_upgrades_checks_access_and_wakes() {
    require_tool("curl", "curl");
    require_tool("sha256sum", "coreutils");
    let s = Server::start_with(&["--wake-timeout", "60s"]);
    let peer = echo_peer(&s.gateway).await;
    web_image(&s, &peer);
    s.ok(&[
        "create",
        "web",
        "--image",
        "web:1",
        "--cmd",
        "httpd -f -p 8080 -h /www & nc -ll -p 9000 -e /bin/fwd",
    ]);
    s.ok(&["start", "web"]);
    wait_listening(&s, "web", 8080);
    let token = s.token();
    let auth = format!("Authorization: Bearer {token}");
    let port = s.listen.rsplit_once(':').unwrap().1.to_owned();
    let by_path = format!("{}/proxy/web/8080/", s.url);
    // Names under localhost resolve to this machine in curl itself.
    let by_host = format!("http://8080-web.localhost:{port}/");

    // Private by default: no token is 401 (a page for browsers), a wrong one 403.
    assert_eq!(curl(&[&by_path]).0, 401);
    let (code, page) = curl(&["-H", "Accept: text/html", &by_host]);
    assert_eq!(code, 401);
    assert!(page.contains("Sign in"), "{page}");
    let (code, body) = curl(&["-H", "Authorization: Bearer dbx_wrong", &by_path]);
    assert_eq!(code, 403, "{body}");

    // Host and path routing reach httpd; the rest of the path goes along.
    assert_eq!(
        curl(&["-H", &auth, &by_host]),
        (200, "hello from web\n".into())
    );
    assert_eq!(
        curl(&["-H", &auth, &by_path]),
        (200, "hello from web\n".into())
    );
    assert_eq!(
        curl(&["-H", &auth, &format!("{by_path}sub/page.html")]),
        (200, "a sub page\n".into())
    );
    let (code, _) = curl(&[
        "-H",
        &auth,
        "-o",
        "/dev/null",
        &format!("{}/proxy/web/8080", s.url),
    ]);
    assert_eq!(code, 308, "the port's directory form");

    // Unknown devboxes and ports are 404, a port nothing listens on 502.
    let (code, body) = curl(&["-H", &auth, &format!("{}/proxy/nosuch/8080/", s.url)]);
    assert_eq!(code, 404, "{body}");
    for bad in ["0", "65536", "http"] {
        let (code, _) = curl(&["-H", &auth, &format!("{}/proxy/web/{bad}/", s.url)]);
        assert_eq!(code, 404, "port {bad}");
    }
    let (code, body) = curl(&["-H", &auth, &format!("{}/proxy/web/8081/", s.url)]);
    assert_eq!(code, 502, "{body}");
    assert!(body.contains("nothing listens on port 8081"), "{body}");

    // The agent's own SSH port listens inside the devbox, yet is neither
    // reached, listed, nor given settings or links.
    let (code, body) = curl(&["-H", &auth, &format!("{}/proxy/web/22022/", s.url)]);
    assert_eq!(code, 404, "{body}");
    let ports = s.ok(&["port", "ls", "web"]);
    assert!(!ports.contains("22022"), "{ports}");
    let refused = s.cli(&["port", "set", "web", "22022", "--access", "public"]);
    assert_eq!(refused.status.code(), Some(3), "{refused:?}");
    let msg = String::from_utf8_lossy(&refused.stderr);
    assert!(msg.contains("the devbox agent's own"), "{msg}");

    // 100 MiB come through whole.
    let sum = s.ok(&[
        "exec",
        "web",
        "--",
        "sh",
        "-c",
        "dd if=/dev/urandom of=/www/big bs=1M count=100 2>/dev/null && sha256sum /www/big",
    ]);
    let want = sum.split_whitespace().next().unwrap().to_owned();
    let file = s.data.path().join("big.download");
    let (code, _) = curl(&[
        "-H",
        &auth,
        "-o",
        file.to_str().unwrap(),
        &format!("{by_host}big"),
    ]);
    assert_eq!(code, 200);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 100 << 20);
    let got = Command::new("sha256sum").arg(&file).output().unwrap();
    let got = String::from_utf8_lossy(&got.stdout);
    assert_eq!(got.split_whitespace().next(), Some(want.as_str()));
    std::fs::remove_file(&file).unwrap();
    s.ok(&["exec", "web", "--", "rm", "/www/big"]);

    // A WebSocket round trip through the proxy and the devbox.
    wait_listening(&s, "web", 9000);
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://127.0.0.1:{port}/proxy/web/9000/echo"),
    )
    .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.status().as_u16(), 101);
    ws.send("ping through the devbox".into()).await.unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("an echo within 10 s")
        .unwrap()
        .unwrap();
    assert_eq!(
        echoed.into_text().unwrap().as_str(),
        "ping through the devbox"
    );
    drop(ws);

    // Public: anyone.
    s.ok(&["port", "set", "web", "8080", "--access", "public"]);
    assert_eq!(curl(&[&by_host]).0, 200);
    let ls = s.ok(&["port", "ls", "web"]);
    assert!(ls.contains("public") && ls.contains(&by_host), "{ls}");
    s.ok(&["port", "set", "web", "8080", "--access", "private"]);
    assert_eq!(curl(&[&by_host]).0, 401);

    // A signed link works without a token, and its cookie for the page's
    // other requests; revoking makes it fail.
    let link = s
        .ok(&["port", "share", "web", "8080", "--expires", "1h"])
        .trim()
        .to_owned();
    assert!(
        link.starts_with(&by_host) && link.contains("devbox_link="),
        "{link}"
    );
    let jar = s.data.path().join("cookies");
    let jar = jar.to_str().unwrap();
    assert_eq!(curl(&["-c", jar, &link]), (200, "hello from web\n".into()));
    assert_eq!(
        curl(&["-b", jar, &format!("{by_host}sub/page.html")]),
        (200, "a sub page\n".into())
    );
    let tampered = link.replacen("devbox_link=", "devbox_link=1", 1);
    assert_eq!(curl(&[&tampered]).0, 403);
    s.ok(&["port", "share", "web", "8080", "--revoke"]);
    let (code, body) = curl(&[&link]);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("revoked"), "{body}");
    assert_eq!(
        curl(&["-b", jar, &by_host]).0,
        403,
        "the cookie of a revoked link"
    );

    // An expired link is refused.
    let short = s.json(&["port", "share", "web", "8080", "--expires", "1s", "--json"]);
    let short = short["path_url"].as_str().unwrap().to_owned();
    std::thread::sleep(Duration::from_millis(2100));
    let (code, body) = curl(&[&short]);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("expired"), "{body}");

    // Wake on request: a client waits for the devbox to start and listen.
    s.ok(&["stop", "web"]);
    assert_eq!(s.json(&["show", "web", "--json"])["state"], "stopped");
    assert_eq!(
        curl(&["-H", &auth, &by_host]),
        (200, "hello from web\n".into())
    );
    assert_eq!(s.json(&["show", "web", "--json"])["state"], "running");
    // A browser gets the starting page, which reloads.
    s.ok(&["stop", "web"]);
    let (code, page) = curl(&["-H", &auth, "-H", "Accept: text/html", &by_path]);
    assert_eq!(code, 503, "{page}");
    assert!(page.contains("http-equiv=\"refresh\""), "{page}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, body) = curl(&["-H", &auth, "-H", "Accept: text/html", &by_path]);
        if code == 200 {
            assert_eq!(body, "hello from web\n");
            break;
        }
        assert_eq!(code, 503, "{body}");
        assert!(Instant::now() < deadline, "the woken devbox never answered");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(Path::new(&s.data.path().join("server-secret")).exists());
}
