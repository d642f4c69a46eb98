//! Sources of randomness for nonces and epoch salts.

use std::fmt;
use std::sync::Mutex;

use rand::Rng as _;
use zeroize::Zeroizing;

/// A cryptographically secure random source.
///
/// The default, [`SystemRandom`], is the thread-local CSPRNG of `rand` (ChaCha12 reseeded from the
/// operating system). Tests that need reproducible envelopes use
/// [`hazmat::DeterministicRandom`](crate::hazmat::DeterministicRandom).
pub trait RandomSource: Send + Sync + fmt::Debug {
    /// Fills `dest` with random bytes.
    ///
    /// # Errors
    /// [`Error::Random`](crate::Error::Random) if no randomness is available; sealing then fails.
    fn fill(&self, dest: &mut [u8]) -> Result<(), crate::Error>;
}

/// The default random source: `rand::rng()`, a thread-local CSPRNG (ChaCha12) seeded from the OS.
///
/// # Security
/// Like every user-space generator, its state is copied by `fork(2)`: a child that seals without
/// calling [`after_fork`](crate::after_fork) first would repeat its parent's nonces under the
/// parent's epoch keys.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRandom;

impl RandomSource for SystemRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), crate::Error> {
        rand::rng().fill_bytes(dest);
        Ok(())
    }
}

/// Makes a child process safe to seal in after `fork(2)`.
///
/// A forked child inherits its parent's memory: the thread-local random generator and the
/// thread's sealing epochs (epoch key and salt). Sealing in both processes without this call
/// would reuse AES-GCM nonces under the same key, which breaks confidentiality and integrity of
/// those values. Call it in the child, right after `fork` returns and before any seal; it reseeds
/// the calling thread's generator from the operating system and drops the thread's epochs, so the
/// next seal derives a fresh epoch key. (After `fork` the child has only the calling thread.)
/// Processes that are spawned (`exec`) rather than forked need nothing.
///
/// # Errors
/// [`Error::Random`](crate::Error::Random) if the operating system's generator fails; the child
/// must not seal then.
pub fn after_fork() -> Result<(), crate::Error> {
    rand::rng().reseed().map_err(|_| crate::Error::Random)?;
    crate::keys::forget_thread_epochs();
    Ok(())
}

/// A deterministic generator for known-answer tests: HMAC-SHA256(seed, counter) blocks.
///
/// Never use it to seal real data: every process with the same seed repeats the same nonces.
pub struct DeterministicRandom {
    seed: Zeroizing<[u8; 32]>,
    counter: Mutex<u64>,
}

impl DeterministicRandom {
    /// A generator from a fixed seed. Named `dangerous_` because repeated nonces under one key
    /// break AES-GCM: for tests and frozen test vectors only.
    pub fn dangerous_new(seed: [u8; 32]) -> Self {
        Self {
            seed: Zeroizing::new(seed),
            counter: Mutex::new(0),
        }
    }
}

impl fmt::Debug for DeterministicRandom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeterministicRandom([REDACTED])")
    }
}

impl RandomSource for DeterministicRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), crate::Error> {
        let mut counter = self.counter.lock().map_err(|_| crate::Error::Random)?;
        for chunk in dest.chunks_mut(32) {
            let block = crate::crypto::kdf::hmac_sha256(self.seed.as_ref(), &counter.to_be_bytes());
            chunk.copy_from_slice(&block[..chunk.len()]);
            *counter += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_repeats_and_advances() {
        let a = DeterministicRandom::dangerous_new([1; 32]);
        let b = DeterministicRandom::dangerous_new([1; 32]);
        let (mut x, mut y, mut z) = ([0u8; 40], [0u8; 40], [0u8; 40]);
        assert!(a.fill(&mut x).is_ok());
        assert!(b.fill(&mut y).is_ok());
        assert!(a.fill(&mut z).is_ok());
        assert_eq!(x, y);
        assert_ne!(x, z);
    }

    #[test]
    fn system_random_is_not_constant() {
        let (mut x, mut y) = ([0u8; 16], [0u8; 16]);
        assert!(SystemRandom.fill(&mut x).is_ok());
        assert!(SystemRandom.fill(&mut y).is_ok());
        assert_ne!(x, y);
    }
}
