//! Blind indexes: truncated keyed hashes of canonical bytes, for equality search over sealed
//! columns (login by email, de-duplication by phone or ID number).
//!
//! # Bit length and leakage
//! An index is configured with the expected number of rows `N` and of distinct values `D` in
//! the column (for a small, enumerable domain, such as the ID numbers of one district or birth
//! dates, `D` is at most the domain's size), and a minimum number `k` (default 2) of distinct
//! values that should share each term. Its bit length `b` must satisfy
//!
//! - `b ≤ b_max = ⌊log2(D / k)⌋`: there are at least `D / 2^b ≥ k` distinct values per term on
//!   average, so a term does not single out one value. A longer index would be near-unique:
//!   anyone who can compute terms (a principal with the `index` grant, or a stolen key) could
//!   enumerate a small domain and invert every stored term;
//! - `b ≥ b_min = ⌈log2(N) / 2⌉`: a query's expected false positives, `N · 2^-b`, stay at most
//!   `√N`, so the index still narrows a search.
//!
//! Without an explicit length the index takes `b_max`. A configuration with `b_max < b_min` (or
//! `b_max < 1`) is refused ([`IndexError::DomainTooSmall`]): such a column cannot be indexed
//! both usefully and without leaking (index a coarser value, or search another way); an explicit
//! length above `b_max` is refused as [`IndexError::NearUnique`], one below `b_min` as
//! [`IndexError::TooCoarse`].
//!
//! The false-positive rate is `2^-b` per stored row of another value, compared under the same
//! key version: a query returns its matches plus about `(N - matches) · 2^-b` others, which the
//! caller discards after revealing or comparing the candidates. Comparing a stored term's bytes
//! with every term of an [`IndexQuery`] regardless of version (an SQL `IN` list) adds `2^-b` per
//! extra live version.
//!
//! What an index leaks to whoever reads the stored terms: which rows have equal terms (equal
//! values, or a collision), hence the frequency of each term. Rare values in a small population
//! may still stand out by frequency; truncation only guarantees that each term is shared by
//! about `D / 2^b` distinct values.

use std::fmt;
use std::marker::PhantomData;

use subtle::{Choice, ConstantTimeEq};

use crate::crypto::kdf::{PreparedMac, RootPrk};
use crate::field::{Field, FieldKind};
use crate::keys::KeyVersion;
use crate::purpose::{Purpose, is_valid_label};

/// Longest index term in bits.
pub const MAX_INDEX_BITS: u8 = 64;
/// Default minimum number of distinct values per term (`k`).
pub const DEFAULT_VALUES_PER_TERM: u64 = 2;

/// A blind index over values of kind `F` sealed for purpose `P`: its name and bit length.
///
/// The index key is derived per (key version, purpose, kind, name), so two indexes, two
/// purposes or two kinds never share terms. See the module documentation above (and SECURITY.md,
/// "Blind indexes") for how the bit length is chosen and what the index leaks.
///
/// ```
/// use fieldseal::{BlindIndex, Email, builtin::Service};
/// // 10 million accounts, each with its own email: 22-bit terms.
/// let login = BlindIndex::<Email, Service>::builder("login")
///     .expected_rows(10_000_000)
///     .distinct_values(10_000_000)
///     .build()?;
/// assert_eq!(login.bits(), 22);
/// # Ok::<(), fieldseal::Error>(())
/// ```
pub struct BlindIndex<F: Field, P: Purpose> {
    name: Box<str>,
    bits: u8,
    marker: PhantomData<fn() -> (F, P)>,
}

impl<F: Field, P: Purpose> BlindIndex<F, P> {
    /// Starts an index named `name` (`[a-z][a-z0-9_]*`, 1-32 bytes).
    pub fn builder(name: &str) -> BlindIndexBuilder<F, P> {
        BlindIndexBuilder {
            name: name.into(),
            rows: None,
            distinct: None,
            per_term: DEFAULT_VALUES_PER_TERM,
            bits: None,
            marker: PhantomData,
        }
    }

    /// The index name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The term length in bits.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// The probability that a stored term of another value matches a query term of the same
    /// key version: `2^-bits`.
    pub fn false_positive_rate(&self) -> f64 {
        (-f64::from(self.bits)).exp2()
    }

    /// Computes the term of `canonical` under one version's key (the guard checks access).
    pub(crate) fn term(&self, version: KeyVersion, prk: &RootPrk, canonical: &[u8]) -> IndexTerm {
        IndexHasher::new(version, prk, P::LABEL, F::KIND, &self.name, self.bits).term(canonical)
    }
}

