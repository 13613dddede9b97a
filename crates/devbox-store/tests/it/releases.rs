//! Releases: versions tagged on a devbox's commits, living as long as their
//! tags.

use chrono::{Duration, Utc};
use devbox_model::DevboxId;
use devbox_store::{
    CommitRecord, CommitStore, CommitTrigger, DevboxRecord, DevboxStore, ImageMetadata, ImageName,
    ReleaseRecord, ReleaseStore, SqliteStore, StoreError,
};

use crate::support::*;

fn commit(id: &str, devbox: &DevboxRecord) -> CommitRecord {
    CommitRecord {
        id: id.into(),
        devbox: devbox.id.clone(),
        seq: 0,
        parent: None,
        created_at: Utc::now(),
        trigger: CommitTrigger::Release,
        message: String::new(),
        manifest: None,
        layer_digest: digest('e'),
        diff_id: digest('d'),
        layer_size: 1,
        excluded_bytes: 0,
        pinned: false,
        merged_into: None,
    }
}

fn release(devbox: &DevboxId, version: &str, commit: &str, age_secs: i64) -> ReleaseRecord {
    ReleaseRecord {
        devbox: devbox.clone(),
        version: version.into(),
        commit: commit.into(),
        // Ignored on input: the store fills in the commit's image.
        digest: digest('0'),
        notes: format!("notes of {version}"),
        created_at: Utc::now() - Duration::seconds(age_secs),
    }
}

/// A devbox `web` with commits `c1` (image `1`) and `c2` (image `2`).
async fn setup() -> (SqliteStore, DevboxRecord) {
    let s = SqliteStore::open_in_memory().unwrap();
    let base = digest('a');
    s.put_manifest(&manifest(&base)).await.unwrap();
    let d = devbox("web", 1, &base);
    s.insert_devbox(&d).await.unwrap();
    s.record_commit(&commit("c1", &d), &manifest(&digest('1')), "admin/web")
        .await
        .unwrap();
    s.record_commit(&commit("c2", &d), &manifest(&digest('2')), "admin/web")
        .await
        .unwrap();
    (s, d)
}

#[tokio::test]
async fn a_release_tags_its_commits_image_and_is_listed_newest_first() {
    let (s, d) = setup().await;
    let r1 = s
        .insert_release(&release(&d.id, "v1", "c1", 60), "admin/web")
        .await
        .unwrap();
    assert_eq!(r1.digest, digest('1'));
    assert_eq!(r1.notes, "notes of v1");
    let r2 = s
        .insert_release(&release(&d.id, "v2", "c2", 0), "admin/web")
        .await
        .unwrap();
    assert_eq!(
        s.get_tag("admin/web", "v2").await.unwrap().unwrap().digest,
        digest('2')
    );
    let versions: Vec<String> = s
        .list_releases(&d.id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.version)
        .collect();
    assert_eq!(versions, ["v2", "v1"]);
    assert_eq!(s.get_release(&d.id, "v2").await.unwrap(), Some(r2));
    assert_eq!(s.get_release(&d.id, "v3").await.unwrap(), None);
}

#[tokio::test]
async fn a_version_taken_in_the_repository_is_refused_and_nothing_changes() {
    let (s, d) = setup().await;
    s.insert_release(&release(&d.id, "v1", "c1", 0), "admin/web")
        .await
        .unwrap();
    let e = s
        .insert_release(&release(&d.id, "v1", "c2", 0), "admin/web")
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::AlreadyExists { .. }), "{e:?}");
    assert_eq!(
        s.get_tag("admin/web", "v1").await.unwrap().unwrap().digest,
        digest('1'),
        "the tag still names the first release's image"
    );
    // A tag that is not a release (pushed, or left by a deleted devbox of
    // the same name) is not replaced either.
    s.set_tag("admin/web", "latest", &digest('2'))
        .await
        .unwrap();
    let e = s
        .insert_release(&release(&d.id, "latest", "c1", 0), "admin/web")
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::AlreadyExists { .. }), "{e:?}");
    assert_eq!(s.list_releases(&d.id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_release_needs_a_stored_commit_of_its_own_devbox() {
    let (s, d) = setup().await;
    let other = devbox("api", 2, &digest('a'));
    s.insert_devbox(&other).await.unwrap();
    s.record_commit(&commit("o1", &other), &manifest(&digest('3')), "admin/api")
        .await
        .unwrap();
    for c in ["o1", "nope"] {
        let e = s
            .insert_release(&release(&d.id, "v1", c, 0), "admin/web")
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::NotFound { .. }), "{c}: {e:?}");
    }
    // Retention reclaimed c1's image: its commit stays, without one.
    s.remove_image("admin/web", ImageName::Tag("c1"))
        .await
        .unwrap();
    let e = s
        .insert_release(&release(&d.id, "v1", "c1", 0), "admin/web")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::NotFound { what } if what.contains("image")),
        "{e:?}"
    );
    assert!(s.get_tag("admin/web", "v1").await.unwrap().is_none());
    assert!(s.list_releases(&d.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_released_image_outlives_its_commits_tag_and_goes_with_its_release() {
    let (s, d) = setup().await;
    s.insert_release(&release(&d.id, "v1", "c1", 0), "admin/web")
        .await
        .unwrap();
    s.remove_image("admin/web", ImageName::Tag("c1"))
        .await
        .unwrap();
    assert!(
        s.get_manifest(&digest('1')).await.unwrap().is_some(),
        "the release's tag keeps the image"
    );
    let removal = s.delete_release(&d.id, "v1").await.unwrap();
    assert_eq!(removal.digest, digest('1'));
    assert!(removal.manifest_deleted, "nothing names the image now");
    assert!(s.get_tag("admin/web", "v1").await.unwrap().is_none());
    assert!(s.list_releases(&d.id).await.unwrap().is_empty());
    let e = s.delete_release(&d.id, "v1").await.unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e:?}");
}

#[tokio::test]
async fn removing_a_releases_tag_by_another_path_removes_the_release() {
    let (s, d) = setup().await;
    s.insert_release(&release(&d.id, "v1", "c1", 0), "admin/web")
        .await
        .unwrap();
    s.remove_image("admin/web", ImageName::Tag("v1"))
        .await
        .unwrap();
    assert_eq!(s.get_release(&d.id, "v1").await.unwrap(), None);
    assert_eq!(
        s.get_manifest(&digest('1'))
            .await
            .unwrap()
            .map(|m| m.digest),
        Some(digest('1')),
        "the commit's tag still names the image"
    );
}

#[tokio::test]
async fn a_deleted_devboxs_releases_stay_as_images() {
    let (s, d) = setup().await;
    s.insert_release(&release(&d.id, "v1", "c1", 0), "admin/web")
        .await
        .unwrap();
    s.delete_devbox(&d.id).await.unwrap();
    assert!(s.list_releases(&d.id).await.unwrap().is_empty());
    assert_eq!(
        s.get_tag("admin/web", "v1").await.unwrap().unwrap().digest,
        digest('1')
    );
    let e = s
        .insert_release(&release(&d.id, "v2", "c2", 0), "admin/web")
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e:?}");
}
