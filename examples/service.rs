//! An HTTP service (axum) on loopback over the PostgreSQL backends: inquiries whose phone number
//! and e-mail are stored sealed in a table, reveals and masks audited into the fleet-wide MAC
//! chain, marketing consent granted and withdrawn in the database.
//!
//! Run it against the throwaway cluster of `scripts/pg-env`:
//!
//! ```text
//! source scripts/pg-env
//! cargo run --example service --features postgres
//! curl -s -XPOST 127.0.0.1:PORT/inquiries -d '{"subject":"u-42","phone":"+86 138 0013 8000","email":"a@example.com"}'
//! curl -s 127.0.0.1:PORT/inquiries/1/phone -H 'x-principal: alice' -H 'x-roles: support_agent' -H 'x-subject: u-42'
//! ```
//!
//! Handlers use `Guard::reveal_async` / `mask_async`: the consent lookup and the audit commit (a
//! network round trip and an fsync on the server) are awaited, so they never hold a runtime
//! worker. `FIELDSEAL_REVEAL=blocking` switches the reveal handlers to the blocking
//! `Guard::reveal` inside `tokio::task::spawn_blocking` instead ([`RevealPath`]), for comparison
//! (`tests/postgres_load.rs` measures both). Identity headers stand in for real authentication.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use fieldseal::builtin::{Marketing, Service};
use fieldseal::postgres::tokio_postgres::{self, Client, NoTls};
use fieldseal::postgres::{PgAuditSink, PgConsent, Roles, grant, migrate};
use fieldseal::*;

/// The database URLs and keys of the service.
pub struct Config {
    /// Owns the tables: migrates and grants at start-up.
    pub owner_url: String,
    /// The service's own role (the audit writer).
    pub writer_url: String,
    /// The fleet's audit key (every instance the same).
    pub audit_key: AuditKey,
    /// The key consent rows pseudonymize subjects under (every instance the same).
    pub consent_key: [u8; 32],
    /// How the reveal handlers call the guard.
    pub reveal: RevealPath,
}

/// How the reveal handlers call the guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevealPath {
    /// `Guard::reveal_async`: the consent lookup and the audit commit are awaited on the
    /// runtime's workers without holding them.
    Async,
    /// The blocking `Guard::reveal` in `tokio::task::spawn_blocking`: the call waits for the
    /// commit on a thread of the runtime's blocking pool. Called directly from the handler it
    /// would hold a worker for a database round trip and an fsync, stalling every other
    /// connection scheduled there. Not `block_in_place`: that works on a multi-threaded runtime
    /// only, still stalls whatever else the handler's task polls (a `join!`, a timeout around
    /// the call), and hands the worker's other tasks to a new thread on every call.
    Blocking,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // URLs carry passwords; keys are secret.
        f.debug_struct("Config").finish_non_exhaustive()
    }
}

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    guard: Arc<Guard>,
    consent: Arc<PgConsent>,
    db: Arc<Client>,
    reveal: RevealPath,
}

const APP_TABLE: &str = "CREATE TABLE IF NOT EXISTS inquiries (
    id    bigint PRIMARY KEY,
    phone bytea NOT NULL,
    email text NOT NULL
);
CREATE SEQUENCE IF NOT EXISTS inquiries_id;
GRANT SELECT, INSERT ON inquiries TO fieldseal_writer;
GRANT USAGE ON SEQUENCE inquiries_id TO fieldseal_writer;";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn connect(url: &str) -> Result<Client, BoxError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Migrates, creates the application's table and builds the guard.
///
/// # Errors
/// Database and configuration errors.
pub async fn setup(config: Config) -> Result<AppState, BoxError> {
    let (owner, writer) = (config.owner_url.clone(), config.writer_url.clone());
    // Blocking calls (they run on threads of their own), kept off the runtime's workers.
    let (sink, consent) = tokio::task::spawn_blocking(move || -> Result<_, BoxError> {
        migrate(&owner)?;
        grant(
            &owner,
            Roles::new("fieldseal_writer", "fieldseal_checkpoint"),
        )?;
        let sink = PgAuditSink::builder(&writer)
            .key(config.audit_key)
            .connect()?;
        let consent = PgConsent::new(&writer, config.consent_key)?;
        Ok((sink, Arc::new(consent)))
    })
    .await??;
    connect(&config.owner_url)
        .await?
        .batch_execute(APP_TABLE)
        .await?;
    let guard = Guard::builder()
        // A fresh key per run; a fleet loads its keyring from a key provider.
        .keyring(Keyring::generate()?)
        .policy(ManifestPolicy::from_toml(include_str!(
            "reference-policy.toml"
        ))?)
        .consent(Arc::clone(&consent))
        .audit(sink)
        .build()?;
    Ok(AppState {
        guard: Arc::new(guard),
        consent,
        db: Arc::new(connect(&config.writer_url).await?),
        reveal: config.reveal,
    })
}

