//! TLS to PostgreSQL, against the real server: libpq's `sslmode`s, `sslrootcert`, and the
//! errors a wrong certificate or a wrong name gives. Needs a server with `ssl = on` whose
//! certificate file this process can read (Debian's default: the snakeoil certificate for
//! `localhost`); otherwise the test says loudly that it skipped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use fzip_store_postgres::PgTarget;
use fzip_store_postgres::testing::base_url;

fn with(base: &str, params: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{params}")
}

/// The server's certificate file, when TLS can be tested here.
fn server_certificate(base: &str) -> Option<String> {
    let skip = |why: String| {
        eprintln!("\n!!! SKIPPED: PostgreSQL TLS test: {why}\n");
        None
    };
    let mut client =
        match postgres::Client::connect(&with(base, "sslmode=disable"), postgres::NoTls) {
            Ok(c) => c,
            Err(e) if std::env::var("FZIP_SKIP_POSTGRES").is_ok_and(|v| v == "1") => {
                return skip(format!("no server ({e})"));
            }
            Err(e) => panic!("PostgreSQL tests need a server at {base}: {e}"),
        };
    let ssl: String = client.query_one("SHOW ssl", &[]).unwrap().get(0);
    if ssl != "on" {
        return skip(format!("the server at {base} has ssl = {ssl}"));
    }
    let file: String = client.query_one("SHOW ssl_cert_file", &[]).unwrap().get(0);
    let path = if file.starts_with('/') {
        file
    } else {
        let dir: String = client.query_one("SHOW data_directory", &[]).unwrap().get(0);
        format!("{dir}/{file}")
    };
    if std::fs::read(&path).is_err() {
        return skip(format!(
            "the server's certificate {path} cannot be read here"
        ));
    }
    Some(path)
}

#[test]
fn sslmodes_against_the_real_server() {
    let base = base_url();
    let Some(cert) = server_certificate(&base) else {
        return;
    };
    let version = |url: &str| PgTarget::parse(url).and_then(|t| t.tls_version());

    // Plain when asked; encrypted by default (prefer) and when required.
    assert_eq!(version(&with(&base, "sslmode=disable")).unwrap(), None);
    let default = version(&base).unwrap();
    assert!(
        default.as_deref().is_some_and(|v| v.starts_with("TLS")),
        "{default:?}"
    );
    assert!(version(&with(&base, "sslmode=require")).unwrap().is_some());

    // verify-ca: the server's certificate chains to the given root.
    let root = format!("sslrootcert={cert}");
    let ok = version(&with(&base, &format!("sslmode=verify-ca&{root}"))).unwrap();
    assert!(ok.is_some());
    // … and not to a root that did not sign it, with verify-ca or with `require` and a root
    // given (libpq's rule: then `require` checks the chain too).
    let wrong_root = tempfile_with(CA_THAT_SIGNED_NOTHING);
    for mode in ["verify-ca", "require"] {
        let e = version(&with(
            &base,
            &format!("sslmode={mode}&sslrootcert={}", wrong_root.display()),
        ))
        .unwrap_err()
        .to_string();
        eprintln!("{mode} with a root that did not sign, refused: {e}");
        assert!(
            e.contains("cannot connect") && e.to_lowercase().contains("certificate"),
            "{mode}: {e}"
        );
    }
    let _ = std::fs::remove_file(&wrong_root);

    // verify-full also compares the host name with the certificate's names.
    let names = certificate_names(&cert);
    if base.contains("@127.0.0.1") && names.iter().any(|n| n == "localhost") {
        let by_name = base.replacen("@127.0.0.1", "@localhost", 1);
        let full = version(&with(&by_name, &format!("sslmode=verify-full&{root}"))).unwrap();
        assert!(full.is_some());
        let e = version(&with(&base, &format!("sslmode=verify-full&{root}")))
            .unwrap_err()
            .to_string();
        eprintln!("verify-full by address, refused: {e}");
        assert!(
            e.contains("NotValidForName") || e.contains("not valid for"),
            "{e}"
        );
        // verify-ca does not look at the name.
        assert!(
            version(&with(&base, &format!("sslmode=verify-ca&{root}")))
                .unwrap()
                .is_some()
        );
    } else {
        eprintln!(
            "!!! SKIPPED: verify-full by name: the certificate names {names:?}, the URL {base}"
        );
    }

    // Whole stores work over verified TLS.
    let schema = fzip_store_postgres::testing::TestSchema::create()
        .unwrap()
        .unwrap();
    let url = with(&schema.url, &format!("sslmode=verify-ca&{root}"));
    let store = fzip_store_postgres::PgStore::open(&url).unwrap();
    assert!(store.target().tls_version().unwrap().is_some());
}

#[test]
fn bad_tls_settings_are_refused_with_the_reason() {
    let base = "postgres://postgres@127.0.0.1:5432/test";
    let e = PgTarget::parse(&format!("{base}?sslmode=on"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("verify-full"), "{e}");
    let e = PgTarget::parse(&format!(
        "{base}?sslmode=verify-ca&sslrootcert=%2Fno%2Froot.pem"
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("/no/root.pem"), "{e}");
    let e = PgTarget::parse(&format!("{base}?sslcert=/c.pem&sslkey=/k.pem"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("client certificates are not supported"), "{e}");
    // The description shows the mode, never a password.
    let t = PgTarget::parse("postgres://u:secret@h:5432/d?sslmode=require").unwrap();
    assert_eq!(t.describe(), "postgres://u@h:5432/d?sslmode=require");
}

/// The names (CN and DNS SANs) of a PEM certificate, by a rough look at its text form.
fn certificate_names(path: &str) -> Vec<String> {
    let out = std::process::Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-subject",
            "-ext",
            "subjectAltName",
            "-in",
            path,
        ])
        .output();
    let Ok(out) = out else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&out.stdout);
    text.split(|c: char| c == ',' || c == '\n' || c == '=' || c == ':' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

fn tempfile_with(text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("fzip-tls-root-{}.pem", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

/// A self-signed CA certificate (made once with openssl) that signed no server's certificate.
const CA_THAT_SIGNED_NOTHING: &str = "-----BEGIN CERTIFICATE-----
MIIBrTCCAVOgAwIBAgIUW+XqrxNOF+57Dz+p4VlbBBR6Pk8wCgYIKoZIzj0EAwIw
KzEpMCcGA1UEAwwgZnppcCB0ZXN0IENBIHRoYXQgc2lnbmVkIG5vdGhpbmcwIBcN
MjYxMTIxMTYzNDUwWhgPMjEyNjEwMjgxNjM0NTBaMCsxKTAnBgNVBAMMIGZ6aXAg
dGVzdCBDQSB0aGF0IHNpZ25lZCBub3RoaW5nMFkwEwYHKoZIzj0CAQYIKoZIzj0D
AQcDQgAE/w6weRC9NljEWbNsC3zmzZ3DYv/4k9Tk+MlxfYNRa1Dau+G/75GYVo9f
qyO8DR1YZ+yJmSIaJBXQylojUPbKtKNTMFEwHQYDVR0OBBYEFPhOVjsuCUqxJh1h
d/XDcinlFwXoMB8GA1UdIwQYMBaAFPhOVjsuCUqxJh1hd/XDcinlFwXoMA8GA1Ud
EwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIhAOekiwMcZZV9JR7s9fOYwAId
l5iJsy1ntGYtt5M22/7uAiBBS4K1K3pC1Jv+7C1BRoyMqimPhG46zeC4yO6V1nkj
/Q==
-----END CERTIFICATE-----
";
