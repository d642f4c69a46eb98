//! The keyring: versioned root keys and caches of derived epoch keys.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use arc_swap::ArcSwap;

use crossbeam_utils::sync::ShardedLock;

use rustc_hash::FxHashMap;

use super::file::KeyringFile;
use super::provider::KeyProvider;
use super::{KeyVersion, RootKey};
use crate::Error;
use crate::audit::{AuditKey, CheckpointSigningKey};
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

#[derive(Clone, Copy, PartialEq, Eq)]
struct OpenKey {
    version: u32,
    kind: u8,
    label: Label,
    subject: Option<[u8; 16]>,
    salt: [u8; SALT_LEN],
}

/// Hashes the salt, version and kind only (equality still compares every part): salts are
/// random per epoch, so they spread the table as well as the whole key would, at a fraction of
/// hashing a 64-byte label. A forged salt only makes a lookup miss: keys are cached only once
/// their commitment matched, so an attacker cannot crowd a bucket.
impl std::hash::Hash for OpenKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write(&self.salt);
        state.write_u32(self.version);
        state.write_u8(self.kind);
    }
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
    /// The version the key belongs to, and the keyring generation it was drawn in.
    version: KeyVersion,
    generation: u64,
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

/// The state of a key version in a [`Keyring`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyState {
    /// New values are sealed under it (exactly one version is active).
    Active,
    /// Values sealed under it still open; nothing new is sealed under it.
    DecryptOnly,
    /// Values sealed under it no longer open ([`KeyError::Retired`]); its key is dropped from
    /// memory.
    Retired,
}

impl KeyState {
    /// Stable label: `active`, `decrypt_only`, `retired`.
    pub fn label(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::DecryptOnly => "decrypt_only",
            KeyState::Retired => "retired",
        }
    }

    /// The state with this label.
    pub fn from_label(label: &str) -> Option<Self> {
        match label {
            "active" => Some(KeyState::Active),
            "decrypt_only" => Some(KeyState::DecryptOnly),
            "retired" => Some(KeyState::Retired),
            _ => None,
        }
    }
}

/// One version: its state and, unless retired, the extract step over its root key.
struct Entry {
    state: KeyState,
    prk: Option<Arc<RootPrk>>,
}

/// An immutable snapshot of the versions; rotation replaces it as a whole.
struct Roots {
    entries: BTreeMap<KeyVersion, Entry>,
    active: KeyVersion,
}

impl Roots {
    fn minimum(&self) -> KeyVersion {
        minimum_of(&self.entries, self.active)
    }
}

/// Versioned root keys: one active for sealing, others decrypt-only or retired.
///
/// Purpose keys are derived with HKDF-SHA256 per (version, purpose, kind); epoch keys per random
/// epoch salt (see SECURITY.md). Derived keys are cached, so the hot path never runs HKDF.
///
/// The versions can change while the keyring is in use, shared by threads through a
/// [`Guard`](crate::Guard): [`Keyring::rotate`] (or [`Keyring::add_key`] +
/// [`Keyring::activate`]) switches sealing to a new version at once, [`Keyring::retire`] makes
/// an old version's values refuse to open. Readers never wait for a rotation: they work on the
/// snapshot they loaded. A keyring loaded from a file ([`Keyring::load`]) writes every change
/// back to it before the change takes effect.
///
/// ```
/// use fieldseal::{Keyring, KeyState, KeyVersion, RootKey};
/// let v1 = KeyVersion::new(1).unwrap();
/// let v2 = KeyVersion::new(2).unwrap();
/// let ring = Keyring::builder()
///     .key(v1, RootKey::generate()?)
///     .key(v2, RootKey::generate()?)
///     .active(v2)
///     .minimum(v1)
///     .build()?;
/// assert_eq!(ring.active_version(), v2);
/// let v3 = ring.rotate()?;
/// ring.retire(v1)?;
/// assert_eq!(ring.versions(), [(v1, KeyState::Retired), (v2, KeyState::DecryptOnly), (v3, KeyState::Active)]);
/// # Ok::<(), fieldseal::Error>(())
/// ```
pub struct Keyring {
    id: u64,
    roots: ArcSwap<Roots>,
    /// Bumped by every change of versions, after the new snapshot is stored: threads compare it
    /// with their sealing epoch's to notice a new active version.
    generation: AtomicU64,
    // Sharded: readers on different threads lock different shards, so the hot path shares no
    // written cache line between cores. Writes (a new epoch or key) lock every shard. It also
    // owns the sealing epochs that threads hold weakly.
    open_cache: ShardedLock<FxHashMap<OpenKey, Arc<EpochKey>>>,
    epoch_limit: u64,
    /// Serializes changes of versions, and holds the file they are written to, if any.
    admin: Mutex<Option<KeyringFile>>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let roots = self.roots.load();
        f.debug_struct("Keyring")
            .field(
                "versions",
                &roots
                    .entries
                    .iter()
                    .map(|(v, e)| (v.get(), e.state.label()))
                    .collect::<Vec<_>>(),
            )
            .field("active", &roots.active)
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

