//! The read side over plain HTTP: the version check and both ways to
//! authenticate, manifests and blobs (HEAD, GET, ranges), paginated tags and
//! catalog, referrers, and the spec's error codes.

use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, CONTENT_TYPE, LINK, RANGE, WWW_AUTHENTICATE};

use super::super::harness::Server;
use super::{Moto, host, spec_error};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn sha256(bytes: &[u8]) -> String {
    devbox_layer::digest::Digest::of(bytes).to_string()
}

struct Http {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Http {
    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .get(format!("{}{path}", self.base))
            .basic_auth("anyone", Some(&self.token))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_read_side_speaks_the_distribution_spec() {
    read_side(&Server::start()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_read_side_speaks_the_distribution_spec_on_s3() {
    let s3 = Moto::start();
    let s = s3.server();
    read_side(&s).await;

    // A blob larger than one part of a multipart upload (5 MiB) goes up in
    // parts and reads back whole and in ranges.
    let big: Vec<u8> = (0..12u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let d = sha256(&big);
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{}/v2/big/blob/blobs/uploads/?digest={d}", s.url))
        .basic_auth("x", Some(s.token()))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert!(
        s3.keys()
            .contains(&format!("blobs/sha256/{}", &d["sha256:".len()..]))
    );
    let back = client
        .get(format!("{}/v2/big/blob/blobs/{d}", s.url))
        .basic_auth("x", Some(s.token()))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(back == big, "the blob reads back differently");
    let part = client
        .get(format!("{}/v2/big/blob/blobs/{d}", s.url))
        .basic_auth("x", Some(s.token()))
        .header(RANGE, "bytes=6291456-6291465")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(part, big[6291456..6291466]);
}

async fn read_side(s: &Server) {
    for name in ["bb:1", "tools/bb:2", "tools/bb:10", "tools/bb:3"] {
        s.import_busybox(name);
    }
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("only-here"), "other\n").unwrap();
    s.ok(&[
        "image",
        "import",
        other.path().to_str().unwrap(),
        "--name",
        "other:1",
    ]);
    let http = Http {
        client: reqwest::Client::new(),
        base: format!("{}/v2", s.url),
        token: s.token(),
    };
    let anonymous = reqwest::Client::new();

    // The version check challenges anonymous clients with the token flow.
    let resp = anonymous
        .get(format!("{}/v2/", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );
    let challenge = resp.headers()[WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with(&format!(
            "Bearer realm=\"http://{}/v2/token\",service=\"{}\"",
            host(s),
            host(s)
        )),
        "{challenge}"
    );
    assert_eq!(spec_error(resp).await, (401, "UNAUTHORIZED".into()));
    let resp = http.get("/").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), "{}");
    let resp = anonymous
        .get(format!("{}/v2/", s.url))
        .basic_auth("anyone", Some("dbx_not-a-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(spec_error(resp).await, (401, "UNAUTHORIZED".into()));
    let resp = anonymous
        .get(format!("{}/v2/bb/manifests/1", s.url))
        .send()
        .await
        .unwrap();
    let challenge = resp.headers()[WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.ends_with(",scope=\"repository:bb:pull\""),
        "{challenge}"
    );

    // The token flow: Basic credentials buy a token for the scopes asked.
    let resp = anonymous
        .get(format!(
            "{}/v2/token?service={}&scope=repository:tools/bb:pull",
            s.url,
            host(s)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(spec_error(resp).await, (401, "UNAUTHORIZED".into()));
    let token: serde_json::Value = http
        .get(&format!(
            "/token?service={}&scope=repository:tools/bb:pull",
            host(s)
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = token["token"].as_str().unwrap().to_owned();
    assert_eq!(token["access_token"], token["token"]);
    assert!(token["expires_in"].as_u64().unwrap() > 0, "{token}");
    let resp = anonymous
        .get(format!("{}/v2/tools/bb/tags/list", s.url))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = anonymous
        .get(format!("{}/v2/bb/tags/list", s.url))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    let challenge = resp.headers()[WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert_eq!(spec_error(resp).await, (401, "UNAUTHORIZED".into()));
    let mut forged = bearer.clone();
    forged.insert(3, 'x');
    let resp = anonymous
        .get(format!("{}/v2/tools/bb/tags/list", s.url))
        .bearer_auth(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(spec_error(resp).await, (401, "UNAUTHORIZED".into()));

    // Tags and the catalog come in pages, with a Link to the next one.
    let resp = http.get("/tools/bb/tags/list?n=2").send().await.unwrap();
    assert_eq!(
        resp.headers()[LINK],
        "</v2/tools/bb/tags/list?n=2&last=2>; rel=\"next\""
    );
    let page: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        page,
        serde_json::json!({"name": "tools/bb", "tags": ["10", "2"]})
    );
    let resp = http
        .get("/tools/bb/tags/list?n=2&last=2")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get(LINK).is_none());
    let page: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(page["tags"], serde_json::json!(["3"]));
    let all: serde_json::Value = http
        .get("/tools/bb/tags/list")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["tags"], serde_json::json!(["10", "2", "3"]));
    let resp = http.get("/_catalog?n=2").send().await.unwrap();
    assert_eq!(
        resp.headers()[LINK],
        "</v2/_catalog?n=2&last=other>; rel=\"next\""
    );
    let page: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(page["repositories"], serde_json::json!(["bb", "other"]));
    let page: serde_json::Value = http
        .get("/_catalog?n=2&last=other")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["repositories"], serde_json::json!(["tools/bb"]));

    // Manifests by tag and by digest, with their media type and digest.
    let resp = http.get("/tools/bb/manifests/2").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[CONTENT_TYPE], OCI_MANIFEST);
    let digest = resp.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_owned();
    let manifest = resp.bytes().await.unwrap();
    assert_eq!(sha256(&manifest), digest);
    let by_digest = http
        .get(&format!("/tools/bb/manifests/{digest}"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(by_digest, manifest);
    let head = http
        .client
        .head(format!("{}/v2/tools/bb/manifests/2", s.url))
        .basic_auth("x", Some(&http.token))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["docker-content-digest"], digest.as_str());
    assert_eq!(
        head.headers()["content-length"],
        manifest.len().to_string().as_str()
    );
    assert!(head.bytes().await.unwrap().is_empty());

    // Blobs, whole and in ranges.
    let doc: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let layer = doc["layers"][0]["digest"].as_str().unwrap();
    let size = doc["layers"][0]["size"].as_u64().unwrap();
    let blob = http
        .get(&format!("/tools/bb/blobs/{layer}"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(sha256(&blob), layer);
    assert_eq!(blob.len() as u64, size);
    let head = http
        .client
        .head(format!("{}/v2/tools/bb/blobs/{layer}", s.url))
        .basic_auth("x", Some(&http.token))
        .send()
        .await
        .unwrap();
    assert_eq!(head.headers()["content-length"], size.to_string().as_str());
    assert_eq!(head.headers()["docker-content-digest"], layer);
    let part = http
        .get(&format!("/tools/bb/blobs/{layer}"))
        .header(RANGE, "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()[CONTENT_RANGE],
        format!("bytes 10-19/{size}").as_str()
    );
    assert_eq!(part.bytes().await.unwrap(), blob.slice(10..20));
    let tail = http
        .get(&format!("/tools/bb/blobs/{layer}"))
        .header(RANGE, "bytes=-7")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(tail, blob.slice(blob.len() - 7..));
    let outside = http
        .get(&format!("/tools/bb/blobs/{layer}"))
        .header(RANGE, format!("bytes={size}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(outside.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        outside.headers()[CONTENT_RANGE],
        format!("bytes */{size}").as_str()
    );

    // An image's referrers: none yet, as an empty index.
    let resp = http
        .get(&format!("/tools/bb/referrers/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()[CONTENT_TYPE],
        "application/vnd.oci.image.index.v1+json"
    );
    let index: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(index["manifests"], serde_json::json!([]));

    // Errors carry the spec's codes.
    let zeros = format!("sha256:{}", "0".repeat(64));
    let other_digest = s.json(&["image", "show", "other:1", "--json"])["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let cases = [
        ("/none/manifests/1".to_owned(), 404, "NAME_UNKNOWN"),
        ("/none/tags/list".to_owned(), 404, "NAME_UNKNOWN"),
        ("/bb/manifests/9".to_owned(), 404, "MANIFEST_UNKNOWN"),
        // A manifest held by another repository is not this one's.
        (
            format!("/bb/manifests/{other_digest}"),
            404,
            "MANIFEST_UNKNOWN",
        ),
        (format!("/bb/blobs/{zeros}"), 404, "BLOB_UNKNOWN"),
        ("/bb/blobs/sha256:xyz".to_owned(), 400, "DIGEST_INVALID"),
        ("/bb/blobs/sha512:abc".to_owned(), 400, "DIGEST_INVALID"),
        ("/bb/manifests/-bad".to_owned(), 400, "TAG_INVALID"),
        ("/Bad/manifests/1".to_owned(), 400, "NAME_INVALID"),
        (
            "/bb/tags/list?n=many".to_owned(),
            400,
            "PAGINATION_NUMBER_INVALID",
        ),
        ("/bb/nothing".to_owned(), 404, "UNSUPPORTED"),
    ];
    for (path, status, code) in cases {
        let resp = http.get(&path).send().await.unwrap();
        assert_eq!(spec_error(resp).await, (status, code.to_owned()), "{path}");
    }
    let resp = http
        .client
        .post(format!("{}/v2/bb/manifests/1", s.url))
        .basic_auth("x", Some(&http.token))
        .send()
        .await
        .unwrap();
    assert_eq!(spec_error(resp).await, (405, "UNSUPPORTED".into()));
}
