//! The agent's SSH server inside a real devbox, reached the way the
//! control plane reaches it: through `Runtime::connect` to the agent's port,
//! checking the host key of the devbox's credential and logging in with its
//! client key.

use std::sync::Arc;
use std::time::Duration;

use devbox_runtime::{AGENT_SSH_PORT, AgentKeys, Runtime};
use russh::ChannelMsg;
use russh::client::{self, Handle};
use russh::keys::{PrivateKeyWithHashAlg, PublicKey};

use crate::common::*;

const GRACE: Duration = Duration::from_secs(5);

struct Checker(PublicKey);

impl client::Handler for Checker {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        // The comment travels in the key file only, never on the wire.
        Ok(
            matches!(key, russh::keys::PublicKeyOrCertificate::PublicKey { key, .. }
            if key.key_data() == self.0.key_data()),
        )
    }
}

async fn login(
    rt: &dyn Runtime,
    id: &devbox_model::DevboxId,
    keys: &AgentKeys,
    user: &str,
) -> Result<Handle<Checker>, String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let stream = loop {
        match rt.connect(id, AGENT_SSH_PORT).await {
            Ok(s) => break s,
            Err(e) if tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(format!("the agent never listened: {e}")),
        }
    };
    let config = Arc::new(client::Config::default());
    let mut handle = client::connect_stream(config, stream, Checker(keys.host_public_key()))
        .await
        .map_err(|e| e.to_string())?;
    let key = PrivateKeyWithHashAlg::new(Arc::new(keys.client_key()), None);
    let auth = handle
        .authenticate_publickey(user, key)
        .await
        .map_err(|e| e.to_string())?;
    if !auth.success() {
        return Err("login refused".into());
    }
    Ok(handle)
}

/// Runs `cmd` over the connection; its output and exit status.
async fn run(handle: &Handle<Checker>, cmd: &str) -> (String, u32) {
    let mut ch = handle.channel_open_session().await.unwrap();
    ch.exec(true, cmd).await.unwrap();
    let (mut out, mut code) = (Vec::new(), u32::MAX);
    while let Some(msg) = ch.wait().await {
        match msg {
            ChannelMsg::Data { data } => out.extend_from_slice(&data),
            ChannelMsg::ExitStatus { exit_status } => code = exit_status,
            _ => {}
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), code)
}

#[tokio::test]
async fn the_agent_serves_ssh_to_the_devboxs_credential_only() {
    let net = TestNet::claim();
    let root = temp_root();
    let rt = runtime(root.path(), &net).await;
    let layer = busybox_layer(rt.layers());
    let id = new_id();
    let _cleanup = Cleanup {
        rt: &rt,
        ids: vec![id.clone()],
    };
    let spec = start_spec(&id, "box-ssh", &layer);
    let keys = spec.agent.clone().unwrap();
    start(&rt, &spec).await.expect("start");

    let handle = login(&rt, &id, &keys, "root").await.unwrap();
    let (out, code) = run(
        &handle,
        "id -u; echo $HOME; cat /.devbox/keys/authorized_keys | wc -l; exit 4",
    )
    .await;
    assert_eq!(code, 4, "{out}");
    assert_eq!(out, "0\n/root\n1\n");

    // Another devbox's credential is refused, and so is a wrong host key.
    let other = agent_keys(&new_id());
    let e = login(
        &rt,
        &id,
        &AgentKeys {
            host: keys.host,
            ..other.clone()
        },
        "root",
    )
    .await;
    assert!(e.is_err(), "a foreign client key logged in");
    let e = login(
        &rt,
        &id,
        &AgentKeys {
            client: keys.client,
            ..other
        },
        "root",
    )
    .await;
    assert!(e.is_err(), "a wrong host key was accepted");

    // The private host key is root's alone inside the devbox.
    let (mode, _) = run(&handle, "ls -ln /.devbox/keys/host_key").await;
    assert!(mode.starts_with("-rw-------"), "{mode}");
    rt.stop(&id, GRACE).await.unwrap();
    rt.remove(&id).await.unwrap();
    assert_nothing_left(root.path(), &id);
}