    /// Versions below this are retired: they no longer open (default: the lowest added).
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
        let mut versions = Vec::with_capacity(self.keys.len());
        for (v, k) in self.keys {
            if versions.iter().any(|(w, _, _)| *w == v) {
                return Err(KeyError::DuplicateVersion(v).into());
            }
            versions.push((v, KeyState::DecryptOnly, Some(k)));
        }
        let (Some(lowest), Some(highest)) = (
            versions.iter().map(|(v, _, _)| *v).min(),
            versions.iter().map(|(v, _, _)| *v).max(),
        ) else {
            return Err(ConfigError::NoKeys.into());
        };
        let active = self.active.unwrap_or(highest);
        if !versions.iter().any(|(v, _, _)| *v == active) {
            return Err(KeyError::UnknownVersion(active).into());
        }
        let minimum = self.minimum.unwrap_or(lowest);
        if active < minimum {
            return Err(ConfigError::ActiveBelowMinimum.into());
        }
        for (v, state, key) in &mut versions {
            if *v == active {
                *state = KeyState::Active;
            } else if *v < minimum {
                *state = KeyState::Retired;
                *key = None;
            }
        }
        Keyring::from_versions(versions, self.epoch_limit.unwrap_or(EPOCH_LIMIT), None)
    }
}

impl Keyring {
    /// Starts a keyring.
    pub fn builder() -> KeyringBuilder {
        KeyringBuilder::default()
    }

