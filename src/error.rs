//! The crate's error type and its nested kinds.
//!
//! Messages never contain plaintext, key bytes or raw subject identifiers: every variant carries
//! only the rule that failed, lengths, codes and labels that are not personal data.

use std::fmt;

use crate::anonymize::AnonymizeError;
use crate::field::{FieldError, FieldKind};
use crate::index::IndexError;
use crate::keys::{KeyVersion, ProviderError};
use crate::policy::{DenyReason, ManifestError};

/// Every error fieldseal returns.
///
/// Authentication failures (wrong key, wrong context, tampered bytes) are deliberately one opaque
/// variant, [`Error::Integrity`]: the caller is never told which check failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A field value failed validation.
    Field(FieldError),
    /// A sealed value's stored form is malformed or of another kind or purpose.
    Format(FormatError),
    /// The caller's [`Context`](crate::Context) is invalid.
    Context(ContextError),
    /// A key was missing, retired or malformed.
    Key(KeyError),
    /// The access policy (or a consent, retention or residency check) denied the request.
    Denied {
        /// Why the request was denied.
        reason: DenyReason,
    },
    /// The audit sink did not accept the record, so the operation failed closed.
    Audit(AuditError),
    /// Authentication failed: the value was tampered with, or the key, purpose, kind or context
    /// differ from those it was sealed under. Deliberately says nothing more.
    Integrity,
    /// The random number generator failed.
    Random,
    /// A builder was given an inconsistent configuration.
    Config(ConfigError),
    /// A policy manifest failed to parse or lint.
    Manifest(ManifestError),
    /// A policy engine rejected its model or policy.
    Engine(EngineError),
    /// A key provider (KEK file, token, KMS) failed.
    Provider(ProviderError),
    /// Reading or writing a file (a keyring or key store) failed.
    Io(std::io::Error),
    /// An anonymization method does not apply to the value.
    Anonymize(AnonymizeError),
    /// A blind index's configuration was refused.
    Index(IndexError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Field(e) => write!(f, "invalid field value: {e}"),
            Error::Format(e) => write!(f, "malformed sealed value: {e}"),
            Error::Context(e) => write!(f, "invalid context: {e}"),
            Error::Key(e) => write!(f, "key error: {e}"),
            Error::Denied { reason } => write!(f, "access denied: {reason}"),
            Error::Audit(e) => write!(f, "audit sink failed, operation refused: {e}"),
            Error::Integrity => f.write_str("sealed value failed authentication"),
            Error::Random => f.write_str("random number generator failed"),
            Error::Config(e) => write!(f, "invalid configuration: {e}"),
            Error::Manifest(e) => write!(f, "invalid policy manifest: {e}"),
            Error::Engine(e) => write!(f, "policy engine error: {e}"),
            Error::Provider(e) => write!(f, "key provider error: {e}"),
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Anonymize(e) => write!(f, "cannot anonymize: {e}"),
            Error::Index(e) => write!(f, "invalid blind index: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Field(e) => Some(e),
            Error::Format(e) => Some(e),
            Error::Context(e) => Some(e),
            Error::Key(e) => Some(e),
            Error::Audit(e) => Some(e),
            Error::Config(e) => Some(e),
            Error::Manifest(e) => Some(e),
            Error::Engine(e) => Some(e),
            Error::Provider(e) => Some(e),
            Error::Io(e) => Some(e),
            Error::Anonymize(e) => Some(e),
            Error::Index(e) => Some(e),
            Error::Denied { .. } | Error::Integrity | Error::Random => None,
        }
    }
}

impl From<FieldError> for Error {
    fn from(e: FieldError) -> Self {
        Error::Field(e)
    }
}
impl From<FormatError> for Error {
    fn from(e: FormatError) -> Self {
        Error::Format(e)
    }
}
impl From<ContextError> for Error {
    fn from(e: ContextError) -> Self {
        Error::Context(e)
    }
}
impl From<KeyError> for Error {
    fn from(e: KeyError) -> Self {
        Error::Key(e)
    }
}
impl From<ProviderError> for Error {
    fn from(e: ProviderError) -> Self {
        Error::Provider(e)
    }
}

