//! Fuzzing entry points. Each fuzz target in `fuzz/` is a one-line call into this module, and
//! `tests/fuzz_corpus.rs` replays the committed corpora through the same functions.
//!
//! Every function must never panic on any input, except through the assertions below, which
//! state properties that must hold for all inputs.

use std::sync::OnceLock;

use crate::builtin::Service;
use crate::crypto::envelope;
use crate::field::{
    DeviceInfo, Email, Field, IdNumber, IpAddress, PersonName, PhoneNumber, PostalAddress, Text,
};
use crate::{AllowList, Context, Guard, Keyring, NullSink, RootKey, Sealed};

fn guard() -> &'static Guard {
    static G: OnceLock<Guard> = OnceLock::new();
    G.get_or_init(|| {
        let ring = Keyring::single(RootKey::from_bytes([0x5a; 32]));
        let ring = ring.unwrap_or_else(|_| unreachable!("a single static key always builds"));
        Guard::builder()
            .keyring(ring)
            .policy(AllowList::new())
            .audit(NullSink)
            .build()
            .unwrap_or_else(|_| unreachable!("complete builder"))
    })
}

fn accessor() -> &'static crate::Accessor {
    static A: OnceLock<crate::Accessor> = OnceLock::new();
    A.get_or_init(|| crate::Accessor::new("fuzz", []))
}

/// The text-envelope parser: strict decoding means a decoded envelope re-encodes to the input.
pub fn envelope_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(bytes) = envelope::from_text(text) {
        assert_eq!(
            envelope::to_text(&bytes),
            text,
            "text decoding is not canonical"
        );
        envelope_binary(&bytes);
    }
    if let Ok(s) = Sealed::<Text, Service>::from_text(text) {
        assert!(guard().reveal(accessor(), &s, &Context::new()).is_err());
    }
}

/// The binary-envelope parser: whatever parses survives a text round trip and never opens
/// (nobody but the key holder can make an envelope authenticate).
pub fn envelope_binary(data: &[u8]) {
    if let Ok(p) = envelope::parse(data) {
        // Whatever parses is described, unless its ciphertext is over its kind's cap.
        let info = crate::EnvelopeInfo::from_bytes(data);
        assert_eq!(
            info.is_ok(),
            p.ciphertext.len() <= p.kind.max_canonical_len()
        );
        let text = envelope::to_text(data);
        assert_eq!(envelope::from_text(&text).as_deref(), Ok(data));
    }
    if let Ok(s) = Sealed::<Email, Service>::from_bytes(data) {
        assert!(guard().reveal(accessor(), &s, &Context::new()).is_err());
        let _ = format!("{s:?}");
    }
}

/// One field kind's parser and canonical decoder:
/// parse -> canonical -> from_canonical gives the same value, and the canonical decoder accepts
/// only encodings it would produce itself.
pub fn field<F: Field>(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(v) = F::parse(s)
    {
        let bytes = v.canonical_bytes();
        assert_eq!(bytes.len(), v.canonical_len());
        assert!(bytes.len() <= F::MAX_CANONICAL_LEN);
        let back = F::from_canonical(&bytes);
        assert!(back.as_ref().is_ok_and(|b| b.canonical_bytes() == bytes));
        let _ = v.mask();
    }
    if let Ok(v) = F::from_canonical(data) {
        assert_eq!(
            &v.canonical_bytes()[..],
            data,
            "non-canonical encoding accepted"
        );
    }
}

/// Dispatches to [`field`] by the first byte, for a single all-kinds target.
pub fn any_field(data: &[u8]) {
    let Some((&k, rest)) = data.split_first() else {
        return;
    };
    match k % 8 {
        0 => field::<IdNumber>(rest),
        1 => field::<PhoneNumber>(rest),
        2 => field::<Email>(rest),
        3 => field::<PersonName>(rest),
        4 => field::<PostalAddress>(rest),
        5 => field::<IpAddress>(rest),
        6 => field::<DeviceInfo>(rest),
        _ => field::<Text>(rest),
    }
}

