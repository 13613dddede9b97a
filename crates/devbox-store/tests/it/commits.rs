//! Commits: history, heads, retention through image removal, squashes.

use std::time::Duration;

use chrono::Utc;
use devbox_model::Digest;
use devbox_store::{
    CommitRecord, CommitStore, CommitTrigger, DevboxStore, ImageMetadata, ImageName, SqliteStore,
    StoreError,
};

use crate::support::*;

fn commit(
    id: &str,
    devbox: &devbox_store::DevboxRecord,
    seq: u64,
    parent: Option<&str>,
) -> CommitRecord {
    CommitRecord {
        id: id.into(),
        devbox: devbox.id.clone(),
        seq,
        parent: parent.map(str::to_owned),
        created_at: Utc::now(),
        trigger: CommitTrigger::Manual,
        message: format!("commit {seq}"),
        manifest: None,
        layer_digest: digest('e'),
        diff_id: digest('d'),
        layer_size: 1024,
        excluded_bytes: 7,
        pinned: false,
        merged_into: None,
    }
}

async fn setup() -> (SqliteStore, devbox_store::DevboxRecord) {
    let s = SqliteStore::open_in_memory().unwrap();
    let base = digest('a');
    s.put_manifest(&manifest(&base)).await.unwrap();
    s.set_tag("base", "1", &base).await.unwrap();
    let d = devbox("web", 1, &base);
    s.insert_devbox(&d).await.unwrap();
    (s, d)
}

#[tokio::test]
async fn a_commit_becomes_the_head_with_its_image_tagged_by_its_id() {
    let (s, d) = setup().await;
    assert_eq!(s.commit_state(&d.id).await.unwrap().head, None);
    let (m1, m2) = (digest('1'), digest('2'));
    s.record_commit(&commit("c1", &d, 1, None), &manifest(&m1), "admin/web")
        .await
        .unwrap();
    s.record_commit(
        &commit("c2", &d, 2, Some("c1")),
        &manifest(&m2),
        "admin/web",
    )
    .await
    .unwrap();
    assert_eq!(
        s.commit_state(&d.id).await.unwrap().head.as_deref(),
        Some("c2")
    );
    assert_eq!(
        s.get_tag("admin/web", "c1").await.unwrap().unwrap().digest,
        m1
    );
    let history = s.list_commits(&d.id).await.unwrap();
    let ids: Vec<&str> = history.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["c2", "c1"], "newest first");
    assert_eq!(history[0].manifest.as_ref(), Some(&m2));
    assert_eq!(history[1].excluded_bytes, 7);

    assert_eq!(
        (history[0].seq, history[1].seq),
        (2, 1),
        "the store numbers commits"
    );
    assert_eq!(s.commit_state(&d.id).await.unwrap().run, ["c1", "c2"]);
    s.set_run(&d.id, None).await.unwrap();
    assert!(s.commit_state(&d.id).await.unwrap().run.is_empty());
    // A commit ID taken twice records nothing.
    let e = s
        .record_commit(
            &commit("c2", &d, 3, None),
            &manifest(&digest('3')),
            "admin/web",
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::AlreadyExists { .. }), "{e}");
    assert!(s.get_manifest(&digest('3')).await.unwrap().is_none());
    assert_eq!(
        s.commit_state(&d.id).await.unwrap().head.as_deref(),
        Some("c2")
    );
}

#[tokio::test]
async fn a_head_must_be_one_of_the_devboxs_own_commits() {
    let (s, d) = setup().await;
    let other = devbox("db", 2, &digest('a'));
    s.insert_devbox(&other).await.unwrap();
    s.record_commit(
        &commit("c1", &d, 1, None),
        &manifest(&digest('1')),
        "admin/web",
    )
    .await
    .unwrap();
    s.record_commit(
        &commit("o1", &other, 1, None),
        &manifest(&digest('2')),
        "admin/db",
    )
    .await
    .unwrap();
    let e = s.set_head(&d.id, Some("o1")).await.unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e}");
    let e = s.set_head(&d.id, Some("nope")).await.unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e}");
    s.set_head(&d.id, None).await.unwrap();
    assert_eq!(s.commit_state(&d.id).await.unwrap().head, None);
    s.set_head(&d.id, Some("c1")).await.unwrap();
    assert_eq!(
        s.commit_state(&d.id).await.unwrap().head.as_deref(),
        Some("c1")
    );
}

