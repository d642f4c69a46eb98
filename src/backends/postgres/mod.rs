//! PostgreSQL backends (feature `postgres`): the audit sink, its verifier and checkpointer, the
//! consent registry, the subject-key store and `Sealed` column types.
//!
//! Every backend owns a small dedicated thread running a single-threaded tokio runtime and its
//! own connection. Synchronous calls (the [`AuditSink`](crate::AuditSink),
//! [`ConsentRegistry`](crate::ConsentRegistry) and [`SubjectKeyStore`](crate::SubjectKeyStore)
//! traits) hand their work to that thread and block on the answer, so they work the same from a
//! plain thread and from inside a tokio runtime (where starting or blocking on a runtime of
//! one's own would panic). The async methods (`record_async`, …) await the same work without
//! blocking the caller's runtime.
//!
//! Every backend parses its URL with [`config`] and connects with [`connect`]: the host rules
//! and, with the feature `postgres-tls`, TLS (`tls.rs`, with the libpq TLS keys tokio-postgres
//! does not parse taken out of the URL by `url.rs`) hold for all of them.

mod audit;
mod column;
mod consent;
mod keys;
mod schema;
mod stream;
#[cfg(feature = "postgres-tls")]
mod tls;
#[cfg(feature = "postgres-tls")]
mod url;
mod worker;

pub use audit::{
    CheckpointSchedule, PgAuditSink, PgAuditSinkBuilder, PgCheckpointer, ScheduleStatus,
};
pub use consent::PgConsent;
pub use keys::PgSubjectKeys;
pub use schema::{Roles, SCHEMA_VERSION, grant, migrate};
pub use stream::{subject_access_pg, verify_pg, verify_pg_with_checkpoints};

use std::sync::Arc;

use tokio_postgres::config::Host;

use crate::error::{AuditError, AuditErrorKind};

/// A parsed connection URL: the driver's configuration and, with TLS, the connector that
/// verifies the server.
#[derive(Debug, Clone)]
pub(crate) struct PgConfig {
    pg: tokio_postgres::Config,
    #[cfg(feature = "postgres-tls")]
    tls: Option<tls::RustlsConnect>,
}

fn rejected(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> AuditError {
    AuditError::with_source(AuditErrorKind::Rejected, e)
}

/// Parses `url` (a `postgresql://` URL or a `key=value` string) and checks where it points.
///
/// Without TLS, only loopback addresses and unix sockets are accepted, unless the URL says
/// `sslmode=disable`: plaintext over a network only when asked for in so many words. With the
/// feature `postgres-tls`, `sslmode=require`, `verify-ca` or `verify-full` with
/// `sslrootcert=PATH` connects over TLS to any host, verified against the roots of that file.
#[cfg(not(feature = "postgres-tls"))]
pub(crate) fn config(url: &str) -> Result<PgConfig, AuditError> {
    let pg: tokio_postgres::Config = url.parse().map_err(rejected)?;
    check_plaintext_hosts(&pg)?;
    Ok(PgConfig { pg })
}

/// Parses `url` (a `postgresql://` URL or a `key=value` string) and checks where it points.
///
/// Without TLS, only loopback addresses and unix sockets are accepted, unless the URL says
/// `sslmode=disable`: plaintext over a network only when asked for in so many words. With the
/// feature `postgres-tls`, `sslmode=require`, `verify-ca` or `verify-full` with
/// `sslrootcert=PATH` connects over TLS to any host, verified against the roots of that file.
#[cfg(feature = "postgres-tls")]
pub(crate) fn config(url: &str) -> Result<PgConfig, AuditError> {
    use tokio_postgres::config::SslMode;
    use url::SslMode as Mode;

    let (rest, params) = url::split(url).map_err(rejected)?;
    let mut pg: tokio_postgres::Config = rest.parse().map_err(rejected)?;
    let mode = params.mode.unwrap_or(Mode::Prefer);
    let tls = if mode.requires_tls() {
        let roots = params
            .root_cert
            .ok_or_else(|| rejected(tls::TlsSetupError::NoRoots))?;
        pg.ssl_mode(SslMode::Require);
        Some(tls::RustlsConnect::from_pem_file(&roots).map_err(rejected)?)
    } else {
        // Roots without TLS would be ignored: refused rather than silently unused.
        if params.root_cert.is_some() {
            return Err(rejected(tls::TlsSetupError::RootsWithoutTls));
        }
        pg.ssl_mode(match mode {
            Mode::Disable => SslMode::Disable,
            _ => SslMode::Prefer,
        });
        check_plaintext_hosts(&pg)?;
        None
    };
    Ok(PgConfig { pg, tls })
}

/// Refuses a connection without TLS to anything but loopback and unix sockets, unless the
/// configuration says `sslmode=disable`. `hostaddr` is where the socket goes, so it is checked
/// as well as `host`.
fn check_plaintext_hosts(config: &tokio_postgres::Config) -> Result<(), AuditError> {
    if config.get_ssl_mode() == tokio_postgres::config::SslMode::Disable {
        return Ok(());
    }
    let hosts_local = config.get_hosts().iter().all(|host| match host {
        Host::Unix(_) => true,
        Host::Tcp(name) => is_loopback(name),
    });
    let addrs_local = config.get_hostaddrs().iter().all(|ip| ip.is_loopback());
    if hosts_local && addrs_local {
        Ok(())
    } else {
        Err(rejected(NotLoopback))
    }
}

fn is_loopback(name: &str) -> bool {
    name == "localhost"
        || name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A non-loopback host without TLS was refused.
#[derive(Debug)]
struct NotLoopback;

impl std::fmt::Display for NotLoopback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if cfg!(feature = "postgres-tls") {
            "a connection without TLS may only go to a loopback host or a unix socket: use \
             sslmode=require (or verify-full) with sslrootcert=PATH, or say sslmode=disable"
        } else {
            "connections are made without TLS: only loopback hosts and unix sockets are \
             accepted, unless the URL says sslmode=disable"
        })
    }
}