impl<F: Field, P: Purpose> fmt::Debug for BlindIndex<F, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlindIndex")
            .field("name", &self.name)
            .field("purpose", &P::LABEL)
            .field("kind", &F::KIND)
            .field("bits", &self.bits)
            .finish()
    }
}

impl<F: Field, P: Purpose> Clone for BlindIndex<F, P> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            bits: self.bits,
            marker: PhantomData,
        }
    }
}

/// Builds a [`BlindIndex`] from the expected rows and distinct values.
pub struct BlindIndexBuilder<F: Field, P: Purpose> {
    name: Box<str>,
    rows: Option<u64>,
    distinct: Option<u64>,
    per_term: u64,
    bits: Option<u8>,
    marker: PhantomData<fn() -> (F, P)>,
}

impl<F: Field, P: Purpose> fmt::Debug for BlindIndexBuilder<F, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlindIndexBuilder")
            .field("name", &self.name)
            .field("rows", &self.rows)
            .field("distinct", &self.distinct)
            .field("per_term", &self.per_term)
            .field("bits", &self.bits)
            .finish()
    }
}

impl<F: Field, P: Purpose> BlindIndexBuilder<F, P> {
    /// The number of rows the column is expected to hold, `N` (required).
    #[must_use]
    pub fn expected_rows(mut self, rows: u64) -> Self {
        self.rows = Some(rows);
        self
    }

    /// The number of distinct values expected, `D` (required; at most the rows, and at most
    /// the domain's size for a small, enumerable domain).
    #[must_use]
    pub fn distinct_values(mut self, distinct: u64) -> Self {
        self.distinct = Some(distinct);
        self
    }

    /// The minimum number of distinct values per term, `k` (default 2, at least 2).
    #[must_use]
    pub fn values_per_term(mut self, k: u64) -> Self {
        self.per_term = k;
        self
    }

    /// An explicit bit length instead of `b_max`; it must lie in `b_min..=b_max`.
    #[must_use]
    pub fn bits(mut self, bits: u8) -> Self {
        self.bits = Some(bits);
        self
    }

    /// Builds the index.
    ///
    /// # Errors
    /// [`IndexError::InvalidName`], [`IndexError::InvalidEstimate`] (rows or distinct values
    /// missing or zero, more distinct values than rows, `k` below 2),
    /// [`IndexError::DomainTooSmall`], [`IndexError::NearUnique`], [`IndexError::TooCoarse`]
    /// (see the module documentation).
    pub fn build(self) -> Result<BlindIndex<F, P>, crate::Error> {
        if !is_valid_label(&self.name) {
            return Err(IndexError::InvalidName.into());
        }
        let (Some(rows), Some(distinct)) = (self.rows, self.distinct) else {
            return Err(IndexError::InvalidEstimate.into());
        };
        if rows == 0 || distinct == 0 || distinct > rows || self.per_term < 2 {
            return Err(IndexError::InvalidEstimate.into());
        }
        let (min, max) = bit_bounds(rows, distinct, self.per_term);
        let bits = match self.bits {
            Some(b) if b > max => return Err(IndexError::NearUnique { bits: b, max }.into()),
            Some(b) if b < min => return Err(IndexError::TooCoarse { bits: b, min }.into()),
            Some(b) => b,
            None if max < min || max == 0 => {
                return Err(IndexError::DomainTooSmall { min, max }.into());
            }
            None => max,
        };
        Ok(BlindIndex {
            name: self.name,
            bits,
            marker: PhantomData,
        })
    }
}

/// `(b_min, b_max)` for `rows` rows, `distinct` values and `k` values per term: `b_max =
/// ⌊log2(D / k)⌋` (capped at [`MAX_INDEX_BITS`]), `b_min = max(1, ⌈log2(N) / 2⌉)`.
pub(crate) fn bit_bounds(rows: u64, distinct: u64, k: u64) -> (u8, u8) {
    let per = distinct / k.max(1);
    // ⌊log2(x)⌋ for x ≥ 1; 0 values per bucket gives 0 bits.
    let max = if per == 0 {
        0
    } else {
        63 - per.leading_zeros()
    };
    let max = u8::try_from(max)
        .unwrap_or(MAX_INDEX_BITS)
        .min(MAX_INDEX_BITS);
    // ⌈log2(N)⌉, then halved rounding up: ⌈⌈log2 N⌉ / 2⌉ = ⌈log2(N) / 2⌉ for integers.
    let log2_ceil = 64 - rows.saturating_sub(1).leading_zeros();
    let min = u8::try_from(log2_ceil.div_ceil(2).max(1)).unwrap_or(MAX_INDEX_BITS);
    (min, max)
}

