//! Guards, contexts and raw ciphers built the way the crate's benches build them, from the
//! public API only.

use std::sync::Arc;

use fieldseal::builtin::{Marketing, Service};
use fieldseal::*;
use rand::Rng as _;
use tempfile::TempDir;

pub const REFERENCE: &str = include_str!("../../examples/reference-policy.toml");
/// The marketing role of the reference manifest, also allowed to reveal `text`, so that every
/// row can seal the same field kind at 32 bytes and at 4 KiB under a consent-based purpose.
pub fn marketing_manifest() -> String {
    let from = "[roles.marketing.grants.marketing]\nreveal = [\"email\", \"person_name\"]";
    assert!(REFERENCE.contains(from), "the reference manifest changed");
    REFERENCE.replace(
        from,
        "[roles.marketing.grants.marketing]\nreveal = [\"email\", \"person_name\", \"text\"]",
    )
}

pub const SUBJECT: &str = "subject-4711";

pub fn subject() -> SubjectId {
    SubjectId::new(SUBJECT)
}

/// Table, column, row and subject: what a service binds a value to.
pub fn ctx() -> Context {
    Context::new()
        .table("users")
        .column("note")
        .row("12345")
        .subject(&subject())
}

/// Length of [`ctx`]'s canonical encoding (`u8 count`, then per part `u8 name length, name,
/// u16 value length, value`).
pub fn ctx_len() -> usize {
    let parts = [
        ("table", "users".len()),
        ("column", "note".len()),
        ("row", "12345".len()),
        ("subject", SUBJECT.len()),
    ];
    1 + parts
        .iter()
        .map(|(n, v)| 1 + n.len() + 2 + v)
        .sum::<usize>()
}

/// Associated-data length fieldseal uses for `sealed`: its header (every byte before the
/// ciphertext) plus the encoded context.
pub fn aad_len<F: Field, P: Purpose>(sealed: &Sealed<F, P>, plaintext_len: usize) -> usize {
    sealed.as_bytes().len() - plaintext_len - 16 + ctx_len()
}

pub fn text(size: usize) -> Text {
    Text::parse(&"x".repeat(size)).expect("a valid text of at most 4096 bytes")
}

fn keyring() -> Keyring {
    Keyring::single(RootKey::from_bytes([3; 32])).expect("a static root key")
}

pub fn agent() -> Accessor {
    Accessor::new("bench", [Role::new("agent")])
}

pub fn marketer() -> Accessor {
    Accessor::new("bench", [Role::new("marketing")])
}

/// A one-line allow list (service/text/reveal and rewrap for role `agent`) and `sink`.
pub fn allow_list_guard(sink: impl AuditSink + 'static) -> Guard {
    Guard::builder()
        .keyring(keyring())
        .policy(
            AllowList::new()
                .allow::<Service>(Role::new("agent"), FieldKind::Text, Action::Reveal)
                .allow::<Service>(Role::new("agent"), FieldKind::Text, Action::Rewrap),
        )
        .audit(sink)
        .build()
        .expect("a complete builder")
}

/// The reference manifest (marketing may reveal text), a consent registry in which the
/// subject consented to marketing, and `sink`.
pub fn manifest_guard(sink: impl AuditSink + 'static) -> Guard {
    let consent = MemoryConsent::new();
    consent.grant(&subject(), ConsentScope::Purpose("marketing"), 0);
    Guard::builder()
        .keyring(keyring())
        .policy(ManifestPolicy::from_toml(&marketing_manifest()).expect("the reference manifest"))
        .consent(consent)
        .audit(sink)
        .build()
        .expect("a complete builder")
}

pub fn seal_service(guard: &Guard, size: usize) -> Sealed<Text, Service> {
    guard.seal(&text(size), &ctx()).expect("seal")
}

pub fn seal_marketing(guard: &Guard, size: usize) -> Sealed<Text, Marketing> {
    guard.seal(&text(size), &ctx()).expect("seal")
}

/// A chained log in a fresh temporary directory.
pub fn chained_log(durability: Durability) -> (Arc<ChainedLog>, TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (log, _) = ChainedLog::builder(dir.path())
        .key(AuditKey::from_bytes([1; 32]))
        .checkpoint_key(CheckpointSigningKey::from_bytes([2; 32]))
        .durability(durability)
        .max_segment_bytes(256 * 1024 * 1024)
        .open()
        .expect("open the log");
    (Arc::new(log), dir)
}