impl std::error::Error for NotLoopback {}

/// Connects and drives the connection on the current runtime.
pub(crate) async fn connect(
    config: &PgConfig,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    #[cfg(feature = "postgres-tls")]
    if let Some(tls) = &config.tls {
        let (client, connection) = config.pg.connect(tls.clone()).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        return Ok(client);
    }
    let (client, connection) = config.pg.connect(tokio_postgres::NoTls).await?;
    // The connection ends when the client is dropped; its error shows up on the next query.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// One connection shared by concurrent callers (tokio-postgres pipelines their queries), opened
/// on first use and again after it broke.
#[derive(Debug)]
pub(crate) struct SharedClient {
    config: PgConfig,
    client: tokio::sync::Mutex<Option<Arc<tokio_postgres::Client>>>,
}

impl SharedClient {
    pub(crate) fn new(config: PgConfig) -> Self {
        Self {
            config,
            client: tokio::sync::Mutex::new(None),
        }
    }

    pub(crate) async fn get(&self) -> Result<Arc<tokio_postgres::Client>, tokio_postgres::Error> {
        let mut slot = self.client.lock().await;
        match &*slot {
            Some(c) if !c.is_closed() => Ok(Arc::clone(c)),
            _ => {
                let c = Arc::new(connect(&self.config).await?);
                *slot = Some(Arc::clone(&c));
                Ok(c)
            }
        }
    }
}

/// A database error as an audit error of kind `Io`, keeping the driver's error as the source.
/// Driver errors name tables, columns and constraint values; the tables hold pseudonyms and
/// ciphertext only, never plaintext or raw subject identifiers.
pub(crate) fn db_err(e: tokio_postgres::Error) -> AuditError {
    AuditError::with_source(AuditErrorKind::Io, e)
}

/// The same error shared by every appender of a failed batch.
pub(crate) fn shared_db_err(e: &Arc<tokio_postgres::Error>) -> AuditError {
    AuditError::with_source(AuditErrorKind::Io, Arc::clone(e))
}

/// A database error as a crate error (stores whose trait returns [`crate::Error`]).
pub(crate) fn io_err(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> crate::Error {
    crate::Error::Io(std::io::Error::other(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(url: &str) -> Option<AuditErrorKind> {
        config(url).err().map(|e| e.kind())
    }

    #[test]
    fn only_loopback_without_tls() {
        for ok in [
            "postgresql://u:p@127.0.0.1:5432/db",
            "postgresql://u:p@localhost/db",
            "postgresql://u@[::1]:5433/db",
            "host=/tmp/sock user=u dbname=db",
            "host=localhost hostaddr=127.0.0.1 user=u",
        ] {
            assert!(config(ok).is_ok(), "{ok}");
        }
        for bad in [
            "postgresql://u:p@10.0.0.1/db",
            "postgresql://u:p@db.example.com/db",
            "postgresql://u:p@127.0.0.1,db.example.com/db",
            "postgresql://u:p@localhost/db?hostaddr=10.0.0.1",
        ] {
            assert_eq!(kind(bad), Some(AuditErrorKind::Rejected), "{bad}");
            let sep = if bad.contains('?') { '&' } else { '?' };
            assert!(
                config(&format!("{bad}{sep}sslmode=disable")).is_ok(),
                "{bad}"
            );
            assert_eq!(
                kind(&format!("{bad}{sep}sslmode=prefer")),
                Some(AuditErrorKind::Rejected),
                "{bad}"
            );
        }
        assert_eq!(
            kind("host=localhost hostaddr=10.0.0.1 user=u"),
            Some(AuditErrorKind::Rejected)
        );
        assert!(config("postgresql://u:p@[::1/x").is_err());
        // The refusal says why and what to write instead, in words fitting the build.
        let refused = config("postgresql://u:p@10.0.0.1/db").err();
        let why = refused
            .as_ref()
            .and_then(|e| std::error::Error::source(e))
            .and_then(|s| s.downcast_ref::<NotLoopback>())
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(
            why.contains("loopback") && why.contains("sslmode=disable"),
            "{why}"
        );
    }

    /// Without the feature, the libpq TLS settings tokio-postgres does not know are refused.
    #[cfg(not(feature = "postgres-tls"))]
    #[test]
    fn tls_settings_refused_without_the_feature() {
        for bad in [
            "postgresql://u@127.0.0.1/db?sslmode=verify-full",
            "postgresql://u@127.0.0.1/db?sslmode=require&sslrootcert=/ca.pem",
            "postgresql://u@10.0.0.1/db?sslmode=require",
        ] {
            assert_eq!(kind(bad), Some(AuditErrorKind::Rejected), "{bad}");
        }
    }

    #[cfg(feature = "postgres-tls")]
    mod tls {
        use super::*;

        const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/pg/unit-root.pem");

        fn rejected_by<E: std::error::Error + 'static>(url: &str) -> Option<String> {
            let e = config(url).err()?;
            assert_eq!(e.kind(), AuditErrorKind::Rejected, "{url}");
            let source = std::error::Error::source(&e)?;
            source.downcast_ref::<E>().map(|e| e.to_string())
        }

        #[test]
        fn any_host_with_tls_required_and_roots() {
            for mode in ["require", "verify-ca", "verify-full"] {
                for host in [
                    "10.0.0.1",
                    "db.example.com",
                    "127.0.0.1",
                    "[2001:db8::1]:5433",
                ] {
                    let url =
                        format!("postgresql://u:p@{host}/db?sslmode={mode}&sslrootcert={ROOT}");
                    let c = config(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
                    assert!(c.tls.is_some(), "{url}");
                    assert_eq!(
                        c.pg.get_ssl_mode(),
                        tokio_postgres::config::SslMode::Require
                    );
                }
            }
            let kv = format!("host=db.example.com user=u sslmode=verify-full sslrootcert='{ROOT}'");
            assert!(config(&kv).is_ok_and(|c| c.tls.is_some()));
        }

        #[test]
        fn no_tls_without_it_being_required() {
            for url in [
                "postgresql://u@127.0.0.1/db",
                "postgresql://u@127.0.0.1/db?sslmode=prefer",
                "postgresql://u@10.0.0.1/db?sslmode=disable",
            ] {
                assert!(config(url).is_ok_and(|c| c.tls.is_none()), "{url}");
            }
            let e = rejected_by::<NotLoopback>("postgresql://u@10.0.0.1/db?sslmode=prefer");
            assert!(e.is_some_and(|m| m.contains("sslrootcert")));
        }

        #[test]
        fn tls_settings_that_cannot_be_honoured_are_refused() {
            use super::super::tls::TlsSetupError;
            for url in [
                "postgresql://u@10.0.0.1/db?sslmode=require",
                "postgresql://u@127.0.0.1/db?sslmode=verify-full",
                "host=127.0.0.1 sslmode=verify-ca",
            ] {
                let e = rejected_by::<TlsSetupError>(url);
                assert!(e.is_some_and(|m| m.contains("need sslrootcert")), "{url}");
            }
            for url in [
                format!("postgresql://u@127.0.0.1/db?sslrootcert={ROOT}"),
                format!("postgresql://u@127.0.0.1/db?sslmode=prefer&sslrootcert={ROOT}"),
                format!("postgresql://u@10.0.0.1/db?sslmode=disable&sslrootcert={ROOT}"),
            ] {
                let e = rejected_by::<TlsSetupError>(&url);
                assert!(
                    e.is_some_and(|m| m.contains("does not require TLS")),
                    "{url}"
                );
            }
            let missing = "postgresql://u@h/db?sslmode=require&sslrootcert=/nonexistent/ca.pem";
            assert!(rejected_by::<TlsSetupError>(missing).is_some_and(|m| m.contains("read")));
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let empty = dir.path().join("empty.pem");
            std::fs::write(&empty, "no certificate here\n").unwrap_or_else(|e| panic!("{e}"));
            let url = format!("host=h sslmode=require sslrootcert='{}'", empty.display());
            assert!(rejected_by::<TlsSetupError>(&url).is_some_and(|m| m.contains("no cert")));
            for url in [
                "postgresql://u@h/db?sslmode=allow",
                "postgresql://u@h/db?sslmode=verify",
            ] {
                assert!(
                    rejected_by::<super::super::url::UrlError>(url).is_some(),
                    "{url}"
                );
            }
        }
    }
}