    /// A keyring of these versions (exactly one active; retired ones without a key).
    pub(crate) fn from_versions(
        versions: Vec<(KeyVersion, KeyState, Option<RootKey>)>,
        epoch_limit: u64,
        file: Option<KeyringFile>,
    ) -> Result<Self, Error> {
        let mut entries = BTreeMap::new();
        let mut active = None;
        for (v, state, key) in versions {
            let prk = match (state, key) {
                (KeyState::Retired, _) => None,
                (_, Some(k)) => Some(Arc::new(RootPrk::new(k.bytes()))),
                (_, None) => return Err(KeyError::UnknownVersion(v).into()),
            };
            if state == KeyState::Active {
                if active.is_some() {
                    return Err(KeyError::NoActiveKey.into());
                }
                active = Some(v);
            }
            if entries.insert(v, Entry { state, prk }).is_some() {
                return Err(KeyError::DuplicateVersion(v).into());
            }
        }
        let active = active.ok_or(KeyError::NoActiveKey)?;
        Ok(Keyring {
            id: NEXT_KEYRING_ID.fetch_add(1, Ordering::Relaxed),
            roots: ArcSwap::from_pointee(Roots { entries, active }),
            generation: AtomicU64::new(0),
            open_cache: ShardedLock::new(FxHashMap::default()),
            epoch_limit,
            admin: Mutex::new(file),
        })
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
    /// when the process ends; use [`Keyring::create`] to keep it).
    ///
    /// # Errors
    /// [`Error::Random`] if the random source fails.
    pub fn generate() -> Result<Self, Error> {
        Self::single(RootKey::generate()?)
    }

    /// Creates a keyring file at `path` holding one fresh root key (version 1, active), fresh
    /// audit and checkpoint keys, all wrapped under a file key that `provider` wraps; returns
    /// the keyring, which writes every later change back to the file. The format is documented
    /// in SECURITY.md ("Keyring file").
    ///
    /// # Errors
    /// [`Error::Io`] if the file exists or cannot be written, [`Error::Provider`] if the
    /// provider cannot wrap, [`Error::Random`].
    pub fn create(provider: &dyn KeyProvider, path: impl AsRef<Path>) -> Result<Self, Error> {
        let (file, versions) = KeyringFile::create(provider, path.as_ref())?;
        Self::from_versions(versions, EPOCH_LIMIT, Some(file))
    }

    /// Loads the keyring file at `path` with `provider` (one provider call: the file key is
    /// unwrapped once; nothing on the seal or reveal path calls the provider).
    ///
    /// # Errors
    /// [`Error::Provider`] with [`ProviderErrorKind::WrongProvider`](crate::ProviderErrorKind)
    /// if the file was written under another provider, or
    /// [`ProviderErrorKind::Unwrap`](crate::ProviderErrorKind) if the file key does not unwrap;
    /// [`KeyError::FileMalformed`] / [`KeyError::FileIntegrity`] for a damaged or edited file,
    /// [`KeyError::UnsupportedFileVersion`]; [`Error::Io`].
    pub fn load(provider: &dyn KeyProvider, path: impl AsRef<Path>) -> Result<Self, Error> {
        let (file, versions) = KeyringFile::load(provider, path.as_ref())?;
        Self::from_versions(versions, EPOCH_LIMIT, Some(file))
    }

    /// The audit key and checkpoint signing key kept in this keyring's file, if it has one.
    ///
    /// # Errors
    /// [`KeyError::NotPersistent`] for a keyring without a file.
    pub fn audit_keys(&self) -> Result<(AuditKey, CheckpointSigningKey), Error> {
        let admin = self.admin()?;
        let file = admin.as_ref().ok_or(KeyError::NotPersistent)?;
        Ok(file.audit_keys())
    }

    /// The version new values are sealed under.
    pub fn active_version(&self) -> KeyVersion {
        self.roots.load().active
    }

    /// The lowest version that still opens.
    pub fn minimum_version(&self) -> KeyVersion {
        self.roots.load().minimum()
    }

    /// Every version with its state, in version order.
    pub fn versions(&self) -> Vec<(KeyVersion, KeyState)> {
        self.roots
            .load()
            .entries
            .iter()
            .map(|(v, e)| (*v, e.state))
            .collect()
    }

    /// Adds a fresh random root key as the next version and makes it active: new values are
    /// sealed under it at once, on every thread; the previous active version becomes
    /// decrypt-only. Persisted first for a keyring with a file.
    ///
    /// # Errors
    /// [`Error::Random`], [`Error::Io`] if the file cannot be written (nothing changes then).
    pub fn rotate(&self) -> Result<KeyVersion, Error> {
        let key = RootKey::generate()?;
        let next = {
            let roots = self.roots.load();
            let last = roots.entries.keys().next_back().map_or(0, |v| v.get());
            KeyVersion::new(last.saturating_add(1)).ok_or(KeyError::NoActiveKey)?
        };
        self.change(|entries, active, file| {
            if entries.contains_key(&next) {
                return Err(KeyError::DuplicateVersion(next).into());
            }
            if let Some(file) = file {
                file.add(next, &key)?;
                file.set_state(*active, KeyState::DecryptOnly);
                file.set_state(next, KeyState::Active);
            }
            set_state(entries, *active, KeyState::DecryptOnly);
            entries.insert(
                next,
                Entry {
                    state: KeyState::Active,
                    prk: Some(Arc::new(RootPrk::new(key.bytes()))),
                },
            );
            *active = next;
            Ok(())
        })?;
        Ok(next)
    }

    /// Adds `key` as decrypt-only version `version` (for example a version created by another
    /// instance); [`Keyring::activate`] makes it the sealing version.
    ///
    /// # Errors
    /// [`KeyError::DuplicateVersion`], [`Error::Io`] if the file cannot be written.
    pub fn add_key(&self, version: KeyVersion, key: RootKey) -> Result<(), Error> {
        self.change(|entries, _, file| {
            if entries.contains_key(&version) {
                return Err(KeyError::DuplicateVersion(version).into());
            }
            if let Some(file) = file {
                file.add(version, &key)?;
            }
            entries.insert(
                version,
                Entry {
                    state: KeyState::DecryptOnly,
                    prk: Some(Arc::new(RootPrk::new(key.bytes()))),
                },
            );
            Ok(())
        })
    }

    /// Makes `version` the sealing version (the previous one becomes decrypt-only).
    ///
    /// # Errors
    /// [`KeyError::UnknownVersion`], [`KeyError::Retired`] for a retired version,
    /// [`Error::Io`] if the file cannot be written.
    pub fn activate(&self, version: KeyVersion) -> Result<(), Error> {
        self.change(|entries, active, file| {
            let minimum = minimum_of(entries, *active);
            match entries.get(&version).map(|e| e.state) {
                None => return Err(KeyError::UnknownVersion(version).into()),
                Some(KeyState::Retired) => {
                    return Err(KeyError::Retired { version, minimum }.into());
                }
                Some(_) => {}
            }
            if let Some(file) = file {
                file.set_state(*active, KeyState::DecryptOnly);
                file.set_state(version, KeyState::Active);
            }
            set_state(entries, *active, KeyState::DecryptOnly);
            set_state(entries, version, KeyState::Active);
            *active = version;
            Ok(())
        })
    }

    /// Retires `version`: its values no longer open ([`KeyError::Retired`]) and its key and the
    /// keys derived from it leave memory (a keyring file keeps it wrapped, marked retired).
    /// Rewrap values first ([`Guard::rewrap`](crate::Guard)) if they must stay readable.
    ///
    /// # Errors
    /// [`KeyError::UnknownVersion`], [`KeyError::RetireActive`] for the active version,
    /// [`Error::Io`] if the file cannot be written.
    pub fn retire(&self, version: KeyVersion) -> Result<(), Error> {
        self.change(|entries, active, file| {
            if version == *active {
                return Err(KeyError::RetireActive.into());
            }
            let entry = entries
                .get_mut(&version)
                .ok_or(KeyError::UnknownVersion(version))?;
            if let Some(file) = file {
                file.set_state(version, KeyState::Retired);
            }
            entry.state = KeyState::Retired;
            entry.prk = None;
            Ok(())
        })?;
        if let Ok(mut cache) = self.open_cache.write() {
            cache.retain(|k, _| k.version != version.get());
        }
        Ok(())
    }

    fn admin(&self) -> Result<MutexGuard<'_, Option<KeyringFile>>, Error> {
        self.admin
            .lock()
            .map_err(|_| Error::Key(KeyError::NotPersistent))
    }