fn audit_keys() -> &'static (crate::AuditKey, crate::CheckpointVerifyingKey) {
    static K: OnceLock<(crate::AuditKey, crate::CheckpointVerifyingKey)> = OnceLock::new();
    K.get_or_init(|| {
        (
            crate::AuditKey::from_bytes(FUZZ_AUDIT_KEY),
            crate::CheckpointSigningKey::from_bytes(FUZZ_CHECKPOINT_KEY).verifying_key(),
        )
    })
}

/// The audit key the audit fuzz targets verify under (seed corpora are made with it).
pub const FUZZ_AUDIT_KEY: [u8; 32] = [0x11; 32];
/// The checkpoint signing key of the audit seed corpora.
pub const FUZZ_CHECKPOINT_KEY: [u8; 32] = [0x22; 32];

/// The audit log-line parser: a parsed line is canonical, so its sequence number is readable
/// from its prefix, and the MAC-first fast path agrees with the full parser.
pub fn audit_line(data: &[u8]) {
    use crate::audit::line_fuzz as l;
    let (key, _) = audit_keys();
    let mac = l::ChainMac::new(key.mac_key());
    let parsed = l::parse_line(data);
    if let Some(line) = &parsed {
        assert_eq!(l::quick_seq(data), Some(line.seq), "prefix seq disagrees");
    }
    if let Some(seq) = l::quick_seq(data) {
        for head in [l::GENESIS, parsed.as_ref().map_or(l::GENESIS, |p| p.prev)] {
            if let Some(tag) = l::fast_accept(data, seq, &head, &mac) {
                let line = parsed.as_ref();
                assert!(line.is_some_and(|p| p.mac == tag && mac.check(data, p)));
            }
        }
    }
}

/// The checkpoint parser: whatever parses re-serializes to the input.
pub fn audit_checkpoint(data: &[u8]) {
    use crate::audit::line_fuzz::Checkpoint;
    let (_, public) = audit_keys();
    if let Some(c) = Checkpoint::parse(data) {
        let mut line = c.to_line();
        line.pop();
        assert_eq!(line, data, "checkpoint parsing is not canonical");
        let _ = c.verify(public);
    }
}

/// The verifier on arbitrary bytes: the input up to the first `0xff` byte is a log segment,
/// the rest a checkpoint file. Never panics; a log without a fault has exactly as many entries
/// as lines.
pub fn audit_verify(data: &[u8]) {
    let (key, public) = audit_keys();
    let (log, ckpt) = match data.iter().position(|&b| b == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let r = crate::verify_bytes(&[log.to_vec()], ckpt, key, public);
    assert!(r.entries as usize <= log.split(|&b| b == b'\n').count());
    assert_eq!(r.records().len() as u64, r.entries);
    if r.fault.is_none() {
        let lines = log.iter().filter(|&&b| b == b'\n').count() as u64;
        assert_eq!(r.entries, lines);
        assert!(log.is_empty() || log.last() == Some(&b'\n'));
    }
}

/// The policy-manifest parser and compiler: any text either parses, lints and compiles into a
/// policy whose cached decisions equal its uncached ones, or is rejected with a typed error
/// (a lint rejection lists at least one problem).
pub fn policy_manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let manifest = match crate::Manifest::from_toml(text) {
        Ok(m) => m,
        Err(crate::ManifestError::Lint(errs)) => {
            assert!(!errs.is_empty(), "lint rejection without a problem");
            return;
        }
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let roles: Vec<crate::Role> = manifest.roles().map(crate::Role::new).collect();
    let purposes: Vec<String> = manifest.purposes().map(str::to_owned).collect();
    let Ok(policy) = crate::ManifestPolicy::new(manifest, crate::Engine::Native) else {
        return;
    };
    for role in roles.iter().take(8) {
        let acc = crate::Accessor::new("fuzz", [role.clone()]);
        for purpose in purposes.iter().take(8) {
            for kind in crate::FieldKind::ALL {
                for action in crate::Action::ALL {
                    let req = crate::AccessRequest {
                        accessor: &acc,
                        purpose,
                        kind,
                        action,
                    };
                    let d = crate::AccessPolicy::decide(&policy, &req);
                    assert_eq!(d, policy.decide_uncached(&req));
                    assert_eq!(d, policy.explain_grant(&req).decision);
                }
            }
        }
    }
}

/// The KEK the keyring-file target unwraps under (its seed corpus is made with it).
pub const FUZZ_KEK: [u8; 32] = [0x33; 32];

fn fuzz_kek() -> &'static crate::FileKek {
    static K: OnceLock<crate::FileKek> = OnceLock::new();
    K.get_or_init(|| crate::FileKek::from_key_for_tests(&FUZZ_KEK))
}

