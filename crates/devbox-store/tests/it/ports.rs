use devbox_store::{DevboxStore, ImageMetadata, PortAccess, PortStore, SqliteStore, StoreError};

use crate::support::{devbox, digest, manifest};

#[tokio::test]
async fn a_port_keeps_its_link_key_when_its_access_changes_and_goes_with_its_devbox() {
    let store = SqliteStore::open_in_memory().unwrap();
    let image = digest('a');
    store.put_manifest(&manifest(&image)).await.unwrap();
    let d = devbox("web", 1, &image);
    store.insert_devbox(&d).await.unwrap();
    assert!(store.list_ports(&d.id).await.unwrap().is_empty());
    assert_eq!(store.get_port(&d.id, 8080).await.unwrap(), None);

    let p = store
        .set_port_access(&d.id, 8080, PortAccess::Public, "k1")
        .await
        .unwrap();
    assert_eq!((p.access, p.link_key.as_str()), (PortAccess::Public, "k1"));
    let p = store
        .set_port_access(&d.id, 8080, PortAccess::Private, "k2")
        .await
        .unwrap();
    assert_eq!(
        (p.access, p.link_key.as_str()),
        (PortAccess::Private, "k1"),
        "an existing port keeps its key"
    );
    let p = store.set_link_key(&d.id, 8080, "k3").await.unwrap();
    assert_eq!(p.link_key, "k3");
    let p = store.set_link_key(&d.id, 3000, "k4").await.unwrap();
    assert_eq!(p.access, PortAccess::Private, "a new port is private");
    let ports: Vec<u16> = store
        .list_ports(&d.id)
        .await
        .unwrap()
        .iter()
        .map(|p| p.port)
        .collect();
    assert_eq!(ports, [3000, 8080]);

    store.delete_devbox(&d.id).await.unwrap();
    assert!(store.list_ports(&d.id).await.unwrap().is_empty());
    let e = store
        .set_port_access(&d.id, 8080, PortAccess::Public, "k")
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e:?}");
}

#[tokio::test]
async fn an_idle_policy_is_set_changed_and_removed() {
    use devbox_store::IdleStore;
    use std::time::Duration;
    let store = SqliteStore::open_in_memory().unwrap();
    let image = digest('a');
    store.put_manifest(&manifest(&image)).await.unwrap();
    let d = devbox("web", 1, &image);
    store.insert_devbox(&d).await.unwrap();
    assert_eq!(store.auto_stop(&d.id).await.unwrap(), None);
    store
        .set_auto_stop(&d.id, Some(Duration::from_secs(1800)))
        .await
        .unwrap();
    assert_eq!(
        store.auto_stop(&d.id).await.unwrap(),
        Some(Duration::from_secs(1800))
    );
    store
        .set_auto_stop(&d.id, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(
        store.auto_stop(&d.id).await.unwrap(),
        Some(Duration::from_secs(60))
    );
    store.set_auto_stop(&d.id, None).await.unwrap();
    assert_eq!(store.auto_stop(&d.id).await.unwrap(), None);
    store.delete_devbox(&d.id).await.unwrap();
    let e = store
        .set_auto_stop(&d.id, Some(Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e:?}");
}
