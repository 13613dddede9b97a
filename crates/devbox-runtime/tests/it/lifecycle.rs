//! Devboxes from start to removal, adoption by a new runtime, and failed
//! starts that must leave nothing behind.

use std::path::Path;
use std::time::Duration;

use devbox_model::{ByteSize, Resources};
use devbox_runtime::cgroup;
use devbox_runtime::{ContainerState, ExecSpec, LocalRuntime, Runtime, RuntimeError, Signal};
use tokio::io::AsyncWriteExt;

use crate::common::*;

const GRACE: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_devbox_runs_keeps_its_changes_and_is_removed_without_a_trace() {
    let net = TestNet::claim();
    let root = temp_root();
    let rt = runtime(root.path(), &net).await;
    let layer = busybox_layer(rt.layers());
    let id = new_id();
    let _cleanup = Cleanup {
        rt: &rt,
        ids: vec![id.clone()],
    };
    let mut spec = start_spec(&id, "box-one", &layer, &net.ip(10));
    spec.command = Some(vec![
        "sh".into(),
        "-c".into(),
        "echo started-$FOO; echo oops >&2".into(),
    ]);

    assert_eq!(rt.state(&id).await.unwrap(), ContainerState::Absent);
    rt.start(&spec).await.expect("start");
    // Starting a running devbox changes nothing.
    rt.start(&spec).await.expect("start again");
    let ContainerState::Running { pid } = rt.state(&id).await.unwrap() else {
        panic!("not running after start");
    };
    assert!(pid > 1);
    assert_eq!(rt.list().await.unwrap(), vec![id.clone()]);

    let out = exec(&rt, &id, &["echo", "hi"]).await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "hi\n"));
    let out = exec(&rt, &id, &["sh", "-c", "exit 3"]).await;
    assert_eq!(out.code, 3);
    let out = exec(&rt, &id, &["sh", "-c", "echo err >&2; kill -9 $$"]).await;
    assert_eq!((out.code, out.stderr.as_str()), (137, "err\n"));

    // The agent is PID 1 and the startup command's output is in the log.
    let out = exec(&rt, &id, &["cat", "/proc/1/cmdline"]).await;
    assert!(
        out.stdout.starts_with("/.devbox/agent\0--\0sh\0"),
        "{:?}",
        out.stdout
    );
    let log = rt.log_path(&id);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !read_log(&log).contains("command exited with status 0") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "log: {:?}",
            read_log(&log)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = read_log(&log);
    assert!(
        text.contains("started-bar\n") && text.contains("oops\n"),
        "{text}"
    );

    // Hostname, /etc files, network.
    let out = exec(&rt, &id, &["hostname"]).await;
    assert_eq!(out.stdout, "box-one\n");
    let out = exec(&rt, &id, &["cat", "/etc/hosts"]).await;
    assert!(
        out.stdout.contains(&format!("{}\tbox-one", net.ip(10))),
        "{}",
        out.stdout
    );
    let out = exec(&rt, &id, &["sh", "-c", "echo x > /etc/hosts"]).await;
    assert_ne!(out.code, 0, "/etc/hosts must be read-only");
    let out = exec(&rt, &id, &["ping", "-c", "1", "-W", "5", &net.gateway()]).await;
    assert_eq!(out.code, 0, "ping the gateway: {out:?}");
    let out = exec(&rt, &id, &["ip", "-4", "addr", "show", "eth0"]).await;
    assert!(
        out.stdout.contains(&format!("{}/24", net.ip(10))),
        "{}",
        out.stdout
    );

    // Users: a name from the image, and root's capabilities are the default set.
    let out = exec_as(&rt, &id, Some("dev"), &["id"]).await;
    assert!(
        out.stdout.starts_with("uid=1000(dev) gid=1000(dev)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("10(wheel)"), "{}", out.stdout);
    let out = exec_as(&rt, &id, Some("nobody:wheel"), &["id", "-g"]).await;
    assert_eq!(out.stdout, "10\n");
    let e = rt
        .exec(
            &id,
            &ExecSpec {
                cmd: vec!["id".into()],
                user: Some("ghost".into()),
                ..ExecSpec::default()
            },
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("ghost") && e.contains(id.as_str()), "{e}");
    let out = exec(&rt, &id, &["grep", "CapEff", "/proc/self/status"]).await;
    assert!(out.stdout.contains("00000000a80425fb"), "{}", out.stdout);
    let out = exec_as(
        &rt,
        &id,
        Some("dev"),
        &["grep", "CapEff", "/proc/self/status"],
    )
    .await;
    assert!(out.stdout.contains("0000000000000000"), "{}", out.stdout);

    // The seccomp filter refuses user namespaces, the way around missing
    // capabilities; and even root in the devbox cannot mount.
    let out = exec(&rt, &id, &["unshare", "-U", "-r", "true"]).await;
    assert_ne!(out.code, 0, "a user namespace was created: {out:?}");
    let out = exec(
        &rt,
        &id,
        &["sh", "-c", "mkdir -p /mnt && mount -t tmpfs none /mnt"],
    )
    .await;
    assert_ne!(
        out.code, 0,
        "root in the devbox mounted a filesystem: {out:?}"
    );

    // Cgroup limits, then changed in place.
    assert_eq!(cgroup::memory_limit(&id).unwrap(), Some(256 << 20));
    assert_eq!(
        cgroup::cpu_limit(&id).unwrap(),
        cgroup::CpuLimit {
            quota: Some(100_000),
            period: 100_000
        }
    );
    assert_eq!(cgroup::pids_limit(&id).unwrap(), Some(512));
    let bigger = Resources {
        cpus: 0.5,
        memory: ByteSize::mib(300),
        pids: 600,
    };
    rt.update(&id, &bigger).await.expect("update");
    assert_eq!(cgroup::memory_limit(&id).unwrap(), Some(300 << 20));
    assert_eq!(cgroup::cpu_limit(&id).unwrap().quota, Some(50_000));
    assert_eq!(cgroup::pids_limit(&id).unwrap(), Some(600));

    // A change survives stop and start.
    let out = exec(&rt, &id, &["sh", "-c", "echo kept > /root/file"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    rt.stop(&id, GRACE).await.expect("stop");
    assert_eq!(rt.state(&id).await.unwrap(), ContainerState::Absent);
    rt.stop(&id, GRACE).await.expect("stop again");
    assert!(
        rt.exec(
            &id,
            &ExecSpec {
                cmd: vec!["true".into()],
                ..ExecSpec::default()
            }
        )
        .await
        .is_err()
    );
    let upper = rt.upper_dir(&id);
    assert_eq!(
        std::fs::read_to_string(upper.join("root/file")).unwrap(),
        "kept\n"
    );
    // The runtime's mount targets never reach the upper directory.
    for target in [
        ".devbox",
        ".devbox/run",
        "etc/hosts",
        "etc/hostname",
        "etc/resolv.conf",
        "proc",
        "sys",
        "dev",
    ] {
        assert!(
            !upper.join(target).exists(),
            "{target} was created in the upper directory"
        );
    }
    let stopping = read_log(&log);
    assert!(stopping.contains("devbox-agent: stopping"), "{stopping}");

    rt.start(&spec).await.expect("start after stop");
    let out = exec(&rt, &id, &["cat", "/root/file"]).await;
    assert_eq!(out.stdout, "kept\n");

    rt.remove(&id).await.expect("remove");
    assert_eq!(rt.state(&id).await.unwrap(), ContainerState::Absent);
    assert_nothing_left(root.path(), &id);
    rt.remove(&id).await.expect("remove again");
}

#[tokio::test]
async fn an_exec_on_a_terminal_runs_a_shell_and_follows_resizes() {
    let net = TestNet::claim();
    let root = temp_root();
    let rt = runtime(root.path(), &net).await;
    let layer = busybox_layer(rt.layers());
    let id = new_id();
    let _cleanup = Cleanup {
        rt: &rt,
        ids: vec![id.clone()],
    };
    rt.start(&start_spec(&id, "box-tty", &layer, &net.ip(11)))
        .await
        .expect("start");

    let spec = ExecSpec {
        cmd: vec!["sh".into()],
        tty: Some((24, 80)),
        ..ExecSpec::default()
    };
    let mut p = rt.exec(&id, &spec).await.expect("exec with a terminal");
    assert!(p.take_stdout().is_none(), "a terminal exec has no pipes");
    let mut pty = p.take_pty().expect("a terminal");
    let resizer = pty.resizer();
    let mut seen = Vec::new();
    pty.write_all(b"stty size\n").await.unwrap();
    read_until(&mut pty, &mut seen, "24 80", Duration::from_secs(20)).await;

    resizer.resize(30, 100).unwrap();
    // runc copies the size inward when it handles the signal; ask until the
    // shell sees it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        seen.clear();
        pty.write_all(b"stty size\n").await.unwrap();
        match try_read_until(&mut pty, &mut seen, "30 100", Duration::from_secs(1)).await {
            Ok(()) => break,
            Err(e) => assert!(
                tokio::time::Instant::now() < deadline,
                "the resize never arrived: {e}"
            ),
        }
    }

    pty.write_all(b"echo $((6*7))\nexit 5\n").await.unwrap();
    read_until(&mut pty, &mut seen, "42\r\n", Duration::from_secs(20)).await;
    let code = tokio::time::timeout(Duration::from_secs(20), p.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code, 5);

    // Signals reach the process: an interrupted sleep ends with 128 + 2.
    let mut p = rt
        .exec(
            &id,
            &ExecSpec {
                cmd: vec!["sleep".into(), "60".into()],
                ..ExecSpec::default()
            },
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    p.signal(Signal::Int).unwrap();
    let code = tokio::time::timeout(Duration::from_secs(20), p.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code, 130);
    let mut p = rt
        .exec(
            &id,
            &ExecSpec {
                cmd: vec!["sleep".into(), "60".into()],
                ..ExecSpec::default()
            },
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    p.signaller().signal(Signal::Kill).unwrap();
    let code = tokio::time::timeout(Duration::from_secs(20), p.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code, 137);

    rt.remove(&id).await.expect("remove");
    assert_nothing_left(root.path(), &id);
}

#[tokio::test]
async fn devboxes_cannot_reach_each_other() {
    let net = TestNet::claim();
    let root = temp_root();
    let rt = runtime(root.path(), &net).await;
    let layer = busybox_layer(rt.layers());
    let (a, b) = (new_id(), new_id());
    let _cleanup = Cleanup {
        rt: &rt,
        ids: vec![a.clone(), b.clone()],
    };
    rt.start(&start_spec(&a, "box-a", &layer, &net.ip(20)))
        .await
        .expect("start a");
    rt.start(&start_spec(&b, "box-b", &layer, &net.ip(21)))
        .await
        .expect("start b");
    for id in [&a, &b] {
        let out = exec(&rt, id, &["ping", "-c", "1", "-W", "5", &net.gateway()]).await;
        assert_eq!(out.code, 0, "the gateway is reachable: {out:?}");
    }
    let out = exec(&rt, &a, &["ping", "-c", "1", "-W", "2", &net.ip(21)]).await;
    assert_ne!(out.code, 0, "box-a reached box-b: {out:?}");
    // Not even through the gateway.
    let out = exec(
        &rt,
        &a,
        &[
            "sh",
            "-c",
            &format!(
                "ip route replace {} via {} 2>&1; echo $?",
                net.ip(21),
                net.gateway()
            ),
        ],
    )
    .await;
    assert_ne!(
        out.stdout.trim(),
        "0",
        "a devbox may not change its routes: {out:?}"
    );
    rt.remove(&a).await.unwrap();
    rt.remove(&b).await.unwrap();
    assert_nothing_left(root.path(), &a);
    assert_nothing_left(root.path(), &b);
}

#[tokio::test]
async fn a_new_runtime_adopts_running_devboxes() {
    let net = TestNet::claim();
    let root = temp_root();
    let id = new_id();
    {
        let rt = runtime(root.path(), &net).await;
        let layer = busybox_layer(rt.layers());
        let mut spec = start_spec(&id, "box-adopt", &layer, &net.ip(30));
        spec.command = Some(vec!["sleep".into(), "1000".into()]);
        rt.start(&spec).await.expect("start");
    }
    // The first runtime is gone, as after a restart of the server.
    let rt = runtime(root.path(), &net).await;
    let _cleanup = Cleanup {
        rt: &rt,
        ids: vec![id.clone()],
    };
    assert!(matches!(
        rt.state(&id).await.unwrap(),
        ContainerState::Running { .. }
    ));
    assert_eq!(rt.list().await.unwrap(), vec![id.clone()]);
    let out = exec(&rt, &id, &["echo", "still here"]).await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "still here\n"));
    rt.stop(&id, GRACE).await.expect("stop");
    assert_eq!(rt.state(&id).await.unwrap(), ContainerState::Absent);
    rt.remove(&id).await.unwrap();
    assert_nothing_left(root.path(), &id);
}

/// Everything a start set up before it failed is gone, except the upper
/// directory with the devbox's changes.
async fn assert_rolled_back(rt: &LocalRuntime, root: &Path, id: &devbox_model::DevboxId) {
    assert_eq!(rt.state(id).await.unwrap(), ContainerState::Absent);
    assert!(
        rt.upper_dir(id).is_dir(),
        "the upper directory must be kept"
    );
    rt.remove(id).await.unwrap();
    assert_nothing_left(root, id);
}

#[tokio::test]
async fn failed_starts_leave_nothing_behind() {
    let net = TestNet::claim();
    let root = temp_root();
    let rt = runtime(root.path(), &net).await;
    let layer = busybox_layer(rt.layers());

    // Refused before anything is set up.
    let (id, id2) = (new_id(), new_id());
    let _cleanup = Cleanup {
        rt: &rt,
        ids: vec![id.clone(), id2.clone()],
    };
    let mut spec = start_spec(&id, "box-bad", &layer, &net.ip(1));
    let e = rt.start(&spec).await.unwrap_err();
    assert!(matches!(e, RuntimeError::InvalidAddress { .. }), "{e}");
    spec.ip = net.ip(40).parse().unwrap();
    spec.layers.push(sha256(b"not stored"));
    let e = rt.start(&spec).await.unwrap_err();
    assert!(matches!(e, RuntimeError::LayerMissing { .. }), "{e}");
    assert!(!root.path().join("devboxes").join(id.as_str()).exists());

    // An unknown user fails once the root filesystem is mounted.
    let mut spec = start_spec(&id, "box-bad", &layer, &net.ip(40));
    spec.user = Some("ghost".into());
    let e = rt.start(&spec).await.unwrap_err();
    assert!(
        matches!(e, RuntimeError::User { .. }) && e.to_string().contains("ghost"),
        "{e}"
    );
    assert_rolled_back(&rt, root.path(), &id).await;

    // runc fails after the network is up: the working directory cannot be
    // created under a file.
    let id = id2;
    let mut spec = start_spec(&id, "box-bad", &layer, &net.ip(41));
    spec.workdir = "/etc/passwd/sub".into();
    let e = rt.start(&spec).await.unwrap_err();
    assert!(matches!(e, RuntimeError::RuncStart { .. }), "{e}");
    assert!(e.to_string().contains(id.as_str()), "{e}");
    assert_rolled_back(&rt, root.path(), &id).await;
}

#[tokio::test]
async fn a_stopped_devboxs_upper_directory_becomes_a_lower_layer() {
    let net = TestNet::claim();
    let root = temp_root();
    let rt = runtime(root.path(), &net).await;
    let base = busybox_layer(rt.layers());
    let id = new_id();
    let _cleanup = Cleanup {
        rt: &rt,
        ids: vec![id.clone()],
    };
    let spec = start_spec(&id, "box-commit", &base, &net.ip(50));
    rt.start(&spec).await.expect("start");
    let out = exec(
        &rt,
        &id,
        &[
            "sh",
            "-c",
            "echo new > /root/new && rm /bin/wc && rm -r /home",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let e = rt.promote_upper(&id, &sha256(b"x")).await.unwrap_err();
    assert!(matches!(e, RuntimeError::UpperInUse { .. }), "{e}");
    rt.stop(&id, GRACE).await.expect("stop");

    // Pack the changes as a commit would, then keep the directory itself as
    // that layer.
    let mut tar = Vec::new();
    devbox_layer::pack::pack_dir(
        &rt.upper_dir(&id),
        &mut tar,
        &devbox_layer::pack::PackOptions { overlay: true },
    )
    .unwrap();
    let diff_id = sha256(&tar);
    let dir = rt.promote_upper(&id, &diff_id).await.expect("promote");
    assert_eq!(dir, rt.layers().path(&diff_id));
    assert!(!rt.upper_dir(&id).exists());

    let mut spec = spec;
    spec.layers.push(diff_id.clone());
    rt.start(&spec).await.expect("start on the new layer");
    let out = exec(
        &rt,
        &id,
        &[
            "sh",
            "-c",
            "cat /root/new; test -e /bin/wc || echo wc-gone; test -e /home || echo home-gone",
        ],
    )
    .await;
    assert_eq!(out.stdout, "new\nwc-gone\nhome-gone\n", "{out:?}");
    // The new upper directory starts empty.
    let upper: Vec<_> = std::fs::read_dir(rt.upper_dir(&id)).unwrap().collect();
    assert!(upper.is_empty(), "{upper:?}");
    rt.remove(&id).await.unwrap();
    assert_nothing_left(root.path(), &id);
    assert!(rt.layers().contains(&diff_id), "layers outlive the devbox");
}
