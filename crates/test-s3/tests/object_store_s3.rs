//! Drives the in-process S3 server through object_store's S3 client and plain HTTP.
//!
//! Every test is a plain synchronous `#[test]` that creates its own tokio runtime after the server
//! has started, as fzip's tests do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use fzip_test_s3::S3Server;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{
    Attribute, Attributes, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    UpdateVersion, WriteMultipart,
};
use reqwest::Method;
use tokio::io::AsyncWriteExt;

const BUCKET: &str = "fzip-test";

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// The explicit configuration: endpoint, path-style, plain HTTP, credentials, region, bucket.
fn store(server: &S3Server) -> AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(server.endpoint())
        .with_virtual_hosted_style_request(false)
        .with_allow_http(true)
        .with_access_key_id(server.access_key())
        .with_secret_access_key(server.secret_key())
        .with_region(server.region())
        .with_bucket_name(server.bucket())
        .build()
        .unwrap()
}

/// Deterministic, incompressible-looking bytes.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn put_get_head_list_delete_round_trip() {
    let server = S3Server::start(BUCKET).unwrap();
    assert!(server.endpoint().starts_with("http://127.0.0.1:"));
    let s3 = store(&server);
    block_on(async {
        let a = Path::from("packages/2024/a.zip");
        let b = Path::from("packages/2024/b.zip");
        let c = Path::from("packages/2025/c.zip");
        let odd = Path::from("odd keys/with space+plus=eq&amp ü.zip");
        let other = Path::from("packages-other/d.zip");
        let empty = Path::from("empty");
        for (i, p) in [&a, &b, &c, &odd, &other].into_iter().enumerate() {
            s3.put(p, PutPayload::from(format!("content {i} of {p}")))
                .await
                .unwrap();
        }
        s3.put(&empty, PutPayload::new()).await.unwrap();

        // get
        let got = s3.get(&a).await.unwrap();
        assert_eq!(
            got.meta.size,
            "content 0 of packages/2024/a.zip".len() as u64
        );
        assert!(got.meta.e_tag.is_some());
        assert_eq!(
            got.bytes().await.unwrap(),
            Bytes::from("content 0 of packages/2024/a.zip")
        );
        let got = s3.get(&odd).await.unwrap().bytes().await.unwrap();
        assert_eq!(got, Bytes::from(format!("content 3 of {odd}")));
        assert!(
            s3.get(&empty)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .is_empty()
        );

        // range get
        let part = s3.get_range(&a, 8..9).await.unwrap();
        assert_eq!(part, Bytes::from("0"));

        // head
        let meta = s3.head(&b).await.unwrap();
        assert_eq!(meta.location, b);
        assert_eq!(meta.size, "content 1 of packages/2024/b.zip".len() as u64);
        let put_etag = s3.put(&b, PutPayload::from("changed")).await.unwrap().e_tag;
        let meta = s3.head(&b).await.unwrap();
        assert_eq!(
            meta.e_tag, put_etag,
            "HEAD ETag equals the PUT response ETag"
        );
        assert!(matches!(
            s3.head(&Path::from("packages/missing.zip")).await,
            Err(object_store::Error::NotFound { .. })
        ));

        // list: a prefix matches whole path segments only ("packages" excludes "packages-other")
        let mut listed: Vec<String> = s3
            .list(Some(&Path::from("packages")))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap();
        listed.sort();
        assert_eq!(listed, [a.to_string(), b.to_string(), c.to_string()]);
        let all: Vec<_> = s3.list(None).try_collect().await.unwrap();
        assert_eq!(all.len(), 6);

        // list with delimiter
        let by_dir = s3
            .list_with_delimiter(Some(&Path::from("packages")))
            .await
            .unwrap();
        let mut dirs: Vec<String> = by_dir
            .common_prefixes
            .iter()
            .map(ToString::to_string)
            .collect();
        dirs.sort();
        assert_eq!(dirs, ["packages/2024", "packages/2025"]);
        assert!(by_dir.objects.is_empty());

        // copy
        let copied = Path::from("copies/a.zip");
        s3.copy(&a, &copied).await.unwrap();
        assert_eq!(
            s3.get(&copied).await.unwrap().bytes().await.unwrap(),
            Bytes::from("content 0 of packages/2024/a.zip")
        );

        // delete
        s3.delete(&a).await.unwrap();
        assert!(matches!(
            s3.get(&a).await,
            Err(object_store::Error::NotFound { .. })
        ));
        assert!(matches!(
            s3.head(&a).await,
            Err(object_store::Error::NotFound { .. })
        ));
        let left: Vec<_> = s3
            .list(Some(&Path::from("packages/2024")))
            .try_collect()
            .await
            .unwrap();
        assert_eq!(left.len(), 1);
    });
    // Objects are plain files under root/bucket.
    assert_eq!(
        std::fs::read(server.object_path("packages/2025/c.zip")).unwrap(),
        b"content 2 of packages/2025/c.zip"
    );
}