    /// Applies `edit` to a copy of the versions (and to the file, which is then written), then
    /// publishes the copy. Nothing changes if `edit` or the write fails.
    fn change(
        &self,
        edit: impl FnOnce(
            &mut BTreeMap<KeyVersion, Entry>,
            &mut KeyVersion,
            Option<&mut KeyringFile>,
        ) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut admin = self.admin()?;
        let current = self.roots.load_full();
        let mut entries: BTreeMap<KeyVersion, Entry> = current
            .entries
            .iter()
            .map(|(v, e)| {
                (
                    *v,
                    Entry {
                        state: e.state,
                        prk: e.prk.as_ref().map(Arc::clone),
                    },
                )
            })
            .collect();
        let mut active = current.active;
        let mut staged = admin.as_ref().map(KeyringFile::staged_copy);
        edit(&mut entries, &mut active, staged.as_mut())?;
        if let Some(file) = &mut staged {
            file.save()?;
        }
        *admin = staged;
        self.roots.store(Arc::new(Roots { entries, active }));
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// The extract step of the active version (analytics pseudonyms and blind-index terms for
    /// storing are computed under it).
    pub(crate) fn active_prk(&self) -> Result<(KeyVersion, Arc<RootPrk>), Error> {
        let roots = self.roots.load();
        let prk = roots
            .entries
            .get(&roots.active)
            .and_then(|e| e.prk.as_ref())
            .ok_or(KeyError::NoActiveKey)?;
        Ok((roots.active, Arc::clone(prk)))
    }

    /// The extract steps of every version that still opens (active and decrypt-only), the
    /// active one first, then the others newest first: blind-index queries during a rotation
    /// are computed under each.
    pub(crate) fn live_prks(&self) -> Vec<(KeyVersion, Arc<RootPrk>)> {
        let roots = self.roots.load();
        let mut out: Vec<(KeyVersion, Arc<RootPrk>)> = Vec::with_capacity(roots.entries.len());
        if let Some(prk) = roots
            .entries
            .get(&roots.active)
            .and_then(|e| e.prk.as_ref())
        {
            out.push((roots.active, Arc::clone(prk)));
        }
        for (v, e) in roots.entries.iter().rev() {
            if *v != roots.active
                && e.state != KeyState::Retired
                && let Some(prk) = e.prk.as_ref()
            {
                out.push((*v, Arc::clone(prk)));
            }
        }
        out
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
        let generation = self.generation.load(Ordering::Acquire);
        let current = LOCAL_SLOTS
            .try_with(|cell| {
                let mut slots = cell.try_borrow_mut().ok()?;
                let slot = slots.get_mut(&sk)?;
                if slot.used >= limit
                    || slot.generation != generation
                    || slot.label.as_bytes() != purpose.as_bytes()
                {
                    return None;
                }
                let key = slot.key.upgrade()?;
                slot.used += 1;
                Some((slot.version, key))
            })
            .ok()
            .flatten();
        if let Some((version, key)) = current {
            return Ok(f(version, &key));
        }
        // New epoch for this thread: first use, the old one is spent, the active version
        // changed, or its key was dropped.
        let roots = self.roots.load();
        let version = roots.active;
        let root = roots
            .entries
            .get(&version)
            .and_then(|e| e.prk.as_ref())
            .ok_or(KeyError::NoActiveKey)?;
        let mut salt = [0u8; SALT_LEN];
        rng.fill(&mut salt)?;
        let pk = root.purpose_key(purpose, kind, None);
        let key = Arc::new(EpochKey::derive(&pk, salt));
        let label = Label::new(purpose);
        self.remember(
            OpenKey {
                version: version.get(),
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
                        version,
                        generation,
                    },
                );
            }
        });
        Ok(f(version, &key))
    }

    /// Runs `f` with a fresh epoch key for sealing `(purpose, kind)` under the active version
    /// and the subject key `subject` (id and secret). Every such seal draws its own epoch salt:
    /// subject keys are many and each seals few values.
    pub(crate) fn with_subject_sealing_key<R>(
        &self,
        purpose: &str,
        kind: FieldKind,
        rng: &dyn RandomSource,
        subject: (&[u8; 16], &[u8; 32]),
        f: impl FnOnce(KeyVersion, &EpochKey) -> R,
    ) -> Result<R, Error> {
        let roots = self.roots.load();
        let version = roots.active;
        let root = roots
            .entries
            .get(&version)
            .and_then(|e| e.prk.as_ref())
            .ok_or(KeyError::NoActiveKey)?;
        let mut salt = [0u8; SALT_LEN];
        rng.fill(&mut salt)?;
        let pk = root.purpose_key(purpose, kind, Some(subject.0));
        let key = EpochKey::derive_for_subject(&pk, subject.1, salt);
        Ok(f(version, &key))
    }

    /// Forgets every cached key derived from the subject key `id` (after its erasure).
    pub(crate) fn forget_subject(&self, id: &[u8; 16]) {
        if let Ok(mut cache) = self.open_cache.write() {
            cache.retain(|k, _| k.subject.as_ref() != Some(id));
        }
    }

    /// Runs `f` with the epoch key that opens `env`, after checking its key commitment.
    /// `subject_secret` is the subject key of an envelope that names one.
    ///
    /// # Errors
    /// [`KeyError::Retired`], [`KeyError::UnknownVersion`], [`KeyError::SubjectKeyUnavailable`]
    /// (an envelope with a subject key and no secret given), or [`Error::Integrity`] when the
    /// commitment does not match.
    pub(crate) fn with_opening_key<R>(
        &self,
        env: &Parsed<'_>,
        subject_secret: Option<&[u8; 32]>,
        f: impl FnOnce(&EpochKey) -> R,
    ) -> Result<R, Error> {
        let subject = match (env.subject_key_id, subject_secret) {
            (None, _) => None,
            (Some(id), Some(secret)) => Some((id, secret)),
            (Some(_), None) => return Err(KeyError::SubjectKeyUnavailable.into()),
        };
        let ok = OpenKey {
            version: env.key_version.get(),
            kind: env.kind.code(),
            label: Label::new(env.purpose),
            subject: subject.map(|(id, _)| *id),
            salt: *env.salt,
        };
        // A cached key is only ever there for a version that is not retired: retiring purges
        // the cache after publishing the new state, and a key derived from an older snapshot
        // is checked against the current one below before it is cached.
        if let Ok(cache) = self.open_cache.read()
            && let Some(key) = cache.get(&ok)
        {
            if !key.commits_to(env.commitment) {
                return Err(Error::Integrity);
            }
            return Ok(f(key));
        }
        let roots = self.roots.load();
        let entry = roots
            .entries
            .get(&env.key_version)
            .ok_or(KeyError::UnknownVersion(env.key_version))?;
        let Some(root) = entry.prk.as_ref() else {
            return Err(KeyError::Retired {
                version: env.key_version,
                minimum: roots.minimum(),
            }
            .into());
        };
        let key = match subject {
            None => EpochKey::derive(&root.purpose_key(env.purpose, env.kind, None), *env.salt),
            Some((id, secret)) => EpochKey::derive_for_subject(
                &root.purpose_key(env.purpose, env.kind, Some(id)),
                secret,
                *env.salt,
            ),
        };
        // Only keys whose commitment matches are cached, so forged salts cannot fill the cache.
        if !key.commits_to(env.commitment) {
            return Err(Error::Integrity);
        }
        let key = Arc::new(key);
        self.remember(ok, Arc::clone(&key));
        Ok(f(&key))
    }

    /// Caches `key`, unless its version was retired meanwhile. Checked under the cache's write
    /// lock, which `retire` takes after publishing the new state: a key derived from an older
    /// snapshot is either refused here or purged there, never left behind.
    fn remember(&self, k: OpenKey, key: Arc<EpochKey>) {
        if let Ok(mut cache) = self.open_cache.write() {
            let live = KeyVersion::new(k.version).is_some_and(|v| {
                self.roots
                    .load()
                    .entries
                    .get(&v)
                    .is_some_and(|e| e.prk.is_some())
            });
            if !live {
                return;
            }
            if cache.len() >= OPEN_CACHE_CAP {
                cache.clear();
            }
            cache.insert(k, key);
        }
    }
}

