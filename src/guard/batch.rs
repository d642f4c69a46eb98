//! Batch rewrap: many envelopes re-sealed under the active key version, with one policy
//! decision (and one batch audit record) per distinct (purpose, kind), per-item results, and
//! the work split across cores for large batches.

use std::fmt;
use std::panic::Location;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use zeroize::{Zeroize, Zeroizing};

use super::Guard;
use super::reveal::failure_kind;
use super::seal::stable_label;
use crate::any::AnySealed;
use crate::audit::{AuditAction, AuditEvent, Detail, FailureKind, Outcome};
use crate::context::Context;
use crate::crypto::aead::{EpochKey, NONCE_LEN, TAG_LEN};
use crate::crypto::envelope::{self, HeaderFields, MAX_HEADER_LEN, Parsed};
use crate::error::{Error, FormatError, KeyError};
use crate::field::FieldKind;
use crate::keys::KeyVersion;
use crate::policy::{AccessRequest, Accessor, Action, Decision, DenyReason, Verdict};
use crate::purpose::{MAX_PURPOSE_LABEL, PurposeId};
use crate::telemetry::{Op, OpSpan, decided};

/// Items opened per keyring lookup at most: the opening key is held (and the keyring's cache
/// read-locked) only while one chunk is decrypted, and at most one chunk of plaintext exists at
/// a time per core.
const CHUNK: usize = 256;
/// Batches with fewer admitted items run on the calling thread alone.
const PARALLEL_MIN: usize = 4096;
/// Most threads one batch uses.
const MAX_WORKERS: usize = 8;

/// The per-item results of [`Guard::rewrap_batch`], in input order.
///
/// Each item is either its new envelope (under the active key version) or the error that kept
/// it from being re-sealed. A failed item's input is not handed back: the stored copy the caller
/// read it from is unchanged, still under its old version, and can be retried. `Debug` shows
/// counts only.
#[must_use = "SECURITY WARNING: failed items are still under their old key version; check the results"]
pub struct RewrapReport {
    results: Vec<Result<AnySealed, Error>>,
    rewrapped: usize,
}

impl RewrapReport {
    /// Number of items in the batch.
    pub fn len(&self) -> usize {
        self.results.len()
    }

    /// Whether the batch was empty.
    pub fn is_empty(&self) -> bool {
        self.results.is_empty()
    }

    /// Number of items re-sealed.
    pub fn rewrapped(&self) -> usize {
        self.rewrapped
    }

    /// Number of items not re-sealed.
    pub fn failed(&self) -> usize {
        self.results.len() - self.rewrapped
    }

    /// Every item's result, in input order.
    pub fn results(&self) -> &[Result<AnySealed, Error>] {
        &self.results
    }

    /// Every item's result, in input order, by value.
    pub fn into_results(self) -> Vec<Result<AnySealed, Error>> {
        self.results
    }

    /// The items not re-sealed: their index in the input and why.
    pub fn failures(&self) -> impl Iterator<Item = (usize, &Error)> {
        self.results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().err().map(|e| (i, e)))
    }
}

impl fmt::Debug for RewrapReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RewrapReport")
            .field("items", &self.results.len())
            .field("rewrapped", &self.rewrapped)
            .finish()
    }
}

/// Where an item stands.
enum State {
    /// Allowed and checked; waiting to be opened.
    Admitted,
    /// Decrypted in place: holds plaintext, wiped if anything fails.
    Opened,
    /// Re-sealed in place under the active version.
    Done,
    /// Refused with its whole group; the group's denial record covers it.
    GroupDenied(DenyReason),
    /// Refused on its own before anything was decrypted (consent, retention, residency, an
    /// invalid context); recorded individually before any decryption.
    Refused(Error, Outcome),
    /// Admitted, then failed (authentication, key, re-sealing); recorded individually
    /// afterwards, best effort, like a failed reveal.
    Failed(Error),
}

struct Item {
    bytes: Vec<u8>,
    context: Context,
    group: u32,
    key_version: KeyVersion,
    sealed_at: u64,
    state: State,
}

