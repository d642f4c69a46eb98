//! [`PgConsent`]: consent grants and withdrawals as rows, read through on every check.

use std::sync::Arc;

use zeroize::Zeroizing;

use super::worker::Worker;
use super::{SharedClient, config, io_err};
use crate::context::SubjectId;
use crate::crypto::kdf::{hmac_sha256, push_lp};
use crate::policy::{ConsentFuture, ConsentRegistry, ConsentScope, PrincipalId};

const SUBJECT_DOMAIN: &[u8] = b"fieldseal/v1/consent-subject";

const LATEST: &str = "SELECT granted FROM fieldseal_consent WHERE subject = $1 AND scope = $2 \
     ORDER BY id DESC LIMIT 1";
const APPEND: &str = "INSERT INTO fieldseal_consent (subject, scope, granted, at, actor) \
     VALUES ($1, $2, $3, $4, $5)";

/// A [`ConsentRegistry`] in PostgreSQL, shared by every process of a fleet.
///
/// Every grant and withdrawal is a row (`fieldseal_consent`: subject pseudonym, scope, granted
/// or withdrawn, the caller's time, the actor, the database's commit-time clock), never updated
/// or deleted; the latest row for a subject and scope decides. Nothing is cached: every check
/// reads the table, so a withdrawal committed by any process is honoured by the next reveal
/// that starts after it, in every process.
///
/// Subjects are stored as HMAC-SHA256 under a secret 32-byte key (the same in every process),
/// over `lp("fieldseal/v1/consent-subject") ‖ subject id`: neither the ids nor guessable
/// digests of them reach the table.
///
/// A check that cannot reach the database counts as no consent (the reveal is denied).
/// [`ConsentRegistry::is_granted`] blocks the calling thread for one query (safe inside a tokio
/// runtime, but it holds the worker); [`ConsentRegistry::is_granted_async`], which
/// [`Guard::reveal_async`](crate::Guard::reveal_async) uses, does not.
pub struct PgConsent {
    inner: Arc<Inner>,
    worker: Worker,
}

struct Inner {
    client: SharedClient,
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for PgConsent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConsent").finish_non_exhaustive()
    }
}

fn scope_label(scope: ConsentScope<'_>) -> String {
    match scope {
        ConsentScope::Purpose(p) => format!("purpose:{p}"),
        ConsentScope::CrossBorder => "cross_border".to_owned(),
        ConsentScope::Share(r) => format!("share:{r}"),
    }
}

impl PgConsent {
    /// A registry in the database at `url` (tables from [`migrate`](super::migrate)), with
    /// subjects pseudonymized under `subject_key`. Connects on first use.
    ///
    /// # Errors
    /// [`Error::Audit`](crate::Error::Audit) with kind `Rejected` for an invalid URL (or a
    /// non-loopback host without `sslmode=disable`), or kind `Io` if the runtime thread cannot
    /// start.
    pub fn new(url: &str, subject_key: [u8; 32]) -> Result<Self, crate::Error> {
        let key = Zeroizing::new(subject_key);
        Ok(Self {
            inner: Arc::new(Inner {
                client: SharedClient::new(config(url)?),
                key,
            }),
            worker: Worker::start("fieldseal-pg-consent")?,
        })
    }

    fn pseudonym(&self, subject: &SubjectId) -> Vec<u8> {
        let mut msg = Zeroizing::new(Vec::with_capacity(64));
        push_lp(&mut msg, SUBJECT_DOMAIN);
        msg.extend_from_slice(subject.expose_secret().as_bytes());
        hmac_sha256(&self.inner.key[..], &msg).to_vec()
    }

