//! Pseudonyms and index terms computed as the guard computes them, without sealing, deciding
//! or auditing each value: for tests that measure collisions and false positives over
//! millions of values.

use std::fmt;

use crate::anonymize::{Pseudonym, Pseudonymizer};
use crate::error::Error;
use crate::field::Field;
use crate::index::{BlindIndex, IndexHasher, IndexTerm};
use crate::keys::Keyring;
use crate::purpose::Purpose;

/// The pseudonyms of one purpose under a keyring's active version, as
/// [`Guard::anonymize`](crate::Guard::anonymize) computes them.
pub struct Pseudonyms(Pseudonymizer);

impl Pseudonyms {
    /// Prepares the purpose's pseudonym key.
    ///
    /// # Errors
    /// [`KeyError::NoActiveKey`](crate::KeyError::NoActiveKey) if the active key is missing.
    pub fn new(keyring: &Keyring, purpose: &str) -> Result<Self, Error> {
        let (version, prk) = keyring.active_prk()?;
        Ok(Self(Pseudonymizer::new(version, &prk, purpose)))
    }

    /// The pseudonym of `value`.
    pub fn of<F: Field>(&self, value: &F) -> Pseudonym {
        self.0.pseudonym(F::KIND, &value.canonical_bytes())
    }
}

impl fmt::Debug for Pseudonyms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pseudonyms").finish_non_exhaustive()
    }
}

/// The terms of one blind index under a keyring's active version, as
/// [`Guard::blind_index`](crate::Guard::blind_index) computes them.
pub struct Terms(IndexHasher);

impl Terms {
    /// Prepares the index key.
    ///
    /// # Errors
    /// [`KeyError::NoActiveKey`](crate::KeyError::NoActiveKey) if the active key is missing.
    pub fn new<F: Field, P: Purpose>(
        keyring: &Keyring,
        index: &BlindIndex<F, P>,
    ) -> Result<Self, Error> {
        let (version, prk) = keyring.active_prk()?;
        Ok(Self(IndexHasher::new(
            version,
            &prk,
            P::LABEL,
            F::KIND,
            index.name(),
            index.bits(),
        )))
    }

    /// The term of `value`.
    pub fn of<F: Field>(&self, value: &F) -> IndexTerm {
        self.0.term(&value.canonical_bytes())
    }
}

impl fmt::Debug for Terms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Terms").finish_non_exhaustive()
    }
}