/// A valid keyring file under [`FUZZ_KEK`], written to `path` (a seed for `keyring_file`).
///
/// # Errors
/// If the file exists or cannot be written.
pub fn keyring_seed(path: &std::path::Path) -> Result<(), crate::Error> {
    crate::keys::KeyringFile::create(fuzz_kek(), path).map(|_| ())
}

/// The keyring-file parser: any bytes are refused with a typed error or load into versions
/// that are unique, with a root key for every version not retired.
pub fn keyring_file(data: &[u8]) {
    let path = std::path::Path::new("/nonexistent/fuzz-keyring.json");
    if let Ok((_, versions)) = crate::keys::KeyringFile::from_text(fuzz_kek(), path, data) {
        let mut seen = std::collections::BTreeSet::new();
        for (v, state, root) in &versions {
            assert!(seen.insert(*v), "duplicate version loaded");
            assert_eq!(root.is_some(), *state != crate::KeyState::Retired);
        }
    }
}

/// `Sealed` through serde: JSON (the text form) and any binary form `decode` stands for.
/// Whatever deserializes re-serializes to the same envelope and never opens under the fuzz key
/// without the right context.
pub fn sealed_json(data: &[u8]) {
    if let Ok(s) = serde_json::from_slice::<Sealed<Email, Service>>(data) {
        let again = serde_json::to_vec(&s).unwrap_or_default();
        let back = serde_json::from_slice::<Sealed<Email, Service>>(&again);
        assert!(
            back.is_ok_and(|b| b.as_bytes().to_vec() == s.as_bytes().to_vec()),
            "JSON round trip"
        );
        assert_eq!(
            Sealed::<Email, Service>::from_text(&s.to_text())
                .map(|b| b.as_bytes().to_vec())
                .ok(),
            Some(s.as_bytes().to_vec())
        );
    }
    let _ = serde_json::from_slice::<crate::AnySealed>(data);
}

/// As [`sealed_json`] for a binary serde format: `decoded` is what the format made of the
/// fuzz input, `encode` serializes a value back.
pub fn sealed_binary<E>(
    decoded: Result<Sealed<Email, Service>, E>,
    encode: impl Fn(&Sealed<Email, Service>) -> Option<Vec<u8>>,
    decode: impl Fn(&[u8]) -> Option<Sealed<Email, Service>>,
) {
    if let Ok(s) = decoded {
        let bytes = encode(&s);
        let back = bytes.as_deref().and_then(decode);
        assert!(
            back.is_some_and(|b| b.as_bytes().to_vec() == s.as_bytes().to_vec()),
            "binary round trip"
        );
        assert!(Sealed::<Email, Service>::from_bytes(s.as_bytes()).is_ok());
    }
}

fn open_guard() -> &'static Guard {
    static G: OnceLock<Guard> = OnceLock::new();
    G.get_or_init(|| {
        let ring = Keyring::single(RootKey::from_bytes([0x5b; 32]));
        let ring = ring.unwrap_or_else(|_| unreachable!("a single static key always builds"));
        let mut policy = AllowList::new();
        for kind in crate::FieldKind::ALL {
            policy = policy.allow::<Service>(crate::Role::new("fuzz"), kind, crate::Action::Reveal);
        }
        Guard::builder()
            .keyring(ring)
            .policy(policy)
            .audit(NullSink)
            .build()
            .unwrap_or_else(|_| unreachable!("complete builder"))
    })
}

