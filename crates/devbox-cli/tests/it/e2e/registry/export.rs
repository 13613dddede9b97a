//! `devbox image push`: the server copies a stored image to another
//! registry, logging in with Basic auth (Debian's `docker-registry` with an
//! htpasswd file) or the token flow (this server's own registry), blob by
//! blob and only what is missing; the image keeps its digest.

use serde_json::json;

use super::super::harness::Server;
use super::{RefRegistry, host, inspect_digest, skopeo};

fn push(s: &Server, args: &[&str], password: &str) -> std::process::Output {
    let mut all = vec!["image", "push"];
    all.extend_from_slice(args);
    s.cli_with_stdin(&all, format!("{password}\n").as_bytes())
}

#[test]
fn an_image_is_pushed_to_another_registry_with_its_digest() {
    let s = Server::start();
    let reference = RefRegistry::start_with_auth(Some(("deploy", "s3cret")));
    s.import_busybox("base:1");
    let digest = s.json(&["image", "show", "base:1", "--json"])["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let dest = format!("{}/team/base:1", reference.addr);
    let login = ["--username", "deploy", "--password-stdin", "--insecure"];

    let mut args = vec!["base:1", dest.as_str()];
    args.extend(login);
    let out = push(&s, &args, "s3cret");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&digest));
    assert_eq!(
        inspect_digest(&format!("docker://{dest}"), Some("deploy:s3cret")),
        digest
    );

    // A second push finds every blob there.
    args.push("--json");
    let again = push(&s, &args, "s3cret");
    let events = String::from_utf8_lossy(&again.stdout);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(
        events.contains("\"cached\":true") && !events.contains("\"cached\":false"),
        "{events}"
    );
    assert!(
        events.lines().last().unwrap().contains("\"done\""),
        "{events}"
    );

    // Refused credentials and a missing image fail before anything moves.
    args.pop();
    let refused = push(&s, &args, "wrong");
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("refused access"), "{err}");
    let missing = s.cli_with_stdin(&["image", "push", "none:1", &dest, "--insecure"], b"");
    assert_eq!(
        missing.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );

    // To this server's own registry, through the token flow; then an index
    // of it, pushed back out with the image it names.
    let own = format!("{}/mirror/base:1", host(&s));
    let token = s.token();
    let mut own_args = vec![
        "base:1",
        own.as_str(),
        "--username",
        "x",
        "--password-stdin",
        "--insecure",
    ];
    let out = push(&s, &own_args, &token);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = s.json(&["image", "show", "mirror/base:1", "--json"]);
    assert_eq!(manifest["digest"], digest.as_str());
    let manifest_bytes = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        &format!("x:{token}"),
        &format!("docker://{own}"),
    ]);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
                       "size": manifest_bytes.len(), "platform": {"architecture": "amd64", "os": "linux"}}],
    }))
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resp = reqwest::Client::new()
            .put(format!("{}/v2/mirror/base/manifests/multi", s.url))
            .basic_auth("x", Some(&token))
            .header("content-type", "application/vnd.oci.image.index.v1+json")
            .body(index.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::CREATED);
    });
    let multi = format!("{}/team/multi:1", reference.addr);
    own_args = vec!["mirror/base:multi", multi.as_str()];
    own_args.extend(login);
    let out = push(&s, &own_args, "s3cret");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pushed = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        "deploy:s3cret",
        &format!("docker://{multi}"),
    ]);
    assert_eq!(pushed.as_bytes(), &index[..]);
}