/// One version's index key with its HMAC key schedule prepared.
pub(crate) struct IndexHasher {
    version: KeyVersion,
    bits: u8,
    mac: PreparedMac,
}

impl IndexHasher {
    pub(crate) fn new(
        version: KeyVersion,
        prk: &RootPrk,
        purpose: &str,
        kind: FieldKind,
        name: &str,
        bits: u8,
    ) -> Self {
        Self {
            version,
            bits: bits.clamp(1, MAX_INDEX_BITS),
            mac: PreparedMac::new(&prk.index_key(purpose, kind, name)),
        }
    }

    /// The term: the first `bits` bits of HMAC(index key, canonical bytes).
    pub(crate) fn term(&self, canonical: &[u8]) -> IndexTerm {
        let full = self.mac.mac(&[canonical]);
        let mut head = [0u8; 8];
        head.copy_from_slice(&full[..8]);
        let value = u64::from_be_bytes(head) >> (64 - u32::from(self.bits));
        IndexTerm {
            version: self.version,
            bits: self.bits,
            value,
        }
    }
}

/// A blind-index term: what is stored next to a sealed value (its [`IndexTerm::to_bytes`] or
/// [`IndexTerm::to_hex`], and ideally its version) and compared at query time.
///
/// Equality is constant-time. `Debug` shows the version and length, not the term.
#[derive(Clone, Copy)]
pub struct IndexTerm {
    version: KeyVersion,
    bits: u8,
    /// The term's bits, right-aligned.
    value: u64,
}

impl IndexTerm {
    /// The key version the term was computed under.
    pub fn version(&self) -> KeyVersion {
        self.version
    }

    /// The term length in bits.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// The term in `⌈bits / 8⌉` bytes, left-aligned (unused low bits of the last byte zero).
    pub fn to_bytes(&self) -> Vec<u8> {
        let left = self.value << (64 - u32::from(self.bits));
        let n = usize::from(self.bits).div_ceil(8);
        left.to_be_bytes()[..n].to_vec()
    }

    /// [`IndexTerm::to_bytes`] as lower-case hex.
    pub fn to_hex(&self) -> String {
        crate::anonymize::hex(&self.to_bytes())
    }

    /// Constant-time equality of version, length and bits.
    fn ct_eq(&self, other: &Self) -> Choice {
        self.version.get().ct_eq(&other.version.get())
            & self.bits.ct_eq(&other.bits)
            & self.value.ct_eq(&other.value)
    }

    /// Constant-time equality of the stored bytes with this term's bytes.
    fn ct_eq_bytes(&self, stored: &[u8]) -> Choice {
        let mine = self.to_bytes();
        // Lengths are public (they follow from the index's bit length).
        mine.as_slice().ct_eq(stored)
    }
}

impl PartialEq for IndexTerm {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for IndexTerm {}

impl fmt::Debug for IndexTerm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexTerm")
            .field("version", &self.version.get())
            .field("bits", &self.bits)
            .finish_non_exhaustive()
    }
}

/// The terms of one value under every key version that still opens (active first): what an
/// equality query looks for while a rotation is under way.
#[derive(Clone)]
pub struct IndexQuery {
    terms: Vec<IndexTerm>,
}

impl IndexQuery {
    pub(crate) fn new(terms: Vec<IndexTerm>) -> Self {
        Self { terms }
    }

    /// The terms, active version first (for an SQL `IN` list over stored term bytes).
    pub fn terms(&self) -> &[IndexTerm] {
        &self.terms
    }

    /// Whether `stored` equals the query's term of its version. Compares with every term in
    /// constant time (no early exit).
    #[must_use]
    pub fn matches(&self, stored: &IndexTerm) -> bool {
        let mut hit = Choice::from(0);
        for t in &self.terms {
            hit |= t.ct_eq(stored);
        }
        hit.into()
    }

    /// Whether stored term bytes (without their version) equal any of the query's terms, in
    /// constant time. The false-positive rate is that of the index times the number of terms.
    #[must_use]
    pub fn matches_bytes(&self, stored: &[u8]) -> bool {
        let mut hit = Choice::from(0);
        for t in &self.terms {
            hit |= t.ct_eq_bytes(stored);
        }
        hit.into()
    }
}

