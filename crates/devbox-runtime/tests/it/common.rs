//! Shared helpers: prerequisites, a busybox image, runtimes and execs.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use devbox_layer::compression::Compression;
use devbox_layer::digest::Digest;
use devbox_layer::{LayerDescriptor, LayerSource, LayerSourceError};
use devbox_model::{ByteSize, DevboxId, Resources};
use devbox_runtime::{
    ExecSpec, LayerStore, LocalRuntime, LogOptions, Runtime, RuntimeConfig, StartSpec, Started,
};
use futures::StreamExt;
use tokio::io::AsyncReadExt;

pub const BUSYBOX: &str = "/bin/busybox";

/// Applets linked in the test image, as `busybox --install -s` would.
const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "ls", "sleep", "ip", "ping", "hostname", "id", "ps", "touch", "rm",
    "mkdir", "stty", "test", "true", "false", "wc", "env", "kill", "grep", "unshare", "httpd",
    "dd", "head", "seq", "yes", "readlink",
];

/// Fails with a clear message when a prerequisite of these tests is missing.
pub fn require_prerequisites() {
    assert!(
        rustix::process::geteuid().is_root(),
        "the runtime's integration tests must run as root"
    );
    for (tool, package) in [
        ("runc", "runc"),
        ("iptables", "iptables"),
        ("ip", "iproute2"),
    ] {
        let found = ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"]
            .iter()
            .any(|d| Path::new(d).join(tool).exists());
        assert!(found, "{tool} is missing: apt-get install {package}");
    }
    assert!(
        Path::new(BUSYBOX).exists(),
        "{BUSYBOX} is missing: apt-get install busybox-static"
    );
}

/// A fresh devbox ID, unique across concurrent test runs.
pub fn new_id() -> DevboxId {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let n = nanos
        ^ (u64::from(std::process::id()) << 40)
        ^ SEQ
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    DevboxId::from_random(n.to_be_bytes())
}

/// Removes the devboxes of a test that panicked, so a failing test leaves
/// no container, mount or network device on the machine. Declare it after
/// the temporary root, so it runs first.
pub struct Cleanup<'a> {
    pub rt: &'a LocalRuntime,
    pub ids: Vec<DevboxId>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        // The test's own runtime is unwinding; remove on a fresh one.
        std::thread::scope(|s| {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                for id in &self.ids {
                    if let Err(e) = rt.block_on(self.rt.remove(id)) {
                        eprintln!("cleanup of devbox {id} failed: {e}");
                    }
                }
            });
        });
    }
}

/// A temporary runtime root, removed at the end of the test.
pub fn temp_root() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("devbox-runtime-it-")
        .tempdir()
        .unwrap()
}

/// A network of one test: bridge `dbxtestN` with 10.78.N.0/24, for an N
/// that no other test (of this run or a concurrent one) holds and whose
/// bridge does not exist, so a test never touches a bridge it did not
/// create. Dropping it removes the bridge, its NAT rule and its forward
/// chain; declare it first in a test, so it is dropped last.
#[derive(Debug)]
pub struct TestNet {
    pub n: u8,
    pub bridge: String,
    pub subnet: String,
    _claim: std::fs::File,
}

impl TestNet {
    pub fn claim() -> TestNet {
        require_prerequisites();
        for n in 1..=254u8 {
            let bridge = format!("dbxtest{n}");
            let path = std::env::temp_dir().join(format!("devbox-test-{bridge}.lock"));
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
            let free =
                rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok();
            if free && !Path::new("/sys/class/net").join(&bridge).exists() {
                return TestNet {
                    n,
                    bridge,
                    subnet: format!("10.78.{n}.0/24"),
                    _claim: f,
                };
            }
        }
        panic!("no free test network dbxtest1..dbxtest254: remove stale ones with `ip link del`");
    }

    /// The address 10.78.N.`host`.
    pub fn ip(&self, host: u8) -> String {
        format!("10.78.{}.{host}", self.n)
    }

    pub fn gateway(&self) -> String {
        self.ip(1)
    }

    pub fn config(&self, root: &Path) -> RuntimeConfig {
        let mut c = RuntimeConfig::new(root);
        c.bridge = self.bridge.clone();
        c.subnet = self.subnet.parse().unwrap();
        c
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        use std::process::Command;
        let run = |program: &str, args: &[&str]| {
            let _ = Command::new(program).args(args).output();
        };
        run("ip", &["link", "del", &self.bridge]);
        run(
            "iptables",
            &[
                "-w",
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
            ],
        );
        let chain = format!("DEVBOX-{}", self.bridge);
        run("iptables", &["-w", "-D", "FORWARD", "-j", &chain]);
        run("iptables", &["-w", "-F", &chain]);
        run("iptables", &["-w", "-X", &chain]);
    }
}

