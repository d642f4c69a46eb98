//! The keyring: versioned root keys and caches of derived epoch keys.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use crossbeam_utils::sync::ShardedLock;

use rustc_hash::FxHashMap;

use super::{KeyVersion, RootKey};
use crate::Error;
use crate::crypto::aead::{EpochKey, SALT_LEN};
use crate::crypto::envelope::Parsed;
use crate::crypto::kdf::RootPrk;
use crate::error::{ConfigError, KeyError};
use crate::field::FieldKind;
use crate::purpose::MAX_PURPOSE_LABEL;
use crate::random::RandomSource;

/// Messages sealed under one epoch key before a new epoch salt is drawn (2^28; see SECURITY.md).
pub(crate) const EPOCH_LIMIT: u64 = 1 << 28;
/// Cached epoch keys for opening; the cache is emptied when it reaches this size.
const OPEN_CACHE_CAP: usize = 1 << 16;

/// A purpose label in a fixed-size, hashable form (no allocation on lookups).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Label {
    len: u8,
    bytes: [u8; MAX_PURPOSE_LABEL],
}

impl Label {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    fn new(label: &str) -> Self {
        let mut bytes = [0u8; MAX_PURPOSE_LABEL];
        let n = label.len().min(MAX_PURPOSE_LABEL);
        bytes[..n].copy_from_slice(&label.as_bytes()[..n]);
        Self {
            len: n as u8,
            bytes,
        }
    }
}

/// Identifies a thread's sealing epoch: keyring, kind, and the label's address and length (cheap
/// to hash; the label's bytes are compared on every hit, so a reused address cannot alias).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct SlotKey {
    keyring: u64,
    kind: u8,
    label_addr: usize,
    label_len: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct OpenKey {
    version: u32,
    kind: u8,
    label: Label,
    subject: Option<[u8; 16]>,
    salt: [u8; SALT_LEN],
}

/// A thread's sealing epoch for one (keyring, purpose, kind) under the active key.
///
/// Epochs are per thread: the counter is thread-local (no shared atomic on the hot path) and every
/// thread draws its own salt. The key is held weakly: the keyring's cache owns it, so dropping the
/// keyring destroys (and zeroizes) the key even while threads live on.
struct LocalSlot {
    label: Label,
    key: Weak<EpochKey>,
    used: u64,
}

/// Thread-local sealing slots; emptied of dead entries (and if need be cleared) at this size.
const LOCAL_SLOTS_CAP: usize = 256;

thread_local! {
    static LOCAL_SLOTS: RefCell<FxHashMap<SlotKey, LocalSlot>> =
        RefCell::new(FxHashMap::default());
}

/// Forgets the calling thread's sealing epochs, so its next seal draws a fresh epoch salt.
pub(crate) fn forget_thread_epochs() {
    let _ = LOCAL_SLOTS.try_with(|cell| {
        if let Ok(mut slots) = cell.try_borrow_mut() {
            slots.clear();
        }
    });
}

/// Source of unique keyring ids, so thread-local slots never outlive or cross keyrings.
static NEXT_KEYRING_ID: AtomicU64 = AtomicU64::new(1);

