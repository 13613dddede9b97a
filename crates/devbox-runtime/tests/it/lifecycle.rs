//! Devboxes from start to removal, adoption by a new runtime, and failed
//! starts that must leave nothing behind.

use std::path::Path;
use std::time::Duration;

use devbox_model::{ByteSize, Resources};
use devbox_runtime::cgroup;
use devbox_runtime::{
    ChangesRequest, ContainerState, ExecSpec, LocalRuntime, Runtime, RuntimeError, Signal,
};
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
    let mut spec = start_spec(&id, "box-one", &layer);
    spec.command = Some(vec![
        "sh".into(),
        "-c".into(),
        "echo started-$FOO; echo oops >&2".into(),
    ]);

    assert_eq!(rt.status(&id).await.unwrap().state, ContainerState::Absent);
    let started = start(&rt, &spec).await.expect("start");
    let ip = started.ip.expect("the devbox got an address").to_string();
    // Starting a running devbox changes nothing.
    let again = start(&rt, &spec).await.expect("start again");
    assert_eq!(again.ip, started.ip);
    let ContainerState::Running { pid } = rt.status(&id).await.unwrap().state else {
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
        out.stdout.starts_with("/.devbox/agent\0--user\x000:0\0")
            && out.stdout.contains("\0--\0sh\0"),
        "{:?}",
        out.stdout
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !read_logs(&rt, &id)
        .await
        .contains("command exited with status 0")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "log: {:?}",
            read_logs(&rt, &id).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = read_logs(&rt, &id).await;
    assert!(
        text.contains("started-bar\n") && text.contains("oops\n"),
        "{text}"
    );

    // Hostname, /etc files, network.
    let out = exec(&rt, &id, &["hostname"]).await;
    assert_eq!(out.stdout, "box-one\n");
    let out = exec(&rt, &id, &["cat", "/etc/hosts"]).await;
    assert!(
        out.stdout.contains(&format!("{ip}\tbox-one")),
        "{}",
        out.stdout
    );
    let out = exec(&rt, &id, &["sh", "-c", "echo x > /etc/hosts"]).await;
    assert_ne!(out.code, 0, "/etc/hosts must be read-only");
    let out = exec(&rt, &id, &["ping", "-c", "1", "-W", "5", &net.gateway()]).await;
    assert_eq!(out.code, 0, "ping the gateway: {out:?}");
    let out = exec(&rt, &id, &["ip", "-4", "addr", "show", "eth0"]).await;
    assert!(out.stdout.contains(&format!("{ip}/24")), "{}", out.stdout);

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
    assert_eq!(rt.status(&id).await.unwrap().state, ContainerState::Absent);
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
    let stopping = read_logs(&rt, &id).await;
    assert!(stopping.contains("devbox-agent: stopping"), "{stopping}");

    let restarted = start(&rt, &spec).await.expect("start after stop");
    assert_eq!(restarted.ip, started.ip, "a devbox keeps its address");
    let out = exec(&rt, &id, &["cat", "/root/file"]).await;
    assert_eq!(out.stdout, "kept\n");

    rt.remove(&id).await.expect("remove");
    assert_eq!(rt.status(&id).await.unwrap().state, ContainerState::Absent);
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
    start(&rt, &start_spec(&id, "box-tty", &layer))
        .await
        .expect("start");

    let spec = ExecSpec {
        cmd: vec!["sh".into()],
        tty: Some((24, 80)),
        ..ExecSpec::default()
    };
    let mut p = rt.exec(&id, &spec).await.expect("exec with a terminal");
    assert!(p.take_stderr().is_none(), "a terminal exec has no stderr");
    let mut input = p.take_stdin().expect("the terminal's input");
    let mut pty = p.take_stdout().expect("the terminal's output");
    let control = p.control();
    let mut seen = Vec::new();
    input.write_all(b"stty size\n").await.unwrap();
    read_until(&mut pty, &mut seen, "24 80", Duration::from_secs(20)).await;

    control.resize(30, 100).unwrap();
    // runc copies the size inward when it handles the signal; ask until the
    // shell sees it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        seen.clear();
        input.write_all(b"stty size\n").await.unwrap();
        match try_read_until(&mut pty, &mut seen, "30 100", Duration::from_secs(1)).await {
            Ok(()) => break,
            Err(e) => assert!(
                tokio::time::Instant::now() < deadline,
                "the resize never arrived: {e}"
            ),
        }
    }

    input.write_all(b"echo $((6*7))\nexit 5\n").await.unwrap();
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
    p.control().signal(Signal::Int).unwrap();
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
    p.control().signal(Signal::Kill).unwrap();
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
    start(&rt, &start_spec(&a, "box-a", &layer))
        .await
        .expect("start a");
    let b_ip = start(&rt, &start_spec(&b, "box-b", &layer))
        .await
        .expect("start b")
        .ip
        .expect("an address")
        .to_string();
    for id in [&a, &b] {
        let out = exec(&rt, id, &["ping", "-c", "1", "-W", "5", &net.gateway()]).await;
        assert_eq!(out.code, 0, "the gateway is reachable: {out:?}");
    }
    let out = exec(&rt, &a, &["ping", "-c", "1", "-W", "2", &b_ip]).await;
    assert_ne!(out.code, 0, "box-a reached box-b: {out:?}");
    // Not even through the gateway.
    let out = exec(
        &rt,
        &a,
        &[
            "sh",
            "-c",
            &format!(
                "ip route replace {b_ip} via {} 2>&1; echo $?",
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
        let mut spec = start_spec(&id, "box-adopt", &layer);
        spec.command = Some(vec!["sleep".into(), "1000".into()]);
        start(&rt, &spec).await.expect("start");
    }
    // The first runtime is gone, as after a restart of the server.
    let rt = runtime(root.path(), &net).await;
    let _cleanup = Cleanup {
        rt: &rt,
        ids: vec![id.clone()],
    };
    assert!(rt.status(&id).await.unwrap().state.is_running());
    assert_eq!(rt.list().await.unwrap(), vec![id.clone()]);
    let out = exec(&rt, &id, &["echo", "still here"]).await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "still here\n"));
    // The new runtime knows the address is taken.
    let other = new_id();
    let mut cleanup_other = Cleanup {
        rt: &rt,
        ids: vec![other.clone()],
    };
    let layer = busybox_layer(rt.layers());
    let held = exec(&rt, &id, &["hostname", "-i"]).await.stdout;
    let got = start(&rt, &start_spec(&other, "box-other", &layer))
        .await
        .expect("start another")
        .ip
        .expect("an address");
    assert!(!held.contains(&got.to_string()), "{got} is taken: {held}");
    rt.remove(&other).await.unwrap();
    cleanup_other.ids.clear();
    rt.stop(&id, GRACE).await.expect("stop");
    assert_eq!(rt.status(&id).await.unwrap().state, ContainerState::Absent);
    rt.remove(&id).await.unwrap();
    assert_nothing_left(root.path(), &id);
}

