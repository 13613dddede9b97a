//! A real `devbox server` per test, driven through the built `devbox` binary
//! and its HTTP API, with everything it created removed at the end.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Longest any single CLI call may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(180);

/// Fails the test with the one-line fix when `tool` is not installed.
pub fn require_tool(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{tool} not found: install it with `apt-get install {package}`"
    );
}

/// Fails the test with a one-line fix when the machine cannot run devboxes.
pub fn require_privileges() {
    assert!(
        rustix::process::geteuid().is_root(),
        "end-to-end tests run devboxes and need root"
    );
    for (tool, package) in [
        ("runc", "runc"),
        ("iptables", "iptables"),
        ("ip", "iproute2"),
    ] {
        require_tool(tool, package);
    }
}

/// Writes a busybox rootfs (from Debian's busybox-static) with an os-release and a passwd.
pub fn busybox_rootfs(root: &Path) {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.is_file(),
        "/bin/busybox not found: install it with `apt-get install busybox-static`"
    );
    for d in ["bin", "etc", "root", "tmp", "home", "var"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    let list = Command::new(busybox).arg("--list").output().unwrap();
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
        }
    }
    std::fs::write(
        root.join("etc/os-release"),
        "NAME=\"Devbox test\"\nID=devbox-test\n",
    )
    .unwrap();
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
}

/// One server, its data directory and network.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    pub data: tempfile::TempDir,
    pub url: String,
    pub listen: String,
    /// The SSH gateway's address.
    pub ssh_listen: String,
    pub subnet: String,
    pub gateway: String,
    pub bridge: String,
    /// The claim on network N, released after the network is removed (a
    /// field drops after `Drop::drop` has run).
    _net_claim: File,
    /// Flags of `devbox server` beyond the harness's own.
    extra_args: Vec<String>,
    /// Environment of `devbox server` beyond the harness's own.
    extra_env: Vec<(String, String)>,
}

/// Test network N is bridge `dbxe2eN` with subnet `10.79.N.0/24`.
const NETWORKS: u32 = 256;

/// Claims a test network for one server: N such that this process holds the
/// exclusive lock on `/run/devbox-test-net-N.lock` (so no other test process,
/// from this checkout or another, takes it) and neither the bridge nor an
/// address or route in the subnet exists (so nothing this test did not create
/// is used, or removed afterwards). The lock lasts as long as the file.
pub fn claim_network() -> (u32, File) {
    use rustix::fs::{FlockOperation, flock};
    let addresses = ip(&["-o", "-4", "addr", "show"]) + &ip(&["-4", "route", "show"]);
    for n in 0..NETWORKS {
        let path = format!("/run/devbox-test-net-{n}.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => continue,
            Err(e) => panic!("cannot lock {path}: {e}"),
        }
        let bridge_exists = Path::new("/sys/class/net")
            .join(format!("dbxe2e{n}"))
            .exists();
        if bridge_exists || addresses.contains(&format!("10.79.{n}.")) {
            continue;
        }
        return (n, file);
    }
    panic!(
        "no free test network: bridges dbxe2e0 to dbxe2e{} exist or are in use; \
         remove stale ones with `ip link del dbxe2eN`",
        NETWORKS - 1
    );
}