/// The items of one (purpose, kind): one decision, one batch record.
struct Group {
    purpose: PurposeId,
    /// The label sealed under, at the thread-stable address the keyring finds epochs by.
    label: Arc<str>,
    kind: FieldKind,
    verdict: Verdict,
    /// Items admitted (allowed group) or refused with the group (denied group).
    count: u64,
    oldest: u64,
}

/// A group's identity without allocation: kind code and the label's bytes.
type GroupKey = (u8, u8, [u8; MAX_PURPOSE_LABEL]);

fn group_key(env: &Parsed<'_>) -> GroupKey {
    let mut label = [0u8; MAX_PURPOSE_LABEL];
    let n = env.purpose.len().min(MAX_PURPOSE_LABEL);
    label[..n].copy_from_slice(&env.purpose.as_bytes()[..n]);
    (env.kind.code(), n as u8, label)
}

impl Guard {
    /// Re-seals many envelopes under the active key version, each in its own context, with
    /// per-item results: one bad item does not sink the batch.
    ///
    /// The batch follows [`Guard::rewrap`]'s rules, with one policy decision per distinct
    /// (purpose, kind) in the batch instead of one per item:
    ///
    /// 1. Each distinct (purpose, kind) is decided once for [`Action::Rewrap`]. Items of a
    ///    denied pair fail with [`Error::Denied`]. Items of an allowed pair then pass the
    ///    purpose's consent, retention and residency checks one by one (they depend on each
    ///    item's subject and sealed-at time) and need a valid context.
    /// 2. One *batch record* per decision goes to the audit sink: the purpose, the kind,
    ///    `allowed` or `denied:<reason>`, and the number of items it covers in
    ///    [`AuditEvent::count`] (for an allowed pair, the items admitted to re-sealing). Its key
    ///    version is the active one, its sealed-at the oldest of its items, its context the
    ///    empty one, its call site this call's `file:line`. If the sink refuses a batch record,
    ///    the whole call fails with [`Error::Audit`] and nothing is decrypted or re-sealed
    ///    (with [`GuardBuilder::best_effort_denial_audit`](super::GuardBuilder::best_effort_denial_audit),
    ///    a refused record of a denial is tolerated, as for single requests).
    /// 3. Each item refused by its own checks gets a record of its own (`denied:<reason>` or
    ///    `failed:context`, with its context and key version) before anything is decrypted.
    /// 4. Admitted items are decrypted and re-sealed in place; the plaintext never leaves the
    ///    crate and a failed item's buffer is wiped. Each item that fails here (authentication,
    ///    a retired or unknown key version, the random source) gets a `failed:*` record of its
    ///    own afterwards, best effort.
    ///
    /// As with [`Guard::rewrap`], every new envelope keeps its value's kind, purpose, context,
    /// sealed-at time and canonical bytes, under a fresh epoch salt and nonce; items already
    /// under the active version are re-sealed too. The purpose never changes (that is
    /// [`Guard::repurpose`]).
    ///
    /// # Performance
    /// No allocation per item besides the input's own buffer, which becomes the output
    /// envelope (same length, rewritten in place). One keyring lookup per distinct (key
    /// version, purpose, kind, epoch salt) per chunk of 256 items; one sealing-key lookup per
    /// item, which counts the item against its epoch's limit. From 4,096 admitted items the
    /// work is split across the available cores (up to 8 threads, each with its own sealing
    /// epoch).
    ///
    /// # Errors
    /// Only [`Error::Audit`] for the batch as a whole (see step 2). Every other problem is
    /// reported per item, with the errors of [`Guard::rewrap`].
    ///
    /// # Examples
    /// ```
    /// use fieldseal::*;
    /// use fieldseal::builtin::Service;
    /// let guard = Guard::builder()
    ///     .keyring(Keyring::generate()?)
    ///     .policy(AllowList::new().allow::<Service>(
    ///         Role::new("key_custodian"), FieldKind::Email, Action::Rewrap))
    ///     .audit(MemorySink::new())
    ///     .build()?;
    /// let mut rows = Vec::new();
    /// for row in 0..3 {
    ///     let ctx = Context::new().table("users").column("email").row(&row.to_string());
    ///     let s: Sealed<Email, Service> = guard.seal(&Email::parse("a@example.com")?, &ctx)?;
    ///     rows.push((AnySealed::from(s), ctx));
    /// }
    /// let v2 = guard.keyring().rotate()?;
    /// let custodian = Accessor::new("rotation-job", [Role::new("key_custodian")]);
    /// let report = guard.rewrap_batch(&custodian, rows)?;
    /// assert_eq!(report.rewrapped(), 3);
    /// for r in report.results() {
    ///     assert_eq!(r.as_ref().map(AnySealed::key_version).ok(), Some(v2));
    /// }
    /// # Ok::<(), fieldseal::Error>(())
    /// ```
    #[track_caller]
    pub fn rewrap_batch<I>(&self, accessor: &Accessor, items: I) -> Result<RewrapReport, Error>
    where
        I: IntoIterator<Item = (AnySealed, Context)>,
    {
        let site = Location::caller();
        let op = OpSpan::start(Op::RewrapBatch, "", None);
        op.run(|| {
            let report = self.rewrap_batch_at(accessor, items, site)?;
            op.batch(report.len(), report.rewrapped());
            Ok(report)
        })
    }

