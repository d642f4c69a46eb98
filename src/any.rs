//! The runtime-typed forms, for tools that learn a value's kind and purpose only at run time:
//! [`AnySealed`] (an envelope whose kind and purpose are read from its header), [`AnyValue`]
//! (plaintext of a kind chosen at run time) and [`AnyRevealed`] (an opened value tagged with its
//! kind).
//!
//! They go through the same [`Guard`](crate::Guard) checks, audit records and fail-closed order
//! as the typed forms: [`Guard::reveal_any`](crate::Guard::reveal_any) and
//! [`Guard::reveal`](crate::Guard::reveal) share one implementation.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};
use zeroize::Zeroizing;

use crate::crypto::envelope::{self, EnvelopeInfo, Parsed};
use crate::error::FormatError;
use crate::field::{
    DeviceInfo, Email, Field, FieldError, FieldKind, IdNumber, IpAddress, PersonName, PhoneNumber,
    PostalAddress, Text,
};
use crate::keys::KeyVersion;
use crate::purpose::{Purpose, PurposeId};
use crate::sealed::{self, Sealed};
use crate::secret::Revealed;

/// A sealed value of a kind and purpose known only at run time, read from its header.
///
/// The dynamic form of [`Sealed<F, P>`](crate::Sealed): the same envelope bytes, the same
/// parsing checks and caps (the per-kind ciphertext cap included), the same text and serde
/// forms. Convert with `AnySealed::from(sealed)` and `Sealed::<F, P>::try_from(any)`, which
/// checks kind and purpose.
///
/// ```
/// use fieldseal::*;
/// use fieldseal::builtin::Service;
/// let guard = Guard::builder()
///     .keyring(Keyring::generate()?)
///     .policy(AllowList::new())
///     .audit(NullSink)
///     .build()?;
/// let sealed: Sealed<Email, Service> =
///     guard.seal(&Email::parse("a@example.com")?, &Context::new())?;
/// let any = AnySealed::from_text(&sealed.to_text())?;
/// assert_eq!(any.kind(), FieldKind::Email);
/// assert_eq!(any.purpose_label(), "service");
/// let back = Sealed::<Email, Service>::try_from(any)?;
/// assert_eq!(back, sealed);
/// # Ok::<(), fieldseal::Error>(())
/// ```
pub struct AnySealed {
    bytes: Vec<u8>,
}

/// The structural checks every constructor applies: a well-formed envelope within its kind's
/// ciphertext cap.
fn check(p: &Parsed<'_>) -> Result<(), FormatError> {
    if p.ciphertext.len() > p.kind.max_canonical_len() {
        return Err(FormatError::CiphertextLength);
    }
    Ok(())
}

impl AnySealed {
    /// Wraps an envelope this crate just produced or already checked.
    pub(crate) fn from_trusted(bytes: Vec<u8>) -> Self {
        Self { bytes }
    }