impl From<AnonymizeError> for Error {
    fn from(e: AnonymizeError) -> Self {
        Error::Anonymize(e)
    }
}
impl From<IndexError> for Error {
    fn from(e: IndexError) -> Self {
        Error::Index(e)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<AuditError> for Error {
    fn from(e: AuditError) -> Self {
        Error::Audit(e)
    }
}
impl From<ManifestError> for Error {
    fn from(e: ManifestError) -> Self {
        Error::Manifest(e)
    }
}
impl From<EngineError> for Error {
    fn from(e: EngineError) -> Self {
        Error::Engine(e)
    }
}

/// A policy engine (casbin) rejected a model or policy text, or failed to evaluate a request.
#[derive(Debug)]
pub struct EngineError {
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl EngineError {
    /// Wraps the engine's own error. The source must not carry personal data (model and policy
    /// texts name roles, purposes and kinds only).
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            source: source.into(),
        }
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "policy engine rejected the model or policy: {}",
            self.source
        )
    }
}

impl std::error::Error for EngineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source as &(dyn std::error::Error + 'static))
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}

/// Why a stored sealed value could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatError {
    /// The input is empty.
    Empty,
    /// The input is longer than any valid envelope.
    TooLong {
        /// The largest accepted length.
        max: usize,
    },
    /// The input ends before the envelope does.
    Truncated,
    /// The text form does not start with a known prefix.
    UnknownPrefix,
    /// The text form is not valid unpadded base64url.
    Base64,
    /// The envelope version is not one this release can read.
    UnsupportedVersion(u8),
    /// The text prefix and the binary version byte disagree.
    VersionMismatch,
    /// The field-kind code is not assigned.
    UnknownKind(u8),
    /// The value was sealed as another field kind than the one requested.
    KindMismatch {
        /// The kind the caller asked for.
        expected: FieldKind,
        /// The kind in the envelope.
        found: FieldKind,
    },
    /// The value was sealed for another purpose than the one requested.
    PurposeMismatch {
        /// The purpose the caller asked for.
        expected: &'static str,
    },
    /// The purpose label is empty, too long or has characters outside `[a-z0-9_]`.
    InvalidPurposeLabel,
    /// Flag bits reserved for future versions are set.
    ReservedFlags(u8),
    /// Key version 0 is never assigned.
    ZeroKeyVersion,
    /// The ciphertext is shorter than an authentication tag or longer than the kind allows.
    CiphertextLength,
    /// An application event or recipient name is not `[a-z][a-z0-9_]{0,31}`.
    InvalidName,
    /// An event reference is not 1-64 characters of `[A-Za-z0-9._:/#-]`.
    InvalidReference,
    /// A session token is shorter than the minimum (bytes).
    TokenTooShort {
        /// The minimum length in bytes.
        min: usize,
    },
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::Empty => f.write_str("input is empty"),
            FormatError::TooLong { max } => write!(f, "input longer than {max} bytes"),
            FormatError::Truncated => f.write_str("envelope is truncated"),
            FormatError::UnknownPrefix => f.write_str("text form has an unknown prefix"),
            FormatError::Base64 => f.write_str("text form is not canonical unpadded base64url"),
            FormatError::UnsupportedVersion(v) => write!(f, "unsupported envelope version {v}"),
            FormatError::VersionMismatch => f.write_str("text prefix and envelope version differ"),
            FormatError::UnknownKind(k) => write!(f, "unknown field kind code {k}"),
            FormatError::KindMismatch { expected, found } => {
                write!(f, "sealed as {found}, expected {expected}")
            }
            FormatError::PurposeMismatch { expected } => {
                write!(f, "sealed for another purpose than {expected}")
            }
            FormatError::InvalidPurposeLabel => f.write_str("invalid purpose label"),
            FormatError::ReservedFlags(b) => write!(f, "reserved flag bits set ({b:#04x})"),
            FormatError::ZeroKeyVersion => f.write_str("key version 0 is invalid"),
            FormatError::CiphertextLength => f.write_str("ciphertext length out of range"),
            FormatError::InvalidName => {
                f.write_str("invalid event or recipient name (expected [a-z][a-z0-9_]{0,31})")
            }
            FormatError::InvalidReference => {
                f.write_str("invalid event reference (expected 1-64 of [A-Za-z0-9._:/#-])")
            }
            FormatError::TokenTooShort { min } => {
                write!(f, "session token shorter than {min} bytes")
            }
        }
    }
}