    fn rewrap_batch_at<I>(
        &self,
        accessor: &Accessor,
        items: I,
        site: &'static Location<'static>,
    ) -> Result<RewrapReport, Error>
    where
        I: IntoIterator<Item = (AnySealed, Context)>,
    {
        let mut groups: Vec<Group> = Vec::new();
        let mut items = self.admit(accessor, items, &mut groups);
        self.record_groups(accessor, &groups, site)?;
        self.record_refusals(accessor, &mut items, &groups, site);
        self.rewrap_items(&mut items, &groups);
        self.record_failures(accessor, &items, &groups, site);
        let mut rewrapped = 0;
        let results = items
            .into_iter()
            .map(
                |mut item| match std::mem::replace(&mut item.state, State::Done) {
                    State::Done => {
                        rewrapped += 1;
                        Ok(AnySealed::from_trusted(std::mem::take(&mut item.bytes)))
                    }
                    State::GroupDenied(reason) => Err(Error::Denied { reason }),
                    State::Refused(e, _) | State::Failed(e) => Err(e),
                    State::Admitted | State::Opened => {
                        // Not reached: every admitted item ends done or failed. Wiped regardless.
                        item.bytes.zeroize();
                        Err(Error::Integrity)
                    }
                },
            )
            .collect();
        Ok(RewrapReport { results, rewrapped })
    }

    /// Step 1: groups, one decision each, and each item's own checks.
    fn admit<I>(&self, accessor: &Accessor, items: I, groups: &mut Vec<Group>) -> Vec<Item>
    where
        I: IntoIterator<Item = (AnySealed, Context)>,
    {
        let mut index: FxHashMap<GroupKey, u32> = FxHashMap::default();
        let mut last: Option<(GroupKey, u32)> = None;
        items
            .into_iter()
            .map(|(sealed, context)| {
                let env = sealed.parsed();
                let key = group_key(&env);
                let g = match last {
                    Some((k, g)) if k == key => g,
                    _ => {
                        let g = *index.entry(key).or_insert_with(|| {
                            let purpose = sealed.purpose();
                            let verdict = self.policy.verdict(&AccessRequest {
                                accessor,
                                purpose: purpose.as_str(),
                                kind: env.kind,
                                action: Action::Rewrap,
                            });
                            groups.push(Group {
                                label: stable_label(purpose.as_str()),
                                purpose,
                                kind: env.kind,
                                verdict,
                                count: 0,
                                oldest: u64::MAX,
                            });
                            // Fewer groups than items, and items are counted in `usize`.
                            (groups.len() - 1) as u32
                        });
                        last = Some((key, g));
                        g
                    }
                };
                let state = match groups.get_mut(g as usize) {
                    Some(group) => self.check_item(accessor, group, &env, &context),
                    None => State::Failed(Error::Integrity),
                };
                let (key_version, sealed_at) = (env.key_version, env.sealed_at);
                Item {
                    bytes: sealed.into_bytes(),
                    context,
                    group: g,
                    key_version,
                    sealed_at,
                    state,
                }
            })
            .collect()
    }