fn set_state(entries: &mut BTreeMap<KeyVersion, Entry>, version: KeyVersion, state: KeyState) {
    if let Some(e) = entries.get_mut(&version) {
        e.state = state;
    }
}

fn minimum_of(entries: &BTreeMap<KeyVersion, Entry>, active: KeyVersion) -> KeyVersion {
    entries
        .iter()
        .find(|(_, e)| e.state != KeyState::Retired)
        .map_or(active, |(v, _)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(n: u32) -> KeyVersion {
        KeyVersion::new(n).unwrap_or_else(|| unreachable!())
    }

    /// A keyring with version 1 alone.
    fn one_key() -> Keyring {
        Keyring::builder()
            .key(v(1), RootKey::from_bytes([1; 32]))
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Caches an (arbitrary) opening key for `subject` and a salt of `salt` bytes.
    fn remember(ring: &Keyring, subject: Option<[u8; 16]>, salt: u8) {
        let k = OpenKey {
            version: 1,
            kind: FieldKind::Email.code(),
            label: Label::new("service"),
            subject,
            salt: [salt; SALT_LEN],
        };
        ring.remember(k, Arc::new(EpochKey::derive(&[7; 32], [salt; SALT_LEN])));
    }

    /// Opening keys are cached up to the bound SECURITY.md states (65,536), not one at a time;
    /// the Debug form lists versions and states, nothing else.
    #[test]
    fn opening_keys_are_cached_up_to_the_documented_bound() {
        assert_eq!(OPEN_CACHE_CAP, 65_536);
        let ring = one_key();
        for salt in 0..3u8 {
            remember(&ring, None, salt);
        }
        let cached = ring.open_cache.read().map(|c| c.len()).unwrap_or(0);
        assert_eq!(cached, 3);
        let debug = format!("{ring:?}");
        assert!(debug.starts_with("Keyring {"), "{debug}");
        assert!(debug.contains("versions: [(1, "), "{debug}");
    }

    /// After a subject's erasure no key derived from its subject key stays cached (it could no
    /// longer be reached without the erased secret, but it must not linger in memory either);
    /// other subjects' keys and keys without a subject stay.
    #[test]
    fn forgetting_a_subject_drops_only_its_keys() {
        let ring = one_key();
        for subject in [Some([1; 16]), Some([2; 16]), None] {
            remember(&ring, subject, 0);
        }
        ring.forget_subject(&[1; 16]);
        let mut left: Vec<Option<[u8; 16]>> = ring
            .open_cache
            .read()
            .map(|c| c.keys().map(|k| k.subject).collect())
            .unwrap_or_default();
        left.sort();
        assert_eq!(left, vec![None, Some([2; 16])]);
    }

    /// Rotation and activation move the states of the versions they touch, in memory as in
    /// the file.
    #[test]
    fn rotation_and_activation_update_states() {
        let ring = one_key();
        assert_eq!(ring.rotate().unwrap_or_else(|e| panic!("{e}")), v(2));
        assert_eq!(
            ring.versions(),
            vec![(v(1), KeyState::DecryptOnly), (v(2), KeyState::Active)]
        );
        ring.activate(v(1)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            ring.versions(),
            vec![(v(1), KeyState::Active), (v(2), KeyState::DecryptOnly)]
        );
        assert_eq!(ring.active_version(), v(1));
    }

    /// A thread's sealing slots stay bounded however many purposes it seals for.
    #[test]
    fn sealing_slots_stay_bounded() {
        let ring = one_key();
        let labels: Vec<String> = (0..LOCAL_SLOTS_CAP + 44).map(|i| format!("p{i}")).collect();
        for label in &labels {
            ring.with_sealing_key(label, FieldKind::Email, &crate::SystemRandom, |_, _| ())
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let held = LOCAL_SLOTS.with(|s| s.borrow().len());
        assert!(held > 0 && held <= LOCAL_SLOTS_CAP, "{held} slots");
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