/// The output of `ip ARGS`.
fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server started with these flags of `devbox server` besides the
    /// harness's own (kept for restarts).
    pub fn start_with(extra_args: &[&str]) -> Self {
        Self::start_with_env(extra_args, &[])
    }

    /// A server started with these flags and environment variables
    /// besides the harness's own.
    pub fn start_with_env(extra_args: &[&str], extra_env: &[(&str, &str)]) -> Self {
        require_privileges();
        let (n, claim) = claim_network();
        let listen = format!("127.0.0.1:{}", free_port());
        let mut s = Server {
            child: None,
            data: tempfile::Builder::new()
                .prefix("devbox-e2e-")
                .tempdir_in("/var/tmp")
                .unwrap(),
            url: format!("http://{listen}"),
            listen,
            ssh_listen: format!("127.0.0.1:{}", free_port()),
            subnet: format!("10.79.{n}.0/24"),
            gateway: format!("10.79.{n}.1"),
            bridge: format!("dbxe2e{n}"),
            _net_claim: claim,
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            extra_env: extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        s.spawn();
        s
    }

    fn log_path(&self) -> PathBuf {
        self.data.path().join("server.log")
    }

    /// Starts the server process on the same data directory and waits until it answers.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_devbox"))
            .args(["server", "--data-dir"])
            .arg(self.data.path())
            .args([
                "--listen",
                &self.listen,
                "--subnet",
                &self.subnet,
                "--bridge",
                &self.bridge,
                "--ssh-listen",
                &self.ssh_listen,
            ])
            .args(&self.extra_args)
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("devbox server exited with {status}:\n{}", self.log());
            }
            if std::net::TcpStream::connect(&self.listen).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "devbox server did not listen in 60 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data.path().join("admin-token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Runs the CLI against this server.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_with_stdin(args, b"")
    }

    pub fn cli_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        use std::io::{Read, Write};
        let mut child = Command::new(env!("CARGO_BIN_EXE_devbox"))
            .args(args)
            .env("DEVBOX_URL", &self.url)
            .env("DEVBOX_DATA_DIR", self.data.path())
            .env_remove("DEVBOX_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The command may stop reading early, so input is written beside the wait.
        let mut input = child.stdin.take().unwrap();
        let data = stdin.to_vec();
        std::thread::spawn(move || {
            let _ = input.write_all(&data);
        });
        let drain = |mut r: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut v = Vec::new();
                let _ = r.read_to_end(&mut v);
                v
            })
        };
        let stdout = drain(Box::new(child.stdout.take().unwrap()));
        let stderr = drain(Box::new(child.stderr.take().unwrap()));
        // A hung command fails its test instead of the whole run's time budget.
        let deadline = Instant::now() + CLI_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "devbox {} did not finish in {CLI_TIMEOUT:?}; server log:\n{}",
                    args.join(" "),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Output {
            status,
            stdout: stdout.join().unwrap(),
            stderr: stderr.join().unwrap(),
        }
    }

    /// Runs the CLI and returns its stdout, failing the test on a non-zero exit.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "devbox {} failed with {}:\nstdout: {}\nstderr: {}\nserver log:\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs the CLI with `--json` output and parses it.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.ok(args);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("devbox {}: not JSON ({e}): {out}", args.join(" ")))
    }

    /// Calls the API: `method` on `path` (under `/api/v1`) with a JSON
    /// body; the status and the JSON answer (null when there is none).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = self
            .http()
            .request(method, format!("{}/api/v1{path}", self.url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        (status, json)
    }

    /// An HTTP client with the admin token.
    pub fn http(&self) -> reqwest::Client {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", self.token()).parse().unwrap(),
        );
        reqwest::Client::builder()
            .default_headers(h)
            .build()
            .unwrap()
    }

    /// Runs `devbox logs -f NAME` in the background.
    pub fn follow_logs(&self, name: &str) -> Follower {
        self.follow(&["logs", "-f", name])
    }

    /// Runs a `devbox` command that streams (`logs -f`, `events`) in the
    /// background, collecting what it prints.
    pub fn follow(&self, args: &[&str]) -> Follower {
        use std::io::Read;
        let mut child = Command::new(env!("CARGO_BIN_EXE_devbox"))
            .args(args)
            .env("DEVBOX_URL", &self.url)
            .env("DEVBOX_DATA_DIR", self.data.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = text.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Follower { child, text }
    }

    /// Imports a busybox rootfs as `name`.
    pub fn import_busybox(&self, name: &str) {
        let dir = tempfile::tempdir().unwrap();
        busybox_rootfs(dir.path());
        self.ok(&[
            "image",
            "import",
            dir.path().to_str().unwrap(),
            "--name",
            name,
        ]);
    }
}

/// A `devbox logs -f` running in the background; killed on drop.
#[derive(Debug)]
pub struct Follower {
    child: Child,
    text: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Follower {
    pub fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    /// Waits up to 30 s until `needle` was printed `times` times.
    pub fn wait_for(&self, needle: &str, times: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.text().matches(needle).count() >= times {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Waits up to 30 s for `devbox logs -f` to end by itself; its exit status.
    pub fn wait_end(&mut self) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Remove every devbox through the API so no container, mount or
        // network device outlives the test, then stop the server.
        if self.child.is_some() {
            let out = self.cli(&["ls", "--json"]);
            if let Ok(list) = serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout) {
                for d in list {
                    if let Some(name) = d["name"].as_str() {
                        let _ = self.cli(&["rm", name]);
                    }
                }
            }
        }
        self.kill9();
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
        let _ = Command::new("iptables")
            .args([
                "-t",
                "nat",
                "-D",
                "POSTROUTING",
                "-s",
                &self.subnet,
                "!",
                "-o",
                &self.bridge,
                "-j",
                "MASQUERADE",
            ])
            .output();
        let chain = format!("DEVBOX-{}", self.bridge);
        let _ = Command::new("iptables")
            .args(["-D", "FORWARD", "-j", &chain])
            .output();
        let _ = Command::new("iptables").args(["-F", &chain]).output();
        let _ = Command::new("iptables").args(["-X", &chain]).output();
    }
}

/// What the host still holds for a devbox ID; empty when it left nothing behind.
pub fn leftovers(server: &Server, id: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    if mountinfo.contains(id) {
        found.push(format!("a mount naming {id}"));
    }
    // Every v1 hierarchy, and the unified (v2) root itself.
    let hierarchies = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|e| e.path());
    for h in hierarchies.chain([PathBuf::from("/sys/fs/cgroup")]) {
        let p = h.join("devbox").join(id);
        if p.exists() {
            found.push(format!("cgroup {}", p.display()));
        }
    }
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    if String::from_utf8_lossy(&netns.stdout).contains(id) {
        found.push(format!("network namespace of {id}"));
    }
    let links = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    if String::from_utf8_lossy(&links.stdout).contains(&format!("vb{}", &id[..12])) {
        found.push(format!("veth vb{}", &id[..12]));
    }
    let dir = server.data.path().join("runtime/devboxes").join(id);
    if dir.exists() {
        found.push(format!("directory {}", dir.display()));
    }
    found
}
