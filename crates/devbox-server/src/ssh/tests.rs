//! The gateway with Debian's OpenSSH client, in front of the real agent
//! binary run as an ordinary process on this machine by a stand-in runtime
//! (so no container is needed): wake on login, exec with exit codes and
//! standard error, standard input, SFTP, local forwarding, refusals, and
//! the HTTPS tunnel's stream served like a TCP connection.

use std::io::Write;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use devbox_layer::LayerSource;
use devbox_model::{DevboxId, Digest, Resources};
use devbox_runtime::{
    Changes, ChangesRequest, Connection, ContainerState, ContainerStatus, ExecSession, ExecSpec,
    LayerPrune, LogOptions, LogStream, Runtime, RuntimeError, StartSpec, Started,
};
use futures::stream::BoxStream;
use russh::keys::ssh_key::LineEnding;

use super::{AgentSecret, Gateway};
use crate::auth::Caller;
use crate::state::AppState;

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs the agent's SSH server for every started devbox, on loopback.
#[derive(Debug)]
struct AgentRuntime {
    dir: PathBuf,
    agents: Mutex<Vec<(DevboxId, u16, std::process::Child)>>,
}

impl Drop for AgentRuntime {
    fn drop(&mut self) {
        for (_, _, mut c) in self.agents.lock().unwrap().drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn unsupported<T>() -> Result<T, RuntimeError> {
    Err(RuntimeError::Unsupported {
        what: "this in the gateway's tests",
    })
}

#[async_trait]
impl Runtime for AgentRuntime {
    async fn start(&self, spec: &StartSpec, _: &dyn LayerSource) -> Result<Started, RuntimeError> {
        let keys = spec
            .agent
            .clone()
            .expect("the control plane gives a credential");
        let dir = self.dir.join(spec.id.as_str());
        std::fs::create_dir_all(&dir).unwrap();
        let host = keys.host_key().to_openssh(LineEnding::LF).unwrap();
        let key_file = dir.join("host_key");
        std::fs::write(&key_file, host.as_bytes()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let client = keys.client_key().public_key().to_openssh().unwrap();
        std::fs::write(dir.join("authorized_keys"), client).unwrap();
        let agent = self.dir.join("devbox-agent");
        if !agent.exists() {
            std::fs::write(&agent, devbox_runtime::AGENT).unwrap();
            std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let port = free_port();
        let mut cmd = Command::new(&agent);
        cmd.args(["ssh", "--listen", &format!("127.0.0.1:{port}"), "--keys"])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        // A process forked elsewhere in the test binary while the agent was
        // written may still hold it open for writing, briefly.
        let mut tries = 0;
        let child = loop {
            match cmd.spawn() {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 50 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => break other.unwrap(),
            }
        };
        self.agents
            .lock()
            .unwrap()
            .push((spec.id.clone(), port, child));
        Ok(Started {
            ip: None,
            command: None,
        })
    }
    async fn stop(&self, _: &DevboxId, _: Duration) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn status(&self, _: &DevboxId) -> Result<ContainerStatus, RuntimeError> {
        Ok(ContainerStatus {
            state: ContainerState::Running { pid: 1 },
            oom_kills: 0,
            command: None,
            active_changes: false,
            activity: None,
        })
    }
    async fn remove(&self, _: &DevboxId) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn exec(&self, _: &DevboxId, _: &ExecSpec) -> Result<Box<dyn ExecSession>, RuntimeError> {
        unsupported()
    }
    async fn update(&self, _: &DevboxId, _: &Resources) -> Result<(), RuntimeError> {
        unsupported()
    }
    async fn logs(&self, _: &DevboxId, _: LogOptions) -> Result<LogStream, RuntimeError> {
        unsupported()
    }
    async fn connect(
        &self,
        id: &DevboxId,
        _port: u16,
    ) -> Result<Box<dyn Connection>, RuntimeError> {
        let port = self
            .agents
            .lock()
            .unwrap()
            .iter()
            .find(|(i, _, _)| i == id)
            .map(|(_, p, _)| *p)
            .ok_or(RuntimeError::NotRunning { id: id.clone() })?;
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map(|s| Box::new(s) as Box<dyn Connection>)
            .map_err(|source| RuntimeError::Connect {
                id: id.clone(),
                port,
                source,
            })
    }
    async fn read_changes(
        &self,
        _: &DevboxId,
        _: &ChangesRequest,
    ) -> Result<Changes, RuntimeError> {
        unsupported()
    }
    async fn diff_changes(
        &self,
        _: &DevboxId,
        _: Option<&str>,
        _: &[String],
    ) -> Result<devbox_model::api::Diff, RuntimeError> {
        unsupported()
    }
    async fn commit_changes(
        &self,
        _: &DevboxId,
        _: &[Digest],
        _: &[String],
    ) -> Result<(), RuntimeError> {
        unsupported()
    }
    async fn prune_layers(&self, _: &[Vec<Digest>], _: bool) -> Result<LayerPrune, RuntimeError> {
        unsupported()
    }
    async fn list(&self) -> Result<Vec<DevboxId>, RuntimeError> {
        Ok(vec![])
    }
    fn exits(&self) -> BoxStream<'static, DevboxId> {
        Box::pin(futures::stream::pending())
    }
}

/// A control plane with an image `base:1`, a devbox `dev` (stopped), a
/// registered user key, and the gateway listening; the gateway's port.
struct Fixture {
    runtime: Arc<AgentRuntime>,
    _dir: tempfile::TempDir,
    dir: PathBuf,
    port: u16,
    key: PathBuf,
    state: AppState,
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen is missing: apt-get install openssh-client");
    assert!(out.status.success(), "{out:?}");
}

async fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let store: Arc<dyn devbox_store::Store> =
        Arc::new(devbox_store::SqliteStore::open_in_memory().unwrap());
    let images = devbox_image::ImageStore::open_local(&dir.join("images"), store.clone()).unwrap();
    // A one-file rootfs tarball is an image.
    let tar_path = dir.join("rootfs.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&tar_path).unwrap());
        let mut h = tar::Header::new_gnu();
        let passwd = b"root:x:0:0:root:/root:/bin/sh\n";
        h.set_size(passwd.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, "etc/passwd", &passwd[..]).unwrap();
        b.finish().unwrap();
    }
    images
        .import(&"base:1".parse().unwrap(), &tar_path, &|_| {})
        .await
        .unwrap();
    let runtime = Arc::new(AgentRuntime {
        dir: dir.join("runtime"),
        agents: Mutex::default(),
    });
    std::fs::create_dir_all(&runtime.dir).unwrap();
    let runtime_handle = runtime.clone();
    let state = AppState {
        store,
        images: images.clone(),
        runtime,
        locks: Default::default(),
        limits: crate::host::limits(),
        tmp_dir: dir.join("tmp"),
        commits: crate::CommitPolicy::default(),
        registry: crate::registry::Registry::new(&images, &crate::RegistryConfig::default())
            .unwrap(),
        agent_secret: AgentSecret::from_bytes([5; 32]),
        events: crate::events::EventBus::random(),
        secret: crate::secret::ServerSecret::from_bytes([6; 32]),
        ingress: Arc::new(crate::ingress::Ingress::new(
            "localhost".into(),
            Duration::from_secs(5),
        )),
        gateway: Default::default(),
        activity: Default::default(),
    };
    let caller = Caller {
        token_name: "admin".into(),
    };
    let req: devbox_model::api::CreateDevbox =
        serde_json::from_str(r#"{"name":"dev","image":"base:1"}"#).unwrap();
    crate::ops::create::create(&state, &caller, req)
        .await
        .unwrap();
    let key = dir.join("user");
    keygen(&key);
    let public = std::fs::read_to_string(dir.join("user.pub")).unwrap();
    crate::ops::keys::add(&state, &caller, &public, None)
        .await
        .unwrap();
    let host = super::host_key(&dir.join("host_key")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let gateway = Gateway::new(state.clone(), host, port);
    let _ = state.gateway.set(gateway.clone());
    tokio::spawn(gateway.run(listener));
    Fixture {
        runtime: runtime_handle,
        _dir: tmp,
        dir,
        port,
        key,
        state,
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // The gateway's task keeps the state, and so the runtime, alive.
        for (_, _, mut c) in self.runtime.agents.lock().unwrap().drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Fixture {
    fn ssh(
        &self,
        key: &Path,
        args: &[&str],
        stdin: &'static [u8],
    ) -> tokio::task::JoinHandle<Output> {
        let mut c = Command::new("ssh");
        c.args(["-p", &self.port.to_string(), "-i"])
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
            ])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        tokio::task::spawn_blocking(move || {
            let mut child = c
                .spawn()
                .expect("ssh is missing: apt-get install openssh-client");
            let mut input = child.stdin.take().unwrap();
            let feeder = std::thread::spawn(move || {
                let _ = input.write_all(stdin);
            });
            let out = child.wait_with_output().unwrap();
            feeder.join().unwrap();
            out
        })
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn openssh_logs_in_through_the_gateway_to_the_agent() {
    let f = fixture().await;
    // The first login wakes the devbox and says so.
    let out = f
        .ssh(
            &f.key,
            &["dev@127.0.0.1", "--", "echo out; echo err >&2; exit 3"],
            b"",
        )
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(text(&out.stdout), "out\n");
    let err = text(&out.stderr);
    assert!(
        err.contains("devbox: starting dev") && err.ends_with("err\n"),
        "{err}"
    );
    let devbox = f
        .state
        .store
        .get_devbox(&"dev".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(devbox.state, devbox_model::State::Running);

    // Standard input arrives whole and its end closes the command's input.
    static DATA: [u8; 3 << 20] = [7u8; 3 << 20];
    let out = f
        .ssh(&f.key, &["dev@127.0.0.1", "wc -c"], &DATA)
        .await
        .unwrap();
    assert_eq!(text(&out.stdout).trim(), (3 << 20).to_string(), "{out:?}");

    // Local forwarding, made by the agent: -W to the gateway's own port.
    let target = format!("127.0.0.1:{}", f.port);
    let out = f
        .ssh(&f.key, &["-W", &target, "dev@127.0.0.1"], b"")
        .await
        .unwrap();
    assert!(
        text(&out.stdout).starts_with("SSH-2.0-devbox-gateway"),
        "{out:?}"
    );

    // SFTP.
    let local = f.dir.join("up.txt");
    std::fs::write(&local, "through sftp\n").unwrap();
    let remote = f.dir.join("remote.txt");
    let batch = format!("put {} {}\n", local.display(), remote.display());
    let mut c = Command::new("sftp");
    c.args(["-P", &f.port.to_string(), "-i"])
        .arg(&f.key)
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-b",
            "-",
            "dev@127.0.0.1",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = tokio::task::spawn_blocking(move || {
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(batch.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read_to_string(&remote).unwrap(), "through sftp\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_keys_and_devboxes_are_refused_clearly() {
    let f = fixture().await;
    let stranger = f.dir.join("stranger");
    keygen(&stranger);
    let out = f
        .ssh(&stranger, &["dev@127.0.0.1", "true"], b"")
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains("Permission denied (publickey)"),
        "{out:?}"
    );
    let out = f
        .ssh(&f.key, &["nosuch@127.0.0.1", "true"], b"")
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains("devbox nosuch not found"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn many_sessions_run_at_once() {
    let f = fixture().await;
    let first = f
        .ssh(&f.key, &["dev@127.0.0.1", "true"], b"")
        .await
        .unwrap();
    assert!(first.status.success(), "{first:?}");
    let runs: Vec<_> = (0..50)
        .map(|i| {
            f.ssh(
                &f.key,
                &["dev@127.0.0.1", &format!("sleep 0.5; echo {i}")],
                b"",
            )
        })
        .collect();
    for (i, r) in runs.into_iter().enumerate() {
        let out = r.await.unwrap();
        assert_eq!(text(&out.stdout), format!("{i}\n"), "{out:?}");
    }
}
