//! The SSH gateway with Debian's OpenSSH client: sessions with and without
//! a terminal, exit codes and standard error, large standard input, scp and
//! sftp, local and remote forwarding, wake on connect, refusals, and many
//! sessions at once.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sha2::Digest;

use super::harness::{Server, require_tool};

/// A user's key pair in the test's data directory, registered or not.
fn keygen(s: &Server, name: &str) -> PathBuf {
    let path = s.data.path().join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    path
}

/// `ssh` (or `scp`, `sftp`) with the options a test needs, logging in
/// with `key` to the gateway of `s`.
fn client(tool: &str, s: &Server, key: &Path) -> Command {
    require_tool(tool, "openssh-client");
    let port = s.ssh_listen.rsplit(':').next().unwrap().to_owned();
    let mut c = Command::new(tool);
    c.arg(if tool == "ssh" { "-p" } else { "-P" })
        .arg(port)
        .arg("-i")
        .arg(key)
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
        ]);
    c
}

/// Runs `c` with `stdin` fed beside it.
fn run(mut c: Command, stdin: &[u8]) -> Output {
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn sha256_hex(data: &[u8]) -> String {
    hex(&sha2::Sha256::digest(data))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Deterministic bytes that do not compress.
fn noise(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server with devbox `dev` (created, not started) and a registered key.
fn setup() -> (Server, PathBuf) {
    let s = Server::start();
    s.import_busybox("base:1");
    s.ok(&["create", "dev", "--image", "base:1"]);
    let key = keygen(&s, "user");
    let out = s.ok(&["key", "add", &format!("{}.pub", key.display())]);
    assert!(out.starts_with("added ssh-ed25519 key SHA256:"), "{out}");
    (s, key)
}

#[test]
fn the_gateway_wakes_the_devbox_and_serves_exec_with_exit_codes_and_stderr() {
    let (s, key) = setup();
    let mut c = client("ssh", &s, &key);
    c.args(["dev@127.0.0.1", "--", "echo out; echo err >&2; exit 3"]);
    let out = run(c, b"");
    assert_eq!(out.status.code(), Some(3), "{out:?}\n{}", s.log());
    assert_eq!(text(&out.stdout), "out\n");
    let err = text(&out.stderr);
    assert!(err.ends_with("err\n"), "{err}");
    assert!(err.contains("devbox: starting dev"), "{err}");
    let shown = s.json(&["show", "dev", "--json"]);
    assert_eq!(shown["state"], "running");
    // The login counts as activity, and `ls` shows it.
    assert!(shown["last_activity"].is_string(), "{shown}");
    let ls = s.ok(&["ls"]);
    assert!(ls.lines().next().unwrap().contains("ACTIVE"), "{ls}");
    // Both CREATED and ACTIVE give an age ("just now" or "5s ago"), not "-".
    let row = ls.lines().nth(1).unwrap();
    assert_eq!(
        row.matches("just now").count() + row.matches(" ago").count(),
        2,
        "{ls}"
    );

    // 100 MiB of standard input arrive whole, and its end closes the input.
    let data = noise(100 << 20);
    let mut c = client("ssh", &s, &key);
    c.args(["dev@127.0.0.1", "--", "sha256sum"]);
    let out = run(c, &data);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text(&out.stdout).split_whitespace().next(),
        Some(sha256_hex(&data).as_str())
    );

    // VS Code's way: `ssh -T` with a script on standard input.
    let mut c = client("ssh", &s, &key);
    c.args(["-T", "dev@127.0.0.1", "sh"]);
    let out = run(c, b"echo $HOME; id -u\nexit 0\n");
    assert_eq!(text(&out.stdout), "/root\n0\n", "{out:?}");
}

#[test]
fn files_go_both_ways_with_scp_and_sftp() {
    let (s, key) = setup();
    let data = noise(48 << 20);
    let local = s.data.path().join("up.bin");
    std::fs::write(&local, &data).unwrap();
    let mut c = client("scp", &s, &key);
    c.arg(&local).arg("dev@127.0.0.1:/root/up.bin");
    let out = run(c, b"");
    assert!(out.status.success(), "{out:?}\n{}", s.log());
    let mut c = client("ssh", &s, &key);
    c.args(["dev@127.0.0.1", "sha256sum /root/up.bin"]);
    let sum = text(&run(c, b"").stdout);
    assert!(sum.starts_with(&sha256_hex(&data)), "{sum}");

    let back = s.data.path().join("back.bin");
    let mut c = client("sftp", &s, &key);
    c.args(["-b", "-", "dev@127.0.0.1"]);
    let batch = format!(
        "get /root/up.bin {}\nmkdir /root/d\nls /root\n",
        back.display()
    );
    let out = run(c, batch.as_bytes());
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out.stdout).contains("up.bin"), "{out:?}");
    assert!(
        std::fs::read(&back).unwrap() == data,
        "the file came back changed"
    );
}

