//! Devbox records: round trips, unique names, conditional transitions.

use std::net::Ipv4Addr;
use std::sync::Arc;

use devbox_model::api::CommandStatus;
use devbox_model::{ByteSize, Resources, State};
use devbox_store::{
    AppliedSettings, DevboxStore, ImageMetadata, SqliteStore, Store, StoreError, Transition,
};

use crate::support::{devbox, digest, manifest};

async fn store_with_image() -> (Arc<dyn Store>, devbox_model::Digest) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
    let d = digest('a');
    store.put_manifest(&manifest(&d)).await.unwrap();
    (store, d)
}

#[tokio::test]
async fn devboxes_round_trip_and_names_are_unique() {
    let (store, image) = store_with_image().await;
    let web = devbox("web", 1, &image);
    store.insert_devbox(&web).await.unwrap();
    let got = store.get_devbox(&web.name).await.unwrap().unwrap();
    assert_eq!(got, web);
    assert_eq!(
        store.get_devbox_by_id(&web.id).await.unwrap().as_ref(),
        Some(&web)
    );

    let dup = devbox("web", 2, &image);
    let e = store.insert_devbox(&dup).await.unwrap_err();
    assert!(matches!(e, StoreError::AlreadyExists { .. }), "{e}");
    assert!(e.to_string().contains("devbox web"), "{e}");

    store
        .transition(
            &web.id,
            State::Creating,
            State::Error,
            &Transition::failed("boom"),
        )
        .await
        .unwrap();
    let got = store.get_devbox(&web.name).await.unwrap().unwrap();
    assert_eq!(
        (got.state, got.error.as_deref()),
        (State::Error, Some("boom"))
    );
    let got = store
        .transition(&web.id, State::Error, State::Stopped, &Transition::plain())
        .await
        .unwrap();
    assert_eq!((got.state, got.error), (State::Stopped, None));
    assert_eq!(
        store.get_devbox(&web.name).await.unwrap().unwrap().error,
        None
    );

    store
        .insert_devbox(&devbox("api", 4, &image))
        .await
        .unwrap();
    let names: Vec<String> = store
        .list_devboxes()
        .await
        .unwrap()
        .iter()
        .map(|d| d.name.to_string())
        .collect();
    assert_eq!(names, ["api", "web"]);

    store.delete_devbox(&web.id).await.unwrap();
    store.delete_devbox(&web.id).await.unwrap();
    assert!(store.get_devbox(&web.name).await.unwrap().is_none());
    assert!(store.get_devbox_by_id(&web.id).await.unwrap().is_none());
}

#[tokio::test]
async fn addresses_belong_to_the_runtime_and_may_repeat() {
    let (store, image) = store_with_image().await;
    let ip = Ipv4Addr::new(10, 77, 0, 2);
    let mut a = devbox("a", 1, &image);
    a.ip = Some(ip);
    let mut b = devbox("b", 2, &image);
    b.ip = Some(ip);
    store.insert_devbox(&a).await.unwrap();
    store.insert_devbox(&b).await.unwrap();
    assert_eq!(
        store.get_devbox(&b.name).await.unwrap().unwrap().ip,
        Some(ip)
    );
}

#[tokio::test]
async fn a_transition_refuses_a_writer_that_lost_the_race() {
    let (store, image) = store_with_image().await;
    let web = devbox("web", 1, &image);
    store.insert_devbox(&web).await.unwrap();
    store
        .transition(
            &web.id,
            State::Creating,
            State::Stopped,
            &Transition::plain(),
        )
        .await
        .unwrap();

    // Two writers both read "stopped" and both try to start: one wins.
    let plain = Transition::plain();
    let (a, b) = tokio::join!(
        store.transition(&web.id, State::Stopped, State::Starting, &plain),
        store.transition(&web.id, State::Stopped, State::Deleting, &plain),
    );
    let (won, lost) = match (a, b) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
        other => panic!("exactly one writer must win: {other:?}"),
    };
    match lost {
        StoreError::Conflict {
            id,
            expected,
            actual,
        } => {
            assert_eq!(id, web.id);
            assert_eq!(expected, State::Stopped);
            assert_eq!(actual, Some(won.state));
        }
        other => panic!("expected a conflict, got {other}"),
    }
    let stored = store.get_devbox(&web.name).await.unwrap().unwrap();
    assert_eq!(stored.state, won.state);

    store.delete_devbox(&web.id).await.unwrap();
    let e = store
        .transition(&web.id, won.state, State::Running, &Transition::plain())
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::Conflict { actual: None, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("gone"), "{e}");
}