    /// The decision of `group` applied to one item, then the item's own checks.
    fn check_item(
        &self,
        accessor: &Accessor,
        group: &mut Group,
        env: &Parsed<'_>,
        context: &Context,
    ) -> State {
        group.oldest = group.oldest.min(env.sealed_at);
        if let Decision::Deny(reason) = group.verdict.decision {
            group.count += 1;
            return State::GroupDenied(reason);
        }
        if let Some(rules) = group.verdict.rules
            && let Err((reason, _)) = self.check_rules(
                &rules,
                accessor,
                group.purpose.as_str(),
                env.sealed_at,
                context,
            )
        {
            return State::Refused(Error::Denied { reason }, Outcome::Denied(reason));
        }
        if let Err(e) = context.check() {
            return State::Refused(e.into(), Outcome::Failed(FailureKind::Context));
        }
        group.count += 1;
        // Sealing without the subject key would move the value out of reach of its erasure.
        if env.subject_key_id.is_some() {
            return State::Failed(KeyError::SubjectKeyUnavailable.into());
        }
        State::Admitted
    }

    /// Step 2: one batch record per decision, accepted before anything is decrypted.
    fn record_groups(
        &self,
        accessor: &Accessor,
        groups: &[Group],
        site: &'static Location<'static>,
    ) -> Result<(), Error> {
        let empty = Context::new();
        let active = self.keyring.active_version();
        for g in groups {
            let outcome = match g.verdict.decision {
                Decision::Allow => Outcome::Allowed,
                Decision::Deny(reason) => Outcome::Denied(reason),
            };
            let event = AuditEvent {
                time: self.clock.now(),
                accessor,
                purpose: Some(&g.purpose),
                kind: Some(g.kind),
                action: AuditAction::Access(Action::Rewrap),
                outcome,
                call_site: site,
                key_version: active,
                sealed_at: if g.oldest == u64::MAX { 0 } else { g.oldest },
                policy_version: g.verdict.policy_version,
                context: &empty,
                count: Some(g.count),
                detail: Detail::NONE,
            };
            decided(&event);
            if let Err(e) = self.audit.record(&event) {
                let tolerated = self.best_effort_denials && outcome != Outcome::Allowed;
                if !tolerated {
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    /// Step 3: a record for each item refused on its own; an unrecorded refusal reports the
    /// sink's error instead, as a single request would.
    fn record_refusals(
        &self,
        accessor: &Accessor,
        items: &mut [Item],
        groups: &[Group],
        site: &'static Location<'static>,
    ) {
        for item in items.iter_mut() {
            let State::Refused(_, outcome) = &item.state else {
                continue;
            };
            let outcome = *outcome;
            let Some(event) = self.item_event(accessor, item, groups, site, outcome) else {
                continue;
            };
            decided(&event);
            if let Err(e) = self.audit.record(&event) {
                let tolerated = self.best_effort_denials && matches!(outcome, Outcome::Denied(_));
                if !tolerated {
                    item.state = State::Refused(e.into(), outcome);
                }
            }
        }
    }

    /// Step 4 (after crypto): a `failed:*` record for each admitted item that failed.
    fn record_failures(
        &self,
        accessor: &Accessor,
        items: &[Item],
        groups: &[Group],
        site: &'static Location<'static>,
    ) {
        for item in items {
            if let State::Failed(e) = &item.state {
                let outcome = Outcome::Failed(failure_kind(e));
                if let Some(event) = self.item_event(accessor, item, groups, site, outcome) {
                    // Best effort: the item fails either way, and no plaintext exists.
                    decided(&event);
                    let _ = self.audit.record(&event);
                }
            }
        }
    }

    fn item_event<'a>(
        &self,
        accessor: &'a Accessor,
        item: &'a Item,
        groups: &'a [Group],
        site: &'static Location<'static>,
        outcome: Outcome,
    ) -> Option<AuditEvent<'a>> {
        let g = groups.get(item.group as usize)?;
        Some(AuditEvent {
            time: self.clock.now(),
            accessor,
            purpose: Some(&g.purpose),
            kind: Some(g.kind),
            action: AuditAction::Access(Action::Rewrap),
            outcome,
            call_site: site,
            key_version: item.key_version,
            sealed_at: item.sealed_at,
            policy_version: g.verdict.policy_version,
            context: &item.context,
            count: None,
            detail: Detail::NONE,
        })
    }

    /// Opens and re-seals every admitted item, on several threads for a large batch.
    fn rewrap_items(&self, items: &mut [Item], groups: &[Group]) {
        let admitted = items
            .iter()
            .filter(|i| matches!(i.state, State::Admitted))
            .count();
        let workers = if admitted >= PARALLEL_MIN {
            std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_WORKERS))
        } else {
            1
        };
        if workers <= 1 {
            self.rewrap_slice(items, groups);
            return;
        }
        let per = items.len().div_ceil(workers);
        std::thread::scope(|scope| {
            let mut parts = items.chunks_mut(per);
            let mine = parts.next();
            for part in parts {
                // If no thread can be had, the part stays admitted and is finished below.
                let _ = std::thread::Builder::new()
                    .name("fieldseal-rewrap".into())
                    .spawn_scoped(scope, || self.rewrap_slice(part, groups));
            }
            if let Some(mine) = mine {
                self.rewrap_slice(mine, groups);
            }
        });
        if items.iter().any(|i| matches!(i.state, State::Admitted)) {
            self.rewrap_slice(items, groups);
        }
    }