impl std::error::Error for FormatError {}

/// Why a [`Context`](crate::Context) cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContextError {
    /// A part name is empty, longer than 32 bytes or not `[a-z0-9_]`.
    InvalidName,
    /// The same part name was bound twice.
    DuplicateName,
    /// A part value is longer than 1,024 bytes.
    ValueTooLong,
    /// More than 16 parts.
    TooManyParts,
}

impl fmt::Display for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContextError::InvalidName => "context part name must be 1-32 bytes of [a-z0-9_]",
            ContextError::DuplicateName => "context part bound twice",
            ContextError::ValueTooLong => "context part value longer than 1024 bytes",
            ContextError::TooManyParts => "context has more than 16 parts",
        })
    }
}

impl std::error::Error for ContextError {}

/// Key management errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// No root key with this version is loaded.
    UnknownVersion(KeyVersion),
    /// The version is below the keyring's minimum decryption version (retired).
    Retired {
        /// The version in the envelope.
        version: KeyVersion,
        /// The keyring's minimum decryption version.
        minimum: KeyVersion,
    },
    /// The keyring has no active (sealing) key.
    NoActiveKey,
    /// The same version was added twice.
    DuplicateVersion(KeyVersion),
    /// Key material has the wrong length (root keys are 32 bytes).
    InvalidLength,
    /// Key material is not valid base64.
    InvalidEncoding,
    /// The value was sealed under a per-subject key, and no subject-key store holds it (erased,
    /// or no store configured).
    SubjectKeyUnavailable,
    /// A keyring file is not in the documented format.
    FileMalformed,
    /// A keyring file's integrity tag does not verify: it was edited or damaged.
    FileIntegrity,
    /// A keyring file of a format version this release cannot read.
    UnsupportedFileVersion(u32),
    /// The operation needs a keyring loaded from a file.
    NotPersistent,
    /// The active version cannot be retired; activate another one first.
    RetireActive,
    /// The value was sealed under a subject key that has been erased (crypto-shredded): it can
    /// never be opened again.
    Erased,
    /// The purpose does not use subject keys of a scope that can be erased this way (a
    /// per-subject key is erased with the subject, not per purpose).
    NotErasable,
    /// Sealing for a purpose with subject keys needs a `subject` in the context.
    SubjectRequired,
    /// A recipient's public key is one no shared secret can be agreed with (a low-order X25519
    /// point).
    InvalidPublicKey,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::UnknownVersion(v) => write!(f, "no root key with version {v}"),
            KeyError::Retired { version, minimum } => {
                write!(f, "key version {version} is retired (minimum {minimum})")
            }
            KeyError::NoActiveKey => f.write_str("keyring has no active key"),
            KeyError::DuplicateVersion(v) => write!(f, "key version {v} added twice"),
            KeyError::InvalidLength => f.write_str("root key must be 32 bytes"),
            KeyError::InvalidEncoding => f.write_str("key material is not valid base64"),
            KeyError::SubjectKeyUnavailable => f.write_str("subject key unavailable"),
            KeyError::FileMalformed => f.write_str("keyring file is malformed"),
            KeyError::FileIntegrity => {
                f.write_str("keyring file integrity check failed (edited or damaged)")
            }
            KeyError::UnsupportedFileVersion(v) => {
                write!(f, "keyring file format version {v} is not supported")
            }
            KeyError::NotPersistent => f.write_str("keyring has no file"),
            KeyError::RetireActive => f.write_str("the active key version cannot be retired"),
            KeyError::Erased => f.write_str("the subject key was erased; the value is gone"),
            KeyError::NotErasable => {
                f.write_str("this purpose's subject keys cannot be erased per purpose")
            }
            KeyError::SubjectRequired => {
                f.write_str("sealing for this purpose needs a subject in the context")
            }
            KeyError::InvalidPublicKey => f.write_str("recipient public key is a low-order point"),
        }
    }
}