#[test]
fn a_terminal_session_has_its_type_and_size() {
    require_tool("script", "util-linux");
    let (s, key) = setup();
    s.ok(&["start", "dev"]);
    let c = client("ssh", &s, &key);
    let ssh: Vec<String> = std::iter::once("ssh".to_owned())
        .chain(c.get_args().map(|a| a.to_string_lossy().into_owned()))
        .collect();
    let line = format!(
        "stty cols 120 rows 40; {} -tt dev@127.0.0.1 'tty; echo T=$TERM; stty size; exit 5'",
        ssh.join(" ")
    );
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("TERM", "xterm-256color")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let screen = text(&out.stdout);
    assert!(screen.contains("/dev/pts/"), "{screen}");
    assert!(screen.contains("T=xterm-256color"), "{screen}");
    assert!(screen.contains("40 120"), "{screen}");
    assert_eq!(out.status.code(), Some(5), "{screen}");
}

/// A TCP server on the host answering each connection with `echo:` and
/// what it read first.
fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 64];
            let n = conn.read(&mut buf).unwrap_or(0);
            let _ = conn.write_all(b"echo:");
            let _ = conn.write_all(&buf[..n]);
        }
    });
    port
}

#[test]
fn forwarding_goes_from_and_to_inside_the_devbox() {
    let (s, key) = setup();
    s.ok(&[
        "update",
        "dev",
        "--cmd",
        "mkdir -p /www && echo inside > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www",
    ]);
    s.ok(&["start", "dev"]);
    // -L: the devbox's own loopback, which the host cannot reach.
    let local = free_port();
    let mut c = client("ssh", &s, &key);
    c.args([
        "-N",
        "-o",
        "ExitOnForwardFailure=yes",
        "-L",
        &format!("127.0.0.1:{local}:127.0.0.1:8080"),
        "dev@127.0.0.1",
    ])
    .stdin(Stdio::null());
    let mut forwarding = c.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let page = loop {
        let got = TcpStream::connect(("127.0.0.1", local))
            .ok()
            .and_then(|mut t| {
                t.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").ok()?;
                let mut r = String::new();
                t.read_to_string(&mut r).ok()?;
                (!r.is_empty()).then_some(r)
            });
        if let Some(page) = got {
            break page;
        }
        assert!(Instant::now() < deadline, "-L never answered:\n{}", s.log());
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = forwarding.kill();
    let _ = forwarding.wait();
    assert!(page.contains(" 200 ") && page.contains("inside"), "{page}");

    // -R: a port inside the devbox reaches a server on the host.
    let echo = echo_server();
    let mut c = client("ssh", &s, &key);
    c.args([
        "-o",
        "ExitOnForwardFailure=yes",
        "-R",
        &format!("127.0.0.1:9090:127.0.0.1:{echo}"),
        "dev@127.0.0.1",
        "echo ping | nc 127.0.0.1 9090",
    ]);
    let out = run(c, b"");
    assert_eq!(text(&out.stdout), "echo:ping\n", "{out:?}");
}

#[test]
fn wrong_keys_and_unknown_devboxes_are_refused_clearly() {
    let (s, key) = setup();
    let stranger = keygen(&s, "stranger");
    let mut c = client("ssh", &s, &stranger);
    c.args(["dev@127.0.0.1", "true"]);
    let out = run(c, b"");
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains("Permission denied (publickey)"),
        "{out:?}"
    );

    let mut c = client("ssh", &s, &key);
    c.args(["nosuch@127.0.0.1", "true"]);
    let out = run(c, b"");
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains("devbox nosuch not found"),
        "{out:?}"
    );

    // A malformed key and one added twice are refused; ls and rm work.
    let bad = s.cli_with_stdin(&["key", "add", "-"], b"ssh-ed25519 garbage");
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");
    assert!(
        text(&bad.stderr).contains("invalid SSH public key"),
        "{bad:?}"
    );
    let twice = s.cli(&["key", "add", &format!("{}.pub", key.display())]);
    assert_eq!(twice.status.code(), Some(4), "{twice:?}");
    let list = s.json(&["key", "ls", "--json"]);
    let id = list[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list.as_array().unwrap().len(), 1);
    s.ok(&["key", "rm", &id]);
    let mut c = client("ssh", &s, &key);
    c.args(["dev@127.0.0.1", "true"]);
    assert_eq!(
        run(c, b"").status.code(),
        Some(255),
        "a removed key still logs in"
    );
}

