//! [`PgSubjectKeys`]: wrapped subject keys in PostgreSQL.

use std::sync::Arc;

use super::PgAuditSink;
use super::worker::Worker;
use super::{SharedClient, config, io_err};
use crate::Error;
use crate::audit::{AuditEvent, AuditSink};
use crate::keys::subject::record_then_delete;
use crate::keys::{SubjectKeyFuture, SubjectKeyId, SubjectKeyStore};

const GET: &str = "SELECT wrapped FROM fieldseal_subject_keys WHERE id = $1";
/// Inserts unless present and returns what is stored afterwards, in one statement (the outer
/// SELECT does not see the row inserted by the same statement, so exactly one branch answers).
const INSERT: &str = "WITH ins AS (INSERT INTO fieldseal_subject_keys (id, wrapped) VALUES ($1, $2) \
     ON CONFLICT (id) DO NOTHING RETURNING wrapped) \
     SELECT wrapped FROM ins UNION ALL SELECT wrapped FROM fieldseal_subject_keys WHERE id = $1";
const DELETE: &str = "DELETE FROM fieldseal_subject_keys WHERE id = $1";

/// A [`SubjectKeyStore`] in PostgreSQL (`fieldseal_subject_keys`: id, wrapped key), shared by
/// every process of a fleet. Inserts and deletes return once committed (durable with the
/// server's default `synchronous_commit`).
///
/// The rows hold only what [`SubjectKeys`](crate::SubjectKeys) gives a store: random ids and
/// keys wrapped by the key provider; no subject identifier. An erasure deletes the row; the
/// database's backups and WAL archive still hold it until they expire (see SECURITY.md,
/// "Subject keys and erasure": backups of the store must expire on the retention clock).
pub struct PgSubjectKeys {
    client: Arc<SharedClient>,
    worker: Worker,
    /// The audit sink whose transactions also carry erasures' deletions.
    audit: Option<Arc<PgAuditSink>>,
}

impl std::fmt::Debug for PgSubjectKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSubjectKeys").finish_non_exhaustive()
    }
}

impl PgSubjectKeys {
    /// A store in the database at `url` (tables from [`migrate`](super::migrate)). Connects on
    /// first use.
    ///
    /// # Errors
    /// [`Error::Audit`] with kind `Rejected` for an invalid URL (or a non-loopback host without
    /// `sslmode=disable`), or kind `Io` if the runtime thread cannot start.
    pub fn new(url: &str) -> Result<Self, Error> {
        Ok(Self {
            client: Arc::new(SharedClient::new(config(url)?)),
            worker: Worker::start("fieldseal-pg-keys")?,
            audit: None,
        })
    }

    /// A store in the database `sink` writes to (over its URL), whose erasures commit their
    /// audit record and their key deletion in one transaction when the guard's audit sink is
    /// `sink` itself (the same instance, directly or through an `Arc`): a crash cannot leave an audited erasure whose key still
    /// exists, nor a deleted key without its record. With any other sink the guard records
    /// first and deletes after ([`SubjectKeyStore::delete_audited`]'s default).
    ///
    /// # Errors
    /// As [`PgSubjectKeys::new`].
    pub fn with_audit(sink: Arc<PgAuditSink>) -> Result<Self, Error> {
        let mut store = Self::new(sink.url())?;
        store.audit = Some(sink);
        Ok(store)
    }

    fn run<T: Send + 'static>(
        &self,
        f: impl Future<Output = Result<T, Error>> + Send + 'static,
    ) -> Result<T, Error> {
        self.worker
            .run(f)
            .unwrap_or_else(|| Err(Error::Io(std::io::ErrorKind::BrokenPipe.into())))
    }
}

impl SubjectKeyStore for PgSubjectKeys {
    fn get(&self, id: &SubjectKeyId) -> Result<Option<Vec<u8>>, Error> {
        let (client, id) = (Arc::clone(&self.client), id.to_vec());
        self.run(async move {
            let c = client.get().await.map_err(io_err)?;
            match c.query_opt(GET, &[&id]).await.map_err(io_err)? {
                Some(row) => Ok(Some(row.try_get::<_, Vec<u8>>(0).map_err(io_err)?)),
                None => Ok(None),
            }
        })
    }

    fn insert(&self, id: &SubjectKeyId, wrapped: &[u8]) -> Result<Vec<u8>, Error> {
        let (client, id, wrapped) = (Arc::clone(&self.client), id.to_vec(), wrapped.to_vec());
        self.run(async move {
            let c = client.get().await.map_err(io_err)?;
            let row = c
                .query_one(INSERT, &[&id, &wrapped])
                .await
                .map_err(io_err)?;
            row.try_get::<_, Vec<u8>>(0).map_err(io_err)
        })
    }

    fn delete(&self, id: &SubjectKeyId) -> Result<bool, Error> {
        let (client, id) = (Arc::clone(&self.client), id.to_vec());
        self.run(async move {
            let c = client.get().await.map_err(io_err)?;
            Ok(c.execute(DELETE, &[&id]).await.map_err(io_err)? > 0)
        })
    }

    fn delete_audited(
        &self,
        ids: &[SubjectKeyId],
        audit: &dyn AuditSink,
        event: &AuditEvent<'_>,
    ) -> Result<(), Error> {
        match &self.audit {
            // The guard's sink is this store's: one transaction.
            Some(sink) if std::ptr::eq(sink.instance(), audit.instance()) => {
                sink.append_deleting(event, ids)?;
                Ok(())
            }
            _ => record_then_delete(self, ids, audit, event),
        }
    }

    fn get_async(&self, id: &SubjectKeyId) -> SubjectKeyFuture {
        let (client, id) = (Arc::clone(&self.client), id.to_vec());
        let found = self.worker.spawn(async move {
            let c = client.get().await.map_err(io_err)?;
            match c.query_opt(GET, &[&id]).await.map_err(io_err)? {
                Some(row) => Ok(Some(row.try_get::<_, Vec<u8>>(0).map_err(io_err)?)),
                None => Ok(None),
            }
        });
        Box::pin(async move {
            found
                .await
                .unwrap_or_else(|| Err(Error::Io(std::io::ErrorKind::BrokenPipe.into())))
        })
    }
}