/// Seal → mutate → reveal, structure-aware: the input picks a text value, a context row, and a
/// mutation (flip a byte of the envelope, truncate it, append to it, or change the context).
/// The unmutated round trip is exact; every mutation is rejected.
pub fn seal_mutate_reveal(data: &[u8]) {
    let [op, pos_hi, pos_lo, val, rest @ ..] = data else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let Ok(value) = Text::parse(text) else {
        return;
    };
    let g = open_guard();
    let who = crate::Accessor::new("fuzz", [crate::Role::new("fuzz")]);
    let ctx = Context::new().table("t").row(&format!("{val}"));
    let Ok(sealed) = g.seal::<Text, Service>(&value, &ctx) else {
        return;
    };
    let opened = g.reveal(&who, &sealed, &ctx);
    assert!(
        opened.is_ok_and(|o| o.expose_secret().canonical_bytes() == value.canonical_bytes()),
        "round trip"
    );
    let mut bytes = sealed.as_bytes().to_vec();
    let pos = usize::from(u16::from_be_bytes([*pos_hi, *pos_lo])) % bytes.len();
    let (bytes, ctx2) = match op % 4 {
        0 => {
            let flip = if *val == 0 { 1 } else { *val };
            bytes[pos] ^= flip;
            (bytes, ctx.clone())
        }
        1 => {
            bytes.truncate(pos);
            (bytes, ctx.clone())
        }
        2 => {
            bytes.push(*val);
            (bytes, ctx.clone())
        }
        _ => (
            bytes,
            Context::new()
                .table("t")
                .row(&format!("{}", u16::from(*val) + 256)),
        ),
    };
    if let Ok(m) = Sealed::<Text, Service>::from_bytes(&bytes) {
        assert!(g.reveal(&who, &m, &ctx2).is_err(), "a mutated value opened");
    }
}

/// Key parsing: root keys from bytes and base64, checkpoint verifying keys from bytes. Never
/// panics; a root key parses from base64 exactly when the text is 32 bytes of standard base64.
pub fn key_parsing(data: &[u8]) {
    let _ = RootKey::from_slice(data);
    if let Ok(text) = std::str::from_utf8(data) {
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD.decode(text.trim());
        let parsed = RootKey::from_base64(text);
        if parsed.is_ok() {
            assert!(
                decoded.is_ok_and(|d| d.len() == 32),
                "root key from non-32-byte base64"
            );
        }
    }
    if let Ok(bytes) = <&[u8; 32]>::try_from(data) {
        let _ = crate::CheckpointVerifyingKey::from_bytes(bytes);
    }
}

/// The recipient key pair of the `shared_package` target (fixed, public: fuzzing only).
#[cfg(feature = "share")]
pub const FUZZ_RECIPIENT_KEY: [u8; 32] = [0x33; 32];

/// The shared-package parsers (binary and text, feature `share`): whatever parses survives a
/// text round trip and describes itself without panicking, and never opens for the fuzz
/// recipient (making a package that opens needs the HPKE encryption, not mutation).
#[cfg(feature = "share")]
pub fn shared_package(data: &[u8]) {
    use crate::{RecipientName, RecipientPrivateKey, SharedPackage};

    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(p) = SharedPackage::from_text(text)
    {
        assert_eq!(p.to_text(), text, "text decoding is not canonical");
    }
    let Ok(p) = SharedPackage::from_bytes(data) else {
        return;
    };
    let again = SharedPackage::from_text(&p.to_text());
    assert_eq!(again.ok().as_ref(), Some(&p), "text round trip");
    let _ = format!("{p:?}");
    let key = RecipientPrivateKey::from_bytes(zeroize::Zeroizing::new(FUZZ_RECIPIENT_KEY));
    let key = key.unwrap_or_else(|_| unreachable!("any 32 bytes are an X25519 private key"));
    let (Ok(recipient), Ok(purpose)) = (
        RecipientName::new(p.recipient()),
        crate::PurposeId::new(p.purpose_label()),
    ) else {
        unreachable!("a parsed package has valid names")
    };
    assert!(
        crate::open_shared(&key, &p, &recipient, &purpose, &Context::new()).is_err(),
        "a mutated package opened"
    );
}
