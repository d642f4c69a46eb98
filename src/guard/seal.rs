//! Sealing: typed ([`Guard::seal`]) and dynamic ([`Guard::seal_any`]), on one core that the
//! re-sealing operations (rewrap, repurpose) share.

use std::cell::RefCell;
use std::sync::Arc;

use zeroize::Zeroize;

use super::Guard;
use crate::any::{AnySealed, AnyValue};
use crate::context::Context;
use crate::crypto::aead::{EpochKey, NONCE_LEN, TAG_LEN};
use crate::crypto::envelope::{self, HeaderFields, MAX_PLAINTEXT};
use crate::error::{Error, FormatError};
use crate::field::{Field, FieldKind};
use crate::keys::SubjectKeyId;
use crate::policy::Decision;
use crate::purpose::{Purpose, PurposeId, is_valid_label};
use crate::sealed::Sealed;
use crate::telemetry::{Op, OpSpan};

/// Runtime purpose labels distinct on this thread, kept at most this many.
const LABELS_CAP: usize = 64;

thread_local! {
    /// Runtime purpose labels this thread sealed under, one shared copy each: the keyring finds
    /// a thread's sealing epoch by the label's address, so a label at a new address each time
    /// would start a new epoch (a key derivation, a cache entry) on every seal.
    static LABELS: RefCell<Vec<Arc<str>>> = const { RefCell::new(Vec::new()) };
}

/// One copy of `label` per thread, at a stable address, for sealing under runtime purposes.
pub(super) fn stable_label(label: &str) -> Arc<str> {
    LABELS
        .try_with(|cell| {
            let mut labels = cell.try_borrow_mut().ok()?;
            if let Some(known) = labels.iter().find(|l| &***l == label) {
                return Some(Arc::clone(known));
            }
            // Forgetting them all is safe: the keyring compares the label's bytes on every hit,
            // so a new label at a freed address never aliases an old epoch.
            if labels.len() >= LABELS_CAP {
                labels.clear();
            }
            let fresh: Arc<str> = Arc::from(label);
            labels.push(Arc::clone(&fresh));
            Some(fresh)
        })
        .ok()
        .flatten()
        .unwrap_or_else(|| Arc::from(label))
}

/// What to seal: everything but the plaintext, which the core asks the caller to write.
pub(super) struct SealRequest<'a> {
    /// The purpose label (valid). Pass the same `&str` for repeated seals: the keyring finds
    /// the thread's sealing epoch by the label's address.
    pub(super) purpose: &'a str,
    pub(super) kind: FieldKind,
    /// The canonical context encoding (already checked).
    pub(super) context: &'a [u8],
    pub(super) sealed_at: u64,
    /// Exact length of the plaintext the writer appends.
    pub(super) body_len: usize,
    /// The subject key (id, secret) to seal under, for purposes with subject keys.
    pub(super) subject_key: Option<(&'a SubjectKeyId, &'a [u8; 32])>,
}

impl Guard {
    /// Encrypts `value` for purpose `P`, bound to `context`.
    ///
    /// Sealing needs no accessor: any code that holds plaintext may protect it.
    ///
    /// # Errors
    /// [`Error::Context`] for an invalid context, [`Error::Random`] if the random source fails,
    /// [`FormatError::InvalidPurposeLabel`] for a `Purpose` implemented by hand (not through
    /// [`purposes!`](crate::purposes)) with an invalid label.
    pub fn seal<F: Field, P: Purpose>(
        &self,
        value: &F,
        context: &Context,
    ) -> Result<Sealed<F, P>, Error> {
        let op = OpSpan::start(Op::Seal, P::LABEL, Some(F::KIND));
        op.run(|| {
            let sealed = self.seal_typed(value, context)?;
            op.new_key_version(|| sealed.key_version());
            Ok(sealed)
        })
    }

