//! Real clients pushing: skopeo from an OCI layout, a docker-archive and
//! Debian's reference registry, back and forth; podman push and pull;
//! containerd's `ctr images pull`. Digests survive every round trip.

use super::super::harness::Server;
use super::super::pull::busybox_layout;
use super::{Containerd, Moto, RefRegistry, host, inspect_digest, podman, skopeo};

/// A manifest exactly as the registry at `image` serves it.
fn raw(image: &str, creds: Option<&str>) -> String {
    let mut args = vec!["inspect", "--raw", "--tls-verify=false"];
    if let Some(c) = creds {
        args.extend(["--creds", c]);
    }
    args.push(image);
    skopeo(&args)
}

#[test]
fn skopeo_podman_and_ctr_push_and_pull_through_the_registry() {
    pushes(&Server::start());
}

#[test]
fn skopeo_podman_and_ctr_push_and_pull_through_the_registry_on_s3() {
    let s3 = Moto::start();
    let s = s3.server();
    pushes(&s);
    // The blobs went to the bucket, none to the data directory.
    let keys = s3.keys();
    assert!(
        keys.iter().any(|k| k.starts_with("blobs/sha256/")),
        "{keys:?}"
    );
    let local = s.data.path().join("images/blobs");
    assert!(!local.exists() || std::fs::read_dir(&local).unwrap().count() == 0);
}

fn pushes(s: &Server) {
    let reference = RefRegistry::start();
    let creds = format!("anyone:{}", s.token());
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    busybox_layout(&layout);
    let source = format!("oci:{}:1", layout.display());
    let layout_digest = inspect_digest(&source, None);

    // An OCI layout in: the manifest arrives byte for byte.
    let ours = format!("docker://{}/alice/app:1", host(s));
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds,
        &source,
        &ours,
    ]);
    assert_eq!(inspect_digest(&ours, Some(&creds)), layout_digest);
    let manifest = raw(&ours, Some(&creds));
    let tags: serde_json::Value = serde_json::from_str(&s.ok(&["image", "ls", "--json"])).unwrap();
    assert!(
        tags.to_string().contains("alice/app:1"),
        "pushed images are listed: {tags}"
    );

    // Out to the reference registry and back under another name.
    let theirs = format!("docker://{}/copied/app:1", reference.addr);
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--src-creds",
        &creds,
        &ours,
        &theirs,
    ]);
    assert_eq!(raw(&theirs, None), manifest);
    let back = format!("docker://{}/alice/back:1", host(s));
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds,
        &theirs,
        &back,
    ]);
    assert_eq!(raw(&back, Some(&creds)), manifest);

    // Out to an OCI layout.
    let out = format!("oci:{}:1", dir.path().join("out").display());
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        &creds,
        &ours,
        &out,
    ]);
    assert_eq!(inspect_digest(&out, None), layout_digest);

    // A docker-archive in: stored as skopeo converted it.
    let archive = dir.path().join("app.tar");
    skopeo(&[
        "copy",
        &source,
        &format!("docker-archive:{}:app:1", archive.display()),
    ]);
    let digestfile = dir.path().join("digest");
    let archived = format!("docker://{}/alice/archive:1", host(s));
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds,
        "--digestfile",
        digestfile.to_str().unwrap(),
        &format!("docker-archive:{}", archive.display()),
        &archived,
    ]);
    let pushed = std::fs::read_to_string(&digestfile).unwrap();
    assert_eq!(inspect_digest(&archived, Some(&creds)), pushed.trim());
    let v2s2: serde_json::Value = serde_json::from_str(&raw(&archived, Some(&creds))).unwrap();
    assert_eq!(
        v2s2["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );

    // And out to a docker-archive, which pushed back in gives the same
    // image as the archive made from the layout.
    let exported = dir.path().join("exported.tar");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        &creds,
        &ours,
        &format!("docker-archive:{}:app:1", exported.display()),
    ]);
    let roundtrip = format!("docker://{}/alice/roundtrip:1", host(s));
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds,
        &format!("docker-archive:{}", exported.display()),
        &roundtrip,
    ]);
    assert_eq!(inspect_digest(&roundtrip, Some(&creds)), pushed.trim());

    // podman pulls, and pushes under another name; the image ID (its
    // config's digest) survives the round trip.
    let storage = tempfile::tempdir().unwrap();
    let image = format!("{}/alice/app:1", host(s));
    let pushed_name = format!("{}/bob/from-podman:1", host(s));
    for args in [
        vec!["pull", "--tls-verify=false", "--creds", &creds, &image],
        vec!["tag", &image, &pushed_name],
        vec![
            "push",
            "--tls-verify=false",
            "--creds",
            &creds,
            &pushed_name,
        ],
        vec!["rmi", &pushed_name, &image],
        vec![
            "pull",
            "--tls-verify=false",
            "--creds",
            &creds,
            &pushed_name,
        ],
    ] {
        let out = podman(storage.path(), &args);
        assert!(
            out.status.success(),
            "podman {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let config: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let config_hex = config["config"]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let id = podman(
        storage.path(),
        &["image", "inspect", "--format", "{{.Id}}", &pushed_name],
    );
    assert_eq!(String::from_utf8_lossy(&id.stdout).trim(), config_hex);

    // containerd, with credentials on the command line.
    let ctrd = Containerd::start();
    ctrd.ctr(&["images", "pull", "--plain-http", "--user", &creds, &image]);
    let listed = ctrd.ctr(&["images", "ls"]);
    assert!(
        listed.contains(&image) && listed.contains(&layout_digest),
        "{listed}"
    );
}