#[test]
fn content_type_round_trips() {
    let server = S3Server::start(BUCKET).unwrap();
    let s3 = store(&server);
    block_on(async {
        let p = Path::from("typed.zip");
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, "application/zip".into());
        let opts = PutOptions {
            attributes,
            ..PutOptions::default()
        };
        s3.put_opts(&p, PutPayload::from_static(b"PK"), opts)
            .await
            .unwrap();
        let got = s3.get(&p).await.unwrap();
        assert_eq!(
            got.attributes
                .get(&Attribute::ContentType)
                .map(|v| v.as_ref()),
            Some("application/zip")
        );
    });
}

#[test]
fn multipart_upload_over_10_mib_through_buf_writer() {
    let server = S3Server::start(BUCKET).unwrap();
    let s3: Arc<dyn ObjectStore> = Arc::new(store(&server));
    let data = pattern(12 * 1024 * 1024 + 12_345, 1);
    block_on(async {
        let p = Path::from("big/buffered.bin");
        // 5 MiB buffer: 12 MiB becomes three parts (S3's minimum part size is 5 MiB).
        let mut w = BufWriter::with_capacity(Arc::clone(&s3), p.clone(), 5 * 1024 * 1024);
        for chunk in data.chunks(1024 * 1024 + 7) {
            w.write_all(chunk).await.unwrap();
        }
        w.shutdown().await.unwrap();

        let meta = s3.head(&p).await.unwrap();
        assert_eq!(meta.size, data.len() as u64);
        // A multipart ETag has the S3 "-<parts>" suffix.
        let e_tag = meta.e_tag.unwrap_or_default();
        assert!(e_tag.ends_with("-3\""), "multipart ETag {e_tag}");
        let back = s3.get(&p).await.unwrap().bytes().await.unwrap();
        assert!(back == data, "multipart object reads back identical bytes");
    });
    assert_eq!(
        std::fs::read(server.object_path("big/buffered.bin")).unwrap(),
        data
    );
}

#[test]
fn multipart_upload_through_put_multipart() {
    let server = S3Server::start(BUCKET).unwrap();
    let s3 = store(&server);
    let data = pattern(11 * 1024 * 1024, 2);
    block_on(async {
        let p = Path::from("big/put_multipart.bin");
        let upload = s3.put_multipart(&p).await.unwrap();
        let mut w = WriteMultipart::new_with_chunk_size(upload, 5 * 1024 * 1024);
        for chunk in data.chunks(3 * 1024 * 1024) {
            w.write(chunk);
        }
        w.finish().await.unwrap();
        let back = s3.get(&p).await.unwrap().bytes().await.unwrap();
        assert!(back == data, "multipart object reads back identical bytes");

        // An aborted upload leaves no object behind.
        let mut upload = s3
            .put_multipart(&Path::from("big/aborted.bin"))
            .await
            .unwrap();
        upload
            .put_part(PutPayload::from(vec![7u8; 5 * 1024 * 1024]))
            .await
            .unwrap();
        upload.abort().await.unwrap();
        assert!(matches!(
            s3.head(&Path::from("big/aborted.bin")).await,
            Err(object_store::Error::NotFound { .. })
        ));
    });
}

/// Replaces one hex digit of the `X-Amz-Signature` query parameter.
fn tamper_signature(url: &str) -> String {
    let at = url
        .find("X-Amz-Signature=")
        .expect("presigned URL has a signature")
        + "X-Amz-Signature=".len();
    let mut bytes = url.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    String::from_utf8(bytes).unwrap()
}

