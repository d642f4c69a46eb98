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

mod audit;
mod column;
mod consent;
mod keys;
mod schema;
mod stream;
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

/// Parses `url` (a `postgresql://` URL or a `key=value` string) and checks where it points.
///
/// Connections are made without TLS, so only loopback addresses and unix sockets are accepted,
/// unless the URL says `sslmode=disable`: plaintext over a network only when asked for in so
/// many words.
pub(crate) fn config(url: &str) -> Result<tokio_postgres::Config, AuditError> {
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| AuditError::with_source(AuditErrorKind::Rejected, e))?;
    if config.get_ssl_mode() != tokio_postgres::config::SslMode::Disable {
        for host in config.get_hosts() {
            let local = match host {
                Host::Unix(_) => true,
                Host::Tcp(name) => is_loopback(name),
            };
            if !local {
                return Err(AuditError::with_source(
                    AuditErrorKind::Rejected,
                    NotLoopback,
                ));
            }
        }
    }
    Ok(config)
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
        f.write_str(
            "connections are made without TLS: only loopback hosts and unix sockets are \
             accepted, unless the URL says sslmode=disable",
        )
    }
}

impl std::error::Error for NotLoopback {}

/// Connects and drives the connection on the current runtime.
pub(crate) async fn connect(
    config: &tokio_postgres::Config,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
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
    config: tokio_postgres::Config,
    client: tokio::sync::Mutex<Option<Arc<tokio_postgres::Client>>>,
}

impl SharedClient {
    pub(crate) fn new(config: tokio_postgres::Config) -> Self {
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

    #[test]
    fn only_loopback_without_tls() {
        for ok in [
            "postgresql://u:p@127.0.0.1:5432/db",
            "postgresql://u:p@localhost/db",
            "postgresql://u@[::1]:5433/db",
            "host=/tmp/sock user=u dbname=db",
        ] {
            assert!(config(ok).is_ok(), "{ok}");
        }
        for bad in [
            "postgresql://u:p@10.0.0.1/db",
            "postgresql://u:p@db.example.com/db",
            "postgresql://u:p@127.0.0.1,db.example.com/db",
        ] {
            let e = config(bad).err().map(|e| e.kind());
            assert_eq!(e, Some(AuditErrorKind::Rejected), "{bad}");
            assert!(config(&format!("{bad}?sslmode=disable")).is_ok(), "{bad}");
        }
        assert!(config("postgresql://u:p@[::1/x").is_err());
    }
}
