//! Subject keys: random, secret per-subject (or per subject × purpose) key material, stored
//! wrapped by a [`KeyProvider`] in a [`SubjectKeyStore`]. Destroying a subject's key
//! (crypto-shredding) makes every envelope sealed under it unopenable, copies and backups of the
//! envelopes included.
//!
//! A subject's current key is found through its *slot*: the first 16 bytes of
//! HMAC-SHA256(index key, lp("fieldseal/v1/subject-key-id") ‖ lp(subject) ‖ lp(scope)), where
//! scope is empty for a per-subject key and the purpose label for a per-purpose one. The slot
//! holds the (wrapped) random 16-byte id of the key, which envelope headers carry; the key is
//! stored under that id. The index key is 32 random bytes kept in the store itself, wrapped like
//! the subject keys, under the reserved all-zero id; without it slots do not reveal subjects.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use zeroize::Zeroizing;

use super::provider::KeyProvider;
use crate::Error;
use crate::audit::{AuditEvent, AuditSink};
use crate::crypto::kdf::{hmac_sha256, push_lp};
use crate::error::KeyError;

/// The id of a subject key as stored in envelope headers.
pub type SubjectKeyId = [u8; 16];

/// The reserved id under which the store keeps its wrapped index key.
const INDEX_KEY_ID: SubjectKeyId = [0; 16];
const ID_DOMAIN: &[u8] = b"fieldseal/v1/subject-key-id";
const KEY_DOMAIN: &[u8] = b"fieldseal/v1/subject-key";
const SLOT_DOMAIN: &[u8] = b"fieldseal/v1/subject-key-slot";
const INDEX_DOMAIN: &[u8] = b"fieldseal/v1/subject-index-key";

/// Where wrapped subject keys live. Implementations must be durable before returning from
/// `insert` and `delete`, and `delete` must remove every copy the store itself keeps (a store
/// with backups must let those expire on the retention clock, or a restore undoes erasures).
pub trait SubjectKeyStore: Send + Sync + fmt::Debug {
    /// The wrapped key stored under `id`, if any.
    ///
    /// # Errors
    /// Storage failures.
    fn get(&self, id: &SubjectKeyId) -> Result<Option<Vec<u8>>, Error>;

    /// Stores `wrapped` under `id` unless a key is already there; returns the key that is
    /// stored afterwards (the existing one if another writer won).
    ///
    /// # Errors
    /// Storage failures.
    fn insert(&self, id: &SubjectKeyId, wrapped: &[u8]) -> Result<Vec<u8>, Error>;

    /// Destroys the key under `id`; returns whether there was one.
    ///
    /// # Errors
    /// Storage failures.
    fn delete(&self, id: &SubjectKeyId) -> Result<bool, Error>;

    /// As [`SubjectKeyStore::get`], without blocking the caller's async runtime (the lookup
    /// [`Guard::reveal_async`](crate::Guard::reveal_async) makes to confirm a key still
    /// exists). The default calls `get` at once, on the caller's thread: right for stores that
    /// do not wait on a network.
    fn get_async(&self, id: &SubjectKeyId) -> SubjectKeyFuture {
        let found = self.get(id);
        Box::pin(std::future::ready(found))
    }

    /// Records an erasure's `event` in `audit` and deletes the keys `ids`, as one unit where the
    /// store can make it one ([`Guard::erase`](crate::Guard::erase) calls it).
    ///
    /// The default records first, then deletes: an erasure is never unaudited, but a crash in
    /// between leaves an audited erasure whose keys still exist until it is retried. A store
    /// sharing a transaction with its audit sink overrides it (`postgres::PgSubjectKeys` made
    /// with `with_audit`, feature `postgres`, when `audit` is that sink).
    ///
    /// # Errors
    /// [`Error::Audit`] if the record is refused (nothing is deleted), storage failures.
    fn delete_audited(
        &self,
        ids: &[SubjectKeyId],
        audit: &dyn AuditSink,
        event: &AuditEvent<'_>,
    ) -> Result<(), Error> {
        record_then_delete(self, ids, audit, event)
    }
}