/// The lines of `/proc/self/status` that describe a process's confinement.
fn confinement(status: &str) -> Vec<String> {
    const FIELDS: &[&str] = &[
        "Uid:",
        "Gid:",
        "Groups:",
        "CapInh:",
        "CapPrm:",
        "CapEff:",
        "CapBnd:",
        "CapAmb:",
        "NoNewPrivs:",
        "Seccomp:",
        "Seccomp_filters:",
        "Cpus_allowed_list:",
    ];
    status
        .lines()
        .filter(|l| FIELDS.iter().any(|f| l.starts_with(f)))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn an_exec_through_the_agent_is_confined_as_one_through_runc() {
    let net = TestNet::claim();
    let root = temp_root();
    let rt = runtime(root.path(), &net).await;
    let layer = busybox_layer(rt.layers());
    let id = new_id();
    let _cleanup = Cleanup {
        rt: &rt,
        ids: vec![id.clone()],
    };
    start(&rt, &start_spec(&id, "box-exec", &layer))
        .await
        .expect("start");
    let probe = "echo parent=$PPID; cat /proc/self/status; echo ---; readlink /proc/self/ns/pid /proc/self/ns/mnt \
                 /proc/self/ns/net /proc/self/ns/ipc /proc/self/ns/uts; cat /proc/self/cgroup; ulimit -n";
    let credential = root
        .path()
        .join("devboxes")
        .join(id.as_str())
        .join("agent.credential");
    let kept = credential.with_extension("kept");
    // Without the devbox's credential on the node, execs go through runc;
    // they run first, since the agent's connections are kept once made.
    std::fs::rename(&credential, &kept).unwrap();
    let users = [None, Some("1000:1000")];
    let mut through_runc = Vec::new();
    for user in users {
        let runc = exec_as(&rt, &id, user, &["sh", "-c", probe]).await;
        assert_eq!(runc.code, 0, "{runc:?}");
        through_runc.push(runc);
    }
    std::fs::rename(&kept, &credential).unwrap();
    for (user, runc) in users.into_iter().zip(through_runc) {
        let agent = exec_as(&rt, &id, user, &["sh", "-c", probe]).await;
        assert_eq!(agent.code, 0, "{agent:?}");
        assert_eq!(
            confinement(&agent.stdout),
            confinement(&runc.stdout),
            "{user:?}"
        );
        assert_eq!(confinement(&agent.stdout).len(), 12, "{}", agent.stdout);
        let tail = |s: &str| {
            s.lines()
                .rev()
                .take(7)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        // Namespaces, cgroup and the open-file limit are the same too.
        assert_eq!(tail(&agent.stdout), tail(&runc.stdout), "{user:?}");
        // And the agent really started it: its parent is inside the devbox,
        // where runc's exec has none.
        let ppid = |s: &str| {
            s.lines()
                .find_map(|l| l.strip_prefix("parent="))
                .map(str::to_owned)
        };
        assert_eq!(ppid(&runc.stdout).as_deref(), Some("0"));
        assert_ne!(
            ppid(&agent.stdout).as_deref(),
            Some("0"),
            "{}",
            agent.stdout
        );
    }
    // Exit codes, signals and standard error through the agent.
    let out = exec(&rt, &id, &["sh", "-c", "echo err >&2; kill -9 $$"]).await;
    assert_eq!((out.code, out.stderr.as_str()), (137, "err\n"));
    let out = exec(&rt, &id, &["/no/such/program"]).await;
    assert_eq!(out.code, 127, "{out:?}");
    let out = exec(&rt, &id, &["cat"]).await;
    assert_eq!(out.code, 0, "a dropped input is the end of it");
    rt.stop(&id, GRACE).await.unwrap();
    rt.remove(&id).await.unwrap();
}

/// The PID of the exec's parent as it sees it: the agent's (not 0) when the
/// agent started it, none (0) when runc did.
async fn exec_parent(rt: &devbox_runtime::LocalRuntime, id: &devbox_model::DevboxId) -> String {
    let out = exec(rt, id, &["sh", "-c", "echo $PPID"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    out.stdout.trim().to_owned()
}

#[tokio::test]
async fn execs_through_the_agent_outlast_a_reader_that_stops_and_a_restart() {
    let net = TestNet::claim();
    let root = temp_root();
    let rt = runtime(root.path(), &net).await;
    let layer = busybox_layer(rt.layers());
    let id = new_id();
    let _cleanup = Cleanup {
        rt: &rt,
        ids: vec![id.clone()],
    };
    let spec = start_spec(&id, "box-agent-exec", &layer);
    start(&rt, &spec).await.expect("start");
    assert_ne!(exec_parent(&rt, &id).await, "0");

    // An exec whose output nobody reads holds up no other exec.
    let yes = devbox_runtime::ExecSpec {
        cmd: vec!["yes".into()],
        ..Default::default()
    };
    let mut stalled = rt.exec(&id, &yes).await.expect("start yes");
    let unread = stalled.take_stdout().unwrap();
    for _ in 0..3 {
        let out = exec(&rt, &id, &["echo", "ok"]).await;
        assert_eq!((out.code, out.stdout.as_str()), (0, "ok\n"));
    }
    // Once its reader is gone, it can be killed like any other.
    drop(unread);
    stalled
        .control()
        .signal(devbox_model::Signal::Kill)
        .unwrap();
    let code = tokio::time::timeout(Duration::from_secs(30), stalled.wait())
        .await
        .expect("the stalled exec ends once killed")
        .unwrap();
    assert_eq!(code, 137);

    // A restarted devbox has a new agent: the connections to the old one
    // are not used again.
    rt.stop(&id, GRACE).await.unwrap();
    start(&rt, &spec).await.expect("restart");
    for _ in 0..2 {
        assert_ne!(exec_parent(&rt, &id).await, "0");
    }
    rt.stop(&id, GRACE).await.unwrap();
    rt.remove(&id).await.unwrap();
    assert_nothing_left(root.path(), &id);
}