    fn seal_typed<F: Field, P: Purpose>(
        &self,
        value: &F,
        context: &Context,
    ) -> Result<Sealed<F, P>, Error> {
        // `purposes!` checks labels at compile time; a hand-made `Purpose` gets a typed error.
        if !is_valid_label(P::LABEL) {
            return Err(FormatError::InvalidPurposeLabel.into());
        }
        if let Decision::Deny(reason) = self.policy.decide_seal(P::LABEL, F::KIND) {
            return Err(Error::Denied { reason });
        }
        let body_len = value.canonical_len();
        if body_len > F::MAX_CANONICAL_LEN {
            return Err(Error::Format(FormatError::CiphertextLength));
        }
        let encoded = context.encoded()?;
        let subject = self.subject_key_for(P::LABEL, context, true)?;
        let req = SealRequest {
            purpose: P::LABEL,
            kind: F::KIND,
            context: encoded,
            sealed_at: self.clock.now(),
            body_len,
            subject_key: subject.as_ref().map(|(id, k)| (id, &***k)),
        };
        self.seal_core(&req, &mut |out| value.write_canonical(out))
            .map(Sealed::from_trusted)
    }

    /// Encrypts `value` (of the kind it holds) for `purpose`, bound to `context`: the dynamic
    /// form of [`Guard::seal`], for tools that learn kind and purpose at run time
    /// ([`AnyValue::parse`]). The envelope is byte for byte what `seal` would produce.
    ///
    /// # Errors
    /// As [`Guard::seal`].
    pub fn seal_any(
        &self,
        value: &AnyValue,
        purpose: &PurposeId,
        context: &Context,
    ) -> Result<AnySealed, Error> {
        let op = OpSpan::start(Op::Seal, purpose.as_str(), Some(value.kind()));
        op.run(|| {
            let sealed = self.seal_dynamic(value, purpose, context)?;
            op.new_key_version(|| sealed.key_version());
            Ok(sealed)
        })
    }

    fn seal_dynamic(
        &self,
        value: &AnyValue,
        purpose: &PurposeId,
        context: &Context,
    ) -> Result<AnySealed, Error> {
        let body_len = value.canonical_len();
        if body_len > value.max_canonical_len() {
            return Err(Error::Format(FormatError::CiphertextLength));
        }
        let label = stable_label(purpose.as_str());
        if !is_valid_label(&label) {
            return Err(FormatError::InvalidPurposeLabel.into());
        }
        if let Decision::Deny(reason) = self.policy.decide_seal(&label, value.kind()) {
            return Err(Error::Denied { reason });
        }
        let encoded = context.encoded()?;
        let subject = self.subject_key_for(&label, context, true)?;
        let req = SealRequest {
            purpose: &label,
            kind: value.kind(),
            context: encoded,
            sealed_at: self.clock.now(),
            body_len,
            subject_key: subject.as_ref().map(|(id, k)| (id, &***k)),
        };
        self.seal_core(&req, &mut |out| value.write_canonical(out))
            .map(AnySealed::from_trusted)
    }

    /// The one sealing path: header, then the plaintext `write` appends (exactly
    /// `req.body_len` bytes), encrypted in place under the active key's epoch for
    /// `(purpose, kind)`.
    pub(super) fn seal_core(
        &self,
        req: &SealRequest<'_>,
        write: &mut dyn FnMut(&mut Vec<u8>),
    ) -> Result<Vec<u8>, Error> {
        if !is_valid_label(req.purpose) {
            return Err(FormatError::InvalidPurposeLabel.into());
        }
        if req.body_len > MAX_PLAINTEXT {
            return Err(Error::Format(FormatError::CiphertextLength));
        }
        let body = |version, key: &EpochKey| {
            let mut nonce = [0u8; NONCE_LEN];
            self.rng.fill(&mut nonce)?;
            let header_len = envelope::header_len(req.purpose.len(), req.subject_key.is_some());
            // Layout while encrypting: header ‖ context ‖ plaintext, so the associated data
            // (header ‖ context) is one slice without a copy; the context is then cut out.
            // The capacity is exact: the buffer never reallocates, so no unzeroized copy of
            // the plaintext is left behind in freed memory.
            let aad_len = header_len + req.context.len();
            let mut out = Vec::with_capacity(aad_len + req.body_len + TAG_LEN);
            envelope::write_header(
                &mut out,
                &HeaderFields {
                    kind: req.kind,
                    purpose: req.purpose,
                    key_version: version,
                    sealed_at: req.sealed_at,
                    subject_key_id: req.subject_key.map(|(id, _)| id),
                    salt: key.salt(),
                    commitment: key.commitment(),
                    nonce: &nonce,
                },
            );
            out.extend_from_slice(req.context);
            write(&mut out);
            if out.len() != aad_len + req.body_len {
                out.zeroize();
                return Err(Error::Format(FormatError::CiphertextLength));
            }
            seal_tail(key, &nonce, out, header_len, aad_len)
        };
        match req.subject_key {
            None => self
                .keyring
                .with_sealing_key(req.purpose, req.kind, &*self.rng, body)?,
            Some(subject) => self.keyring.with_subject_sealing_key(
                req.purpose,
                req.kind,
                &*self.rng,
                subject,
                body,
            )?,
        }
    }
}

