//! Helpers shared by the integration tests: a fresh store, a busybox rootfs
//! tarball built on this machine, peer tools and the reference registry.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use devbox_image::{ImageStore, ResolvedImage};
use devbox_layer::digest::Digest;
use devbox_model::ImageRef;
use devbox_model::api::ProgressEvent;
use devbox_store::SqliteStore;
use tempfile::TempDir;

/// A store in a temporary directory with an in-memory database.
pub struct Env {
    pub dir: TempDir,
    pub store: ImageStore,
}

pub fn new_store() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(SqliteStore::open_in_memory().unwrap());
    let store = ImageStore::open_local(dir.path(), db).unwrap();
    Env { dir, store }
}

pub fn r(s: &str) -> ImageRef {
    s.parse().unwrap()
}

/// Fails the test loudly when a peer tool is missing.
pub fn require_tool(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("this test needs `{name}`: install the Debian package {package}"))
}

/// Runs a command and fails the test with its output when it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// A small rootfs: busybox (from Debian's busybox-static) with a few
/// directories, symlinks, a hard link and files.
pub fn busybox_rootfs() -> Vec<u8> {
    let busybox =
        std::fs::read(require_tool("busybox", "busybox-static")).expect("read /bin/busybox");
    let mut b = tar::Builder::new(Vec::new());
    for (dir, mode) in [
        ("bin/", 0o755),
        ("etc/", 0o755),
        ("root/", 0o700),
        ("tmp/", 0o1777),
    ] {
        let mut h = header(tar::EntryType::Directory, mode, 0);
        b.append_data(&mut h, dir, std::io::empty()).unwrap();
    }
    let mut h = header(tar::EntryType::Regular, 0o755, busybox.len() as u64);
    b.append_data(&mut h, "bin/busybox", busybox.as_slice())
        .unwrap();
    let mut h = header(tar::EntryType::Symlink, 0o777, 0);
    b.append_link(&mut h, "bin/sh", "busybox").unwrap();
    let mut h = header(tar::EntryType::Link, 0o755, 0);
    b.append_link(&mut h, "bin/ls", "bin/busybox").unwrap();
    for (name, content) in [
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
        ("etc/group", "root:x:0:\n"),
        ("etc/hostname", "devbox\n"),
    ] {
        let mut h = header(tar::EntryType::Regular, 0o644, content.len() as u64);
        b.append_data(&mut h, name, content.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

/// A tar with one raw entry name, bypassing the tar crate's path checks, as
/// a hostile tool would write it.
pub fn raw_entry(
    b: &mut tar::Builder<Vec<u8>>,
    name: &str,
    kind: tar::EntryType,
    link: Option<&str>,
    data: &[u8],
) {
    let mut h = header(kind, 0o644, data.len() as u64);
    let gnu = h.as_gnu_mut().unwrap();
    gnu.name = [0; 100];
    gnu.name[..name.len()].copy_from_slice(name.as_bytes());
    if let Some(l) = link {
        gnu.linkname = [0; 100];
        gnu.linkname[..l.len()].copy_from_slice(l.as_bytes());
    }
    h.set_cksum();
    b.append(&h, data).unwrap();
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

pub fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// The digest of what `normalize` makes of a rootfs tarball: the diff ID the
/// imported layer must have.
pub fn normalized_diff_id(tar: &[u8]) -> Digest {
    let mut out = Vec::new();
    devbox_layer::normalize::normalize(tar, &mut out).unwrap();
    Digest::of(&out)
}

/// Collects progress events.
#[derive(Clone, Default)]
pub struct Events(pub Arc<Mutex<Vec<ProgressEvent>>>);

impl Events {
    pub fn callback(&self) -> impl Fn(ProgressEvent) + Send + Sync + use<> {
        let v = self.0.clone();
        move |e| v.lock().unwrap().push(e)
    }

    pub fn take(&self) -> Vec<ProgressEvent> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// Every layer blob decompresses to its diff ID.
pub async fn assert_layers_intact(store: &ImageStore, image: &ResolvedImage) {
    for l in &image.layers {
        let r = store.open_blob(&l.digest).await.unwrap();
        let c = l.compression;
        let got = tokio::task::spawn_blocking(move || {
            let mut tar = devbox_layer::compression::decompress(r, c).unwrap();
            let mut buf = Vec::new();
            tar.read_to_end(&mut buf).unwrap();
            Digest::of(&buf)
        })
        .await
        .unwrap();
        assert_eq!(
            got, l.diff_id,
            "layer {} does not decompress to its diff id",
            l.digest
        );
        assert_eq!(
            store.blobs().blob_size(&l.digest).await.unwrap(),
            Some(l.size)
        );
    }
}

/// Writes an image of the store as an OCI image layout directory, blobs
/// copied byte for byte, the image named `tag` in index.json.
pub async fn export_layout(store: &ImageStore, reference: &str, dir: &Path, tag: &str) {
    let resolved = store.resolve(&r(reference)).await.unwrap();
    let manifest = store
        .metadata()
        .get_manifest(&resolved.digest)
        .await
        .unwrap()
        .unwrap();
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let config: Digest = manifest.config_digest.clone();
    let mut digests = vec![config];
    digests.extend(resolved.layers.iter().map(|l| l.digest.clone()));
    for d in digests {
        let bytes = store.blobs().read_blob(&d, 1 << 30).await.unwrap();
        std::fs::write(blobs.join(d.hex()), &bytes).unwrap();
    }
    let md: Digest = manifest.digest.clone();
    std::fs::write(blobs.join(md.hex()), &manifest.content).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": manifest.media_type,
            "digest": manifest.digest,
            "size": manifest.content.len(),
            "annotations": { "org.opencontainers.image.ref.name": tag },
        }],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
}

/// Tars a directory's content (entries named `./...`).
pub fn tar_dir(dir: &Path, out: &Path) {
    let mut b = tar::Builder::new(std::fs::File::create(out).unwrap());
    b.append_dir_all(".", dir).unwrap();
    b.into_inner().unwrap().sync_all().unwrap();
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Debian's reference registry (`docker-registry`) on a free local port,
/// storing into a temporary directory; killed when dropped.
pub struct Registry {
    child: Child,
    pub addr: String,
    _dir: TempDir,
}

impl Registry {
    pub fn start(htpasswd: Option<&Path>) -> Registry {
        let bin = require_tool("docker-registry", "docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let auth = htpasswd
            .map(|p| {
                format!(
                    "auth:\n  htpasswd:\n    realm: devbox-test\n    path: {}\n",
                    p.display()
                )
            })
            .unwrap_or_default();
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n{auth}",
            dir.path().join("data").display()
        );
        let config_path = write(dir.path(), "config.yml", config.as_bytes());
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let reg = Registry {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&reg.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {}",
                reg.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pushes an OCI layout's image to a registry with skopeo.
pub fn skopeo_push(layout: &Path, tag: &str, dest: &str, extra: &[&str]) {
    let skopeo = require_tool("skopeo", "skopeo");
    let mut cmd = Command::new(skopeo);
    cmd.arg("copy")
        .arg("--dest-tls-verify=false")
        .args(extra)
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{dest}"));
    run(&mut cmd);
}