/// [`SubjectKeyStore::delete_audited`]'s default: the record, then each deletion.
pub(crate) fn record_then_delete<S: SubjectKeyStore + ?Sized>(
    store: &S,
    ids: &[SubjectKeyId],
    audit: &dyn AuditSink,
    event: &AuditEvent<'_>,
) -> Result<(), Error> {
    audit.record(event)?;
    for id in ids {
        store.delete(id)?;
    }
    Ok(())
}

/// The future of [`SubjectKeyStore::get_async`]: owns everything it needs.
pub type SubjectKeyFuture =
    std::pin::Pin<Box<dyn Future<Output = Result<Option<Vec<u8>>, Error>> + Send + 'static>>;

/// An in-memory [`SubjectKeyStore`] (tests, demos, single-process tools).
#[derive(Debug, Default)]
pub struct MemorySubjectKeys {
    keys: Mutex<HashMap<SubjectKeyId, Vec<u8>>>,
}

impl MemorySubjectKeys {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self) -> Result<std::sync::MutexGuard<'_, HashMap<SubjectKeyId, Vec<u8>>>, Error> {
        self.keys
            .lock()
            .map_err(|_| Error::Key(KeyError::SubjectKeyUnavailable))
    }
}

impl SubjectKeyStore for MemorySubjectKeys {
    fn get(&self, id: &SubjectKeyId) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.map()?.get(id).cloned())
    }
    fn insert(&self, id: &SubjectKeyId, wrapped: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(self
            .map()?
            .entry(*id)
            .or_insert_with(|| wrapped.to_vec())
            .clone())
    }
    fn delete(&self, id: &SubjectKeyId) -> Result<bool, Error> {
        Ok(self.map()?.remove(id).is_some())
    }
}

/// A [`SubjectKeyStore`] in a directory: one file per key, named by the id in hex, written
/// atomically (temporary file, fsync, hard link into place, directory fsync) and deleted with
/// a directory fsync.
#[derive(Debug)]
pub struct FileSubjectKeys {
    dir: PathBuf,
    lock: Mutex<()>,
}

impl FileSubjectKeys {
    /// A store in `dir` (created if missing, mode 0700 on Unix).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, Error> {
        let dir = dir.as_ref().to_path_buf();
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt as _;
            b.mode(0o700);
        }
        b.create(&dir)?;
        Ok(Self {
            dir,
            lock: Mutex::new(()),
        })
    }

    fn path(&self, id: &SubjectKeyId) -> PathBuf {
        let name: String = id.iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(name)
    }

    fn sync_dir(&self) -> Result<(), Error> {
        std::fs::File::open(&self.dir)?.sync_all()?;
        Ok(())
    }
}

