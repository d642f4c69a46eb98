#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(unused_must_use)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::missing_errors_doc
)]

mod anonymize;
mod any;
mod audit;
mod backends;
mod clock;
mod context;
mod crypto;
mod error;
mod field;
mod guard;
mod index;
mod keys;
mod policy;
mod purpose;
mod random;
mod retention;
mod rights;
mod sealed;
mod secret;
#[cfg(feature = "share")]
mod share;
mod telemetry;

pub mod internal;

pub use anonymize::{
    AgeBand, Anonymization, AnonymizeError, Anonymized, DateGranularity, GeneralizedDate,
    IpNetwork, PSEUDONYM_LEN, Pseudonym, RegionLevel, age_band, birth_year, generalize_time,
    ip_network, region,
};
pub use any::{AnyRevealed, AnySealed, AnyValue};
pub use audit::{
    AppEventName, AuditAction, AuditEvent, AuditField, AuditFuture, AuditKey, AuditRecord,
    AuditSink, ChainedLog, ChainedLogBuilder, CheckpointSigningKey, CheckpointVerifyingKey,
    Durability, EventRecord, FailureKind, Fault, FaultClass, FieldRecord, MemorySink, NullSink,
    OpenReport, Outcome, PseudonymKey, RecipientName, Reference, SubjectAccess, TornLine,
    VerifyReport, verify_bytes, verify_log,
};
/// `Sealed<F, P>` bound as `text` with sqlx (feature `sqlx`; `Sealed` itself binds as `bytea`).
#[cfg(feature = "sqlx")]
pub use backends::sqlx::SealedText;
pub use clock::{Clock, FixedClock, SystemClock};
pub use context::{Context, SubjectId};
pub use crypto::{EnvelopeInfo, MAX_ENVELOPE_LEN, TEXT_PREFIX};
pub use error::{
    AuditError, AuditErrorKind, ConfigError, ContextError, EngineError, Error, FormatError,
    KeyError,
};
pub use field::{
    DeviceInfo, DeviceInfoBuilder, Email, Field, FieldError, FieldKind, IdNumber, IpAddress,
    PersonName, PhoneNumber, PostalAddress, PostalAddressBuilder, Text,
};
pub use guard::{
    AppEvent, Erasure, ErasureReport, Guard, GuardBuilder, MAX_RECORD_FIELDS, RevealedRecord,
    RewrapReport,
};
pub use index::{
    BlindIndex, BlindIndexBuilder, DEFAULT_VALUES_PER_TERM, IndexError, IndexQuery, IndexTerm,
    MAX_INDEX_BITS,
};
#[cfg(feature = "pkcs11")]
pub use keys::{DEFAULT_PKCS11_MODULE, PinSource, Pkcs11Kek, Pkcs11KekBuilder};
pub use keys::{
    EnvKek, FileKek, KeyProvider, KeyState, KeyVersion, Keyring, KeyringBuilder, ProviderError,
    ProviderErrorKind, RootKey,
};
pub use keys::{
    FileSubjectKeys, MemorySubjectKeys, SubjectKeyFuture, SubjectKeyId, SubjectKeyScope,
    SubjectKeyStore, SubjectKeys,
};
#[cfg(feature = "casbin")]
pub use policy::CasbinPolicy;
pub use policy::{
    AccessPolicy, AccessRequest, Accessor, Action, AllowList, Check, ConsentFuture, ConsentRecord,
    ConsentRegistry, ConsentScope, CrossBorderRule, Decision, DenyReason, Engine, ExpiryRule,
    Explanation, GrantRef, LegalBasis, LintError, MANIFEST_VERSION, MAX_EXPANDED_GRANTS,
    MAX_INHERITANCE_DEPTH, MAX_MANIFEST_BYTES, MAX_ROLES, Manifest, ManifestError, ManifestPolicy,
    MemoryConsent, ParseError, PrincipalId, PurposeRules, RecipientBasis, RecipientRules, Region,
    Role, RoleSpec, Verdict,
};
pub use purpose::{MAX_PURPOSE_LABEL, Purpose, PurposeId, builtin, is_valid_label};
pub use random::{RandomSource, SystemRandom, after_fork};
pub use retention::{RetentionDecision, Stored, SweepCounts, SweepItem, SweepReport};
pub use rights::{
    CancellationReport, EXPORT_FORMAT, EXPORT_VERSION, Evidence, ExportedValue, IdNumberVerifier,
    IdentityVerifier, MIN_SESSION_TOKEN, NoVerifier, OneTimeCodes, SessionVerifier, SubjectExport,
    VERIFIED_TTL_SECS, Verified, Withheld,
};
pub use sealed::Sealed;
pub use secret::Revealed;
#[cfg(feature = "share")]
pub use share::{
    MAX_PACKAGE_LEN, RECIPIENT_KEY_LEN, RecipientPrivateKey, RecipientPublicKey, SHARE_TEXT_PREFIX,
    SharedPackage, open_shared,
};

/// PostgreSQL backends (feature `postgres`): a fleet-wide audit chain, its verifier and
/// checkpointer, consent, subject keys and `Sealed` column types. See SECURITY.md, "PostgreSQL".
///
/// # Connections
/// Every backend takes a URL (`postgresql://…` or `key=value …`) and connects through the same
/// function:
/// - without TLS, only loopback hosts and unix sockets are accepted, unless the URL says
///   `sslmode=disable`;
/// - with the feature `postgres-tls`, `sslmode=require` (or `verify-ca`, `verify-full`: all three
///   verify the certificate chain and the host name) and `sslrootcert=PATH`, a PEM file of the
///   only roots trusted, connect over TLS to any host. TLS mode without roots, or roots without
///   TLS mode, is refused with [`AuditErrorKind::Rejected`]; a server whose certificate does not
///   verify fails the connection.
///
/// ```no_run
/// # fn main() -> Result<(), fieldseal::AuditError> {
/// let url = "postgresql://fieldseal_writer:secret@db.internal:5432/app\
///            ?sslmode=verify-full&sslrootcert=/etc/fieldseal/db-ca.pem";
/// # #[cfg(feature = "postgres-tls")]
/// let sink = fieldseal::postgres::PgAuditSink::builder(url)
///     .key(fieldseal::AuditKey::from_bytes([0x11; 32]))
///     .connect()?;
/// # Ok(()) }
/// ```
#[cfg(feature = "postgres")]
pub mod postgres {
    pub use crate::backends::postgres::{
        CheckpointSchedule, PgAuditSink, PgAuditSinkBuilder, PgCheckpointer, PgConsent,
        PgSubjectKeys, Roles, SCHEMA_VERSION, ScheduleStatus, grant, migrate, subject_access_pg,
        verify_pg, verify_pg_with_checkpoints,
    };
    /// The driver the backends and the `Sealed` column types (`ToSql`/`FromSql`) are built on,
    /// so callers use the same version.
    pub use tokio_postgres;
}

/// Escape hatches that weaken security, for tests and known-answer vectors only.
pub mod hazmat {
    pub use crate::random::DeterministicRandom;
}

/// Not public API: lets `purposes!` implement the sealed `Purpose` trait.
#[doc(hidden)]
pub mod __private {
    pub use crate::purpose::is_valid_label;
    pub use crate::purpose::sealed::Sealed as PurposeSealed;
}
