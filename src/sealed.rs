//! `Sealed<F, P>`: an encrypted field value bound to its kind and purpose.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};

use crate::crypto::envelope::{self, EnvelopeInfo, Parsed};
use crate::error::FormatError;
use crate::field::Field;
use crate::keys::KeyVersion;
use crate::purpose::{Purpose, PurposeId};

/// An encrypted value of field kind `F`, sealed for purpose `P`.
///
/// It holds only the envelope (ciphertext and a public header), so it may be stored, copied,
/// logged and serialized freely. Opening it for another kind or purpose does not compile:
///
/// ```compile_fail
/// # use fieldseal::*;
/// fn open(g: &Guard, a: &Accessor, s: &Sealed<Email, builtin::Marketing>, c: &Context) {
///     let _ = g.reveal::<Email, builtin::Service>(a, s, c); // mismatched purpose
/// }
/// ```
///
/// Serde: human-readable formats (JSON, TOML) get the text form `fs1:<base64url>`; binary formats
/// get the raw envelope bytes. Deserializing checks that the envelope is well formed and of kind
/// `F` and purpose `P`.
pub struct Sealed<F, P> {
    bytes: Vec<u8>,
    _marker: PhantomData<fn() -> (F, P)>,
}

pub(crate) fn check<F: Field, P: Purpose>(p: &Parsed<'_>) -> Result<(), FormatError> {
    if p.kind != F::KIND {
        return Err(FormatError::KindMismatch {
            expected: F::KIND,
            found: p.kind,
        });
    }
    if p.purpose != P::LABEL {
        return Err(FormatError::PurposeMismatch { expected: P::LABEL });
    }
    if p.ciphertext.len() > F::MAX_CANONICAL_LEN {
        return Err(FormatError::CiphertextLength);
    }
    Ok(())
}

impl<F: Field, P: Purpose> Sealed<F, P> {
    /// Wraps an envelope this crate just produced.
    pub(crate) fn from_trusted(bytes: Vec<u8>) -> Self {
        Self {
            bytes,
            _marker: PhantomData,
        }
    }

    /// Parses the binary form.
    ///
    /// # Errors
    /// [`FormatError`] if the envelope is malformed or of another kind or purpose. Authenticity
    /// is checked only when it is opened.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, crate::Error> {
        check::<F, P>(&envelope::parse(bytes)?)?;
        Ok(Self::from_trusted(bytes.to_vec()))
    }

    /// Parses the text form (`fs1:...`).
    ///
    /// # Errors
    /// As [`Sealed::from_bytes`], plus prefix and base64 errors.
    pub fn from_text(text: &str) -> Result<Self, crate::Error> {
        let bytes = envelope::from_text(text)?;
        check::<F, P>(&envelope::parse(&bytes)?)?;
        Ok(Self::from_trusted(bytes))
    }

    /// The text form: `fs1:` and unpadded base64url.
    pub fn to_text(&self) -> String {
        envelope::to_text(&self.bytes)
    }

    /// The binary form.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The binary form, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The public header.
    pub fn info(&self) -> EnvelopeInfo {
        EnvelopeInfo::of(&self.parsed(), PurposeId::of::<P>())
    }

    /// The root key version it was sealed under.
    pub fn key_version(&self) -> KeyVersion {
        self.parsed().key_version
    }

    /// When it was sealed (seconds since the Unix epoch).
    pub fn sealed_at(&self) -> u64 {
        self.parsed().sealed_at
    }

    pub(crate) fn parsed(&self) -> Parsed<'_> {
        // Every constructor validated the bytes, and they are immutable.
        envelope::parse(&self.bytes).unwrap_or_else(|_| unreachable!("validated at construction"))
    }
}

impl<F, P> Clone for Sealed<F, P> {
    fn clone(&self) -> Self {
        Self {
            bytes: self.bytes.clone(),
            _marker: PhantomData,
        }
    }
}

impl<F, P> PartialEq for Sealed<F, P> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}
impl<F, P> Eq for Sealed<F, P> {}

impl<F, P> Hash for Sealed<F, P> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.bytes.hash(state);
    }
}

impl<F: Field, P: Purpose> fmt::Debug for Sealed<F, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.parsed();
        write!(
            f,
            "Sealed<{}, {}>(key_version={}, len={})",
            F::KIND,
            P::LABEL,
            p.key_version,
            self.bytes.len()
        )
    }
}

impl<F: Field, P: Purpose> fmt::Display for Sealed<F, P> {
    /// The text form (ciphertext is not secret).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl<F: Field, P: Purpose> FromStr for Sealed<F, P> {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_text(s)
    }
}

impl<F: Field, P: Purpose> Serialize for Sealed<F, P> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_text())
        } else {
            serializer.serialize_bytes(&self.bytes)
        }
    }
}

struct SealedVisitor<F, P>(PhantomData<fn() -> (F, P)>);

impl<'de, F: Field, P: Purpose> Visitor<'de> for SealedVisitor<F, P> {
    type Value = Sealed<F, P>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a sealed {} value for purpose {}", F::KIND, P::LABEL)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Sealed::from_text(v).map_err(E::custom)
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        Sealed::from_bytes(v).map_err(E::custom)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut bytes = Vec::new();
        while let Some(b) = seq.next_element::<u8>()? {
            if bytes.len() >= envelope::MAX_ENVELOPE_LEN {
                return Err(de::Error::custom(FormatError::TooLong {
                    max: envelope::MAX_ENVELOPE_LEN,
                }));
            }
            bytes.push(b);
        }
        Sealed::from_bytes(&bytes).map_err(de::Error::custom)
    }
}

impl<'de, F: Field, P: Purpose> Deserialize<'de> for Sealed<F, P> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let v = SealedVisitor(PhantomData);
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(v)
        } else {
            deserializer.deserialize_bytes(v)
        }
    }
}