impl SubjectKeyStore for FileSubjectKeys {
    fn get(&self, id: &SubjectKeyId) -> Result<Option<Vec<u8>>, Error> {
        match std::fs::read(self.path(id)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn insert(&self, id: &SubjectKeyId, wrapped: &[u8]) -> Result<Vec<u8>, Error> {
        use std::io::Write as _;
        let _guard = self
            .lock
            .lock()
            .map_err(|_| KeyError::SubjectKeyUnavailable)?;
        let path = self.path(id);
        let mut tmp = path.clone().into_os_string();
        tmp.push(format!(".tmp{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(wrapped)?;
        f.sync_all()?;
        drop(f);
        // A hard link fails if the name exists: another process's key wins, atomically.
        let linked = std::fs::hard_link(&tmp, &path);
        std::fs::remove_file(&tmp)?;
        match linked {
            Ok(()) => {
                self.sync_dir()?;
                Ok(wrapped.to_vec())
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(std::fs::read(&path)?),
            Err(e) => Err(e.into()),
        }
    }

    fn delete(&self, id: &SubjectKeyId) -> Result<bool, Error> {
        match std::fs::remove_file(self.path(id)) {
            Ok(()) => {
                self.sync_dir()?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// Whether a purpose's subject keys are one per subject or one per subject and purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubjectKeyScope {
    /// One key per subject for every purpose with this scope: erasing the subject erases them
    /// all at once.
    Subject,
    /// One key per subject and purpose: erasing the purpose (withdrawn marketing consent)
    /// leaves the subject's other purposes readable.
    Purpose,
}

/// Subject keys for a [`Guard`](crate::Guard): a store, the provider that wraps the keys in
/// it, and an in-memory cache of unwrapped keys.
///
/// Two kinds of entries live in the store, both wrapped by the provider: under a subject's
/// *slot* (an HMAC of the subject and scope under the index key), the id of the subject's
/// current key; under that random 16-byte *key id* (the one envelope headers carry), the key.
/// Erasure deletes both, so a value sealed under an erased key finds no key under its id
/// ([`KeyError::Erased`]), even after new data of the same subject got a new key.
///
/// Every seal and open of a subject-key value reads the store once to confirm the key still
/// exists, so an erasure made through another process sharing the store is honoured at once;
/// the unwrapped key itself comes from the cache.
pub struct SubjectKeys {
    provider: Arc<dyn KeyProvider>,
    store: Arc<dyn SubjectKeyStore>,
    index_key: OnceLock<Zeroizing<[u8; 32]>>,
    cache: Mutex<KeyCache>,
}

/// Unwrapped subject keys by id.
type KeyCache = HashMap<SubjectKeyId, Arc<Zeroizing<[u8; 32]>>>;

impl fmt::Debug for SubjectKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubjectKeys")
            .field("provider", &self.provider.id())
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// A subject's current key: its id (for the envelope header) and secret.
pub(crate) type CurrentKey = (SubjectKeyId, Arc<Zeroizing<[u8; 32]>>);

impl SubjectKeys {
    /// Subject keys in `store`, wrapped by `provider`.
    pub fn new(provider: Arc<dyn KeyProvider>, store: Arc<dyn SubjectKeyStore>) -> Self {
        Self {
            provider,
            store,
            index_key: OnceLock::new(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The slot of `subject` for `scope` (empty: per subject; else the purpose label).
    fn slot(&self, subject: &[u8], scope: &str) -> Result<SubjectKeyId, Error> {
        let index = self.index_key()?;
        let mut msg = Zeroizing::new(Vec::with_capacity(64 + subject.len()));
        push_lp(&mut msg, ID_DOMAIN);
        push_lp(&mut msg, subject);
        push_lp(&mut msg, scope.as_bytes());
        let mac = Zeroizing::new(hmac_sha256(index.as_ref(), &msg));
        let mut id = [0u8; 16];
        id.copy_from_slice(&mac[..16]);
        if id == INDEX_KEY_ID {
            // Probability 2^-128; the reserved id is never a subject's.
            id[0] = 1;
        }
        Ok(id)
    }

    /// The current key of `subject` for `scope`; created if `create` and there is none.
    ///
    /// # Errors
    /// [`KeyError::Erased`] if there is none and `create` is false; provider and store errors.
    pub(crate) fn current(
        &self,
        subject: &[u8],
        scope: &str,
        create: bool,
    ) -> Result<CurrentKey, Error> {
        let slot = self.slot(subject, scope)?;
        let pointer = match self.store.get(&slot)? {
            Some(p) => p,
            None if create => {
                let mut id = [0u8; 16];
                rand::TryRng::try_fill_bytes(&mut rand::rngs::SysRng, &mut id)
                    .map_err(|_| Error::Random)?;
                let secret = random32()?;
                let wrapped = self
                    .provider
                    .wrap(secret.as_ref(), &wrap_aad(KEY_DOMAIN, &id))?;
                self.store.insert(&id, &wrapped)?;
                let pointer = self.provider.wrap(&id, &wrap_aad(SLOT_DOMAIN, &slot))?;
                let stored = self.store.insert(&slot, &pointer)?;
                if stored != pointer {
                    // Another writer created the subject's key first: use theirs.
                    self.store.delete(&id)?;
                }
                stored
            }
            None => return Err(KeyError::Erased.into()),
        };
        let raw = self
            .provider
            .unwrap(&pointer, &wrap_aad(SLOT_DOMAIN, &slot))?;
        let id: SubjectKeyId = raw
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::InvalidLength)?;
        Ok((id, self.key(&id)?))
    }

    /// The key under `id` (from an envelope header).
    ///
    /// # Errors
    /// [`KeyError::Erased`] if the store no longer holds it; provider and store errors.
    pub(crate) fn key(&self, id: &SubjectKeyId) -> Result<Arc<Zeroizing<[u8; 32]>>, Error> {
        let stored = self.store.get(id)?;
        self.key_from(id, stored)
    }

    /// [`SubjectKeys::key`] with the store read awaited.
    ///
    /// # Errors
    /// As [`SubjectKeys::key`].
    pub(crate) async fn key_async(
        &self,
        id: &SubjectKeyId,
    ) -> Result<Arc<Zeroizing<[u8; 32]>>, Error> {
        let stored = self.store.get_async(id).await?;
        self.key_from(id, stored)
    }

    /// The key under `id`, given what the store holds under it now.
    fn key_from(
        &self,
        id: &SubjectKeyId,
        stored: Option<Vec<u8>>,
    ) -> Result<Arc<Zeroizing<[u8; 32]>>, Error> {
        let Some(wrapped) = stored else {
            self.cache()?.remove(id);
            return Err(KeyError::Erased.into());
        };
        if let Some(k) = self.cache()?.get(id) {
            return Ok(Arc::clone(k));
        }
        let plain = self.provider.unwrap(&wrapped, &wrap_aad(KEY_DOMAIN, id))?;
        let mut key = Zeroizing::new([0u8; 32]);
        if plain.len() != 32 {
            return Err(KeyError::InvalidLength.into());
        }
        key.copy_from_slice(&plain);
        let key = Arc::new(key);
        self.cache()?.insert(*id, Arc::clone(&key));
        Ok(key)
    }

    /// Destroys the current key of `subject` for `scope` (the key and its slot, in the store
    /// and in memory) and records `event`, through [`SubjectKeyStore::delete_audited`]; returns
    /// the key's id if there was one. Without a key, only `event` is recorded.
    ///
    /// # Errors
    /// [`Error::Audit`] if the record is refused (nothing is destroyed); store and provider
    /// errors.
    pub(crate) fn destroy_audited(
        &self,
        subject: &[u8],
        scope: &str,
        audit: &dyn AuditSink,
        event: &AuditEvent<'_>,
    ) -> Result<Option<SubjectKeyId>, Error> {
        let slot = self.slot(subject, scope)?;
        let Some(pointer) = self.store.get(&slot)? else {
            audit.record(event)?;
            return Ok(None);
        };
        let raw = self
            .provider
            .unwrap(&pointer, &wrap_aad(SLOT_DOMAIN, &slot))?;
        let id: SubjectKeyId = raw
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::InvalidLength)?;
        // The key before its slot: should a store delete one at a time, once the key is gone
        // nothing opens, whatever happens to the slot.
        let deleted = self.store.delete_audited(&[id, slot], audit, event);
        // Forgotten in memory even if the store failed part way: the next use reads the store.
        self.cache()?.remove(&id);
        deleted?;
        Ok(Some(id))
    }

    fn cache(&self) -> Result<std::sync::MutexGuard<'_, KeyCache>, Error> {
        self.cache
            .lock()
            .map_err(|_| Error::Key(KeyError::SubjectKeyUnavailable))
    }

    fn index_key(&self) -> Result<&Zeroizing<[u8; 32]>, Error> {
        if let Some(k) = self.index_key.get() {
            return Ok(k);
        }
        let wrapped = match self.store.get(&INDEX_KEY_ID)? {
            Some(w) => w,
            None => {
                let fresh = random32()?;
                let w = self
                    .provider
                    .wrap(fresh.as_ref(), &wrap_aad(INDEX_DOMAIN, &INDEX_KEY_ID))?;
                self.store.insert(&INDEX_KEY_ID, &w)?
            }
        };
        let plain = self
            .provider
            .unwrap(&wrapped, &wrap_aad(INDEX_DOMAIN, &INDEX_KEY_ID))?;
        let mut key = Zeroizing::new([0u8; 32]);
        if plain.len() != 32 {
            return Err(KeyError::InvalidLength.into());
        }
        key.copy_from_slice(&plain);
        Ok(self.index_key.get_or_init(|| key))
    }
}

fn wrap_aad(domain: &[u8], id: &SubjectKeyId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(48);
    push_lp(&mut aad, domain);
    push_lp(&mut aad, id);
    aad
}

fn random32() -> Result<Zeroizing<[u8; 32]>, Error> {
    let mut k = Zeroizing::new([0u8; 32]);
    rand::TryRng::try_fill_bytes(&mut rand::rngs::SysRng, k.as_mut()).map_err(|_| Error::Random)?;
    Ok(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract(store: &dyn SubjectKeyStore) {
        let id = [3u8; 16];
        assert_eq!(store.get(&id).ok(), Some(None));
        assert_eq!(store.insert(&id, b"first").ok(), Some(b"first".to_vec()));
        assert_eq!(
            store.insert(&id, b"second").ok(),
            Some(b"first".to_vec()),
            "the key already stored wins"
        );
        assert_eq!(store.get(&id).ok(), Some(Some(b"first".to_vec())));
        assert_eq!(store.delete(&id).ok(), Some(true));
        assert_eq!(
            store.delete(&id).ok(),
            Some(false),
            "nothing left to delete"
        );
        assert_eq!(store.get(&id).ok(), Some(None));
    }

    #[test]
    fn both_stores_keep_the_store_contract() {
        contract(&MemorySubjectKeys::new());
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let files =
            FileSubjectKeys::open(dir.path().join("keys")).unwrap_or_else(|e| panic!("{e}"));
        contract(&files);
        assert_eq!(
            files.path(&[0xab; 16]).file_name().and_then(|n| n.to_str()),
            Some("abababababababababababababababab")
        );
    }

    #[test]
    fn a_key_file_that_cannot_be_read_or_deleted_is_an_error_not_absent() {
        // An unreadable key reported as absent would read as erased; an undeletable one
        // reported as absent would let an erasure succeed with the key still on disk.
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = FileSubjectKeys::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let id = [4u8; 16];
        std::fs::create_dir(store.path(&id)).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(store.path(&id).join("x"), b"").unwrap_or_else(|e| panic!("{e}"));
        assert!(store.get(&id).is_err());
        assert!(store.delete(&id).is_err());
    }

    /// Subject keys over `store`, wrapped by a fixed test KEK.
    fn keys_over(store: &Arc<MemorySubjectKeys>) -> SubjectKeys {
        SubjectKeys::new(
            Arc::new(crate::FileKek::from_key_for_tests(&[7; 32])),
            Arc::clone(store) as Arc<dyn SubjectKeyStore>,
        )
    }

    fn memory_keys() -> (SubjectKeys, Arc<MemorySubjectKeys>) {
        let store = Arc::new(MemorySubjectKeys::new());
        (keys_over(&store), store)
    }

    #[test]
    fn the_index_key_is_random_per_store_and_kept_in_it() {
        let (a, store) = memory_keys();
        let (b, _) = memory_keys();
        let slot = |k: &SubjectKeys| k.slot(b"alice", "").unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(
            slot(&a),
            slot(&b),
            "slots of one subject differ between stores"
        );
        assert!(
            matches!(store.get(&INDEX_KEY_ID), Ok(Some(_))),
            "kept, wrapped"
        );
        // Another handle on the same store (another process) finds the same slots.
        let again = keys_over(&store);
        assert_eq!(slot(&again), slot(&a));
    }

    #[test]
    fn a_wrapped_key_copied_to_another_id_does_not_open() {
        // Someone who can write the store copies a subject's wrapped key under another id (or
        // into a slot): the wrapping names its id and domain, so it does not unwrap there.
        let (keys, store) = memory_keys();
        let (id, _) = keys
            .current(b"alice", "", true)
            .unwrap_or_else(|e| panic!("{e}"));
        let wrapped = store.get(&id).ok().flatten().unwrap_or_default();
        let other = [5u8; 16];
        assert!(store.insert(&other, &wrapped).is_ok());
        assert!(matches!(keys.key(&other), Err(Error::Provider(_))));
        let mut aad = vec![0, 24];
        aad.extend_from_slice(b"fieldseal/v1/subject-key");
        aad.extend_from_slice(&[0, 16]);
        aad.extend_from_slice(&other);
        assert_eq!(wrap_aad(KEY_DOMAIN, &other), aad);
    }

    #[test]
    fn a_lookup_without_create_never_makes_a_key() {
        let (keys, store) = memory_keys();
        let r = keys.current(b"alice", "", false);
        assert!(matches!(r, Err(Error::Key(KeyError::Erased))));
        let slot = keys.slot(b"alice", "").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.get(&slot).ok(), Some(None), "no slot was written");
        let (id, key) = keys
            .current(b"alice", "", true)
            .unwrap_or_else(|e| panic!("{e}"));
        let (again, same) = keys
            .current(b"alice", "", false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((again, same.as_ref()), (id, key.as_ref()));
        // Every subject (and scope) draws its own key and id.
        let (bob_id, bob) = keys
            .current(b"bob", "", true)
            .unwrap_or_else(|e| panic!("{e}"));
        let (m_id, m) = keys
            .current(b"alice", "marketing", true)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(bob_id != id && m_id != id && m_id != bob_id);
        assert!(
            bob.as_ref() != key.as_ref()
                && m.as_ref() != key.as_ref()
                && m.as_ref() != bob.as_ref()
        );
    }

    #[test]
    fn the_async_lookup_finds_the_same_key_and_the_same_erasure() {
        let (keys, store) = memory_keys();
        let (id, key) = keys
            .current(b"alice", "", true)
            .unwrap_or_else(|e| panic!("{e}"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let found = rt
            .block_on(keys.key_async(&id))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(found.as_ref(), key.as_ref());
        assert_eq!(store.delete(&id).ok(), Some(true));
        let gone = rt.block_on(keys.key_async(&id));
        assert!(matches!(gone, Err(Error::Key(KeyError::Erased))));
    }

    #[test]
    fn slots_are_the_documented_hmac_and_debug_names_parts_only() {
        use hmac::{Hmac, KeyInit as _, Mac as _};
        let keys = memory_keys().0;
        assert!(keys.index_key.set(Zeroizing::new([9; 32])).is_ok());
        let expected = |subject: &[u8], scope: &[u8]| {
            let mut mac = <Hmac<sha2::Sha256>>::new_from_slice(&[9; 32])
                .unwrap_or_else(|_| unreachable!("any key length"));
            for part in [&b"fieldseal/v1/subject-key-id"[..], subject, scope] {
                mac.update(&(part.len() as u16).to_be_bytes());
                mac.update(part);
            }
            let full = mac.finalize().into_bytes();
            let mut id = [0u8; 16];
            id.copy_from_slice(&full[..16]);
            id
        };
        for (subject, scope) in [(&b"alice"[..], ""), (b"alice", "marketing"), (b"bob", "")] {
            let slot = keys.slot(subject, scope).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(slot, expected(subject, scope.as_bytes()), "{scope}");
        }
        let debug = format!("{keys:?}");
        assert!(debug.starts_with("SubjectKeys {"), "{debug}");
        assert!(debug.contains(&keys.provider.id()) && debug.contains("MemorySubjectKeys"));
        assert!(!debug.contains("[9"), "{debug}");
    }
}
