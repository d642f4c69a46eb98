//! Shared helpers of the PostgreSQL tests: a fresh database per test on the throwaway cluster of
//! `scripts/pg-env`, and `psql` for what the library does not do (creating databases, tampering
//! as the superuser).
#![allow(dead_code, unreachable_pub)]

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

#[cfg(feature = "postgres")]
use fieldseal::postgres::{PgCheckpointer, Roles, grant, migrate};
use fieldseal::{AuditKey, CheckpointSigningKey};

/// URLs of one fresh, migrated database, per role.
#[derive(Debug, Clone)]
pub struct PgDb {
    pub name: String,
    pub owner: String,
    pub writer: String,
    pub checkpoint: String,
    pub superuser: String,
}

fn with_db(url: &str, db: &str) -> String {
    let (base, _) = url
        .rsplit_once('/')
        .unwrap_or_else(|| panic!("URL without a database"));
    format!("{base}/{db}")
}

impl PgDb {
    /// A checkpointer of this database's chain, as the checkpoint role.
    pub fn checkpointer(&self, audit_key: [u8; 32], signing_key: [u8; 32]) -> PgCheckpointer {
        PgCheckpointer::new(
            &self.checkpoint,
            &AuditKey::from_bytes(audit_key),
            CheckpointSigningKey::from_bytes(signing_key),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A fresh database named after `tag`, migrated and granted (with feature `postgres`); `None` (with a message) when the
/// environment of `scripts/pg-env` is missing.
pub fn fresh(tag: &str) -> Option<PgDb> {
    static N: AtomicU32 = AtomicU32::new(0);
    let Ok(owner) = std::env::var("FIELDSEAL_PG_URL") else {
        eprintln!(
            "skipping {tag}: FIELDSEAL_PG_URL is not set (source scripts/pg-env, or run \
             scripts/test, to run the PostgreSQL tests)"
        );
        return None;
    };
    let var = |v: &str| std::env::var(v).unwrap_or_else(|_| panic!("{v} is not set"));
    let name = format!(
        "t_{tag}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    psql(&owner, &format!("CREATE DATABASE {name}")).unwrap_or_else(|e| panic!("{e}"));
    let db = PgDb {
        owner: with_db(&owner, &name),
        writer: with_db(&var("FIELDSEAL_PG_WRITER_URL"), &name),
        checkpoint: with_db(&var("FIELDSEAL_PG_CHECKPOINT_URL"), &name),
        superuser: with_db(&var("FIELDSEAL_PG_SUPER_URL"), &name),
        name,
    };
    // The sqlx column tests run without the backends (feature `sqlx` alone): no schema then.
    #[cfg(feature = "postgres")]
    {
        migrate(&db.owner).unwrap_or_else(|e| panic!("migrate: {e}"));
        grant(
            &db.owner,
            Roles::new("fieldseal_writer", "fieldseal_checkpoint"),
        )
        .unwrap_or_else(|e| panic!("grant: {e}"));
    }
    Some(db)
}

/// Runs `sql` through psql; the unaligned, tuples-only output, or the error text.
pub fn psql(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .output()
        .map_err(|e| format!("psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
