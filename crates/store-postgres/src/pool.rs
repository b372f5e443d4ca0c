//! Connections: the URL (with fzip's `schema` parameter), a small pool of open connections, and
//! per-connection prepared statements.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use fzip_store::{Result, StoreError};
use postgres::{Client, Config, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::pg_err;
use crate::tls::{RootCerts, SslMode, TlsSettings};

/// Where the database is: a `postgres://` URL, optionally with `schema=NAME` (fzip's own
/// parameter: every table lives in that schema, created by `fzip migrate`).
#[derive(Clone)]
pub struct PgTarget {
    pub(crate) config: Config,
    pub(crate) schema: Option<String>,
    /// `bulk=rows` asks for row-by-row inserts instead of `COPY` (for measuring only).
    pub(crate) row_by_row: bool,
    /// `sslmode` and `sslrootcert`, as libpq reads them.
    pub(crate) tls: TlsSettings,
    connector: MakeRustlsConnect,
    description: String,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

/// `%XX` escapes in a URL parameter's value (a path may hold `/` as `%2F`).
fn percent_decode(value: &str) -> Result<String> {
    percent_encoding::percent_decode_str(value)
        .decode_utf8()
        .map(|v| v.into_owned())
        .map_err(|_| {
            StoreError::Database(format!(
                "{value:?} in the database URL is not valid percent-encoded UTF-8"
            ))
        })
}

fn valid_schema(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl PgTarget {
    /// Parses `postgres://user[:password]@host[:port]/database[?param=value&…]`. Besides the
    /// driver's parameters (`sslmode`, `connect_timeout`, `application_name`, …), `schema=NAME`
    /// puts fzip's tables in that schema (lower-case letters, digits and `_`), and `bulk=rows`
    /// makes restores insert row by row instead of with `COPY` (only to measure the difference).
    /// `sslmode` and `sslrootcert` mean what they mean to libpq (see [`crate::tls`]).
    pub fn parse(url: &str) -> Result<Self> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::Database(
                "a PostgreSQL URL starts with postgres:// (postgres://user@host:5432/database)"
                    .into(),
            ));
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        let mut schema = None;
        let mut row_by_row = false;
        let mut tls = TlsSettings::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair {
                "bulk=rows" => {
                    row_by_row = true;
                    continue;
                }
                "bulk=copy" => continue,
                _ => {}
            }
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "sslmode" => {
                    tls.mode = SslMode::parse(value)?;
                    continue;
                }
                "sslrootcert" => {
                    let value = percent_decode(value)?;
                    tls.root_cert = Some(if value == "system" {
                        RootCerts::System
                    } else {
                        RootCerts::File(value.into())
                    });
                    continue;
                }
                "sslcert" | "sslkey" | "sslpassword" => {
                    return Err(StoreError::Database(format!(
                        "{key} in the database URL: client certificates are not supported; \
                         authenticate with a password (postgres://user:password@host/db) instead"
                    )));
                }
                _ => {}
            }
            match pair.strip_prefix("schema=") {
                Some(name) if valid_schema(name) => schema = Some(name.to_string()),
                Some(name) => {
                    return Err(StoreError::Database(format!(
                        "schema {name:?} in the database URL is not a plain name (lower-case letters, digits, _)"
                    )));
                }
                None => kept.push(pair),
            }
        }
        let rebuilt = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut config: Config = rebuilt
            .parse()
            .map_err(|e| StoreError::Database(format!("the database URL cannot be used: {e}")))?;
        if config.get_application_name().is_none() {
            config.application_name("fzip");
        }
        config.ssl_mode(tls.mode.driver());
        let connector = tls.connector()?;
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .map(|h| match h {
                postgres::config::Host::Tcp(name) => name.clone(),
                postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let mut shown = Vec::new();
        if let Some(s) = &schema {
            shown.push(format!("schema={s}"));
        }
        if tls.mode != SslMode::Prefer {
            shown.push(format!("sslmode={}", tls.mode.as_str()));
        }
        let description = format!(
            "postgres://{}@{}:{port}/{}{}",
            config.get_user().unwrap_or(""),
            hosts.join(","),
            config.get_dbname().unwrap_or(""),
            if shown.is_empty() {
                String::new()
            } else {
                format!("?{}", shown.join("&"))
            }
        );
        Ok(PgTarget {
            config,
            schema,
            row_by_row,
            tls,
            connector,
            description,
        })
    }

    /// The URL without its password, for messages.
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// `sslmode` and `sslrootcert`, as read from the URL.
    pub fn tls(&self) -> &TlsSettings {
        &self.tls
    }

    /// Connects once and says how: the TLS version (`"TLSv1.3"`) when the connection is
    /// encrypted, `None` when it is not.
    pub fn tls_version(&self) -> Result<Option<String>> {
        let mut client = self.connect_plain()?;
        let row = client
            .query_opt(
                "SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl",
                &[],
            )
            .map_err(pg_err)?;
        Ok(row.and_then(|r| r.get::<_, Option<String>>(0)))
    }

    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// A new connection, without fzip's schema on its search path (TLS as the URL says).
    pub(crate) fn connect_plain(&self) -> Result<Client> {
        self.config.connect(self.connector.clone()).map_err(|e| {
            let text = crate::error_text(&e);
            let hint = if text.contains("invalid peer certificate") {
                match &self.tls.root_cert {
                    Some(_) => {
                        "; check that sslrootcert names the authority that signed the \
                                server's certificate, and that the host in the URL is a name \
                                the certificate holds (verify-full)"
                    }
                    None => {
                        "; name the authority that signed the server's certificate with \
                             sslrootcert=PATH"
                    }
                }
            } else {
                ""
            };
            StoreError::Database(format!(
                "cannot connect to {}: {text}{hint}",
                self.description
            ))
        })
    }

    /// A new connection, with fzip's schema first on its search path.
    pub(crate) fn connect(&self) -> Result<Client> {
        let mut client = self.connect_plain()?;
        if let Some(schema) = &self.schema {
            client
                .batch_execute(&format!("SET search_path TO \"{schema}\""))
                .map_err(pg_err)?;
        }
        Ok(client)
    }
}

/// An open connection and the statements prepared on it.
pub(crate) struct Conn {
    pub(crate) client: Client,
    statements: HashMap<String, Statement>,
}

impl Conn {
    /// A statement prepared once per connection.
    pub(crate) fn prepared(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let statement = self.client.prepare(sql).map_err(pg_err)?;
        if self.statements.len() > 256 {
            self.statements.clear();
        }
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }
}

/// A few open connections kept for reuse.
pub(crate) struct Pool {
    pub(crate) target: PgTarget,
    idle: Mutex<Vec<Conn>>,
    max_idle: usize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("target", &self.target)
            .finish()
    }
}

