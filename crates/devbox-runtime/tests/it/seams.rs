//! The parts of the runtime seam a control plane reaches through the trait
//! alone: layers fetched from a source, connections into a devbox, log
//! streams, exits noticed by the node.

use std::time::Duration;

use devbox_layer::LayerDescriptor;
use devbox_layer::compression::Compression;
use devbox_runtime::{LogOptions, Runtime, RuntimeError};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

const GRACE: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_node_fetches_the_layers_it_lacks_from_the_source_and_checks_them() {
    let net = TestNet::claim();
    let root = temp_root();
    let rt = runtime(root.path(), &net).await;
    let src = tempfile::tempdir().unwrap();
    busybox_rootfs(src.path());
    let tar = pack(src.path());
    let mut blob = Vec::new();
    let digests = devbox_layer::write_layer(&tar[..], &mut blob, Compression::Gzip).unwrap();
    let layer = LayerDescriptor {
        digest: digests.digest.clone(),
        diff_id: digests.diff_id.clone(),
        size: digests.size,
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        compression: Compression::Gzip,
    };
    let id = new_id();
    let _cleanup = Cleanup {
        rt: &rt,
        ids: vec![id.clone()],
    };

    // A blob whose content is not the layer it claims to be is refused,
    // and nothing is kept.
    let mut lying = MemSource::default();
    let mut other = Vec::new();
    devbox_layer::write_layer(&b"not a layer at all"[..], &mut other, Compression::Gzip).unwrap();
    lying.0.insert(layer.digest.clone(), other);
    let e = rt
        .start(&start_spec(&id, "box-fetch", &layer), &lying)
        .await
        .unwrap_err();
    assert!(!rt.layers().contains(&layer.diff_id), "{e}");

    let mut source = MemSource::default();
    source.0.insert(layer.digest.clone(), blob);
    rt.start(&start_spec(&id, "box-fetch", &layer), &source)
        .await
        .expect("start with a fetched layer");
    assert!(rt.layers().contains(&layer.diff_id));
    let out = exec(&rt, &id, &["echo", "fetched"]).await;
    assert_eq!(out.stdout, "fetched\n");
    rt.remove(&id).await.unwrap();
    assert_nothing_left(root.path(), &id);
}

#[tokio::test]
async fn connect_reaches_a_server_listening_inside_the_devbox_only() {
    let net = TestNet::claim();
    let root = temp_root();
    let rt = runtime(root.path(), &net).await;
    let layer = busybox_layer(rt.layers());
    let id = new_id();
    let _cleanup = Cleanup {
        rt: &rt,
        ids: vec![id.clone()],
    };
    let mut spec = start_spec(&id, "box-http", &layer);
    spec.command = Some(vec![
        "sh".into(),
        "-c".into(),
        "mkdir -p /www && echo hello-from-inside > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www".into(),
    ]);
    start(&rt, &spec).await.expect("start");

    // The server binds the devbox's loopback only: the node cannot reach
    // it, the runtime's connection can.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut conn = loop {
        match rt.connect(&id, 8080).await {
            Ok(c) => break c,
            Err(e) => {
                assert!(matches!(e, RuntimeError::Connect { .. }), "{e}");
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "httpd never listened: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    conn.write_all(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).await.unwrap();
    assert!(
        response.starts_with("HTTP/1.") && response.contains(" 200 "),
        "{response}"
    );
    assert!(response.contains("hello-from-inside"), "{response}");

    // Nothing listens on another port: a precise error.
    let e = rt.connect(&id, 8081).await.unwrap_err();
    assert!(
        matches!(&e, RuntimeError::Connect { port: 8081, .. }) && e.to_string().contains("refused"),
        "{e}"
    );
    rt.stop(&id, GRACE).await.unwrap();
    let e = rt.connect(&id, 8080).await.unwrap_err();
    assert!(matches!(e, RuntimeError::NotRunning { .. }), "{e}");
    rt.remove(&id).await.unwrap();
    assert_nothing_left(root.path(), &id);
}

#[tokio::test]
async fn a_followed_log_streams_new_output_and_ends_when_the_devbox_stops() {
    let net = TestNet::claim();
    let root = temp_root();
    let rt = runtime(root.path(), &net).await;
    let layer = busybox_layer(rt.layers());
    let id = new_id();
    let _cleanup = Cleanup {
        rt: &rt,
        ids: vec![id.clone()],
    };
    let mut spec = start_spec(&id, "box-logs", &layer);
    spec.command = Some(vec![
        "sh".into(),
        "-c".into(),
        "for i in $(seq 1 5); do echo line-$i; done; while true; do sleep 0.2; echo tick; done"
            .into(),
    ]);
    start(&rt, &spec).await.expect("start");
    let mut follow = rt
        .logs(
            &id,
            LogOptions {
                follow: true,
                tail: None,
            },
        )
        .await
        .unwrap();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !seen.contains("tick") {
        let chunk = tokio::time::timeout_at(deadline, follow.next())
            .await
            .expect("output keeps coming")
            .expect("the stream is open")
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        seen.contains("line-1\n") && seen.contains("line-5\n"),
        "{seen}"
    );

    let tail = rt
        .logs(
            &id,
            LogOptions {
                follow: false,
                tail: Some(1),
            },
        )
        .await
        .unwrap()
        .map(|c| c.unwrap())
        .collect::<Vec<_>>()
        .await
        .concat();
    assert_eq!(String::from_utf8_lossy(&tail).lines().count(), 1);

    rt.stop(&id, GRACE).await.unwrap();
    let rest = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(chunk) = follow.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
    })
    .await;
    assert!(rest.is_ok(), "the followed log did not end after the stop");
    assert!(seen.contains("devbox-agent: stopping"), "{seen}");
    rt.remove(&id).await.unwrap();
}

#[tokio::test]
async fn the_node_notices_a_devbox_whose_init_was_killed() {
    let net = TestNet::claim();
    let root = temp_root();
    let rt = runtime(root.path(), &net).await;
    let layer = busybox_layer(rt.layers());
    let id = new_id();
    let _cleanup = Cleanup {
        rt: &rt,
        ids: vec![id.clone()],
    };
    let mut exits = rt.exits();
    start(&rt, &start_spec(&id, "box-dies", &layer))
        .await
        .expect("start");
    // Let the watcher see it running first.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let devbox_runtime::ContainerState::Running { pid } = rt.status(&id).await.unwrap().state
    else {
        panic!("not running");
    };
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let noticed = tokio::time::timeout(Duration::from_secs(10), exits.next())
        .await
        .expect("the exit is noticed within seconds")
        .expect("the stream goes on");
    assert_eq!(noticed, id);
    assert!(!rt.status(&id).await.unwrap().state.is_running());
    rt.remove(&id).await.unwrap();
    assert_nothing_left(root.path(), &id);
}