pub async fn runtime(root: &Path, net: &TestNet) -> LocalRuntime {
    require_prerequisites();
    LocalRuntime::new(net.config(root))
        .await
        .expect("create the runtime")
}

/// Writes a minimal busybox root filesystem into `dir`.
pub fn busybox_rootfs(dir: &Path) {
    use std::os::unix::fs::{PermissionsExt, symlink};
    for d in ["bin", "etc", "root", "tmp", "home/dev"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::set_permissions(dir.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::copy(BUSYBOX, dir.join("bin/busybox")).unwrap();
    for applet in APPLETS {
        symlink("/bin/busybox", dir.join("bin").join(applet)).unwrap();
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n\
         dev:x:1000:1000:Dev:/home/dev:/bin/sh\n\
         nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("etc/group"),
        "root:x:0:\nwheel:x:10:dev\ndev:x:1000:\nnogroup:x:65534:\n",
    )
    .unwrap();
    std::os::unix::fs::chown(dir.join("home/dev"), Some(1000), Some(1000)).unwrap();
}

/// The sha256 of a byte string, as a digest.
pub fn sha256(bytes: &[u8]) -> Digest {
    Digest::of(bytes)
}

/// Packs a directory as an uncompressed layer tar.
pub fn pack(dir: &Path) -> Vec<u8> {
    let mut tar = Vec::new();
    devbox_layer::pack::pack_dir(
        dir,
        &mut tar,
        &devbox_layer::pack::PackOptions { overlay: false },
    )
    .expect("pack the directory");
    tar
}

/// The descriptor of an uncompressed layer tar.
pub fn descriptor(tar: &[u8]) -> LayerDescriptor {
    let digest = sha256(tar);
    LayerDescriptor {
        digest: digest.clone(),
        diff_id: digest,
        size: tar.len() as u64,
        media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        compression: Compression::None,
    }
}

/// Builds the busybox image and puts its single layer in `store`.
pub fn busybox_layer(store: &LayerStore) -> LayerDescriptor {
    let src = tempfile::tempdir().unwrap();
    busybox_rootfs(src.path());
    let tar = pack(src.path());
    let layer = descriptor(&tar);
    store
        .unpack(&layer.diff_id, &tar[..], Compression::None)
        .expect("unpack the busybox layer");
    layer
}

/// Layer blobs held in memory, by blob digest.
#[derive(Debug, Default)]
pub struct MemSource(pub HashMap<Digest, Vec<u8>>);

#[async_trait]
impl LayerSource for MemSource {
    async fn open_layer(
        &self,
        layer: &LayerDescriptor,
    ) -> Result<Box<dyn Read + Send>, LayerSourceError> {
        match self.0.get(&layer.digest) {
            Some(blob) => Ok(Box::new(std::io::Cursor::new(blob.clone()))),
            None => Err(LayerSourceError {
                digest: layer.digest.clone(),
                source: "no such blob".into(),
            }),
        }
    }
}

/// A source with no layers: for starts whose layers the node holds.
pub fn no_source() -> MemSource {
    MemSource::default()
}

/// Starts a devbox whose layers the node holds already.
pub async fn start(
    rt: &LocalRuntime,
    spec: &StartSpec,
) -> Result<Started, devbox_runtime::RuntimeError> {
    rt.start(spec, &no_source()).await
}

/// The whole console log as it is now.
pub async fn read_logs(rt: &LocalRuntime, id: &DevboxId) -> String {
    let mut s = rt
        .logs(id, LogOptions::default())
        .await
        .expect("read the log");
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk.expect("a log chunk"));
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn start_spec(id: &DevboxId, name: &str, layer: &LayerDescriptor) -> StartSpec {
    StartSpec {
        id: id.clone(),
        hostname: name.parse().unwrap(),
        layers: vec![layer.clone()],
        resources: Resources {
            cpus: 1.0,
            memory: ByteSize::mib(256),
            pids: 512,
        },
        env: vec!["FOO=bar".parse().unwrap()],
        workdir: "/".to_owned(),
        user: None,
        command: None,
        agent: Some(agent_keys(id)),
    }
}

/// A credential for the agent of `id`, different for every devbox.
pub fn agent_keys(id: &DevboxId) -> devbox_runtime::AgentKeys {
    let mut client = [1u8; 32];
    let mut host = [2u8; 32];
    for (i, b) in id.as_str().bytes().enumerate() {
        client[i % 32] ^= b;
        host[(i + 7) % 32] ^= b;
    }
    devbox_runtime::AgentKeys { client, host }
}

/// What an exec printed and how it ended.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a command in the devbox as `user` and collects its output.
pub async fn exec_as(rt: &LocalRuntime, id: &DevboxId, user: Option<&str>, cmd: &[&str]) -> Output {
    let spec = ExecSpec {
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        user: user.map(str::to_owned),
        ..ExecSpec::default()
    };
    let mut p = rt.exec(id, &spec).await.expect("start the exec");
    drop(p.take_stdin());
    let mut out = p.take_stdout().unwrap();
    let mut err = p.take_stderr().unwrap();
    let collect = async {
        let (mut o, mut e) = (String::new(), String::new());
        let (a, b) = tokio::join!(out.read_to_string(&mut o), err.read_to_string(&mut e));
        a.unwrap();
        b.unwrap();
        let code = p.wait().await.unwrap();
        Output {
            code,
            stdout: o,
            stderr: e,
        }
    };
    tokio::time::timeout(Duration::from_secs(60), collect)
        .await
        .unwrap_or_else(|_| panic!("{cmd:?} did not finish within a minute"))
}

pub async fn exec(rt: &LocalRuntime, id: &DevboxId, cmd: &[&str]) -> Output {
    exec_as(rt, id, None, cmd).await
}

/// The PIDs of the running shims of a devbox.
pub fn shims_of(id: &DevboxId) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        // A zombie's command line is empty, so it never matches.
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.get(1) == Some(&&b"shim"[..]) && args.contains(&id.as_str().as_bytes()) {
            found.push(pid);
        }
    }
    found
}

