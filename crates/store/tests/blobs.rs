//! Blob storage behaves the same on a local folder and on S3 (a real S3-compatible server that
//! checks signatures, started here): streaming writes with their hash, streaming reads, sizes,
//! listing by prefix, deletes, odd identifiers; presigned URLs on S3.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::time::Duration;

use fzip_store::{BlobStore, Presign, S3Options, StoreError};
use fzip_test_s3::S3Server;
use sha2::{Digest, Sha256};

struct Backend {
    blobs: BlobStore,
    _guard: Box<dyn std::any::Any>,
}

fn local() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    Backend {
        blobs: BlobStore::local(dir.path()).unwrap(),
        _guard: Box::new(dir),
    }
}

fn s3_server() -> (S3Server, BlobStore) {
    let server = S3Server::start("fzip-blobs").unwrap();
    let blobs = BlobStore::s3_with(&S3Options {
        bucket: server.bucket().to_string(),
        prefix: "tenant/a".into(),
        endpoint: Some(server.endpoint()),
        region: Some(server.region().to_string()),
        access_key_id: Some(server.access_key().to_string()),
        secret_access_key: Some(server.secret_key().to_string()),
    })
    .unwrap();
    (server, blobs)
}

fn s3() -> Backend {
    let (server, blobs) = s3_server();
    Backend {
        blobs,
        _guard: Box::new(server),
    }
}

fn read_all(blobs: &BlobStore, key: &str) -> Vec<u8> {
    let mut out = Vec::new();
    blobs.open(key).unwrap().read_to_end(&mut out).unwrap();
    out
}

fn streaming_round_trip(b: Backend) {
    let blobs = &b.blobs;
    let key = BlobStore::file_key("alice", "batch-1", "f1");
    // Larger than one multipart part, not a multiple of any buffer size.
    let data: Vec<u8> = (0..21_000_017u32).map(|i| (i % 251) as u8).collect();
    let (size, digest) = blobs.put_reader(&key, &data[..]).unwrap();
    assert_eq!(size, data.len() as u64);
    assert_eq!(digest, <[u8; 32]>::from(Sha256::digest(&data)));
    assert_eq!(blobs.open(&key).unwrap().size(), size);
    assert_eq!(read_all(blobs, &key), data);
    assert_eq!(blobs.head(&key).unwrap().map(|m| m.size), Some(size));
    blobs.put_bytes(&key, b"replaced").unwrap();
    assert_eq!(read_all(blobs, &key), b"replaced");
}

fn listing_and_deleting(b: Backend) {
    let blobs = &b.blobs;
    for (user, n) in [("alice", 3), ("alice2", 2), ("bob", 1)] {
        for i in 0..n {
            let key = BlobStore::file_key(user, "b", &format!("f{i}"));
            blobs.put_bytes(&key, user.as_bytes()).unwrap();
        }
    }
    let keys: Vec<String> = blobs
        .list(&BlobStore::user_prefix("alice"))
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(
        keys.iter().all(|k| k.starts_with("users/alice/")),
        "{keys:?}"
    );
    assert_eq!(
        blobs
            .delete_prefix(&BlobStore::user_prefix("alice"))
            .unwrap(),
        3
    );
    assert!(
        blobs
            .list(&BlobStore::user_prefix("alice"))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        blobs.list(&BlobStore::user_prefix("alice2")).unwrap().len(),
        2
    );
    let key = BlobStore::file_key("bob", "b", "f0");
    blobs.delete(&key).unwrap();
    blobs.delete(&key).unwrap(); // missing is fine
    assert!(blobs.head(&key).unwrap().is_none());
    assert!(matches!(blobs.open(&key), Err(StoreError::BlobNotFound(_))));
}

fn odd_identifiers(b: Backend) {
    let blobs = &b.blobs;
    for (i, user) in [
        "H:",
        "ὔ.÷𞸤ቘ",
        "a b",
        "%41",
        "..",
        "x#1?y=z",
        "C:\\x",
        "~616c",
    ]
    .iter()
    .enumerate()
    {
        let key = BlobStore::file_key(user, "b", &i.to_string());
        blobs.put_bytes(&key, user.as_bytes()).unwrap();
        assert_eq!(read_all(blobs, &key), user.as_bytes());
        assert_eq!(
            blobs.list(&BlobStore::user_prefix(user)).unwrap().len(),
            1,
            "{user:?}"
        );
    }
}

macro_rules! on_every_blob_store {
    ($($name:ident),* $(,)?) => {
        mod local_folder {
            $( #[test] fn $name() { super::$name(super::local()); } )*
        }
        mod s3 {
            $( #[test] fn $name() { super::$name(super::s3()); } )*
        }
    };
}

on_every_blob_store!(streaming_round_trip, listing_and_deleting, odd_identifiers);

#[test]
fn a_local_folder_cannot_presign() {
    let b = local();
    assert!(!b.blobs.can_presign());
    assert_eq!(
        b.blobs
            .presigned_url(Presign::Get, "x", Duration::from_secs(60))
            .unwrap(),
        None
    );
}

#[test]
fn s3_presigned_urls_reach_the_object_and_refuse_tampering() {
    let (_server, blobs) = s3_server();
    assert!(blobs.can_presign());
    let http = reqwest::blocking::Client::new();
    let key = "uploads/alice/job-1.fzip";

    // PUT through a presigned URL, read back through the store.
    let put = blobs
        .presigned_url(Presign::Put, key, Duration::from_secs(300))
        .unwrap()
        .unwrap();
    let r = http
        .put(&put)
        .body(b"package bytes".to_vec())
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{}: {:?}", r.status(), r.text());
    assert_eq!(read_all(&blobs, key), b"package bytes");

    // GET through a presigned URL.
    let get = blobs
        .presigned_url(Presign::Get, key, Duration::from_secs(300))
        .unwrap()
        .unwrap();
    let r = http.get(&get).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().unwrap().as_ref(), b"package bytes");

    // A changed signature, or another key under the same signature, is refused.
    let sig_at = get.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let mut tampered = get.clone().into_bytes();
    tampered[sig_at] = if tampered[sig_at] == b'0' { b'1' } else { b'0' };
    let r = http
        .get(String::from_utf8(tampered).unwrap())
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    let other = get.replace("job-1.fzip", "job-2.fzip");
    assert_eq!(http.get(&other).send().unwrap().status(), 403);
    // A GET URL does not allow a PUT.
    assert_eq!(
        http.put(&get).body(b"x".to_vec()).send().unwrap().status(),
        403
    );
}