    /// Parses the binary form.
    ///
    /// # Errors
    /// [`FormatError`] if the envelope is malformed or its ciphertext is longer than its kind
    /// allows. Authenticity is checked only when it is opened.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, crate::Error> {
        check(&envelope::parse(bytes)?)?;
        Ok(Self::from_trusted(bytes.to_vec()))
    }

    /// Parses the binary form, taking ownership of the buffer (no copy).
    ///
    /// # Errors
    /// As [`AnySealed::from_bytes`].
    pub fn from_vec(bytes: Vec<u8>) -> Result<Self, crate::Error> {
        check(&envelope::parse(&bytes)?)?;
        Ok(Self::from_trusted(bytes))
    }

    /// Parses the text form (`fs1:...`).
    ///
    /// # Errors
    /// As [`AnySealed::from_bytes`], plus prefix and base64 errors.
    pub fn from_text(text: &str) -> Result<Self, crate::Error> {
        Self::from_vec(envelope::from_text(text)?)
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

    /// The field kind it was sealed as.
    pub fn kind(&self) -> FieldKind {
        self.parsed().kind
    }

    /// The purpose label it was sealed for (borrowed from the header, no allocation).
    pub fn purpose_label(&self) -> &str {
        self.parsed().purpose
    }

    /// The purpose it was sealed for.
    pub fn purpose(&self) -> PurposeId {
        // The parser accepted the label, so it is valid; the fallback is never taken.
        PurposeId::new(self.purpose_label())
            .unwrap_or_else(|_| unreachable!("labels are checked when parsed"))
    }

    /// The public header.
    pub fn info(&self) -> EnvelopeInfo {
        EnvelopeInfo::of(&self.parsed(), self.purpose())
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

impl<F: Field, P: Purpose> From<Sealed<F, P>> for AnySealed {
    fn from(sealed: Sealed<F, P>) -> Self {
        Self::from_trusted(sealed.into_bytes())
    }
}

impl<F: Field, P: Purpose> TryFrom<AnySealed> for Sealed<F, P> {
    type Error = crate::Error;

    /// Checks that the envelope is of kind `F` and purpose `P`.
    fn try_from(any: AnySealed) -> Result<Self, crate::Error> {
        sealed::check::<F, P>(&any.parsed())?;
        Ok(Sealed::from_trusted(any.bytes))
    }
}

impl<F: Field, P: Purpose> TryFrom<&AnySealed> for Sealed<F, P> {
    type Error = crate::Error;

    /// Checks that the envelope is of kind `F` and purpose `P`, and copies it.
    fn try_from(any: &AnySealed) -> Result<Self, crate::Error> {
        sealed::check::<F, P>(&any.parsed())?;
        Ok(Sealed::from_trusted(any.bytes.clone()))
    }
}

impl Clone for AnySealed {
    fn clone(&self) -> Self {
        Self {
            bytes: self.bytes.clone(),
        }
    }
}

impl PartialEq for AnySealed {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}
impl Eq for AnySealed {}

impl Hash for AnySealed {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.bytes.hash(state);
    }
}

impl fmt::Debug for AnySealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.parsed();
        write!(
            f,
            "AnySealed<{}, {}>(key_version={}, len={})",
            p.kind,
            p.purpose,
            p.key_version,
            self.bytes.len()
        )
    }
}

impl fmt::Display for AnySealed {
    /// The text form (ciphertext is not secret).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl FromStr for AnySealed {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_text(s)
    }
}

impl Serialize for AnySealed {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_text())
        } else {
            serializer.serialize_bytes(&self.bytes)
        }
    }
}

struct AnySealedVisitor;

impl<'de> Visitor<'de> for AnySealedVisitor {
    type Value = AnySealed;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sealed value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        AnySealed::from_text(v).map_err(E::custom)
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        AnySealed::from_bytes(v).map_err(E::custom)
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
        AnySealed::from_vec(bytes).map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for AnySealed {
    /// Checks that the envelope is well formed, as [`AnySealed::from_bytes`] does.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(AnySealedVisitor)
        } else {
            deserializer.deserialize_bytes(AnySealedVisitor)
        }
    }
}

/// Runs `$body` with `$v` bound to the value inside whichever variant `$value` is.
macro_rules! each_variant {
    ($ty:ident, $value:expr, $v:ident => $body:expr) => {
        match $value {
            $ty::IdNumber($v) => $body,
            $ty::PhoneNumber($v) => $body,
            $ty::Email($v) => $body,
            $ty::PersonName($v) => $body,
            $ty::PostalAddress($v) => $body,
            $ty::IpAddress($v) => $body,
            $ty::DeviceInfo($v) => $body,
            $ty::Text($v) => $body,
        }
    };
}

/// Builds the variant of kind `$kind` from `$make::<Type>` (a generic expression).
macro_rules! by_kind {
    ($ty:ident, $kind:expr, |$t:ident| $make:expr) => {
        match $kind {
            FieldKind::IdNumber => {
                type $t = IdNumber;
                $ty::IdNumber($make)
            }
            FieldKind::PhoneNumber => {
                type $t = PhoneNumber;
                $ty::PhoneNumber($make)
            }
            FieldKind::Email => {
                type $t = Email;
                $ty::Email($make)
            }
            FieldKind::PersonName => {
                type $t = PersonName;
                $ty::PersonName($make)
            }
            FieldKind::PostalAddress => {
                type $t = PostalAddress;
                $ty::PostalAddress($make)
            }
            FieldKind::IpAddress => {
                type $t = IpAddress;
                $ty::IpAddress($make)
            }
            FieldKind::DeviceInfo => {
                type $t = DeviceInfo;
                $ty::DeviceInfo($make)
            }
            FieldKind::Text => {
                type $t = Text;
                $ty::Text($make)
            }
        }
    };
}