/// Asserts that nothing of the devbox is left on the machine: no shim, no
/// mount under the runtime's root, no cgroup, no network namespace, no
/// veth, no container, no directory.
pub fn assert_nothing_left(root: &Path, id: &DevboxId) {
    assert_eq!(shims_of(id), Vec::<u32>::new(), "a shim is left");
    let root = std::fs::canonicalize(root).unwrap();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for line in mountinfo.lines() {
        let mount_point = line.split(' ').nth(4).unwrap_or("");
        assert!(
            !Path::new(mount_point).starts_with(&root),
            "a mount is left under the root: {line}"
        );
    }
    // Every v1 hierarchy, and the unified (v2) root itself.
    let v2 = PathBuf::from("/sys/fs/cgroup")
        .join("devbox")
        .join(id.as_str());
    let hierarchies = std::fs::read_dir("/sys/fs/cgroup").unwrap();
    for dir in hierarchies
        .map(|h| h.unwrap().path().join("devbox").join(id.as_str()))
        .chain([v2])
    {
        assert!(!dir.exists(), "a cgroup is left: {}", dir.display());
    }
    let netns = devbox_runtime::netns_path(id);
    assert!(
        !netns.exists(),
        "the network namespace is left: {}",
        netns.display()
    );
    let veth = Path::new("/sys/class/net").join(devbox_runtime::veth_name(id));
    assert!(!veth.exists(), "the veth is left: {}", veth.display());
    let state = root.join("runc").join(id.as_str());
    assert!(
        !state.exists(),
        "runc still knows the container: {}",
        state.display()
    );
    let dir = root.join("devboxes").join(id.as_str());
    assert!(
        !dir.exists(),
        "the devbox directory is left: {}",
        dir.display()
    );
}

/// Reads from `r` until `needle` appears, or fails after `limit`.
pub async fn read_until(
    r: &mut (impl tokio::io::AsyncRead + Unpin),
    seen: &mut Vec<u8>,
    needle: &str,
    limit: Duration,
) {
    if let Err(e) = try_read_until(r, seen, needle, limit).await {
        panic!("{e}");
    }
}

/// Reads from `r` until `needle` appears; an error after `limit` or at the
/// end of the stream.
pub async fn try_read_until(
    r: &mut (impl tokio::io::AsyncRead + Unpin),
    seen: &mut Vec<u8>,
    needle: &str,
    limit: Duration,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(seen).contains(needle) {
        let text = || String::from_utf8_lossy(seen).into_owned();
        let n = match tokio::time::timeout_at(deadline, r.read(&mut buf)).await {
            Ok(read) => read.map_err(|e| format!("read: {e}"))?,
            Err(_) => {
                return Err(format!(
                    "{needle:?} did not appear within {limit:?}; got {:?}",
                    text()
                ));
            }
        };
        if n == 0 {
            return Err(format!(
                "the stream ended before {needle:?}; got {:?}",
                text()
            ));
        }
        seen.extend_from_slice(&buf[..n]);
    }
    Ok(())
}