    /// Opens and re-seals the admitted items of `items`, chunk by chunk.
    fn rewrap_slice(&self, items: &mut [Item], groups: &[Group]) {
        // Associated data (header ‖ context) is assembled here; it may hold a subject id, so it
        // is wiped, and it is replaced rather than grown (see `fill_aad`).
        let mut aad = Zeroizing::new(Vec::with_capacity(512));
        for chunk in items.chunks_mut(CHUNK) {
            self.open_chunk(chunk, &mut aad);
            for item in chunk.iter_mut() {
                if !matches!(item.state, State::Opened) {
                    continue;
                }
                let result = match groups.get(item.group as usize) {
                    Some(g) => self.reseal_in_place(item, g, &mut aad),
                    None => Err(Error::Integrity),
                };
                item.state = match result {
                    Ok(()) => State::Done,
                    Err(e) => {
                        item.bytes.zeroize();
                        State::Failed(e)
                    }
                };
            }
        }
    }

    /// Decrypts the admitted items of `chunk` in place, with one keyring lookup per distinct
    /// opening key among them.
    fn open_chunk(&self, chunk: &mut [Item], aad: &mut Zeroizing<Vec<u8>>) {
        let mut next = 0;
        while let Some(rep) = chunk
            .get(next..)
            .and_then(|rest| rest.iter().position(|i| matches!(i.state, State::Admitted)))
            .map(|p| p + next)
        {
            next = rep + 1;
            // The keyring is handed a header-only copy of this item (header and a blank tag),
            // so the items themselves can be decrypted while it holds the key.
            let mut probe = [0u8; MAX_HEADER_LEN + TAG_LEN];
            let probe_len = match envelope::parse(&chunk[rep].bytes) {
                Ok(env) => {
                    let n = env.header.len();
                    probe[..n].copy_from_slice(env.header);
                    n + TAG_LEN
                }
                Err(e) => {
                    chunk[rep].state = State::Failed(e.into());
                    continue;
                }
            };
            let Ok(penv) = envelope::parse(&probe[..probe_len]) else {
                chunk[rep].state = State::Failed(Error::Integrity);
                continue;
            };
            let opened = self.keyring.with_opening_key(&penv, None, |key| {
                for item in chunk[rep..].iter_mut() {
                    if !matches!(item.state, State::Admitted) || !same_key(&item.bytes, &penv) {
                        continue;
                    }
                    item.state = match open_in_place(key, item, aad) {
                        Ok(()) => State::Opened,
                        Err(e) => {
                            // Authentication failed before anything was decrypted; wiped anyway.
                            item.bytes.zeroize();
                            State::Failed(e)
                        }
                    };
                }
            });
            if let Err(e) = opened {
                chunk[rep].bytes.zeroize();
                chunk[rep].state = State::Failed(e);
            }
        }
    }