/// Encrypts the plaintext of `out` (laid out as header ‖ context ‖ plaintext) in place and
/// compacts it into the envelope header ‖ ciphertext ‖ tag.
fn seal_tail(
    key: &EpochKey,
    nonce: &[u8; NONCE_LEN],
    mut out: Vec<u8>,
    header_len: usize,
    aad_len: usize,
) -> Result<Vec<u8>, Error> {
    let body_len = out.len().saturating_sub(aad_len);
    let (aad, body) = out.split_at_mut(aad_len);
    match key.seal_in_place(nonce, aad, body) {
        Ok(tag) => {
            // Ciphertext moves over the context. The bytes left behind after it (the end of
            // the context or a copy of the ciphertext; never plaintext, encryption was in
            // place) are wiped: the context may name the subject, and the envelope's spare
            // capacity goes to the caller and is freed unwiped.
            out.copy_within(aad_len.., header_len);
            if let Some(stale) = out.get_mut(header_len + body_len..) {
                stale.zeroize();
            }
            out.truncate(header_len + body_len);
            out.extend_from_slice(&tag);
            Ok(out)
        }
        Err(()) => {
            out.zeroize();
            Err(Error::Format(FormatError::CiphertextLength))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::NullSink;
    use crate::keys::Keyring;
    use crate::policy::AllowList;

    /// A label is kept once per thread: asked again, even after others, the same allocation.
    #[test]
    fn stable_labels_are_reused() {
        let first = stable_label("billing");
        let _ = stable_label("support");
        assert!(Arc::ptr_eq(&first, &stable_label("billing")));
        // Past the cap the set starts over (a fresh allocation), and stays bounded.
        for i in 0..LABELS_CAP {
            let _ = stable_label(&format!("l{i}"));
        }
        assert!(!Arc::ptr_eq(&first, &stable_label("billing")));
        assert!(LABELS.with(|l| l.borrow().len()) <= LABELS_CAP);
    }

    /// The sealing core takes up to the envelope's plaintext limit (16 KiB) and no more, even
    /// from a caller that skipped its kind's own cap.
    #[test]
    fn seal_core_takes_up_to_the_plaintext_limit() {
        let guard = Guard::builder()
            .keyring(Keyring::generate().unwrap_or_else(|e| panic!("{e}")))
            .policy(AllowList::new())
            .audit(NullSink)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let seal = |len: usize| {
            let req = SealRequest {
                purpose: "service",
                kind: FieldKind::Text,
                context: &[],
                sealed_at: 1,
                body_len: len,
                subject_key: None,
            };
            guard.seal_core(&req, &mut |out| out.resize(out.len() + len, b'x'))
        };
        let longest = seal(MAX_PLAINTEXT).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            envelope::parse(&longest).map(|p| p.ciphertext.len()),
            Ok(MAX_PLAINTEXT)
        );
        assert!(matches!(
            seal(MAX_PLAINTEXT + 1),
            Err(Error::Format(FormatError::CiphertextLength))
        ));
    }
}