/// The text form of a value, as accepted by its kind's [`Field::parse`].
trait TextForm {
    fn text_form(&self) -> Zeroizing<String>;
}

macro_rules! text_form_as_str {
    ($($t:ty),*) => {$(
        impl TextForm for $t {
            fn text_form(&self) -> Zeroizing<String> {
                Zeroizing::new(String::from(self.as_str()))
            }
        }
    )*};
}
text_form_as_str!(IdNumber, PhoneNumber, Email, PersonName, Text);

impl TextForm for PostalAddress {
    fn text_form(&self) -> Zeroizing<String> {
        self.to_lines()
    }
}

impl TextForm for DeviceInfo {
    fn text_form(&self) -> Zeroizing<String> {
        self.to_lines()
    }
}

impl TextForm for IpAddress {
    fn text_form(&self) -> Zeroizing<String> {
        use std::fmt::Write as _;
        // 45 bytes hold the longest textual address (IPv4-mapped IPv6), so the buffer never
        // grows and leaves no copy behind.
        let mut s = Zeroizing::new(String::with_capacity(45));
        let _ = write!(s, "{}", self.addr());
        s
    }
}

/// A plaintext value of a kind chosen at run time, for [`Guard::seal_any`](crate::Guard::seal_any).
///
/// Like the field types it wraps: validated when parsed, wiped on drop, redacted in `Debug`,
/// not `Clone`, not `Serialize`.
///
/// ```
/// use fieldseal::{AnyValue, FieldKind};
/// let kind = FieldKind::from_label("phone_number").unwrap();
/// let v = AnyValue::parse(kind, "+86 138 0013 8000")?;
/// assert_eq!(v.kind(), FieldKind::PhoneNumber);
/// assert_eq!(format!("{v:?}"), "AnyValue<phone_number>([REDACTED])");
/// assert!(AnyValue::parse(FieldKind::Email, "not an e-mail").is_err());
/// # Ok::<(), fieldseal::FieldError>(())
/// ```
#[non_exhaustive]
pub enum AnyValue {
    /// An [`IdNumber`].
    IdNumber(IdNumber),
    /// A [`PhoneNumber`].
    PhoneNumber(PhoneNumber),
    /// An [`Email`].
    Email(Email),
    /// A [`PersonName`].
    PersonName(PersonName),
    /// A [`PostalAddress`].
    PostalAddress(PostalAddress),
    /// An [`IpAddress`].
    IpAddress(IpAddress),
    /// A [`DeviceInfo`].
    DeviceInfo(DeviceInfo),
    /// A [`Text`].
    Text(Text),
}

impl AnyValue {
    /// Validates and normalizes human input as a value of `kind` (that kind's
    /// [`Field::parse`]).
    ///
    /// # Errors
    /// The kind's [`FieldError`] (naming the rule that failed, never the input).
    pub fn parse(kind: FieldKind, text: &str) -> Result<Self, FieldError> {
        Ok(by_kind!(AnyValue, kind, |T| T::parse(text)?))
    }

    /// The kind of the value.
    pub fn kind(&self) -> FieldKind {
        each_variant!(AnyValue, self, v => kind_of(v))
    }

    /// The masked rendering of the value.
    pub fn mask(&self) -> String {
        each_variant!(AnyValue, self, v => v.mask())
    }

    pub(crate) fn canonical_len(&self) -> usize {
        each_variant!(AnyValue, self, v => v.canonical_len())
    }

    pub(crate) fn max_canonical_len(&self) -> usize {
        self.kind().max_canonical_len()
    }

    pub(crate) fn write_canonical(&self, out: &mut Vec<u8>) {
        each_variant!(AnyValue, self, v => v.write_canonical(out))
    }
}

fn kind_of<F: Field>(_: &F) -> FieldKind {
    F::KIND
}

macro_rules! any_value_from {
    ($($t:ident),*) => {$(
        impl From<$t> for AnyValue {
            fn from(value: $t) -> Self {
                AnyValue::$t(value)
            }
        }
    )*};
}
any_value_from!(
    IdNumber,
    PhoneNumber,
    Email,
    PersonName,
    PostalAddress,
    IpAddress,
    DeviceInfo,
    Text
);

