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