#[test]
fn fifty_sessions_run_at_once() {
    let (s, key) = setup();
    s.ok(&["start", "dev"]);
    let children: Vec<_> = (0..50)
        .map(|i| {
            let mut c = client("ssh", &s, &key);
            c.args(["dev@127.0.0.1", &format!("sleep 1; echo session-{i}")])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "session {i}: {out:?}");
        assert_eq!(text(&out.stdout), format!("session-{i}\n"));
    }
}

#[test]
fn devbox_ssh_and_ssh_config_go_through_the_https_tunnel_and_ides_get_links() {
    let (s, key) = setup();
    let key_arg = key.to_str().unwrap().to_owned();
    // `devbox ssh NAME -- cmd`: the system ssh, its ProxyCommand the tunnel.
    let out = s.cli(&[
        "ssh",
        "dev",
        "-i",
        &key_arg,
        "-o",
        "BatchMode=yes",
        "--",
        "echo",
        "tunnel;",
        "exit",
        "4",
    ]);
    assert_eq!(out.status.code(), Some(4), "{out:?}\n{}", s.log());
    assert_eq!(text(&out.stdout), "tunnel\n");

    // `devbox ssh-config`: Host entries plain ssh (and so VS Code) uses,
    // with the gateway's key known beforehand (StrictHostKeyChecking yes).
    let known = s.data.path().join("known_hosts");
    let config = s.ok(&["ssh-config", "--known-hosts", known.to_str().unwrap()]);
    assert!(config.contains("Host dev.devbox\n"), "{config}");
    let file = s.data.path().join("ssh_config");
    std::fs::write(&file, &config).unwrap();
    let mut c = Command::new("ssh");
    c.arg("-F")
        .arg(&file)
        .arg("-i")
        .arg(&key)
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "dev.devbox",
            "echo via-config",
        ])
        .env("DEVBOX_DATA_DIR", s.data.path())
        .env_remove("DEVBOX_TOKEN");
    let out = run(c, b"");
    assert_eq!(text(&out.stdout), "via-config\n", "{out:?}");
    let kh = std::fs::read_to_string(&known).unwrap();
    assert!(kh.contains("dev.devbox ssh-ed25519 "), "{kh}");

    // IDE links.
    let v = s.ok(&["open", "dev", "--ide", "vscode", "--print"]);
    assert_eq!(v, "vscode://vscode-remote/ssh-remote+dev.devbox/root\n");
    let port = s.ssh_listen.rsplit(':').next().unwrap();
    let j = s.ok(&["open", "dev", "--ide", "jetbrains", "--print"]);
    assert!(
        j.starts_with("jetbrains-gateway://connect#type=ssh&")
            && j.contains(&format!(
                "host=127.0.0.1&port={port}&user=dev&projectPath=/root"
            )),
        "{j}"
    );
}