    /// Encrypts the plaintext of an opened item in place under the active version's sealing
    /// key and rewrites its header and tag: the buffer becomes the new envelope.
    fn reseal_in_place(
        &self,
        item: &mut Item,
        group: &Group,
        aad: &mut Zeroizing<Vec<u8>>,
    ) -> Result<(), Error> {
        let (header_len, body_len) = {
            let env = envelope::parse(&item.bytes)?;
            (env.header.len(), env.ciphertext.len())
        };
        // One copy of the label per group: its address finds the thread's sealing epoch.
        let purpose: &str = &group.label;
        let sealed_at = item.sealed_at;
        self.keyring
            .with_sealing_key(purpose, group.kind, &*self.rng, |version, key| {
                let mut nonce = [0u8; NONCE_LEN];
                self.rng.fill(&mut nonce)?;
                let (header, len) = envelope::encode_header(&HeaderFields {
                    kind: group.kind,
                    purpose,
                    key_version: version,
                    sealed_at,
                    subject_key_id: None,
                    salt: key.salt(),
                    commitment: key.commitment(),
                    nonce: &nonce,
                });
                let header = header.get(..len).unwrap_or_default();
                fill_aad(aad, header, item.context.encoded()?);
                let (head, rest) = item.bytes.split_at_mut(header_len);
                let (body, tag_out) = rest.split_at_mut(body_len);
                // Same purpose, same flags: the header keeps its length, so the envelope is
                // rewritten in place.
                if head.len() != header.len() || tag_out.len() != TAG_LEN {
                    return Err(Error::Format(FormatError::CiphertextLength));
                }
                let tag = key
                    .seal_in_place(&nonce, aad, body)
                    .map_err(|()| Error::Format(FormatError::CiphertextLength))?;
                head.copy_from_slice(header);
                tag_out.copy_from_slice(&tag);
                Ok(())
            })?
    }
}

/// Whether `bytes` opens under the same key as `probe`: version, kind, purpose, subject key
/// and epoch salt. (Each item's commitment is checked when it is opened.)
fn same_key(bytes: &[u8], probe: &Parsed<'_>) -> bool {
    envelope::parse(bytes).is_ok_and(|e| {
        e.key_version == probe.key_version
            && e.kind == probe.kind
            && e.purpose == probe.purpose
            && e.subject_key_id == probe.subject_key_id
            && e.salt == probe.salt
    })
}

/// Authenticates and decrypts an item's ciphertext in place under `key`.
fn open_in_place(
    key: &EpochKey,
    item: &mut Item,
    aad: &mut Zeroizing<Vec<u8>>,
) -> Result<(), Error> {
    let (header_len, body_len, nonce, tag) = {
        let env = envelope::parse(&item.bytes)?;
        if !key.commits_to(env.commitment) {
            return Err(Error::Integrity);
        }
        let tag: [u8; TAG_LEN] = env.tag.try_into().map_err(|_| Error::Integrity)?;
        (env.header.len(), env.ciphertext.len(), *env.nonce, tag)
    };
    let header = item.bytes.get(..header_len).unwrap_or_default();
    fill_aad(aad, header, item.context.encoded()?);
    let body = item
        .bytes
        .get_mut(header_len..header_len + body_len)
        .ok_or(Error::Integrity)?;
    key.open_in_place(&nonce, aad, body, &tag)
        .map_err(|()| Error::Integrity)
}

