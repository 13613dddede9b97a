//! A run's changes read incrementally by live commits, then committed at
//! stop as one directory standing for all of them: the next start on the
//! node mounts it, and it shows exactly what the layers say.

use std::io::Read;
use std::time::Duration;

use devbox_layer::LayerDescriptor;
use devbox_runtime::{ChangesRequest, LocalRuntime, Runtime};

use crate::common::*;

const GRACE: Duration = Duration::from_secs(5);

/// Reads changes as a commit would and returns the layer tar.
async fn read(
    rt: &LocalRuntime,
    id: &devbox_model::DevboxId,
    mark: &str,
    since: Option<&str>,
) -> (Vec<u8>, Option<String>) {
    let req = ChangesRequest {
        mark: mark.into(),
        since: since.map(str::to_owned),
        exclude: vec!["/scratch".into()],
        freeze: false,
    };
    let changes = rt.read_changes(id, &req).await.expect("read changes");
    let since = changes.since.clone();
    let mut tar = changes.tar;
    let stats = changes.stats;
    let out = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        tar.read_to_end(&mut out).expect("read the changes tar");
        stats.recv().expect("the stats follow the tar");
        out
    })
    .await
    .unwrap();
    (out, since)
}

fn names(tar: &[u8]) -> Vec<String> {
    let mut out: Vec<String> = tar::Archive::new(tar)
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn live_commits_are_incremental_and_a_stop_commit_serves_the_next_start() {
    let net = TestNet::claim();
    let root = temp_root();
    let rt = runtime(root.path(), &net).await;
    let src = tempfile::tempdir().unwrap();
    busybox_rootfs(src.path());
    let base_tar = pack(src.path());
    let base = descriptor(&base_tar);
    rt.layers()
        .unpack(
            &base.diff_id,
            &base_tar[..],
            devbox_layer::compression::Compression::None,
        )
        .unwrap();
    let id = new_id();
    let _cleanup = Cleanup {
        rt: &rt,
        ids: vec![id.clone()],
    };
    let spec = start_spec(&id, "box-commits", &base);
    start(&rt, &spec).await.expect("start");
    let sh = |cmd: &str| vec!["sh".to_owned(), "-c".to_owned(), cmd.to_owned()];
    let run = |cmd: &'static str| {
        let rt = &rt;
        let id = &id;
        async move {
            let out = exec(
                rt,
                id,
                &sh(cmd).iter().map(String::as_str).collect::<Vec<_>>(),
            )
            .await;
            assert_eq!(out.code, 0, "{cmd}: {out:?}");
        }
    };

    run("echo one > /root/one; mkdir -p /scratch; echo junk > /scratch/x").await;
    let (c1, since) = read(&rt, &id, "c1", None).await;
    assert_eq!(since, None);
    assert!(
        names(&c1).contains(&"root/one".to_owned()),
        "{:?}",
        names(&c1)
    );
    assert!(
        !names(&c1).iter().any(|n| n.starts_with("scratch")),
        "excluded: {:?}",
        names(&c1)
    );

    run("echo two > /root/two; rm /root/one").await;
    let (c2, since) = read(&rt, &id, "c2", Some("c1")).await;
    assert_eq!(
        since.as_deref(),
        Some("c1"),
        "counted from the first commit"
    );
    assert_eq!(
        names(&c2)
            .iter()
            .filter(|n| n.starts_with("root/") && *n != "root/")
            .cloned()
            .collect::<Vec<_>>(),
        ["root/.wh.one", "root/two"]
    );

    let diff = rt
        .diff_changes(&id, Some("c2"), &["/scratch".into()])
        .await
        .unwrap();
    assert_eq!(diff.added + diff.modified + diff.deleted, 0, "{diff:?}");
    run("echo three > /root/three").await;
    let diff = rt
        .diff_changes(&id, Some("c2"), &["/scratch".into()])
        .await
        .unwrap();
    assert!(
        diff.entries.iter().any(|e| e.path == "/root/three"),
        "{diff:?}"
    );
    assert!(
        diff.ignored.iter().any(|e| e.path == "/scratch"),
        "{diff:?}"
    );

    rt.stop(&id, GRACE).await.expect("stop");
    let (c3, _) = read(&rt, &id, "c3", Some("c2")).await;
    assert!(names(&c3).contains(&"root/three".to_owned()));
    let layers: Vec<LayerDescriptor> = [&c1, &c2, &c3].iter().map(|t| descriptor(t)).collect();
    let run_ids: Vec<_> = layers.iter().map(|l| l.diff_id.clone()).collect();
    rt.commit_changes(&id, &run_ids, &["/scratch".into()])
        .await
        .expect("commit the run");
    assert!(
        !rt.upper_dir(&id).exists(),
        "the upper directory moved into the store"
    );
    for l in &layers {
        assert!(!rt.layers().contains(&l.diff_id), "nothing was unpacked");
    }

    // The next start lists the three layers and needs none of their blobs.
    let mut spec = spec;
    spec.layers.extend(layers.iter().cloned());
    start(&rt, &spec).await.expect("start on the committed run");
    let out = exec(
        &rt,
        &id,
        &["sh", "-c", "cat /root/two /root/three; test -e /root/one || echo one-gone; test -e /scratch || echo scratch-gone"],
    )
    .await;
    assert_eq!(
        out.stdout, "two\nthree\none-gone\nscratch-gone\n",
        "{out:?}"
    );

    // A node that never saw the devbox unpacks the same three layers and
    // sees the same files.
    let other_net = TestNet::claim();
    let other_root = temp_root();
    let other = runtime(other_root.path(), &other_net).await;
    let other_id = new_id();
    let _cleanup_other = Cleanup {
        rt: &other,
        ids: vec![other_id.clone()],
    };
    let mut source = MemSource::default();
    for (l, t) in layers.iter().zip([&c1, &c2, &c3]) {
        source.0.insert(l.digest.clone(), t.to_vec());
    }
    source.0.insert(base.digest.clone(), base_tar.clone());
    let mut other_spec = start_spec(&other_id, "box-elsewhere", &base);
    other_spec.layers.extend(layers.iter().cloned());
    other
        .start(&other_spec, &source)
        .await
        .expect("start elsewhere");
    let elsewhere = exec(
        &other,
        &other_id,
        &["sh", "-c", "cat /root/two /root/three; test -e /root/one || echo one-gone; test -e /scratch || echo scratch-gone"],
    )
    .await;
    assert_eq!(elsewhere.stdout, out.stdout);
    other.remove(&other_id).await.unwrap();

    // Pruning keeps what the next start needs and drops the rest.
    rt.stop(&id, GRACE).await.unwrap();
    let mut keep = vec![base.diff_id.clone()];
    keep.extend(run_ids.iter().cloned());
    let kept = rt.prune_layers(&[keep], true).await.unwrap();
    assert_eq!(kept.dirs, 0, "{kept:?}");
    let all = rt.prune_layers(&[], true).await.unwrap();
    assert!(all.dirs >= 2, "the base and the run would go: {all:?}");
    rt.prune_layers(&[vec![base.diff_id.clone()]], false)
        .await
        .unwrap();
    assert!(rt.layers().contains(&base.diff_id));
    rt.remove(&id).await.unwrap();
    assert_nothing_left(root.path(), &id);
}
