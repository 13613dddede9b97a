//! Records for the tests.

use chrono::Utc;
use devbox_model::{DevboxId, Digest, Resources, State};
use devbox_store::{DevboxRecord, ManifestRecord};

pub fn digest(c: char) -> Digest {
    format!("sha256:{}", c.to_string().repeat(64))
        .parse()
        .unwrap()
}

pub fn devbox(name: &str, id_byte: u8, image_digest: &Digest) -> DevboxRecord {
    DevboxRecord {
        id: DevboxId::from_random([id_byte; 8]),
        name: name.parse().unwrap(),
        image: "base:1".into(),
        image_digest: image_digest.clone(),
        state: State::Creating,
        error: None,
        reason: None,
        resources: Resources::default(),
        env: vec!["FOO=bar".parse().unwrap()],
        command: Some(vec!["sleep".into(), "1".into()]),
        applied: None,
        ip: None,
        oom_kills: 0,
        command_status: None,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

pub fn manifest(digest: &Digest) -> ManifestRecord {
    ManifestRecord {
        digest: digest.clone(),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        content: b"{}".to_vec(),
        config_digest: self::digest('c'),
        size: 42,
        layers: 1,
        created_at: Utc::now(),
    }
}
