//! Anonymization for analytics: keyed pseudonyms and generalizations.
//!
//! [`Guard::anonymize`](crate::Guard::anonymize) turns a sealed value into one of these forms
//! under the policy (action `anonymize`, audited); the generalizations are also available as
//! pure functions on the field types ([`ip_network`], [`birth_year`], [`age_band`], [`region`],
//! [`generalize_time`]) for values the caller already holds.
//!
//! # Security
//! A pseudonym is HMAC-SHA256 under a key derived from the keyring's active root key for one
//! purpose (see SECURITY.md, "Anonymization"): equal values of a purpose get equal pseudonyms,
//! the same value gets unrelated pseudonyms under two purposes, and nobody without the root key
//! can compute or invert one. Pseudonyms are still personal data (they single a person out);
//! generalizations lose information on purpose, but a combination of several of them can
//! re-identify in a small population.

mod generalize;

use std::fmt;

use subtle::ConstantTimeEq;

use crate::crypto::kdf::{PreparedMac, RootPrk, push_lp};
use crate::field::FieldKind;
use crate::keys::KeyVersion;

pub use generalize::{
    AgeBand, DateGranularity, GeneralizedDate, IpNetwork, RegionLevel, age_band, birth_year,
    generalize_time, ip_network, region,
};

/// Length of a pseudonym in bytes (128 bits: no collision is expected below 2^64 values).
pub const PSEUDONYM_LEN: usize = 16;

/// How [`Guard::anonymize`](crate::Guard::anonymize) transforms a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Anonymization {
    /// A keyed pseudonym of the canonical bytes, stable within the value's purpose (any kind).
    Pseudonym,
    /// An IP address's network: `/24` for IPv4, `/48` for IPv6 ([`ip_network`]).
    IpNetwork,
    /// The birth year of an ID number ([`birth_year`]).
    BirthYear,
    /// The age band of an ID number's holder on the guard clock's date (UTC), bands of
    /// `width` years starting at 0 ([`age_band`]).
    AgeBand {
        /// Band width in years, 1-100.
        width: u8,
    },
    /// The administrative region of an ID number, cut to a level ([`region`]).
    Region(RegionLevel),
}

impl Anonymization {
    /// Stable lower-case label (used in error messages).
    pub const fn label(self) -> &'static str {
        match self {
            Anonymization::Pseudonym => "pseudonym",
            Anonymization::IpNetwork => "ip_network",
            Anonymization::BirthYear => "birth_year",
            Anonymization::AgeBand { .. } => "age_band",
            Anonymization::Region(_) => "region",
        }
    }

    /// Whether this method applies to values of `kind`.
    pub const fn supports(self, kind: FieldKind) -> bool {
        match self {
            Anonymization::Pseudonym => true,
            Anonymization::IpNetwork => matches!(kind, FieldKind::IpAddress),
            Anonymization::BirthYear | Anonymization::AgeBand { .. } | Anonymization::Region(_) => {
                matches!(kind, FieldKind::IdNumber)
            }
        }
    }

    /// Checks the method against `kind` and its own parameters.
    ///
    /// # Errors
    /// [`AnonymizeError::Unsupported`] for a kind the method does not apply to,
    /// [`AnonymizeError::BandWidth`] for an age band of width 0 or above 100.
    pub fn check(self, kind: FieldKind) -> Result<(), AnonymizeError> {
        if !self.supports(kind) {
            return Err(AnonymizeError::Unsupported {
                kind,
                method: self.label(),
            });
        }
        if let Anonymization::AgeBand { width } = self
            && !(1..=100).contains(&width)
        {
            return Err(AnonymizeError::BandWidth);
        }
        Ok(())
    }
}

/// The anonymized form of a value.
///
/// `Display` renders it for reports (`203.0.113.0/24`, `1949`, `70-79`, `110000`, or the
/// pseudonym's hex); `Debug` shows the generalizations but not a pseudonym's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Anonymized {
    /// A keyed pseudonym.
    Pseudonym(Pseudonym),
    /// An IP network.
    IpNetwork(IpNetwork),
    /// A birth year.
    BirthYear(u16),
    /// An age band.
    AgeBand(AgeBand),
    /// A six-digit administrative code, zero-filled below the level kept.
    Region(String),
}

impl fmt::Display for Anonymized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Anonymized::Pseudonym(p) => f.write_str(&p.to_hex()),
            Anonymized::IpNetwork(n) => n.fmt(f),
            Anonymized::BirthYear(y) => y.fmt(f),
            Anonymized::AgeBand(b) => b.fmt(f),
            Anonymized::Region(r) => f.write_str(r),
        }
    }
}

/// A keyed pseudonym: the first 16 bytes of HMAC-SHA256 under the purpose's pseudonym key of
/// `lp(kind code) ‖ canonical bytes`, with the key version it was computed under.
///
/// Pseudonyms change when the active key version changes (a rotation starts a new, unlinkable
/// series). Compared in constant time.
#[derive(Clone)]
pub struct Pseudonym {
    version: KeyVersion,
    bytes: [u8; PSEUDONYM_LEN],
}

