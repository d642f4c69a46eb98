//! Sharing with recipients (feature `share`): a value re-encrypted to a recipient's public key
//! with HPKE (RFC 9180, base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! ChaCha20Poly1305), bound to its purpose, kind, recipient and context.
//!
//! [`Guard::share`](crate::Guard::share) makes a [`SharedPackage`]; the recipient opens it with
//! [`open_shared`] and its [`RecipientPrivateKey`], without any key of ours. The binding:
//!
//! ```text
//! B    = lp("fieldseal/v1/share") ‖ lp(01) ‖ lp(purpose) ‖ lp(kind code) ‖ lp(recipient)
//!        ‖ lp(context encoding)
//! info = B
//! aad  = package header ‖ B
//! ```
//!
//! The ChaCha20Poly1305 suite (rather than AES-256-GCM) is the one RFC 9180 publishes vectors
//! for with X25519 and HKDF-SHA256 (appendix A.2), so the wrapper is checked against them.

mod keys;
mod package;

pub use keys::{RECIPIENT_KEY_LEN, RecipientPrivateKey, RecipientPublicKey};
pub use package::{MAX_PACKAGE_LEN, SHARE_TEXT_PREFIX, SharedPackage};

pub(crate) use package::write_header;

use std::convert::Infallible;

use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::{Deserializable as _, HpkeError, OpModeR, OpModeS, Serializable as _};
use zeroize::Zeroizing;

use crate::any::AnyRevealed;
use crate::audit::RecipientName;
use crate::context::Context;
use crate::crypto::kdf::push_lp;
use crate::error::{Error, KeyError};
use crate::field::FieldKind;
use crate::purpose::PurposeId;
use keys::Kem;

/// Domain label of the binding.
const SHARE_LABEL: &[u8] = b"fieldseal/v1/share";

/// The binding `B` (see the module docs): the HPKE `info`, and the tail of the associated data.
pub(crate) fn binding(purpose: &str, kind: FieldKind, recipient: &str, context: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(
        16 + SHARE_LABEL.len() + purpose.len() + recipient.len() + context.len(),
    );
    push_lp(&mut b, SHARE_LABEL);
    push_lp(&mut b, &[package::PACKAGE_VERSION]);
    push_lp(&mut b, purpose.as_bytes());
    push_lp(&mut b, &[kind.code()]);
    push_lp(&mut b, recipient.as_bytes());
    // A context encoding is at most 1 + 16 · (1 + 32 + 2 + 1,024) = 16,945 bytes.
    push_lp(&mut b, context);
    b
}

/// Hands HPKE the ephemeral key material drawn beforehand: the first request gets `ikm` (HPKE
/// asks for exactly one private key's worth, 32 bytes, and derives the ephemeral key from it
/// with `DeriveKeyPair`); any further request is served by the operating system's generator.
struct EphemeralIkm<'a> {
    ikm: Option<&'a [u8; 32]>,
}

impl rand::TryRng for EphemeralIkm<'_> {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        match self.ikm.take() {
            Some(ikm) if dst.len() == ikm.len() => dst.copy_from_slice(ikm),
            _ => rand::Rng::fill_bytes(&mut rand::rng(), dst),
        }
        Ok(())
    }
}

impl rand::TryCryptoRng for EphemeralIkm<'_> {}

/// HPKE base-mode single-shot seal to `pk` with the ephemeral key derived from `ikm_e`:
/// returns `enc ‖ ciphertext ‖ tag`.
///
/// # Errors
/// [`KeyError::InvalidPublicKey`] if no shared secret can be agreed with `pk`.
pub(crate) fn hpke_seal(
    pk: &RecipientPublicKey,
    ikm_e: &[u8; 32],
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, Error> {
    let mut rng = EphemeralIkm { ikm: Some(ikm_e) };
    let (enc, ct) = hpke::single_shot_seal_with_rng::<ChaCha20Poly1305, HkdfSha256, Kem>(
        &OpModeS::Base,
        pk.hpke(),
        info,
        plaintext,
        aad,
        &mut rng,
    )
    .map_err(|e| match e {
        HpkeError::EncapError | HpkeError::ValidationError => {
            Error::Key(KeyError::InvalidPublicKey)
        }
        _ => Error::Integrity,
    })?;
    let mut out = Vec::with_capacity(package::ENC_LEN + ct.len());
    out.extend_from_slice(&enc.to_bytes());
    out.extend_from_slice(&ct);
    Ok(out)
}

/// HPKE base-mode single-shot open.
///
/// # Errors
/// [`Error::Integrity`] for any failure: wrong key, info, associated data or bytes.
pub(crate) fn hpke_open(
    sk: &RecipientPrivateKey,
    enc: &[u8],
    info: &[u8],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(enc).map_err(|_| Error::Integrity)?;
    hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, Kem>(
        &OpModeR::Base,
        sk.hpke(),
        &enc,
        info,
        sealed,
        aad,
    )
    .map(Zeroizing::new)
    .map_err(|_| Error::Integrity)
}

/// Opens a [`SharedPackage`] at the recipient: needs the recipient's private key and the
/// recipient name, purpose and context it was shared for, and nothing of the sharing service.
///
/// ```
/// # #[cfg(feature = "share")] {
/// use fieldseal::{RecipientName, RecipientPrivateKey};
/// let key = RecipientPrivateKey::generate()?;
/// let public = key.public_key(); // give this to the sharing service
/// # let _ = (public, RecipientName::new("authorities")?);
/// # }
/// # Ok::<(), fieldseal::Error>(())
/// ```
///
/// # Errors
/// [`Error::Integrity`] if the package does not open: another recipient's key, another
/// recipient name, purpose or context than it was shared for, or damaged bytes (deliberately
/// one opaque error); [`Error::Context`] for an invalid context; [`Error::Format`] if the
/// package is malformed; [`Error::Field`] if the plaintext is not a valid value of its kind.
///
/// # Security
/// What the recipient does with the value afterwards is outside fieldseal's control: no
/// retention, consent or audit applies at the recipient.
pub fn open_shared(
    private_key: &RecipientPrivateKey,
    package: &SharedPackage,
    recipient: &RecipientName,
    purpose: &PurposeId,
    context: &Context,
) -> Result<AnyRevealed, Error> {
    let ctx = context.encoded()?;
    let parts = package.parts()?;
    // The caller's names, not the package's, go into the binding: a package shared for another
    // recipient or purpose fails to authenticate.
    let b = binding(purpose.as_str(), parts.kind, recipient.as_str(), ctx);
    let mut aad = Vec::with_capacity(parts.header.len() + b.len());
    aad.extend_from_slice(parts.header);
    aad.extend_from_slice(&b);
    let plain = hpke_open(private_key, parts.enc, &b, &aad, parts.sealed)?;
    Ok(AnyRevealed::from_canonical(parts.kind, &plain)?)
}

#[cfg(test)]
mod tests;