impl std::error::Error for KeyError {}

/// What went wrong in an audit sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditErrorKind {
    /// The sink refused the record (for example a test sink injecting failure).
    Rejected,
    /// The sink's storage failed (I/O, fsync, connection).
    Io,
    /// The sink is closed or has stopped accepting records after an earlier failure.
    Closed,
    /// A stored audit log is damaged before its last line (the entry with this sequence number,
    /// or the one expected at that position, is bad); it is not opened for appending.
    Corrupt {
        /// The first bad sequence number.
        seq: u64,
    },
    /// A stored audit log has entries but its checkpoint file is missing or holds no valid
    /// checkpoint; it is not opened (a truncation could otherwise go unnoticed). An operator
    /// who knows the file was lost can accept the log as it is with
    /// `ChainedLogBuilder::dangerous_accept_missing_checkpoints`.
    CheckpointsMissing,
    /// Another writer (in this process or another) has the audit log's directory open: two
    /// writers would interleave appends and break the chain.
    Locked,
}

/// An audit sink did not accept a record.
#[derive(Debug)]
pub struct AuditError {
    kind: AuditErrorKind,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl AuditError {
    /// An error of `kind` with no underlying cause.
    pub fn new(kind: AuditErrorKind) -> Self {
        Self { kind, source: None }
    }

    /// An error of `kind` caused by `source`. The source must not carry personal data.
    pub fn with_source(
        kind: AuditErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            kind,
            source: Some(source.into()),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> AuditErrorKind {
        self.kind
    }
}

impl fmt::Display for AuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            AuditErrorKind::Rejected => f.write_str("audit record rejected"),
            AuditErrorKind::Io => f.write_str("audit storage failed"),
            AuditErrorKind::Closed => f.write_str("audit sink closed"),
            AuditErrorKind::Corrupt { seq } => write!(f, "audit log corrupt at seq {seq}"),
            AuditErrorKind::CheckpointsMissing => {
                f.write_str("audit log has entries but no valid checkpoint on record")
            }
            AuditErrorKind::Locked => {
                f.write_str("audit log directory is locked by another writer")
            }
        }
    }
}

impl std::error::Error for AuditError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// A builder was given an inconsistent configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `Guard::builder()` needs a keyring.
    MissingKeyring,
    /// `Guard::builder()` needs an access policy.
    MissingPolicy,
    /// `Guard::builder()` needs an audit sink (use `NullSink` explicitly to opt out).
    MissingAuditSink,
    /// A keyring builder got no root keys.
    NoKeys,
    /// The active key version is below the minimum decryption version.
    ActiveBelowMinimum,
    /// Purposes use subject keys, or an erasure was asked for, but no subject keys are
    /// configured.
    MissingSubjectKeys,
    /// A consent change was asked for, but no consent registry is configured.
    MissingConsent,
    /// The consent registry is read-only (it does not implement
    /// [`ConsentRegistry::change`](crate::ConsentRegistry::change)).
    ReadOnlyConsent,
    /// The access policy defines no rules (retention, legal basis) for a value's purpose, so a
    /// retention sweep or an account cancellation cannot decide for it.
    NoPurposeRules,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigError::MissingKeyring => "no keyring configured",
            ConfigError::MissingPolicy => "no access policy configured",
            ConfigError::MissingAuditSink => "no audit sink configured",
            ConfigError::NoKeys => "keyring has no keys",
            ConfigError::ActiveBelowMinimum => {
                "active key version is below the minimum decryption version"
            }
            ConfigError::MissingSubjectKeys => "no subject keys configured",
            ConfigError::MissingConsent => "no consent registry configured",
            ConfigError::ReadOnlyConsent => "the consent registry is read-only",
            ConfigError::NoPurposeRules => "the access policy defines no rules for the purpose",
        })
    }
}

impl std::error::Error for ConfigError {}