/// Versioned root keys: one active for sealing, all at or above a minimum version for opening.
///
/// Purpose keys are derived with HKDF-SHA256 per (version, purpose, kind); epoch keys per random
/// epoch salt (see SECURITY.md). Derived keys are cached, so the hot path never runs HKDF.
///
/// ```
/// use fieldseal::{Keyring, KeyVersion, RootKey};
/// let v1 = KeyVersion::new(1).unwrap();
/// let v2 = KeyVersion::new(2).unwrap();
/// let ring = Keyring::builder()
///     .key(v1, RootKey::generate()?)
///     .key(v2, RootKey::generate()?)
///     .active(v2)
///     .minimum(v1)
///     .build()?;
/// assert_eq!(ring.active_version(), v2);
/// # Ok::<(), fieldseal::Error>(())
/// ```
pub struct Keyring {
    id: u64,
    roots: BTreeMap<KeyVersion, RootPrk>,
    active: KeyVersion,
    minimum: KeyVersion,
    // Sharded: readers on different threads lock different shards, so the hot path shares no
    // written cache line between cores. Writes (a new epoch or key) lock every shard. It also
    // owns the sealing epochs that threads hold weakly.
    open_cache: ShardedLock<FxHashMap<OpenKey, Arc<EpochKey>>>,
    epoch_limit: u64,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("versions", &self.roots.keys().collect::<Vec<_>>())
            .field("active", &self.active)
            .field("minimum", &self.minimum)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Keyring`].
#[derive(Debug, Default)]
pub struct KeyringBuilder {
    keys: Vec<(KeyVersion, RootKey)>,
    active: Option<KeyVersion>,
    minimum: Option<KeyVersion>,
    epoch_limit: Option<u64>,
}

impl KeyringBuilder {
    /// Adds a root key under `version`.
    #[must_use]
    pub fn key(mut self, version: KeyVersion, key: RootKey) -> Self {
        self.keys.push((version, key));
        self
    }

    /// The version used for sealing (default: the highest added).
    #[must_use]
    pub fn active(mut self, version: KeyVersion) -> Self {
        self.active = Some(version);
        self
    }

    /// Versions below this no longer open (default: the lowest added).
    #[must_use]
    pub fn minimum(mut self, version: KeyVersion) -> Self {
        self.minimum = Some(version);
        self
    }

    /// Lowers the number of seals per epoch key, to exercise epoch turnover in tests. Values
    /// above the default (2^28) are clamped to it.
    #[doc(hidden)]
    #[must_use]
    pub fn epoch_limit(mut self, limit: u64) -> Self {
        self.epoch_limit = Some(limit.clamp(1, EPOCH_LIMIT));
        self
    }

    /// Builds the keyring.
    ///
    /// # Errors
    /// [`ConfigError::NoKeys`], [`KeyError::DuplicateVersion`], [`KeyError::UnknownVersion`] for
    /// an active version that was not added, [`ConfigError::ActiveBelowMinimum`].
    pub fn build(self) -> Result<Keyring, Error> {
        let mut roots = BTreeMap::new();
        for (v, k) in self.keys {
            if roots.insert(v, RootPrk::new(k.bytes())).is_some() {
                return Err(KeyError::DuplicateVersion(v).into());
            }
        }
        let (Some(&lowest), Some(&highest)) = (roots.keys().next(), roots.keys().next_back())
        else {
            return Err(ConfigError::NoKeys.into());
        };
        let active = self.active.unwrap_or(highest);
        if !roots.contains_key(&active) {
            return Err(KeyError::UnknownVersion(active).into());
        }
        let minimum = self.minimum.unwrap_or(lowest);
        if active < minimum {
            return Err(ConfigError::ActiveBelowMinimum.into());
        }
        Ok(Keyring {
            id: NEXT_KEYRING_ID.fetch_add(1, Ordering::Relaxed),
            roots,
            active,
            minimum,
            open_cache: ShardedLock::new(FxHashMap::default()),
            epoch_limit: self.epoch_limit.unwrap_or(EPOCH_LIMIT),
        })
    }
}

impl Keyring {
    /// Starts a keyring.
    pub fn builder() -> KeyringBuilder {
        KeyringBuilder::default()
    }

    /// A keyring with one root key, version 1.
    ///
    /// # Errors
    /// Never in practice; typed for symmetry with [`Keyring::builder`].
    pub fn single(key: RootKey) -> Result<Self, Error> {
        let v1 = KeyVersion::new(1).ok_or(ConfigError::NoKeys)?;
        Self::builder().key(v1, key).build()
    }

    /// A keyring with one fresh random root key, version 1 (demos and tests: the key is lost
    /// when the process ends).
    ///
    /// # Errors
    /// [`Error::Random`] if the random source fails.
    pub fn generate() -> Result<Self, Error> {
        Self::single(RootKey::generate()?)
    }

    /// The version new values are sealed under.
    pub fn active_version(&self) -> KeyVersion {
        self.active
    }

    /// The lowest version that still opens.
    pub fn minimum_version(&self) -> KeyVersion {
        self.minimum
    }

    /// Runs `f` with the epoch key for sealing `(purpose, kind)` under the active version.
    pub(crate) fn with_sealing_key<R>(
        &self,
        purpose: &str,
        kind: FieldKind,
        rng: &dyn RandomSource,
        f: impl FnOnce(KeyVersion, &EpochKey) -> R,
    ) -> Result<R, Error> {
        let sk = SlotKey {
            keyring: self.id,
            kind: kind.code(),
            label_addr: purpose.as_ptr() as usize,
            label_len: purpose.len(),
        };
        let limit = self.epoch_limit;
        let current = LOCAL_SLOTS
            .try_with(|cell| {
                let mut slots = cell.try_borrow_mut().ok()?;
                let slot = slots.get_mut(&sk)?;
                if slot.used >= limit || slot.label.as_bytes() != purpose.as_bytes() {
                    return None;
                }
                let key = slot.key.upgrade()?;
                slot.used += 1;
                Some(key)
            })
            .ok()
            .flatten();
        if let Some(key) = current {
            return Ok(f(self.active, &key));
        }
        // New epoch for this thread: first use, the old one is spent, or its key was dropped.
        let root = self.roots.get(&self.active).ok_or(KeyError::NoActiveKey)?;
        let mut salt = [0u8; SALT_LEN];
        rng.fill(&mut salt)?;
        let pk = root.purpose_key(purpose, kind, None);
        let key = Arc::new(EpochKey::derive(&pk, salt));
        let label = Label::new(purpose);
        self.remember(
            OpenKey {
                version: self.active.get(),
                kind: kind.code(),
                label,
                subject: None,
                salt,
            },
            Arc::clone(&key),
        );
        let _ = LOCAL_SLOTS.try_with(|cell| {
            if let Ok(mut slots) = cell.try_borrow_mut() {
                if slots.len() >= LOCAL_SLOTS_CAP {
                    slots.retain(|_, s| s.key.strong_count() > 0);
                    if slots.len() >= LOCAL_SLOTS_CAP {
                        slots.clear();
                    }
                }
                slots.insert(
                    sk,
                    LocalSlot {
                        label,
                        key: Arc::downgrade(&key),
                        used: 1,
                    },
                );
            }
        });
        Ok(f(self.active, &key))
    }

    /// Runs `f` with the epoch key that opens `env`, after checking its key commitment.
    ///
    /// # Errors
    /// [`KeyError::Retired`], [`KeyError::UnknownVersion`], [`KeyError::SubjectKeyUnavailable`],
    /// or [`Error::Integrity`] when the commitment does not match.
    pub(crate) fn with_opening_key<R>(
        &self,
        env: &Parsed<'_>,
        f: impl FnOnce(&EpochKey) -> R,
    ) -> Result<R, Error> {
        if env.key_version < self.minimum {
            return Err(KeyError::Retired {
                version: env.key_version,
                minimum: self.minimum,
            }
            .into());
        }
        let root = self
            .roots
            .get(&env.key_version)
            .ok_or(KeyError::UnknownVersion(env.key_version))?;
        if env.subject_key_id.is_some() {
            return Err(KeyError::SubjectKeyUnavailable.into());
        }
        let ok = OpenKey {
            version: env.key_version.get(),
            kind: env.kind.code(),
            label: Label::new(env.purpose),
            subject: None,
            salt: *env.salt,
        };
        if let Ok(cache) = self.open_cache.read()
            && let Some(key) = cache.get(&ok)
        {
            if !key.commits_to(env.commitment) {
                return Err(Error::Integrity);
            }
            return Ok(f(key));
        }
        let pk = root.purpose_key(env.purpose, env.kind, None);
        let key = EpochKey::derive(&pk, *env.salt);
        // Only keys whose commitment matches are cached, so forged salts cannot fill the cache.
        if !key.commits_to(env.commitment) {
            return Err(Error::Integrity);
        }
        let key = Arc::new(key);
        self.remember(ok, Arc::clone(&key));
        Ok(f(&key))
    }

    fn remember(&self, k: OpenKey, key: Arc<EpochKey>) {
        if let Ok(mut cache) = self.open_cache.write() {
            if cache.len() >= OPEN_CACHE_CAP {
                cache.clear();
            }
            cache.insert(k, key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(n: u32) -> KeyVersion {
        KeyVersion::new(n).unwrap_or_else(|| unreachable!())
    }

    #[test]
    fn builder_errors() {
        assert!(matches!(
            Keyring::builder().build(),
            Err(Error::Config(ConfigError::NoKeys))
        ));
        assert!(matches!(
            Keyring::builder()
                .key(v(1), RootKey::from_bytes([1; 32]))
                .key(v(1), RootKey::from_bytes([2; 32]))
                .build(),
            Err(Error::Key(KeyError::DuplicateVersion(_)))
        ));
        assert!(matches!(
            Keyring::builder()
                .key(v(1), RootKey::from_bytes([1; 32]))
                .active(v(2))
                .build(),
            Err(Error::Key(KeyError::UnknownVersion(_)))
        ));
        assert!(matches!(
            Keyring::builder()
                .key(v(1), RootKey::from_bytes([1; 32]))
                .key(v(2), RootKey::from_bytes([2; 32]))
                .active(v(1))
                .minimum(v(2))
                .build(),
            Err(Error::Config(ConfigError::ActiveBelowMinimum))
        ));
        let ring = Keyring::builder()
            .key(v(1), RootKey::from_bytes([1; 32]))
            .key(v(5), RootKey::from_bytes([2; 32]))
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ring.active_version(), v(5));
        assert_eq!(ring.minimum_version(), v(1));
        let dbg = format!("{ring:?}");
        assert!(!dbg.contains("[1, 1"), "{dbg}");
    }

    #[test]
    fn epochs_turn_over() {
        let ring = Keyring::builder()
            .key(v(1), RootKey::from_bytes([1; 32]))
            .epoch_limit(3)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let rng = crate::random::SystemRandom;
        let mut salts = Vec::new();
        for _ in 0..7 {
            let s = ring
                .with_sealing_key("service", FieldKind::Text, &rng, |_, k| *k.salt())
                .unwrap_or_else(|e| panic!("{e}"));
            salts.push(s);
        }
        assert_eq!(salts[0], salts[1]);
        assert_eq!(salts[1], salts[2]);
        assert_ne!(salts[2], salts[3]);
        assert_eq!(salts[3], salts[5]);
        assert_ne!(salts[5], salts[6]);
    }

    fn salt_of(ring: &Keyring, purpose: &str) -> [u8; 16] {
        ring.with_sealing_key(
            purpose,
            FieldKind::Text,
            &crate::random::SystemRandom,
            |_, k| *k.salt(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn epochs_are_per_thread_and_per_keyring() {
        let ring = Keyring::single(RootKey::from_bytes([1; 32])).unwrap_or_else(|e| panic!("{e}"));
        let here = salt_of(&ring, "service");
        assert_eq!(salt_of(&ring, "service"), here);
        assert_ne!(salt_of(&ring, "marketing"), here);
        let there = std::thread::scope(|s| {
            s.spawn(|| salt_of(&ring, "service"))
                .join()
                .unwrap_or_else(|_| panic!("thread panicked"))
        });
        assert_ne!(there, here, "each thread draws its own epoch");
        // Same key bytes, new keyring: never reuses the old keyring's epoch.
        let again = Keyring::single(RootKey::from_bytes([1; 32])).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(salt_of(&again, "service"), here);
    }

    #[test]
    fn dropping_the_keyring_drops_thread_epochs() {
        let ring = Keyring::single(RootKey::from_bytes([2; 32])).unwrap_or_else(|e| panic!("{e}"));
        let weak = ring
            .with_sealing_key(
                "service",
                FieldKind::Text,
                &crate::random::SystemRandom,
                |_, _| {
                    LOCAL_SLOTS.with(|c| {
                        c.borrow()
                            .values()
                            .map(|s| s.key.clone())
                            .collect::<Vec<_>>()
                    })
                },
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(weak.iter().any(|w| w.strong_count() > 0));
        let live_before = weak.iter().filter(|w| w.strong_count() > 0).count();
        drop(ring);
        let live_after = weak.iter().filter(|w| w.strong_count() > 0).count();
        assert_eq!(
            live_before - live_after,
            1,
            "the dropped keyring's epoch key is gone"
        );
    }

    #[test]
    fn a_label_at_a_reused_address_does_not_alias() {
        let ring = Keyring::single(RootKey::from_bytes([3; 32])).unwrap_or_else(|e| panic!("{e}"));
        // Two different labels at the same address and length.
        let mut buf = String::from("service");
        let a = salt_of(&ring, &buf);
        buf.replace_range(.., "servicf");
        let b = salt_of(&ring, &buf);
        assert_ne!(a, b);
    }
}