/// Everything a start set up before it failed is gone, except the upper
/// directory with the devbox's changes.
async fn assert_rolled_back(rt: &LocalRuntime, root: &Path, id: &devbox_model::DevboxId) {
    assert_eq!(rt.status(id).await.unwrap().state, ContainerState::Absent);
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

    // Refused before anything is set up: a layer neither the node nor the
    // source has.
    let (id, id2) = (new_id(), new_id());
    let _cleanup = Cleanup {
        rt: &rt,
        ids: vec![id.clone(), id2.clone()],
    };
    let mut spec = start_spec(&id, "box-bad", &layer);
    spec.layers.push(descriptor(b"not stored"));
    let e = start(&rt, &spec).await.unwrap_err();
    assert!(matches!(e, RuntimeError::LayerFetch { .. }), "{e}");
    assert!(e.to_string().contains("no such blob"), "{e}");
    assert!(!root.path().join("devboxes").join(id.as_str()).exists());

    // An unknown user fails once the root filesystem is mounted.
    let mut spec = start_spec(&id, "box-bad", &layer);
    spec.user = Some("ghost".into());
    let e = start(&rt, &spec).await.unwrap_err();
    assert!(
        matches!(e, RuntimeError::User { .. }) && e.to_string().contains("ghost"),
        "{e}"
    );
    assert_rolled_back(&rt, root.path(), &id).await;

    // runc fails after the network is up: the working directory cannot be
    // created under a file.
    let id = id2;
    let mut spec = start_spec(&id, "box-bad", &layer);
    spec.workdir = "/etc/passwd/sub".into();
    let e = start(&rt, &spec).await.unwrap_err();
    assert!(matches!(e, RuntimeError::RuncStart { .. }), "{e}");
    assert!(e.to_string().contains(id.as_str()), "{e}");
    assert_rolled_back(&rt, root.path(), &id).await;
}

/// Reads a devbox's changes through the runtime, as a commit would.
async fn changes_tar(rt: &LocalRuntime, id: &devbox_model::DevboxId, freeze: bool) -> Vec<u8> {
    let req = ChangesRequest {
        mark: "c1".into(),
        since: None,
        exclude: Vec::new(),
        freeze,
    };
    let changes = rt.read_changes(id, &req).await.expect("read changes");
    assert_eq!(changes.since, None);
    let mut tar = changes.tar;
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut tar, &mut out).expect("read the changes tar");
        out
    })
    .await
    .unwrap()
}

fn tar_names(tar: &[u8]) -> Vec<String> {
    let mut out: Vec<String> = tar::Archive::new(tar)
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn committed_changes_become_a_lower_layer_without_copying() {
    let net = TestNet::claim();
    let root = temp_root();
    let rt = runtime(root.path(), &net).await;
    let base = busybox_layer(rt.layers());
    let id = new_id();
    let _cleanup = Cleanup {
        rt: &rt,
        ids: vec![id.clone()],
    };
    let spec = start_spec(&id, "box-commit", &base);
    start(&rt, &spec).await.expect("start");
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
    // A live read, frozen: the devbox runs on afterwards.
    let live = changes_tar(&rt, &id, true).await;
    let names = tar_names(&live);
    for expected in ["root/new", "bin/.wh.wc", ".wh.home"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing: {names:?}"
        );
    }
    let out = exec(&rt, &id, &["echo", "thawed"]).await;
    assert_eq!(out.stdout, "thawed\n");
    let e = rt
        .commit_changes(&id, &[sha256(b"x")], &[])
        .await
        .unwrap_err();
    assert!(matches!(e, RuntimeError::UpperInUse { .. }), "{e}");
    rt.stop(&id, GRACE).await.expect("stop");

    let tar = changes_tar(&rt, &id, false).await;
    assert_eq!(
        tar_names(&tar),
        names,
        "a stopped read sees the same changes"
    );
    let diff_id = sha256(&tar);
    let upper_inode =
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(rt.upper_dir(&id)).unwrap());
    rt.commit_changes(&id, std::slice::from_ref(&diff_id), &[])
        .await
        .expect("commit");
    rt.commit_changes(&id, std::slice::from_ref(&diff_id), &[])
        .await
        .expect("commit again");
    let layer_dir = rt.layers().path(&diff_id);
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&layer_dir).unwrap()),
        upper_inode,
        "the upper directory itself became the layer"
    );
    assert!(!rt.upper_dir(&id).exists());

    let mut spec = spec;
    spec.layers.push(descriptor(&tar));
    start(&rt, &spec).await.expect("start on the new layer");
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