impl fmt::Debug for IndexQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexQuery")
            .field("terms", &self.terms)
            .finish()
    }
}

/// Why a blind index could not be configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IndexError {
    /// The index name is not `[a-z][a-z0-9_]*`, 1-32 bytes.
    InvalidName,
    /// Rows or distinct values missing or zero, more distinct values than rows, or fewer than 2
    /// values per term.
    InvalidEstimate,
    /// No bit length is both safe and useful: `b_max < b_min`, or `b_max` is 0.
    DomainTooSmall {
        /// `b_min`.
        min: u8,
        /// `b_max`.
        max: u8,
    },
    /// The requested length would make the index near-unique for its domain.
    NearUnique {
        /// Requested bits.
        bits: u8,
        /// `b_max`.
        max: u8,
    },
    /// The requested length is too short for the index to narrow a search.
    TooCoarse {
        /// Requested bits.
        bits: u8,
        /// `b_min`.
        min: u8,
    },
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndexError::InvalidName => f.write_str("index name must be [a-z][a-z0-9_]*, 1-32 bytes"),
            IndexError::InvalidEstimate => f.write_str(
                "index needs non-zero rows and distinct values (no more than the rows) and at least 2 values per term",
            ),
            IndexError::DomainTooSmall { min, max } => write!(
                f,
                "too few distinct values to index safely: at most {max} bits keep several values per term, at least {min} are needed"
            ),
            IndexError::NearUnique { bits, max } => write!(
                f,
                "{bits}-bit terms would be near-unique for this domain (at most {max})"
            ),
            IndexError::TooCoarse { bits, min } => {
                write!(f, "{bits}-bit terms are too coarse for this many rows (at least {min})")
            }
        }
    }
}

