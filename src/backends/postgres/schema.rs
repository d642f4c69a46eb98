//! The schema: explicit, idempotent migrations recorded in a version table, and the grants that
//! give the writer and checkpoint roles exactly what they need.

use super::worker::Worker;
use super::{config, connect, db_err};
use crate::error::{AuditError, AuditErrorKind};

/// The schema version this release writes and expects.
pub const SCHEMA_VERSION: u32 = 2;

/// Serializes concurrent migrations (any constant; `fieldseal` in ASCII).
const MIGRATION_LOCK: i64 = 0x6669_656c_6473_6561;

/// Version 1: the audit chain (entries, head, checkpoints), consent events and subject keys.
/// Audit entries, checkpoints and consent events are append-only for everyone, the owner
/// included: triggers refuse UPDATE, DELETE and TRUNCATE. The head row only moves forward.
const V1: &str = r#"
CREATE FUNCTION fieldseal_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'fieldseal: % on % refused: the table is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TABLE fieldseal_audit (
    seq     bigint PRIMARY KEY CHECK (seq > 0),
    time    bigint NOT NULL,
    subject text CHECK (subject ~ '^[0-9a-f]{64}$'),
    action  text NOT NULL,
    outcome text NOT NULL,
    prev    bytea NOT NULL CHECK (length(prev) = 32),
    mac     bytea NOT NULL CHECK (length(mac) = 32),
    line    text NOT NULL
);
CREATE INDEX fieldseal_audit_by_subject ON fieldseal_audit (subject) WHERE subject IS NOT NULL;
CREATE TRIGGER fieldseal_audit_append_only BEFORE UPDATE OR DELETE ON fieldseal_audit
    FOR EACH ROW EXECUTE FUNCTION fieldseal_refuse_change();
CREATE TRIGGER fieldseal_audit_no_truncate BEFORE TRUNCATE ON fieldseal_audit
    FOR EACH STATEMENT EXECUTE FUNCTION fieldseal_refuse_change();

CREATE TABLE fieldseal_audit_head (
    id  boolean PRIMARY KEY DEFAULT true CHECK (id),
    seq bigint NOT NULL CHECK (seq >= 0),
    mac bytea NOT NULL CHECK (length(mac) = 32)
);
INSERT INTO fieldseal_audit_head (id, seq, mac) VALUES (true, 0, decode(repeat('00', 32), 'hex'));
CREATE FUNCTION fieldseal_head_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id IS DISTINCT FROM OLD.id OR NEW.seq < OLD.seq THEN
        RAISE EXCEPTION 'fieldseal: the audit head only moves forward'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER fieldseal_audit_head_forward BEFORE UPDATE ON fieldseal_audit_head
    FOR EACH ROW EXECUTE FUNCTION fieldseal_head_forward();
CREATE TRIGGER fieldseal_audit_head_kept BEFORE DELETE ON fieldseal_audit_head
    FOR EACH ROW EXECUTE FUNCTION fieldseal_refuse_change();
CREATE TRIGGER fieldseal_audit_head_no_truncate BEFORE TRUNCATE ON fieldseal_audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION fieldseal_refuse_change();