impl Pseudonym {
    /// The key version the pseudonym was computed under.
    pub fn version(&self) -> KeyVersion {
        self.version
    }

    /// The 16 pseudonym bytes.
    pub fn as_bytes(&self) -> &[u8; PSEUDONYM_LEN] {
        &self.bytes
    }

    /// The pseudonym as 32 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        hex(&self.bytes)
    }
}

impl PartialEq for Pseudonym {
    fn eq(&self, other: &Self) -> bool {
        self.version == other.version && bool::from(self.bytes.ct_eq(&other.bytes))
    }
}

impl Eq for Pseudonym {}

impl fmt::Debug for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pseudonym")
            .field("version", &self.version.get())
            .finish_non_exhaustive()
    }
}

/// A purpose's pseudonym key under one root-key version, with its HMAC key schedule prepared.
pub(crate) struct Pseudonymizer {
    version: KeyVersion,
    mac: PreparedMac,
}

impl Pseudonymizer {
    pub(crate) fn new(version: KeyVersion, prk: &RootPrk, purpose: &str) -> Self {
        Self {
            version,
            mac: PreparedMac::new(&prk.pseudonym_key(purpose)),
        }
    }

    /// The pseudonym of a value of `kind` with these canonical bytes.
    pub(crate) fn pseudonym(&self, kind: FieldKind, canonical: &[u8]) -> Pseudonym {
        let mut prefix = Vec::with_capacity(3);
        push_lp(&mut prefix, &[kind.code()]);
        let full = self.mac.mac(&[&prefix, canonical]);
        let mut bytes = [0u8; PSEUDONYM_LEN];
        bytes.copy_from_slice(&full[..PSEUDONYM_LEN]);
        Pseudonym {
            version: self.version,
            bytes,
        }
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Why a value could not be anonymized as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnonymizeError {
    /// The method does not apply to this field kind (for example an IP network of an email).
    Unsupported {
        /// The value's kind.
        kind: FieldKind,
        /// The method's label.
        method: &'static str,
    },
    /// An age band's width is 0 or above 100 years.
    BandWidth,
}

impl fmt::Display for AnonymizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnonymizeError::Unsupported { kind, method } => {
                write!(f, "{method} does not apply to {kind} values")
            }
            AnonymizeError::BandWidth => f.write_str("age band width must be 1-100 years"),
        }
    }
}

impl std::error::Error for AnonymizeError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(n: u32) -> KeyVersion {
        KeyVersion::new(n).unwrap_or_else(|| unreachable!())
    }

    #[test]
    fn pseudonyms_are_keyed_and_purpose_bound() {
        let prk = RootPrk::new(&[9; 32]);
        let a = Pseudonymizer::new(v(1), &prk, "improvement");
        let b = Pseudonymizer::new(v(1), &prk, "security");
        let x = a.pseudonym(FieldKind::Text, b"hello");
        assert_eq!(x, a.pseudonym(FieldKind::Text, b"hello"));
        assert_ne!(x, b.pseudonym(FieldKind::Text, b"hello"));
        assert_ne!(x, a.pseudonym(FieldKind::Email, b"hello"), "kind is bound");
        assert_ne!(x, a.pseudonym(FieldKind::Text, b"hellp"));
        let other = Pseudonymizer::new(v(1), &RootPrk::new(&[8; 32]), "improvement");
        assert_ne!(x, other.pseudonym(FieldKind::Text, b"hello"), "another key");
        let again = Pseudonymizer::new(v(2), &prk, "improvement");
        assert_ne!(
            x,
            again.pseudonym(FieldKind::Text, b"hello"),
            "version is part"
        );
        assert_eq!(x.to_hex().len(), 32);
        let dbg = format!("{x:?}");
        assert!(!dbg.contains(&x.to_hex()[..8]), "{dbg}");
    }

    #[test]
    fn methods_check_kinds() {
        assert!(Anonymization::Pseudonym.check(FieldKind::Email).is_ok());
        assert!(Anonymization::IpNetwork.check(FieldKind::IpAddress).is_ok());
        assert_eq!(
            Anonymization::IpNetwork.check(FieldKind::Email),
            Err(AnonymizeError::Unsupported {
                kind: FieldKind::Email,
                method: "ip_network"
            })
        );
        for m in [
            Anonymization::BirthYear,
            Anonymization::AgeBand { width: 10 },
            Anonymization::Region(RegionLevel::Province),
        ] {
            assert!(m.check(FieldKind::IdNumber).is_ok());
            assert!(m.check(FieldKind::IpAddress).is_err());
        }
        assert_eq!(
            Anonymization::AgeBand { width: 0 }.check(FieldKind::IdNumber),
            Err(AnonymizeError::BandWidth)
        );
        assert_eq!(
            Anonymization::AgeBand { width: 101 }.check(FieldKind::IdNumber),
            Err(AnonymizeError::BandWidth)
        );
    }
}