#[test]
fn presigned_get_url_works_and_tampering_gets_403() {
    let server = S3Server::start(BUCKET).unwrap();
    let s3 = store(&server);
    block_on(async {
        let p = Path::from("shared/package one.zip");
        s3.put(&p, PutPayload::from_static(b"presigned bytes"))
            .await
            .unwrap();
        let url = s3
            .signed_url(Method::GET, &p, Duration::from_secs(300))
            .await
            .unwrap();
        assert!(
            url.as_str()
                .starts_with(&format!("{}/{BUCKET}/", server.endpoint())),
            "path-style: {url}"
        );
        assert!(url.as_str().contains("X-Amz-Algorithm=AWS4-HMAC-SHA256"));

        let http = reqwest::Client::new();
        let ok = http.get(url.as_str()).send().await.unwrap();
        assert_eq!(ok.status(), 200);
        assert_eq!(
            ok.bytes().await.unwrap(),
            Bytes::from_static(b"presigned bytes")
        );

        let bad = http
            .get(tamper_signature(url.as_str()))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 403);
        let body = bad.text().await.unwrap();
        assert!(body.contains("SignatureDoesNotMatch"), "{body}");

        // No signature at all: anonymous access is refused too.
        let anonymous = http
            .get(format!(
                "{}/{BUCKET}/shared/package%20one.zip",
                server.endpoint()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), 403);

        // A URL signed with the wrong secret is refused.
        let wrong = AmazonS3Builder::new()
            .with_endpoint(server.endpoint())
            .with_allow_http(true)
            .with_access_key_id(server.access_key())
            .with_secret_access_key("not-the-secret")
            .with_region(server.region())
            .with_bucket_name(server.bucket())
            .build()
            .unwrap();
        let url = wrong
            .signed_url(Method::GET, &p, Duration::from_secs(300))
            .await
            .unwrap();
        assert_eq!(http.get(url.as_str()).send().await.unwrap().status(), 403);
    });
}

#[test]
fn presigned_put_url_uploads() {
    let server = S3Server::start(BUCKET).unwrap();
    let s3 = store(&server);
    block_on(async {
        let p = Path::from("uploads/from-browser.zip");
        let url = s3
            .signed_url(Method::PUT, &p, Duration::from_secs(300))
            .await
            .unwrap();
        let http = reqwest::Client::new();
        let resp = http
            .put(url.as_str())
            .body(b"uploaded via presigned PUT".to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().contains_key("etag"));
        assert_eq!(
            s3.get(&p).await.unwrap().bytes().await.unwrap(),
            Bytes::from_static(b"uploaded via presigned PUT")
        );

        let resp = http
            .put(tamper_signature(url.as_str()))
            .body("evil")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403);
        assert_eq!(
            s3.get(&p).await.unwrap().bytes().await.unwrap(),
            Bytes::from_static(b"uploaded via presigned PUT")
        );
    });
}

/// A page on another origin can PUT to a presigned URL: the preflight is answered (without
/// credentials, as S3 answers it) and the upload's answer allows the origin and exposes ETag.
#[test]
fn browsers_may_upload_across_origins() {
    let server = S3Server::start(BUCKET).unwrap();
    let s3 = store(&server);
    block_on(async {
        let p = Path::from("uploads/cors.zip");
        let url = s3
            .signed_url(Method::PUT, &p, Duration::from_secs(300))
            .await
            .unwrap();
        let http = reqwest::Client::new();
        let preflight = http
            .request(Method::OPTIONS, url.as_str())
            .header("origin", "http://127.0.0.1:8080")
            .header("access-control-request-method", "PUT")
            .header("access-control-request-headers", "content-type")
            .send()
            .await
            .unwrap();
        assert_eq!(preflight.status(), 200);
        let h = preflight.headers();
        assert_eq!(h["access-control-allow-origin"], "*");
        assert!(
            h["access-control-allow-methods"]
                .to_str()
                .unwrap()
                .contains("PUT")
        );
        assert_eq!(h["access-control-allow-headers"], "content-type");

        let put = http
            .put(url.as_str())
            .header("origin", "http://127.0.0.1:8080")
            .header("content-type", "application/zip")
            .body(b"from a page".to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 200);
        assert_eq!(put.headers()["access-control-allow-origin"], "*");
        assert_eq!(put.headers()["access-control-expose-headers"], "ETag");
        assert_eq!(
            s3.get(&p).await.unwrap().bytes().await.unwrap(),
            Bytes::from_static(b"from a page")
        );
        // Signatures are still checked: CORS lets the browser send, not anyone write.
        let forged = http
            .put(tamper_signature(url.as_str()))
            .header("origin", "http://127.0.0.1:8080")
            .body("evil")
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), 403);
    });
}