#[tokio::test]
async fn the_head_image_cannot_be_removed_and_an_old_one_leaves_history() {
    let (s, d) = setup().await;
    let (m1, m2) = (digest('1'), digest('2'));
    s.record_commit(&commit("c1", &d, 1, None), &manifest(&m1), "admin/web")
        .await
        .unwrap();
    s.record_commit(
        &commit("c2", &d, 2, Some("c1")),
        &manifest(&m2),
        "admin/web",
    )
    .await
    .unwrap();
    let e = s
        .remove_image("admin/web", ImageName::Tag("c2"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::InUse { .. }), "{e}");
    // Retention removes an older commit's image: the commit stays, as history.
    let removal = s
        .remove_image("admin/web", ImageName::Tag("c1"))
        .await
        .unwrap();
    assert!(removal.manifest_deleted);
    let c1 = s.get_commit("c1").await.unwrap().unwrap();
    assert_eq!(c1.manifest, None);
    // The active base is protected the same way.
    s.set_run(&d.id, Some(&m2)).await.unwrap();
    s.set_head(&d.id, None).await.unwrap();
    let e = s
        .remove_image("admin/web", ImageName::Tag("c2"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::InUse { .. }), "{e}");
}

#[tokio::test]
async fn settings_pins_and_squashes_are_recorded() {
    let (s, d) = setup().await;
    s.set_commit_settings(&d.id, Some(Duration::from_secs(600)), &["/tmp".into()])
        .await
        .unwrap();
    let state = s.commit_state(&d.id).await.unwrap();
    assert_eq!(state.auto_commit, Some(Duration::from_secs(600)));
    assert_eq!(state.exclude, ["/tmp"]);
    for (i, id) in ["c1", "c2", "c3"].iter().enumerate() {
        let m: Digest = digest(char::from(b'1' + i as u8));
        s.record_commit(
            &commit(id, &d, i as u64 + 1, None),
            &manifest(&m),
            "admin/web",
        )
        .await
        .unwrap();
    }
    s.set_pinned("c1", true).await.unwrap();
    assert!(s.get_commit("c1").await.unwrap().unwrap().pinned);
    assert!(matches!(
        s.set_pinned("nope", true).await.unwrap_err(),
        StoreError::NotFound { .. }
    ));
    let squashed = digest('f');
    s.replace_commit_image(
        "c3",
        &manifest(&squashed),
        "admin/web",
        &["c1".into(), "c2".into()],
    )
    .await
    .unwrap();
    assert_eq!(
        s.get_commit("c3").await.unwrap().unwrap().manifest,
        Some(squashed.clone())
    );
    assert_eq!(
        s.get_tag("admin/web", "c3").await.unwrap().unwrap().digest,
        squashed
    );
    assert_eq!(
        s.get_commit("c2")
            .await
            .unwrap()
            .unwrap()
            .merged_into
            .as_deref(),
        Some("c3")
    );
}

#[tokio::test]
async fn deleting_a_devbox_deletes_its_history() {
    let (s, d) = setup().await;
    s.record_commit(
        &commit("c1", &d, 1, None),
        &manifest(&digest('1')),
        "admin/web",
    )
    .await
    .unwrap();
    s.delete_devbox(&d.id).await.unwrap();
    assert!(s.get_commit("c1").await.unwrap().is_none());
    assert_eq!(s.commit_state(&d.id).await.unwrap(), Default::default());
    // Its image is an ordinary image now, removable by its name.
    s.remove_image("admin/web", ImageName::Tag("c1"))
        .await
        .unwrap();
}
