//! The wrapper plaintext is handed out in.

use std::fmt;

use crate::field::Field;

/// A revealed field value: zeroized on drop, redacted in `Debug`, not `Clone`, not `Serialize`.
///
/// The one way to the value is [`Revealed::expose_secret`], so every use of plaintext is
/// greppable.
#[must_use = "SECURITY WARNING: revealed plaintext was audited as read; use it or drop it"]
pub struct Revealed<F: Field> {
    value: F,
}

impl<F: Field> Revealed<F> {
    pub(crate) fn new(value: F) -> Self {
        Self { value }
    }

    /// The plaintext value.
    pub fn expose_secret(&self) -> &F {
        &self.value
    }

    /// The masked rendering of the value.
    pub fn mask(&self) -> String {
        self.value.mask()
    }
}

impl<F: Field> fmt::Debug for Revealed<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Revealed<{}>([REDACTED])", F::KIND)
    }
}