impl Pool {
    pub(crate) fn new(target: PgTarget, max_idle: usize) -> Self {
        Pool {
            target,
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    pub(crate) fn get(&self) -> Result<Pooled<'_>> {
        let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
        let conn = match idle {
            Some(c) if !c.client.is_closed() => c,
            _ => Conn {
                client: self.target.connect()?,
                statements: HashMap::new(),
            },
        };
        Ok(Pooled {
            pool: self,
            conn: Some(conn),
            in_transaction: false,
        })
    }
}

/// A connection borrowed from the pool; back to it when dropped (rolled back first if a
/// transaction is still open, and discarded if that fails).
pub(crate) struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
    pub(crate) in_transaction: bool,
}

impl Pooled<'_> {
    /// Starts a transaction with `begin` (`BEGIN …`).
    pub(crate) fn begin(&mut self, begin: &str) -> Result<()> {
        self.client.batch_execute(begin).map_err(pg_err)?;
        self.in_transaction = true;
        Ok(())
    }

    pub(crate) fn commit(&mut self) -> Result<()> {
        self.in_transaction = false;
        self.client.batch_execute("COMMIT").map_err(pg_err)
    }
}

impl Deref for Pooled<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        // Present from construction until drop.
        match &self.conn {
            Some(c) => c,
            None => unreachable_conn(),
        }
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        match &mut self.conn {
            Some(c) => c,
            None => unreachable_conn(),
        }
    }
}

#[allow(clippy::panic)]
fn unreachable_conn() -> ! {
    panic!("a pooled connection is used after it was returned")
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if self.in_transaction && conn.client.batch_execute("ROLLBACK").is_err() {
            close(vec![conn]); // broken
            return;
        }
        if conn.client.is_closed() {
            return;
        }
        match self.pool.idle.lock() {
            Ok(mut idle) if idle.len() < self.pool.max_idle => idle.push(conn),
            _ => close(vec![conn]),
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let idle = match self.idle.get_mut() {
            Ok(v) => std::mem::take(v),
            Err(poisoned) => std::mem::take(poisoned.into_inner()),
        };
        close(idle);
    }
}

/// Closes connections on a thread of their own: the driver blocks on its own runtime to say
/// goodbye, which must not happen on an async runtime's thread (a server dropping its store
/// while shutting down, say).
fn close(conns: Vec<Conn>) {
    if conns.is_empty() {
        return;
    }
    if let Ok(handle) = std::thread::Builder::new()
        .name("fzip-pg-close".into())
        .spawn(move || drop(conns))
    {
        let _ = handle.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_schema_apart_and_hide_the_password() {
        let t = PgTarget::parse(
            "postgres://fzip:secret@db.example:6543/profiles?schema=tenant_1&connect_timeout=5",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.schema(), Some("tenant_1"));
        assert_eq!(
            t.describe(),
            "postgres://fzip@db.example:6543/profiles?schema=tenant_1"
        );
        assert!(!t.describe().contains("secret"));
        assert!(PgTarget::parse("postgres://h/db?schema=Bad;drop").is_err());
        assert!(PgTarget::parse("mysql://h/db").is_err());
    }
}
