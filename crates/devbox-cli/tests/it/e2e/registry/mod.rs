//! The registry under `/v2/`: the distribution spec's wire format and
//! errors through plain HTTP, and real clients (skopeo, podman) against it,
//! with Debian's reference `docker-registry` as the peer.

mod export;
mod interop;
mod push;
mod read;
mod write;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::harness::{Server, require_tool};

/// Debian's `docker-registry` on a free loopback port, killed on drop.
pub struct RefRegistry {
    child: Child,
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl RefRegistry {
    pub fn start() -> Self {
        Self::start_with_auth(None)
    }

    /// A registry that asks for HTTP Basic credentials `(user, password)`
    /// (an htpasswd file made with `htpasswd`), when given.
    pub fn start_with_auth(login: Option<(&str, &str)>) -> Self {
        require_tool("docker-registry", "docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let auth = match login {
            None => String::new(),
            Some((user, password)) => {
                require_tool("htpasswd", "apache2-utils");
                let file = dir.path().join("htpasswd");
                let out = run_ok(Command::new("htpasswd").args(["-Bbn", user, password]));
                std::fs::write(&file, out).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                    file.display()
                )
            }
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\nlog:\n  level: error\n{auth}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        RefRegistry {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for RefRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server's `host:port`, as registry clients write it.
pub fn host(s: &Server) -> &str {
    &s.listen
}

/// Runs a tool, failing the test with its output when it fails.
pub fn run_ok(cmd: &mut Command) -> String {
    let out: Output = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `skopeo` with the given arguments.
pub fn skopeo(args: &[&str]) -> String {
    require_tool("skopeo", "skopeo");
    run_ok(Command::new("skopeo").args(args))
}

/// The manifest digest skopeo reports for an image.
pub fn inspect_digest(image: &str, creds: Option<&str>) -> String {
    let mut args = vec!["inspect", "--tls-verify=false"];
    if let Some(c) = creds {
        args.extend(["--creds", c]);
    }
    args.push(image);
    let out = skopeo(&args);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["Digest"].as_str().unwrap().to_owned()
}

/// `podman` with storage of its own under `root`, so the machine's images
/// are neither used nor touched.
pub fn podman(root: &Path, args: &[&str]) -> Output {
    require_tool("podman", "podman");
    Command::new("podman")
        .arg("--root")
        .arg(root.join("root"))
        .arg("--runroot")
        .arg(root.join("run"))
        .arg("--storage-driver")
        .arg("vfs")
        .args(args)
        .output()
        .unwrap()
}

/// A status and the spec's error code from a registry answer.
pub async fn spec_error(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    let code = body["errors"][0]["code"].as_str().unwrap_or("").to_owned();
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "no message in {body}"
    );
    (status, code)
}

/// A containerd of the test's own (root, state and socket in a temporary
/// directory, no CRI), stopped on drop.
pub struct Containerd {
    child: Child,
    pub socket: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Containerd {
    pub fn start() -> Self {
        require_tool("containerd", "containerd");
        require_tool("ctr", "containerd");
        let dir = tempfile::Builder::new()
            .prefix("dbx-ctrd-")
            .tempdir_in("/tmp")
            .unwrap();
        let socket = dir.path().join("containerd.sock");
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{}\"\nstate = \"{}\"\n[grpc]\n  address = \"{}\"\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  disable = true\n",
                dir.path().join("root").display(),
                dir.path().join("state").display(),
                socket.display()
            ),
        )
        .unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "containerd did not listen on {}",
                socket.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Containerd {
            child,
            socket,
            _dir: dir,
        }
    }

    /// `ctr` against this containerd.
    pub fn ctr(&self, args: &[&str]) -> String {
        run_ok(
            Command::new("ctr")
                .arg("--address")
                .arg(&self.socket)
                .args(args),
        )
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where `.ci/run` installs moto, the S3-compatible server from PyPI.
const MOTO_SERVER: &str = "/opt/devbox-ci/venv/bin/moto_server";

/// An S3-compatible server (moto) on a free loopback port with one bucket,
/// killed on drop; servers started through it keep their blobs there.
pub struct Moto {
    child: Child,
    pub endpoint: String,
    pub bucket: &'static str,
}

impl Moto {
    pub fn start() -> Self {
        let bin = std::env::var("DEVBOX_MOTO_SERVER").unwrap_or_else(|_| MOTO_SERVER.to_owned());
        assert!(
            Path::new(&bin).is_file(),
            "{bin} not found: install moto with `apt-get install python3-venv && python3 -m venv /opt/devbox-ci/venv && /opt/devbox-ci/venv/bin/pip install 'moto[server]'` (.ci/run does)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr = format!("127.0.0.1:{port}");
        let mut moto = Moto {
            child,
            endpoint: format!("http://{addr}"),
            bucket: "devbox-test",
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = moto.child.try_wait().unwrap() {
                panic!("moto_server exited with {status}");
            }
            if std::net::TcpStream::connect(&addr).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto.create_bucket(&addr);
        moto
    }

    /// Creates the bucket with a plain request (moto does not check signatures).
    fn create_bucket(&mut self, addr: &str) {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        write!(
            conn,
            "PUT /{} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.bucket
        )
        .unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "cannot create the bucket: {answer}"
        );
    }

    /// The keys stored in the bucket.
    pub fn keys(&self) -> Vec<String> {
        use std::io::{Read, Write};
        let addr = self.endpoint.trim_start_matches("http://");
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        write!(
            conn,
            "GET /{}?list-type=2 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
            self.bucket
        )
        .unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        answer
            .split("<Key>")
            .skip(1)
            .filter_map(|k| k.split_once("</Key>").map(|(k, _)| k.to_owned()))
            .collect()
    }

    /// A server keeping its blobs in this bucket.
    pub fn server(&self) -> Server {
        self.server_with(&[])
    }

    /// A server keeping its blobs in this bucket, with more flags.
    pub fn server_with(&self, args: &[&str]) -> Server {
        let store = format!("s3://{}/blobs", self.bucket);
        let mut all = vec!["--blob-store", &store, "--s3-endpoint", &self.endpoint];
        all.extend_from_slice(args);
        Server::start_with_env(
            &all,
            &[
                ("AWS_ACCESS_KEY_ID", "testing"),
                ("AWS_SECRET_ACCESS_KEY", "testing"),
                ("AWS_DEFAULT_REGION", "us-east-1"),
            ],
        )
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
