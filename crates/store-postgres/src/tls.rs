//! TLS for PostgreSQL connections, with libpq's `sslmode` and `sslrootcert` meanings, by rustls.
//!
//! | `sslmode`              | TLS                               | server certificate checked       |
//! |------------------------|-----------------------------------|----------------------------------|
//! | `disable`              | never                             | —                                |
//! | `allow`, `prefer` (default) | when the server offers it    | no                               |
//! | `require`              | always                            | no; as `verify-ca` when `sslrootcert` is given (libpq's rule) |
//! | `verify-ca`            | always                            | chain to a trusted root          |
//! | `verify-full`          | always                            | chain, and the host name         |
//!
//! `sslrootcert=PATH` names a PEM file of trusted roots; without it (or with
//! `sslrootcert=system`) the operating system's roots are trusted. libpq's `allow` (plain
//! first, TLS if refused) is treated as `prefer`. Client certificates (`sslcert`, `sslkey`) are
//! not supported and are refused with a clear message rather than ignored.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fzip_store::{Result, StoreError};
use postgres::config::SslMode as DriverMode;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    /// Parses an `sslmode` value.
    pub fn parse(value: &str) -> Result<Self> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(StoreError::Database(format!(
                    "sslmode={other} in the database URL is not one of disable, allow, prefer, \
                     require, verify-ca, verify-full"
                )));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// What the driver is told: whether TLS is tried, and whether it is required.
    pub(crate) fn driver(self) -> DriverMode {
        match self {
            SslMode::Disable => DriverMode::Disable,
            SslMode::Prefer => DriverMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverMode::Require,
        }
    }
}

/// Where trusted roots come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootCerts {
    /// The operating system's.
    System,
    /// A PEM file.
    File(PathBuf),
}

/// The TLS settings of a database URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    /// `sslrootcert`, when given.
    pub root_cert: Option<RootCerts>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            mode: SslMode::Prefer,
            root_cert: None,
        }
    }
}

/// How much of the server's certificate is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    Nothing,
    Chain,
    ChainAndName,
}

impl TlsSettings {
    fn check(&self) -> Check {
        match self.mode {
            SslMode::Disable | SslMode::Prefer => Check::Nothing,
            // libpq: with a root certificate given, `require` verifies the chain.
            SslMode::Require if self.root_cert.is_some() => Check::Chain,
            SslMode::Require => Check::Nothing,
            SslMode::VerifyCa => Check::Chain,
            SslMode::VerifyFull => Check::ChainAndName,
        }
    }

    /// The rustls connector for these settings (roots read now, so a missing or unreadable
    /// `sslrootcert` is reported when the URL is parsed, not at the first connection).
    pub(crate) fn connector(&self) -> Result<MakeRustlsConnect> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Database(format!("TLS cannot be set up: {e}")))?;
        let check = self.check();
        let chain = match check {
            Check::Nothing => None,
            Check::Chain | Check::ChainAndName => Some(
                WebPkiServerVerifier::builder_with_provider(
                    Arc::new(self.roots()?),
                    provider.clone(),
                )
                .build()
                .map_err(|e| {
                    StoreError::Database(format!("TLS certificate checks cannot be set up: {e}"))
                })?,
            ),
        };
        let verifier = Arc::new(Verifier {
            check,
            chain,
            provider,
        });
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }

    fn roots(&self) -> Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        match self.root_cert.as_ref().unwrap_or(&RootCerts::System) {
            RootCerts::File(path) => {
                let certs = read_pem(path)?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(StoreError::Database(format!(
                        "sslrootcert={} holds no usable certificate: give a PEM file of the \
                         certificate authorities that signed the server's certificate",
                        path.display()
                    )));
                }
            }
            RootCerts::System => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err(StoreError::Database(format!(
                        "sslmode={} needs trusted root certificates and the system has none \
                         readable; name a PEM file with sslrootcert=PATH",
                        self.mode.as_str()
                    )));
                }
            }
        }
        Ok(roots)
    }
}

fn read_pem(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let unreadable = |e: &dyn std::fmt::Display| {
        StoreError::Database(format!(
            "sslrootcert={} cannot be read: {e}",
            path.display()
        ))
    };
    CertificateDer::pem_file_iter(path)
        .map_err(|e| unreadable(&e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| unreadable(&e))
}

/// Checks the server's certificate as much as the mode asks. Whatever the mode, the
/// handshake's signatures are checked, so the connection is encrypted to the holder of the
/// certificate presented; `prefer` and `require` without roots accept anyone's certificate, as
/// libpq does.
#[derive(Debug)]
struct Verifier {
    check: Check,
    /// The chain (and name) check, unless `check` is [`Check::Nothing`].
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            // verify-ca: the name in the certificate is not compared with the host's.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if self.check == Check::Chain => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_as_libpq_names_them() {
        assert_eq!(SslMode::parse("allow").ok(), Some(SslMode::Prefer));
        assert_eq!(
            SslMode::parse("verify-full").ok(),
            Some(SslMode::VerifyFull)
        );
        assert!(SslMode::parse("on").is_err());
    }

    #[test]
    fn require_with_a_root_checks_the_chain() {
        let mut s = TlsSettings {
            mode: SslMode::Require,
            root_cert: None,
        };
        assert_eq!(s.check(), Check::Nothing);
        s.root_cert = Some(RootCerts::File("/x.pem".into()));
        assert_eq!(s.check(), Check::Chain);
        s.mode = SslMode::VerifyFull;
        assert_eq!(s.check(), Check::ChainAndName);
    }

    #[test]
    fn a_missing_root_file_is_named() {
        let s = TlsSettings {
            mode: SslMode::VerifyCa,
            root_cert: Some(RootCerts::File("/no/such/root.pem".into())),
        };
        let Err(e) = s.connector() else {
            panic!("a missing sslrootcert was accepted")
        };
        assert!(e.to_string().contains("/no/such/root.pem"), "{e}");
    }
}