#[test]
fn conditional_puts() {
    let server = S3Server::start(BUCKET).unwrap();
    let s3 = store(&server);
    block_on(async {
        let p = Path::from("locks/once");
        let first = s3
            .put_opts(
                &p,
                PutPayload::from_static(b"first"),
                PutMode::Create.into(),
            )
            .await
            .unwrap();
        let again = s3
            .put_opts(
                &p,
                PutPayload::from_static(b"second"),
                PutMode::Create.into(),
            )
            .await;
        assert!(
            matches!(again, Err(object_store::Error::AlreadyExists { .. })),
            "{again:?}"
        );
        assert_eq!(
            s3.get(&p).await.unwrap().bytes().await.unwrap(),
            Bytes::from_static(b"first")
        );

        // Update succeeds with the current ETag and fails with a stale one.
        let current = UpdateVersion {
            e_tag: first.e_tag.clone(),
            version: None,
        };
        let updated = s3
            .put_opts(
                &p,
                PutPayload::from_static(b"third"),
                PutMode::Update(current.clone()).into(),
            )
            .await
            .unwrap();
        assert_ne!(updated.e_tag, first.e_tag);
        let stale = s3
            .put_opts(
                &p,
                PutPayload::from_static(b"fourth"),
                PutMode::Update(current).into(),
            )
            .await;
        assert!(
            matches!(stale, Err(object_store::Error::Precondition { .. })),
            "{stale:?}"
        );
        assert_eq!(
            s3.get(&p).await.unwrap().bytes().await.unwrap(),
            Bytes::from_static(b"third")
        );
    });
}

/// `S3Server::env` read the way `AmazonS3Builder::from_env` reads the process environment
/// (lower-cased key parsed as an `AmazonS3ConfigKey`), without mutating this process's
/// environment.
#[test]
fn env_configures_object_store() {
    let server = S3Server::start(BUCKET).unwrap();
    let names: Vec<String> = server.env().into_iter().map(|(k, _)| k).collect();
    for expected in [
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ALLOW_HTTP",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected}");
    }
    let mut builder = AmazonS3Builder::new();
    for (key, value) in server.env() {
        let key: AmazonS3ConfigKey = key.to_ascii_lowercase().parse().unwrap();
        builder = builder.with_config(key, value);
    }
    let s3 = builder.with_bucket_name(server.bucket()).build().unwrap();
    block_on(async {
        s3.put(&Path::from("from-env"), PutPayload::from_static(b"ok"))
            .await
            .unwrap();
        assert_eq!(
            s3.get(&Path::from("from-env"))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap(),
            Bytes::from_static(b"ok")
        );
    });
}

const CHILD_MARKER: &str = "FZIP_TEST_S3_CHILD";