CREATE TABLE fieldseal_audit_checkpoints (
    seq         bigint PRIMARY KEY CHECK (seq >= 0),
    line        text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER fieldseal_checkpoints_append_only BEFORE UPDATE OR DELETE
    ON fieldseal_audit_checkpoints FOR EACH ROW EXECUTE FUNCTION fieldseal_refuse_change();
CREATE TRIGGER fieldseal_checkpoints_no_truncate BEFORE TRUNCATE ON fieldseal_audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION fieldseal_refuse_change();

CREATE TABLE fieldseal_consent (
    id          bigserial PRIMARY KEY,
    subject     bytea NOT NULL CHECK (length(subject) = 32),
    scope       text NOT NULL,
    granted     boolean NOT NULL,
    at          bigint NOT NULL,
    actor       text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fieldseal_consent_latest ON fieldseal_consent (subject, scope, id DESC);
CREATE TRIGGER fieldseal_consent_append_only BEFORE UPDATE OR DELETE ON fieldseal_consent
    FOR EACH ROW EXECUTE FUNCTION fieldseal_refuse_change();
CREATE TRIGGER fieldseal_consent_no_truncate BEFORE TRUNCATE ON fieldseal_consent
    FOR EACH STATEMENT EXECUTE FUNCTION fieldseal_refuse_change();

CREATE TABLE fieldseal_subject_keys (
    id         bytea PRIMARY KEY CHECK (length(id) = 16),
    wrapped    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

REVOKE ALL ON fieldseal_audit, fieldseal_audit_head, fieldseal_audit_checkpoints,
    fieldseal_consent, fieldseal_subject_keys FROM PUBLIC;
"#;

/// Version 2: a row per writer session, updated to make a synchronous commit that flushes the
/// WAL past the session's chaining transactions (which commit without waiting for the flush,
/// so the head lock is never held through an fsync). Holds counters only.
const V2: &str = r#"
CREATE TABLE fieldseal_audit_flush (
    pid integer PRIMARY KEY,
    n   bigint NOT NULL DEFAULT 0
);
REVOKE ALL ON fieldseal_audit_flush FROM PUBLIC;
"#;

const MIGRATIONS: &[(u32, &str)] = &[(1, V1), (2, V2)];

/// Brings the database at `url` to [`SCHEMA_VERSION`]; returns the version found before.
///
/// Explicit (nothing migrates on connect) and idempotent: each step runs in one transaction
/// with its row in `fieldseal_schema`, under an advisory lock, so concurrent callers apply it
/// once. Run it as the role that should own the tables, then [`grant`] the others theirs.
///
/// # Errors
/// [`AuditErrorKind::Rejected`] for an invalid URL, a non-loopback host without
/// `sslmode=disable` (there is no TLS support), or a database with a newer schema than this
/// release knows; [`AuditErrorKind::Io`] with the driver's error as source if a statement
/// fails.
pub fn migrate(url: &str) -> Result<u32, AuditError> {
    let config = config(url)?;
    let worker = Worker::start("fieldseal-pg-migrate")?;
    worker
        .run(async move {
            let mut client = connect(&config).await.map_err(db_err)?;
            let tx = client.transaction().await.map_err(db_err)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await
                .map_err(db_err)?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS fieldseal_schema (
                     version    integer PRIMARY KEY,
                     applied_at timestamptz NOT NULL DEFAULT now())",
            )
            .await
            .map_err(db_err)?;
            let found: i32 = tx
                .query_one(
                    "SELECT coalesce(max(version), 0) FROM fieldseal_schema",
                    &[],
                )
                .await
                .map_err(db_err)?
                .try_get(0)
                .map_err(db_err)?;
            let found = u32::try_from(found).unwrap_or(u32::MAX);
            if found > SCHEMA_VERSION {
                return Err(AuditError::new(AuditErrorKind::Rejected));
            }
            for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
                tx.batch_execute(sql).await.map_err(db_err)?;
                let v = i32::try_from(*version).unwrap_or(i32::MAX);
                tx.execute("INSERT INTO fieldseal_schema (version) VALUES ($1)", &[&v])
                    .await
                    .map_err(db_err)?;
            }
            tx.commit().await.map_err(db_err)?;
            Ok(found)
        })
        .unwrap_or_else(|| Err(AuditError::new(AuditErrorKind::Closed)))
}

/// The roles [`grant`] gives privileges to. Names are plain identifiers, `[a-z_][a-z0-9_]*`,
/// at most 63 bytes.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct Roles<'a> {
    /// The service's role: appends audit entries (SELECT and INSERT on `fieldseal_audit`,
    /// SELECT and UPDATE on the head row, nothing on checkpoints), reads and appends consent
    /// events, reads, inserts and deletes subject keys.
    pub writer: Option<&'a str>,
    /// The checkpointer's role: reads the audit chain, inserts checkpoints.
    pub checkpoint: Option<&'a str>,
}

impl<'a> Roles<'a> {
    /// The writer and checkpoint roles.
    pub fn new(writer: &'a str, checkpoint: &'a str) -> Self {
        Self {
            writer: Some(writer),
            checkpoint: Some(checkpoint),
        }
    }
}

fn ident(name: &str) -> Result<String, AuditError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(format!("\"{name}\""))
    } else {
        Err(AuditError::new(AuditErrorKind::Rejected))
    }
}

/// Grants `roles` their privileges on the tables of [`migrate`] (run as the tables' owner).
///
/// The writer may not UPDATE, DELETE or TRUNCATE audit entries (not granted, and refused by a
/// trigger for every role), nor write checkpoints; the checkpoint role may only read the chain
/// and insert checkpoints.
///
/// # Errors
/// [`AuditErrorKind::Rejected`] for a role name that is not a plain identifier or an invalid
/// URL, [`AuditErrorKind::Io`] if a statement fails (an unknown role, a missing schema).
pub fn grant(url: &str, roles: Roles<'_>) -> Result<(), AuditError> {
    let mut sql = String::new();
    if let Some(w) = roles.writer {
        let w = ident(w)?;
        sql.push_str(&format!(
            "GRANT SELECT, INSERT ON fieldseal_audit TO {w};
             GRANT SELECT, UPDATE ON fieldseal_audit_head TO {w};
             GRANT SELECT, INSERT ON fieldseal_consent TO {w};
             GRANT USAGE ON SEQUENCE fieldseal_consent_id_seq TO {w};
             GRANT SELECT, INSERT, DELETE ON fieldseal_subject_keys TO {w};
             GRANT SELECT, INSERT, UPDATE ON fieldseal_audit_flush TO {w};"
        ));
    }
    if let Some(c) = roles.checkpoint {
        let c = ident(c)?;
        sql.push_str(&format!(
            "GRANT SELECT ON fieldseal_audit, fieldseal_audit_head TO {c};
             GRANT SELECT, INSERT ON fieldseal_audit_checkpoints TO {c};"
        ));
    }
    let config = config(url)?;
    let worker = Worker::start("fieldseal-pg-grant")?;
    worker
        .run(async move {
            let mut client = connect(&config).await.map_err(db_err)?;
            let tx = client.transaction().await.map_err(db_err)?;
            tx.batch_execute(&sql).await.map_err(db_err)?;
            tx.commit().await.map_err(db_err)
        })
        .unwrap_or_else(|| Err(AuditError::new(AuditErrorKind::Closed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_plain_identifiers() {
        assert_eq!(
            ident("fieldseal_writer").ok().as_deref(),
            Some("\"fieldseal_writer\"")
        );
        for bad in [
            "",
            "Writer",
            "w\"; DROP TABLE x; --",
            "1abc",
            &"a".repeat(64),
        ] {
            assert!(ident(bad).is_err(), "{bad}");
        }
    }
}