    fn append(
        &self,
        subject: &SubjectId,
        scope: ConsentScope<'_>,
        granted: bool,
        at: u64,
        actor: &PrincipalId,
    ) -> impl Future<Output = Result<(), crate::Error>> + Send + 'static + use<> {
        let inner = Arc::clone(&self.inner);
        let (subject, scope, actor) = (
            self.pseudonym(subject),
            scope_label(scope),
            actor.as_str().to_owned(),
        );
        let at = i64::try_from(at)
            .map_err(|_| crate::Error::Io(std::io::ErrorKind::InvalidInput.into()));
        async move {
            let at = at?;
            let c = inner.client.get().await.map_err(io_err)?;
            c.execute(APPEND, &[&subject, &scope, &granted, &at, &actor])
                .await
                .map_err(io_err)?;
            Ok(())
        }
    }

    /// Records that `subject` consents to `scope` at `at` (Unix seconds), as told by `actor`
    /// (the staff member or service recording it). Returns once committed.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) with the driver's error as source.
    pub fn grant(
        &self,
        subject: &SubjectId,
        scope: ConsentScope<'_>,
        at: u64,
        actor: &PrincipalId,
    ) -> Result<(), crate::Error> {
        let f = self.append(subject, scope, true, at, actor);
        self.worker.run(f).unwrap_or_else(closed)
    }

    /// Records that `subject` withdraws consent to `scope`; every reveal that starts after this
    /// returns is checked against it, in every process. Returns once committed.
    ///
    /// # Errors
    /// As [`PgConsent::grant`].
    pub fn withdraw(
        &self,
        subject: &SubjectId,
        scope: ConsentScope<'_>,
        at: u64,
        actor: &PrincipalId,
    ) -> Result<(), crate::Error> {
        let f = self.append(subject, scope, false, at, actor);
        self.worker.run(f).unwrap_or_else(closed)
    }

    /// As [`PgConsent::grant`], without blocking.
    ///
    /// # Errors
    /// As [`PgConsent::grant`].
    pub async fn grant_async(
        &self,
        subject: &SubjectId,
        scope: ConsentScope<'_>,
        at: u64,
        actor: &PrincipalId,
    ) -> Result<(), crate::Error> {
        let f = self.append(subject, scope, true, at, actor);
        self.worker.run_async(f).await.unwrap_or_else(closed)
    }

    /// As [`PgConsent::withdraw`], without blocking.
    ///
    /// # Errors
    /// As [`PgConsent::grant`].
    pub async fn withdraw_async(
        &self,
        subject: &SubjectId,
        scope: ConsentScope<'_>,
        at: u64,
        actor: &PrincipalId,
    ) -> Result<(), crate::Error> {
        let f = self.append(subject, scope, false, at, actor);
        self.worker.run_async(f).await.unwrap_or_else(closed)
    }

    fn lookup(
        &self,
        subject: &SubjectId,
        scope: ConsentScope<'_>,
    ) -> impl Future<Output = Result<bool, crate::Error>> + Send + 'static + use<> {
        let inner = Arc::clone(&self.inner);
        let (subject, scope) = (self.pseudonym(subject), scope_label(scope));
        async move {
            let c = inner.client.get().await.map_err(io_err)?;
            let row = c
                .query_opt(LATEST, &[&subject, &scope])
                .await
                .map_err(io_err)?;
            match row {
                Some(r) => r.try_get::<_, bool>(0).map_err(io_err),
                None => Ok(false),
            }
        }
    }

    /// Whether `subject` currently consents to `scope`, read from the table now.
    ///
    /// # Errors
    /// As [`PgConsent::grant`].
    pub async fn is_granted_async(
        &self,
        subject: &SubjectId,
        scope: ConsentScope<'_>,
    ) -> Result<bool, crate::Error> {
        let f = self.lookup(subject, scope);
        self.worker.run_async(f).await.unwrap_or_else(closed)
    }
}

fn closed<T>() -> Result<T, crate::Error> {
    Err(crate::Error::Io(std::io::ErrorKind::BrokenPipe.into()))
}

impl ConsentRegistry for PgConsent {
    fn is_granted(&self, subject: &SubjectId, scope: ConsentScope<'_>) -> bool {
        // Fail closed: an unreachable registry grants nothing.
        let f = self.lookup(subject, scope);
        self.worker.run(f).is_some_and(|r| r.unwrap_or(false))
    }

    fn is_granted_async(&self, subject: &SubjectId, scope: ConsentScope<'_>) -> ConsentFuture {
        let answer = self.worker.spawn(self.lookup(subject, scope));
        Box::pin(async move { answer.await.is_some_and(|r| r.unwrap_or(false)) })
    }

    fn change(
        &self,
        subject: &SubjectId,
        scope: ConsentScope<'_>,
        granted: bool,
        at: u64,
        actor: &PrincipalId,
    ) -> Result<(), crate::Error> {
        if granted {
            self.grant(subject, scope, at, actor)
        } else {
            self.withdraw(subject, scope, at, actor)
        }
    }
}