impl fmt::Debug for AnyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AnyValue<{}>([REDACTED])", self.kind())
    }
}

/// An opened value of a kind known only at run time: a [`Revealed`] of its kind, tagged.
///
/// Zeroized on drop, redacted in `Debug`, not `Clone`, not `Serialize`. Match on the variant for
/// the typed value (`AnyRevealed::PhoneNumber(r) => r.expose_secret()`), or take its text form
/// with [`AnyRevealed::expose_text`]; every access to plaintext is an `expose_*` call.
///
/// ```
/// # use std::sync::Arc;
/// use fieldseal::*;
/// let guard = Guard::builder()
///     .keyring(Keyring::generate()?)
///     .policy(AllowList::new().allow_dyn(
///         Role::new("tool"), PurposeId::new("billing")?, FieldKind::Email, Action::Reveal))
///     .audit(MemorySink::new())
///     .build()?;
/// let ctx = Context::new().table("users").column("email").row("7");
/// let value = AnyValue::parse(FieldKind::Email, "a@example.com")?;
/// let sealed = guard.seal_any(&value, &PurposeId::new("billing")?, &ctx)?;
///
/// let opened = guard.reveal_any(&Accessor::new("t", [Role::new("tool")]), &sealed, &ctx)?;
/// assert_eq!(opened.kind(), FieldKind::Email);
/// assert_eq!(opened.expose_text().as_str(), "a@example.com");
/// assert_eq!(format!("{opened:?}"), "AnyRevealed<email>([REDACTED])");
/// if let AnyRevealed::Email(email) = &opened {
///     assert_eq!(email.expose_secret().domain(), "example.com");
/// }
/// # Ok::<(), fieldseal::Error>(())
/// ```
#[non_exhaustive]
#[must_use = "SECURITY WARNING: revealed plaintext was audited as read; use it or drop it"]
pub enum AnyRevealed {
    /// An [`IdNumber`].
    IdNumber(Revealed<IdNumber>),
    /// A [`PhoneNumber`].
    PhoneNumber(Revealed<PhoneNumber>),
    /// An [`Email`].
    Email(Revealed<Email>),
    /// A [`PersonName`].
    PersonName(Revealed<PersonName>),
    /// A [`PostalAddress`].
    PostalAddress(Revealed<PostalAddress>),
    /// An [`IpAddress`].
    IpAddress(Revealed<IpAddress>),
    /// A [`DeviceInfo`].
    DeviceInfo(Revealed<DeviceInfo>),
    /// A [`Text`].
    Text(Revealed<Text>),
}

impl AnyRevealed {
    /// Decodes canonical bytes of `kind` into the matching variant.
    pub(crate) fn from_canonical(kind: FieldKind, bytes: &[u8]) -> Result<Self, FieldError> {
        Ok(by_kind!(AnyRevealed, kind, |T| Revealed::new(
            T::from_canonical(bytes)?
        )))
    }

    /// The kind of the value.
    pub fn kind(&self) -> FieldKind {
        each_variant!(AnyRevealed, self, v => kind_of(v.expose_secret()))
    }

    /// The masked rendering of the value.
    pub fn mask(&self) -> String {
        each_variant!(AnyRevealed, self, v => v.mask())
    }

    /// The plaintext in its kind's text form, the form [`AnyValue::parse`] accepts: the value
    /// itself for identity numbers, phone numbers, e-mail addresses, names and text, the
    /// `key=value` lines of [`PostalAddress::to_lines`] and [`DeviceInfo::to_lines`], the
    /// standard notation of an IP address. Wiped on drop.
    pub fn expose_text(&self) -> Zeroizing<String> {
        each_variant!(AnyRevealed, self, v => v.expose_secret().text_form())
    }

    /// The plaintext's canonical bytes (what was encrypted), wiped on drop.
    pub fn expose_canonical(&self) -> Zeroizing<Vec<u8>> {
        each_variant!(AnyRevealed, self, v => v.expose_secret().canonical_bytes())
    }
}

impl fmt::Debug for AnyRevealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AnyRevealed<{}>([REDACTED])", self.kind())
    }
}