/// Raw AES-256-GCM with a prepared cipher: aes-gcm 0.11 (the version fieldseal uses) through
/// its allocating `Aead` API and through the in-place `AeadInOut` API with a detached tag (the
/// one fieldseal calls, here on a fresh `Vec` per call), and aes-gcm 0.10; a fresh random nonce
/// per encryption, as fieldseal draws one.
pub enum Raw {
    V011(Box<aes_gcm::Aes256Gcm>),
    V011InOut(Box<aes_gcm::Aes256Gcm>),
    V010(Box<aes_gcm_010::Aes256Gcm>),
}

impl Raw {
    /// The aes-gcm 0.11 variants come first ([`Raw::V011_COUNT`] of them).
    pub const VERSIONS: [&'static str; 3] =
        ["aes-gcm 0.11", "aes-gcm 0.11 in-place", "aes-gcm 0.10"];
    pub const V011_COUNT: usize = 2;

    pub fn new(version: &str) -> Self {
        use aes_gcm::aead::KeyInit;
        match version {
            "aes-gcm 0.10" => {
                use aes_gcm_010::aead::KeyInit as _;
                Self::V010(Box::new(aes_gcm_010::Aes256Gcm::new(&[5u8; 32].into())))
            }
            "aes-gcm 0.11 in-place" => {
                Self::V011InOut(Box::new(aes_gcm::Aes256Gcm::new(&[5u8; 32].into())))
            }
            _ => Self::V011(Box::new(aes_gcm::Aes256Gcm::new(&[5u8; 32].into()))),
        }
    }

    pub fn encrypt(&self, msg: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        self.encrypt_with(&nonce, msg, aad)
    }

    fn encrypt_with(&self, nonce: &[u8; 12], msg: &[u8], aad: &[u8]) -> Vec<u8> {
        match self {
            Self::V011InOut(c) => {
                use aes_gcm::aead::AeadInOut;
                let mut buf = Vec::with_capacity(msg.len() + 16);
                buf.extend_from_slice(msg);
                let tag = c
                    .encrypt_inout_detached(&(*nonce).into(), aad, buf.as_mut_slice().into())
                    .expect("encryption of a bounded message");
                buf.extend_from_slice(&tag);
                buf
            }
            Self::V011(c) => {
                use aes_gcm::aead::{Aead, Payload};
                c.encrypt(&(*nonce).into(), Payload { msg, aad })
                    .expect("encryption of a bounded message")
            }
            Self::V010(c) => {
                use aes_gcm_010::aead::{Aead, Payload};
                c.encrypt(nonce.into(), Payload { msg, aad })
                    .expect("encryption of a bounded message")
            }
        }
    }

    /// A ciphertext of `msg` under nonce `[1; 12]`, for [`Raw::decrypt`].
    pub fn prepare(&self, msg: &[u8], aad: &[u8]) -> Vec<u8> {
        self.encrypt_with(&[1u8; 12], msg, aad)
    }

    pub fn decrypt(&self, ct: &[u8], aad: &[u8]) -> Vec<u8> {
        self.decrypt_with(&[1u8; 12], ct, aad)
    }

    /// Encrypts under a fresh random nonce, then decrypts.
    pub fn round_trip(&self, msg: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ct = self.encrypt_with(&nonce, msg, aad);
        self.decrypt_with(&nonce, &ct, aad)
    }

    fn decrypt_with(&self, nonce: &[u8; 12], ct: &[u8], aad: &[u8]) -> Vec<u8> {
        match self {
            Self::V011InOut(c) => {
                use aes_gcm::aead::{AeadInOut, Tag};
                let (body, tag) = ct.split_at(ct.len() - 16);
                let tag = <&Tag<aes_gcm::Aes256Gcm>>::try_from(tag).expect("16 bytes");
                let mut buf = body.to_vec();
                c.decrypt_inout_detached(&(*nonce).into(), aad, buf.as_mut_slice().into(), tag)
                    .expect("our own ciphertext");
                buf
            }
            Self::V011(c) => {
                use aes_gcm::aead::{Aead, Payload};
                c.decrypt(&(*nonce).into(), Payload { msg: ct, aad })
                    .expect("our own ciphertext")
            }
            Self::V010(c) => {
                use aes_gcm_010::aead::{Aead, Payload};
                c.decrypt(nonce.into(), Payload { msg: ct, aad })
                    .expect("our own ciphertext")
            }
        }
    }
}
