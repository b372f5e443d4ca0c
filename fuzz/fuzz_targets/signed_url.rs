//! Signed URLs: `UrlSigner::verify` on arbitrary path and query text (the token is the path
//! segment after `/fzip/files/` or `/fzip/upload/`), with a fixed key; and sign → verify round
//! trips of grants holding arbitrary text.
#![no_main]

use std::sync::LazyLock;

use fzip_server::signing::{Grant, UrlSigner};
use libfuzzer_sys::fuzz_target;

const KEY: &[u8] = b"fzip-fuzz-url-key";
/// 2026-12-01, in ms: the corpus's valid token expires in 2100.
const NOW_MS: i64 = 1_796_083_200_000;

static SIGNER: LazyLock<UrlSigner> = LazyLock::new(|| UrlSigner::new(KEY));

/// The only grant signed with [`KEY`] (the corpus holds its token).
fn known() -> Grant {
    Grant {
        op: "get".into(),
        key: "packages/fuzz-user/job-1.fzip".into(),
        user: "fuzz-user".into(),
        job: "job-1".into(),
        exp: 4_102_444_800_000,
        name: Some("backup_job-1.fzip".into()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // What the router would hand over: the path segment, without the query.
    let path = text.split_once('?').map_or(text, |(path, _query)| path);
    let (ops, token): (&[&str], &str) = if let Some(t) = path.strip_prefix("/fzip/files/") {
        (&["get"], t)
    } else if let Some(t) = path.strip_prefix("/fzip/upload/") {
        (&["put"], t)
    } else {
        (&["get", "put"], path)
    };
    for op in ops {
        if let Ok(grant) = SIGNER.verify(token, op, NOW_MS) {
            assert_eq!(grant, known(), "a forged URL was accepted: {text:?}");
        }
    }

    // Any grant fzip signs verifies, for its operation only, until it expires.
    let mut fields = text.split('\0');
    let mut next = || fields.next().unwrap_or("").to_string();
    let grant = Grant {
        op: next(),
        key: next(),
        user: next(),
        job: next(),
        exp: NOW_MS + 1,
        name: Some(next()).filter(|n| !n.is_empty()),
    };
    let signed = SIGNER.sign(&grant);
    assert_eq!(SIGNER.verify(&signed, &grant.op, NOW_MS), Ok(grant.clone()));
    assert!(
        SIGNER
            .verify(&signed, &format!("{}x", grant.op), NOW_MS)
            .is_err()
    );
    assert!(SIGNER.verify(&signed, &grant.op, NOW_MS + 2).is_err());
});