/// The routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/inquiries", post(create))
        .route("/inquiries/{id}/phone", get(reveal_phone))
        .route("/inquiries/{id}/phone/masked", get(mask_phone))
        .route("/inquiries/{id}/email", get(reveal_email))
        .route(
            "/consent/{subject}/marketing",
            post(grant_marketing).delete(withdraw_marketing),
        )
        .with_state(state)
}

/// Serves on `listener` until the task is dropped.
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}

/// Binds a free port on 127.0.0.1 and serves `state` there from a spawned task (on the current
/// tokio runtime); returns the address.
///
/// # Errors
/// I/O errors of the bind.
pub async fn spawn_on_loopback(state: AppState) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(serve(listener, state));
    Ok(addr)
}

type Reply = (StatusCode, String);

fn reply(status: StatusCode, body: impl Into<String>) -> Reply {
    (status, body.into())
}

/// Maps a guard error to a status; bodies name the rule, never a value.
fn refused(e: &Error) -> Reply {
    match e {
        Error::Denied { reason } => {
            reply(StatusCode::FORBIDDEN, format!("denied:{}", reason.label()))
        }
        Error::Audit(_) => reply(StatusCode::SERVICE_UNAVAILABLE, "audit unavailable"),
        Error::Integrity => reply(StatusCode::CONFLICT, "value does not open in this context"),
        Error::Field(_) | Error::Context(_) => reply(StatusCode::BAD_REQUEST, "invalid input"),
        _ => reply(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The caller, from identity headers (a real service takes them from its authentication).
fn accessor(h: &HeaderMap) -> Result<Accessor, Reply> {
    let principal = header(h, "x-principal")
        .ok_or_else(|| reply(StatusCode::UNAUTHORIZED, "x-principal missing"))?;
    let roles = header(h, "x-roles").unwrap_or("");
    Ok(Accessor::new(
        principal,
        roles.split(',').filter(|r| !r.is_empty()).map(Role::new),
    ))
}

fn subject(h: &HeaderMap) -> Result<SubjectId, Reply> {
    header(h, "x-subject")
        .map(SubjectId::new)
        .ok_or_else(|| reply(StatusCode::BAD_REQUEST, "x-subject missing"))
}

fn context(column: &str, id: i64, subject: &SubjectId) -> Context {
    Context::new()
        .table("inquiries")
        .column(column)
        .row(&id.to_string())
        .subject(subject)
}

#[derive(serde::Deserialize)]
struct NewInquiry {
    subject: String,
    phone: String,
    email: String,
}

async fn create(State(s): State<AppState>, body: String) -> Reply {
    let Ok(new) = serde_json::from_str::<NewInquiry>(&body) else {
        return reply(StatusCode::BAD_REQUEST, "expected {subject, phone, email}");
    };
    let id: i64 = match s.db.query_one("SELECT nextval('inquiries_id')", &[]).await {
        Ok(row) => row.get(0),
        Err(_) => return reply(StatusCode::SERVICE_UNAVAILABLE, "database unavailable"),
    };
    let subject = SubjectId::new(new.subject);
    // Sealing is local CPU work (no network): fine on the runtime.
    let sealed = PhoneNumber::parse(&new.phone)
        .map_err(Error::from)
        .and_then(|p| {
            s.guard
                .seal::<_, Service>(&p, &context("phone", id, &subject))
        })
        .and_then(|phone| {
            let email = Email::parse(&new.email)?;
            Ok((
                phone,
                s.guard
                    .seal::<_, Marketing>(&email, &context("email", id, &subject))?,
            ))
        });
    let (phone, email) = match sealed {
        Ok(v) => v,
        Err(e) => return refused(&e),
    };
    // bytea for the binary envelope, text for the `fs1:` form: both are `Sealed` columns.
    match s
        .db
        .execute(
            "INSERT INTO inquiries (id, phone, email) VALUES ($1, $2, $3)",
            &[&id, &phone, &email],
        )
        .await
    {
        Ok(_) => reply(StatusCode::CREATED, format!("{{\"id\":{id}}}")),
        Err(_) => reply(StatusCode::SERVICE_UNAVAILABLE, "database unavailable"),
    }
}

async fn load<T>(s: &AppState, id: i64, column: &str) -> Result<T, Reply>
where
    T: for<'a> tokio_postgres::types::FromSql<'a>,
{
    let sql = format!("SELECT {column} FROM inquiries WHERE id = $1");
    match s.db.query_opt(&sql, &[&id]).await {
        Ok(Some(row)) => row
            .try_get(0)
            .map_err(|_| reply(StatusCode::INTERNAL_SERVER_ERROR, "malformed stored value")),
        Ok(None) => Err(reply(StatusCode::NOT_FOUND, "no such inquiry")),
        Err(_) => Err(reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "database unavailable",
        )),
    }
}

/// Reveals `sealed` on the configured [`RevealPath`]; the value as `text` gives it.
async fn reveal<F: Field, P: Purpose>(
    s: &AppState,
    who: Accessor,
    sealed: Sealed<F, P>,
    ctx: Context,
    text: fn(&F) -> String,
) -> Result<String, Reply> {
    match s.reveal {
        RevealPath::Async => s
            .guard
            .reveal_async(&who, &sealed, &ctx)
            .await
            .map(|v| text(v.expose_secret()))
            .map_err(|e| refused(&e)),
        RevealPath::Blocking => {
            let guard = Arc::clone(&s.guard);
            tokio::task::spawn_blocking(move || {
                guard
                    .reveal(&who, &sealed, &ctx)
                    .map(|v| text(v.expose_secret()))
                    .map_err(|e| refused(&e))
            })
            .await
            // The closure panicked.
            .unwrap_or_else(|_| Err(reply(StatusCode::INTERNAL_SERVER_ERROR, "internal error")))
        }
    }
}

async fn reveal_phone(State(s): State<AppState>, Path(id): Path<i64>, h: HeaderMap) -> Reply {
    let run = async {
        let (who, subject) = (accessor(&h)?, subject(&h)?);
        let sealed: Sealed<PhoneNumber, Service> = load(&s, id, "phone").await?;
        let ctx = context("phone", id, &subject);
        reveal(&s, who, sealed, ctx, |p| p.as_str().to_owned()).await
    };
    run.await.map_or_else(|e| e, |v| reply(StatusCode::OK, v))
}

async fn mask_phone(State(s): State<AppState>, Path(id): Path<i64>, h: HeaderMap) -> Reply {
    let run = async {
        let (who, subject) = (accessor(&h)?, subject(&h)?);
        let sealed: Sealed<PhoneNumber, Service> = load(&s, id, "phone").await?;
        let ctx = context("phone", id, &subject);
        s.guard
            .mask_async(&who, &sealed, &ctx)
            .await
            .map_err(|e| refused(&e))
    };
    run.await.map_or_else(|e| e, |v| reply(StatusCode::OK, v))
}

async fn reveal_email(State(s): State<AppState>, Path(id): Path<i64>, h: HeaderMap) -> Reply {
    let run = async {
        let (who, subject) = (accessor(&h)?, subject(&h)?);
        let sealed: Sealed<Email, Marketing> = load(&s, id, "email").await?;
        let ctx = context("email", id, &subject);
        reveal(&s, who, sealed, ctx, |e| e.as_str().to_owned()).await
    };
    run.await.map_or_else(|e| e, |v| reply(StatusCode::OK, v))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn consent(s: AppState, subject: String, h: HeaderMap, granted: bool) -> Reply {
    let Some(actor) = header(&h, "x-principal").map(PrincipalId::new) else {
        return reply(StatusCode::UNAUTHORIZED, "x-principal missing");
    };
    let subject = SubjectId::new(subject);
    let scope = ConsentScope::Purpose("marketing");
    let r = if granted {
        s.consent.grant_async(&subject, scope, now(), &actor).await
    } else {
        s.consent
            .withdraw_async(&subject, scope, now(), &actor)
            .await
    };
    match r {
        Ok(()) => reply(StatusCode::NO_CONTENT, ""),
        Err(_) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "consent registry unavailable",
        ),
    }
}

async fn grant_marketing(
    State(s): State<AppState>,
    Path(subject): Path<String>,
    h: HeaderMap,
) -> Reply {
    consent(s, subject, h, true).await
}

async fn withdraw_marketing(
    State(s): State<AppState>,
    Path(subject): Path<String>,
    h: HeaderMap,
) -> Reply {
    consent(s, subject, h, false).await
}

#[allow(dead_code)] // the test includes this file for `setup` and `serve` only
fn main() -> Result<(), BoxError> {
    let var =
        |v: &str| std::env::var(v).map_err(|_| format!("{v} is not set (source scripts/pg-env)"));
    let config = Config {
        owner_url: var("FIELDSEAL_PG_URL")?,
        writer_url: var("FIELDSEAL_PG_WRITER_URL")?,
        // Fresh keys per run; a fleet loads them from its secret store.
        audit_key: AuditKey::generate()?,
        consent_key: {
            let mut k = [0u8; 32];
            rand::Rng::fill_bytes(&mut rand::rng(), &mut k);
            k
        },
        reveal: match std::env::var("FIELDSEAL_REVEAL").as_deref() {
            Ok("blocking") => RevealPath::Blocking,
            Ok("async") | Err(_) => RevealPath::Async,
            Ok(other) => return Err(format!("FIELDSEAL_REVEAL={other}: async or blocking").into()),
        },
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let state = setup(config).await?;
        // Loopback only.
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        println!("listening on http://{}", listener.local_addr()?);
        serve(listener, state).await?;
        Ok(())
    })
}