/// Sets `aad` to `header ‖ context`. A buffer too small is replaced (the old one is wiped on
/// drop), never grown: growing would free an unwiped copy of the context.
fn fill_aad(aad: &mut Zeroizing<Vec<u8>>, header: &[u8], context: &[u8]) {
    let need = header.len() + context.len();
    if aad.capacity() < need {
        *aad = Zeroizing::new(Vec::with_capacity(need.max(512)));
    }
    aad.clear();
    aad.extend_from_slice(header);
    aad.extend_from_slice(context);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::aead::SALT_LEN;
    use crate::crypto::envelope::envelope_with_key_identity as envelope_of;

    fn version(n: u32) -> KeyVersion {
        KeyVersion::new(n).unwrap_or_else(|| panic!("version {n}"))
    }

    /// Every part of the key identity counts on its own: with the epoch salts equal (they are
    /// random, but nothing may rest on that), a difference in version, kind, purpose or subject
    /// key alone still means another key.
    #[test]
    fn same_key_needs_every_part_of_the_key_identity_even_with_equal_salts() {
        let salt = [9u8; SALT_LEN];
        let subject = [5u8; 16];
        let base = envelope_of(FieldKind::Text, "service", version(1), None, &salt, 1);
        let probe = envelope::parse(&base).unwrap_or_else(|e| panic!("{e}"));
        assert!(same_key(&base, &probe));
        let other_salt = envelope_of(FieldKind::Text, "service", version(1), None, &[8; 16], 1);
        let others = [
            (
                "version",
                envelope_of(FieldKind::Text, "service", version(2), None, &salt, 1),
            ),
            (
                "kind",
                envelope_of(FieldKind::Email, "service", version(1), None, &salt, 1),
            ),
            (
                "purpose",
                envelope_of(FieldKind::Text, "marketing", version(1), None, &salt, 1),
            ),
            (
                "subject key",
                envelope_of(
                    FieldKind::Text,
                    "service",
                    version(1),
                    Some(&subject),
                    &salt,
                    1,
                ),
            ),
            ("salt", other_salt),
        ];
        for (what, bytes) in &others {
            assert!(!same_key(bytes, &probe), "{what}");
        }
        // The comparison is symmetric, and bytes that do not parse never match.
        let with_subject = envelope::parse(&others[3].1).unwrap_or_else(|e| panic!("{e}"));
        assert!(!same_key(&base, &with_subject));
        assert!(!same_key(&base[..10], &probe));
    }

    /// The associated-data buffer is kept when the new contents fit (no reallocation), and
    /// replaced by one of exactly the size needed when they do not: it is never grown, which
    /// would free an unwiped copy.
    #[test]
    fn fill_aad_keeps_a_buffer_that_fits_and_replaces_one_that_does_not() {
        let mut aad = Zeroizing::new(Vec::with_capacity(512));
        let first = aad.as_ptr();
        // Exactly the capacity: kept.
        fill_aad(&mut aad, &[1; 12], &[2; 500]);
        assert_eq!((aad.as_ptr(), aad.capacity(), aad.len()), (first, 512, 512));
        assert!(aad[..12].iter().all(|&b| b == 1) && aad[12..].iter().all(|&b| b == 2));
        // Smaller: kept, and the old contents are gone.
        fill_aad(&mut aad, &[3; 10], &[4; 20]);
        assert_eq!((aad.as_ptr(), aad.capacity()), (first, 512));
        assert_eq!(aad.as_slice(), [[3u8; 10].as_slice(), &[4; 20]].concat());
        // Larger: a new buffer of exactly the size needed (`Vec::with_capacity` is exact).
        fill_aad(&mut aad, &[5; 60], &[6; 540]);
        assert_ne!(aad.as_ptr(), first);
        assert_eq!((aad.capacity(), aad.len()), (600, 600));
        assert_eq!(aad.as_slice(), [[5u8; 60].as_slice(), &[6; 540]].concat());
        // A small request on a fresh buffer still gets the 512-byte minimum.
        let mut small = Zeroizing::new(Vec::new());
        fill_aad(&mut small, &[7; 3], &[8; 4]);
        assert_eq!(
            (small.capacity(), small.as_slice()),
            (512, [7u8, 7, 7, 8, 8, 8, 8].as_slice())
        );
    }

    #[test]
    fn a_report_counts_its_failures() {
        let report = RewrapReport {
            results: vec![
                Err(Error::Integrity),
                Err(Error::Denied {
                    reason: DenyReason::NotPermitted,
                }),
            ],
            rewrapped: 0,
        };
        assert_eq!(
            (report.len(), report.rewrapped(), report.failed()),
            (2, 0, 2)
        );
        assert_eq!(
            report.failures().map(|(i, _)| i).collect::<Vec<_>>(),
            [0, 1]
        );
        assert!(!report.is_empty());
        assert_eq!(report.into_results().len(), 2);
    }
}
