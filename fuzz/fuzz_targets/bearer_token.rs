//! Bearer tokens: the HS256 check (embedded mode) on arbitrary `Authorization` header text,
//! with a fixed secret. Nothing but a token signed with that secret may authenticate, and then
//! only as the user it names. The corpus holds such a token (`fuzz-user`, valid until 2100).
#![no_main]

use std::sync::LazyLock;

use fzip_server::AuthConfig;
use fzip_server::auth::{Authenticator, EMBEDDED_AUDIENCE, EMBEDDED_ISSUER};
use libfuzzer_sys::fuzz_target;

/// The fuzzing secret; the corpus's valid token is signed with it.
const SECRET: &[u8] = b"fzip-fuzz-secret-fzip-fuzz-secre";
/// Header and claims of the only token signed with [`SECRET`]: whatever the fuzzer changes in
/// them must break the signature.
const SIGNED: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJmdXp6LXVzZXIiLCJleHAiOjQxMDI0NDQ4MDAsImlzcyI6ImZ6aXAiLCJhdWQiOiJmemlwIn0";

static AUTH: LazyLock<Authenticator> = LazyLock::new(|| {
    Authenticator::new(&AuthConfig::Hs256 {
        secret: SECRET.to_vec(),
        issuer: EMBEDDED_ISSUER.into(),
        audience: EMBEDDED_AUDIENCE.into(),
    })
});

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    // In embedded mode nothing waits on I/O, so polling the future once completes it.
    if let Ok(user) = futures::executor::block_on(AUTH.authenticate(Some(header))) {
        assert_eq!(user, "fuzz-user", "authenticated {header:?}");
        assert!(
            header.contains(SIGNED),
            "a forged token authenticated: {header:?}"
        );
    }
});