impl std::error::Error for IndexError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::Email;
    use crate::purpose::builtin::{Marketing, Service};
    use proptest::prelude::*;

    fn v(n: u32) -> KeyVersion {
        KeyVersion::new(n).unwrap_or_else(|| unreachable!())
    }

    fn index(
        name: &str,
        rows: u64,
        distinct: u64,
    ) -> Result<BlindIndex<Email, Service>, crate::Error> {
        BlindIndex::builder(name)
            .expected_rows(rows)
            .distinct_values(distinct)
            .build()
    }

    #[test]
    fn bounds_follow_the_formula() {
        assert_eq!(bit_bounds(1_000_000, 1_000_000, 2), (10, 18));
        assert_eq!(bit_bounds(100_000, 100_000, 2), (9, 15));
        assert_eq!(bit_bounds(1, 1, 2), (1, 0));
        assert_eq!(bit_bounds(u64::MAX, u64::MAX, 2), (32, 62));
        assert_eq!(bit_bounds(4, 4, 2), (1, 1));
    }

    #[test]
    fn refusals() {
        let err = |r: Result<BlindIndex<Email, Service>, crate::Error>| match r {
            Err(crate::Error::Index(e)) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(err(index("Login", 10, 10)), IndexError::InvalidName);
        assert_eq!(err(index("", 10, 10)), IndexError::InvalidName);
        assert_eq!(err(index("login", 0, 0)), IndexError::InvalidEstimate);
        assert_eq!(err(index("login", 10, 11)), IndexError::InvalidEstimate);
        assert_eq!(
            err(BlindIndex::<Email, Service>::builder("login")
                .expected_rows(5)
                .build()),
            IndexError::InvalidEstimate
        );
        assert_eq!(
            err(BlindIndex::<Email, Service>::builder("login")
                .expected_rows(100)
                .distinct_values(100)
                .values_per_term(1)
                .build()),
            IndexError::InvalidEstimate
        );
        // ID numbers of one district: 1,000 people in a table of a million rows.
        assert_eq!(
            err(index("dedup", 1_000_000, 1_000)),
            IndexError::DomainTooSmall { min: 10, max: 8 }
        );
        assert_eq!(
            err(index("one", 1, 1)),
            IndexError::DomainTooSmall { min: 1, max: 0 }
        );
        let near = BlindIndex::<Email, Service>::builder("login")
            .expected_rows(1_000_000)
            .distinct_values(1_000_000)
            .bits(32)
            .build();
        assert_eq!(err(near), IndexError::NearUnique { bits: 32, max: 18 });
        let coarse = BlindIndex::<Email, Service>::builder("login")
            .expected_rows(1_000_000)
            .distinct_values(1_000_000)
            .bits(4)
            .build();
        assert_eq!(err(coarse), IndexError::TooCoarse { bits: 4, min: 10 });
        // At the bounds: accepted.
        for b in [10, 18] {
            let ok = BlindIndex::<Email, Service>::builder("login")
                .expected_rows(1_000_000)
                .distinct_values(1_000_000)
                .bits(b)
                .build();
            assert_eq!(ok.map(|i| i.bits()).ok(), Some(b));
        }
        assert_eq!(
            index("login", 1_000_000, 1_000_000).map(|i| i.bits()).ok(),
            Some(18)
        );
    }

    #[test]
    fn terms_are_separated_and_truncated() {
        let prk = RootPrk::new(&[5; 32]);
        let a = index("login", 1 << 20, 1 << 20).unwrap_or_else(|e| panic!("{e}"));
        let b = index("dedup", 1 << 20, 1 << 20).unwrap_or_else(|e| panic!("{e}"));
        let m: BlindIndex<Email, Marketing> = BlindIndex::builder("login")
            .expected_rows(1 << 20)
            .distinct_values(1 << 20)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let x = b"zhang.san@example.com";
        let t = a.term(v(1), &prk, x);
        assert_eq!(t.bits(), 19);
        assert!(t.value < (1 << 19));
        assert_eq!(t, a.term(v(1), &prk, x));
        assert_ne!(t.value, b.term(v(1), &prk, x).value);
        assert_ne!(t.value, m.term(v(1), &prk, x).value);
        assert_ne!(t.value, a.term(v(1), &RootPrk::new(&[6; 32]), x).value);
        assert_ne!(t, a.term(v(2), &prk, x), "versions differ");
        assert_eq!(t.to_bytes().len(), 3);
        assert_eq!(t.to_bytes()[2] & 0x1f, 0, "unused bits are zero");
        let dbg = format!("{t:?} {:?}", IndexQuery::new(vec![t]));
        assert!(!dbg.contains(&t.to_hex()), "{dbg}");
    }

    #[test]
    fn queries_match_any_version() {
        let prk1 = RootPrk::new(&[1; 32]);
        let prk2 = RootPrk::new(&[2; 32]);
        let a = index("login", 1 << 20, 1 << 20).unwrap_or_else(|e| panic!("{e}"));
        let x = b"a@example.com";
        let q = IndexQuery::new(vec![a.term(v(2), &prk2, x), a.term(v(1), &prk1, x)]);
        assert!(q.matches(&a.term(v(1), &prk1, x)));
        assert!(q.matches(&a.term(v(2), &prk2, x)));
        assert!(q.matches_bytes(&a.term(v(1), &prk1, x).to_bytes()));
        assert!(!q.matches(&a.term(v(3), &prk1, x)), "version is compared");
        let only_new = IndexQuery::new(vec![a.term(v(2), &prk2, x)]);
        assert!(!only_new.matches(&a.term(v(1), &prk1, x)));
        assert!(!only_new.matches_bytes(&a.term(v(1), &prk1, x).to_bytes()));
    }

    proptest! {
        #[test]
        fn term_bytes_round_trip(bits in 1u8..=64, value: u64, ver in 1u32..10) {
            let value = if bits == 64 { value } else { value & ((1u64 << bits) - 1) };
            let t = IndexTerm { version: v(ver), bits, value };
            let bytes = t.to_bytes();
            prop_assert_eq!(bytes.len(), usize::from(bits).div_ceil(8));
            let mut full = [0u8; 8];
            full[..bytes.len()].copy_from_slice(&bytes);
            prop_assert_eq!(u64::from_be_bytes(full) >> (64 - u32::from(bits)), value);
            prop_assert!(IndexQuery::new(vec![t]).matches_bytes(&bytes));
        }

        #[test]
        fn bounds_are_consistent(rows in 1u64.., d_frac in 0.0f64..=1.0, k in 2u64..100) {
            let distinct = ((rows as f64 * d_frac) as u64).clamp(1, rows);
            let (min, max) = bit_bounds(rows, distinct, k);
            prop_assert!(min >= 1 && max <= MAX_INDEX_BITS);
            // b_max: at least k values per term, and one more bit would break it.
            if max > 0 {
                prop_assert!(u128::from(distinct) >= u128::from(k) << max);
            }
            prop_assert!(u128::from(distinct) < u128::from(k) << (max + 1));
            // b_min: N · 2^-b_min ≤ √N, i.e. N ≤ 2^(2 b_min).
            prop_assert!(u128::from(rows) <= 1u128 << (2 * u32::from(min)));
        }
    }
}