/// A separate process configured only through `S3Server::env` reaches the server over TCP.
#[test]
fn child_process_reaches_server_through_env() {
    let server = S3Server::start(BUCKET).unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child
        .args([
            "--exact",
            "child_process_body",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_MARKER, server.bucket());
    for (key, _) in std::env::vars() {
        if key.starts_with("AWS_") {
            child.env_remove(key);
        }
    }
    let out = child.envs(server.env()).output().unwrap();
    assert!(
        out.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
    assert_eq!(
        std::fs::read(server.object_path("written-by-child")).unwrap(),
        b"hello from the child"
    );
}

/// Runs only as the child of `child_process_reaches_server_through_env`.
#[test]
#[ignore = "runs as a child process of child_process_reaches_server_through_env"]
fn child_process_body() {
    let Ok(bucket) = std::env::var(CHILD_MARKER) else {
        return;
    };
    let s3 = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .build()
        .unwrap();
    block_on(async {
        s3.put(
            &Path::from("written-by-child"),
            PutPayload::from_static(b"hello from the child"),
        )
        .await
        .unwrap();
    });
}

#[test]
fn usable_inside_a_tokio_runtime_and_stops_on_drop() {
    let addr = block_on(async {
        // Starting and dropping the server inside async code must not panic.
        let server = S3Server::start(BUCKET).unwrap();
        let s3 = store(&server);
        s3.put(&Path::from("x"), PutPayload::from_static(b"x"))
            .await
            .unwrap();
        let addr = server.addr();
        let root = server.root().to_path_buf();
        drop(server);
        assert!(!root.exists(), "the root folder is deleted on drop");
        addr
    });
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "nothing listens after drop"
    );
}

#[test]
fn several_servers_and_buckets() {
    let one = S3Server::start("bucket-one").unwrap();
    let two = S3Server::start("bucket-two").unwrap();
    assert_ne!(one.endpoint(), two.endpoint());
    one.create_bucket("extra").unwrap();
    assert!(S3Server::start("Bad/Name").is_err());
    block_on(async {
        store(&one)
            .put(&Path::from("k"), PutPayload::from_static(b"1"))
            .await
            .unwrap();
        store(&two)
            .put(&Path::from("k"), PutPayload::from_static(b"2"))
            .await
            .unwrap();
        let extra = AmazonS3Builder::new()
            .with_endpoint(one.endpoint())
            .with_allow_http(true)
            .with_access_key_id(one.access_key())
            .with_secret_access_key(one.secret_key())
            .with_region(one.region())
            .with_bucket_name("extra")
            .build()
            .unwrap();
        extra
            .put(&Path::from("k"), PutPayload::from_static(b"3"))
            .await
            .unwrap();
        assert_eq!(
            store(&one)
                .get(&Path::from("k"))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap(),
            Bytes::from_static(b"1")
        );
        assert_eq!(
            store(&two)
                .get(&Path::from("k"))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap(),
            Bytes::from_static(b"2")
        );
        // Any signing region is accepted.
        let other_region = AmazonS3Builder::new()
            .with_endpoint(one.endpoint())
            .with_allow_http(true)
            .with_access_key_id(one.access_key())
            .with_secret_access_key(one.secret_key())
            .with_region("eu-central-1")
            .with_bucket_name(one.bucket())
            .build()
            .unwrap();
        assert_eq!(
            other_region
                .get(&Path::from("k"))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap(),
            Bytes::from_static(b"1")
        );
        // A bucket that does not exist: reads fail, but (s3s-fs quirk) a PUT creates the folder.
        let missing = AmazonS3Builder::new()
            .with_endpoint(one.endpoint())
            .with_allow_http(true)
            .with_access_key_id(one.access_key())
            .with_secret_access_key(one.secret_key())
            .with_region(one.region())
            .with_bucket_name("no-such-bucket")
            .build()
            .unwrap();
        let listed: Result<Vec<_>, _> = missing.list(None).try_collect().await;
        assert!(listed.is_err(), "{listed:?}");
        assert!(missing.get(&Path::from("k")).await.is_err());
        missing
            .put(&Path::from("k"), PutPayload::from_static(b"4"))
            .await
            .unwrap();
        assert!(one.root().join("no-such-bucket").is_dir());
    });
}

#[test]
fn empty_folders_after_delete_and_pagination() {
    let server = S3Server::start(BUCKET).unwrap();
    let s3 = store(&server);
    block_on(async {
        let p = Path::from("gone/soon/x.zip");
        s3.put(&p, PutPayload::from_static(b"x")).await.unwrap();
        s3.put(&Path::from("kept.zip"), PutPayload::from_static(b"k"))
            .await
            .unwrap();
        s3.delete(&p).await.unwrap();
        // Deleting a missing key succeeds, as on S3.
        s3.delete(&p).await.unwrap();
        let all: Vec<_> = s3.list(None).try_collect().await.unwrap();
        let keys: Vec<String> = all.iter().map(|m| m.location.to_string()).collect();
        assert_eq!(keys, ["kept.zip"]);
        let by_dir = s3.list_with_delimiter(None).await.unwrap();
        let dirs: Vec<String> = by_dir
            .common_prefixes
            .iter()
            .map(ToString::to_string)
            .collect();
        // The emptied folders stay on disk but are not reported as common prefixes.
        assert!(by_dir.common_prefixes.is_empty(), "{dirs:?}");
        assert_eq!(by_dir.objects.len(), 1);

        // More than one page (1000 keys) of listing.
        let n = 1_050;
        futures::stream::iter(0..n)
            .map(|i| {
                let s3 = &s3;
                async move {
                    s3.put(
                        &Path::from(format!("many/{i:05}")),
                        PutPayload::from(vec![1u8]),
                    )
                    .await
                }
            })
            .buffer_unordered(16)
            .try_collect::<Vec<_>>()
            .await
            .unwrap();
        let many: Vec<_> = s3
            .list(Some(&Path::from("many")))
            .try_collect()
            .await
            .unwrap();
        assert_eq!(many.len(), n);
        let after: Vec<_> = s3
            .list_with_offset(Some(&Path::from("many")), &Path::from("many/01000"))
            .try_collect()
            .await
            .unwrap();
        assert_eq!(after.len(), n - 1001);
    });
}