#[tokio::test]
async fn a_transition_records_its_reason_and_clears_the_old_one() {
    let (store, image) = store_with_image().await;
    let web = devbox("web", 1, &image);
    store.insert_devbox(&web).await.unwrap();
    let got = store
        .transition(
            &web.id,
            State::Creating,
            State::Stopped,
            &Transition::because("exited with 137: out of memory"),
        )
        .await
        .unwrap();
    assert_eq!(
        got.reason.as_deref(),
        Some("exited with 137: out of memory")
    );
    assert!(got.updated_at >= web.updated_at);
    let got = store
        .transition(
            &web.id,
            State::Stopped,
            State::Starting,
            &Transition::plain(),
        )
        .await
        .unwrap();
    assert_eq!(got.reason, None);
}

#[tokio::test]
async fn settings_starts_and_statuses_are_recorded() {
    let (store, image) = store_with_image().await;
    let web = devbox("web", 1, &image);
    store.insert_devbox(&web).await.unwrap();

    let resources = Resources {
        cpus: 2.5,
        memory: ByteSize(512 << 20),
        pids: 100,
    };
    let env = vec!["A=1".parse().unwrap()];
    let got = store
        .update_settings(&web.id, resources, &env, None)
        .await
        .unwrap();
    assert_eq!(
        (got.resources, got.env.clone(), got.command.clone()),
        (resources, env.clone(), None)
    );

    let applied = AppliedSettings {
        env: env.clone(),
        command: Some(vec!["sh".into()]),
    };
    let ip = Ipv4Addr::new(10, 77, 0, 9);
    store
        .record_status(&web.id, 3, Some(&CommandStatus::Exited { code: 1 }))
        .await
        .unwrap();
    let got = store
        .record_start(&web.id, &applied, Some(ip))
        .await
        .unwrap();
    assert_eq!(got.applied.as_ref(), Some(&applied));
    assert_eq!(got.ip, Some(ip));
    // A new run starts counting afresh.
    assert_eq!((got.oom_kills, got.command_status), (0, None));

    let got = store
        .record_status(&web.id, 2, Some(&CommandStatus::Running))
        .await
        .unwrap();
    assert_eq!(
        (got.oom_kills, got.command_status.clone()),
        (2, Some(CommandStatus::Running))
    );
    assert_eq!(store.get_devbox(&web.name).await.unwrap().unwrap(), got);

    store.delete_devbox(&web.id).await.unwrap();
    for e in [
        store
            .update_settings(&web.id, resources, &env, None)
            .await
            .unwrap_err(),
        store
            .record_start(&web.id, &applied, None)
            .await
            .unwrap_err(),
        store.record_status(&web.id, 0, None).await.unwrap_err(),
    ] {
        assert!(matches!(e, StoreError::NotFound { .. }), "{e}");
    }
}

#[tokio::test]
async fn a_file_database_survives_reopening_and_migrates_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("devbox.db");
    let image = digest('a');
    {
        let store = SqliteStore::open(&path).unwrap();
        store.put_manifest(&manifest(&image)).await.unwrap();
        store
            .insert_devbox(&devbox("web", 1, &image))
            .await
            .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.list_devboxes().await.unwrap().len(), 1);
    let e = SqliteStore::open(&dir.path().join("missing/dir/x.db")).unwrap_err();
    assert!(e.to_string().contains("missing/dir/x.db"), "{e}");
}
