//! The owned, stored form of an audit event.

use serde::{Deserialize, Serialize};

use super::AuditEvent;
use super::action::{is_name, is_reference};
use super::fields::{FieldRecord, FieldsRef};
use super::json;
use super::keys::{HexStr, PseudonymKey, hex, unhex};

/// One audit event as stored in a [`ChainedLog`](crate::ChainedLog) line (the `entry` object).
///
/// # Format
/// Serialized with `serde_json` in exactly this field order, no whitespace, and parsed back
/// strictly (unknown fields are rejected, and a line must re-serialize to the same bytes):
///
/// | field | JSON | meaning |
/// |---|---|---|
/// | `time` | integer | Unix seconds when the request was decided |
/// | `principal` | string | who asked (staff or service identifier, not a data subject) |
/// | `roles` | array of strings | roles presented |
/// | `purpose` | string | purpose label |
/// | `kind` | string | field kind label (`phone_number`, …) |
/// | `action` | string | action label (`reveal`, `mask`, …) |
/// | `outcome` | string | [`Outcome::label`](crate::Outcome::label) |
/// | `subject` | string or null | 64 hex digits: HMAC-SHA256 under the log's pseudonym key of the context's `subject` part; `null` without one |
/// | `context` | string | 32 hex digits: HMAC-SHA256 of the canonical context encoding under the pseudonym key, truncated to 16 bytes |
/// | `site` | string | `file:line` of the call |
/// | `key_version` | integer | key version of the sealed value |
/// | `sealed_at` | integer | Unix seconds when the value was sealed |
/// | `policy_version` | integer | version of the access policy that decided (0: unversioned) |
/// | `count` | integer, only in batch records | items covered by a batch record's one decision, or the fields a record batch lists ([`AuditEvent::count`](crate::AuditEvent::count)); absent from every other record |
/// | `recipient` | string, only in shares and disclosures | the recipient's manifest name ([`AuditEvent::recipient`](crate::AuditEvent::recipient)) |
/// | `reference` | string, only where the application gave one | the application's reference ([`AuditEvent::reference`](crate::AuditEvent::reference)) |
/// | `fields` | array of objects, only in record batches | each field of a [`Guard::reveal_record`](crate::Guard::reveal_record): `{"purpose":…,"kind":…,"outcome":…}` ([`FieldRecord`](crate::FieldRecord)) |
///
/// `purpose` and `kind` are `-` for an event about no one purpose or kind (a policy reload, a
/// subject-key erasure); `action` is an [`AuditAction`](crate::AuditAction) label.
///
/// `count`, `recipient`, `reference` and `fields` are written only when present, so a line without it (every line before batch records
/// existed, and every single-value record) is byte for byte what earlier releases wrote and
/// read; a `"count":null` member is not canonical and is rejected.
/// Neither the raw subject identifier nor any other context value is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct EventRecord {
    /// Unix seconds when the request was decided.
    pub time: u64,
    /// Who asked.
    pub principal: String,
    /// Roles presented.
    pub roles: Vec<String>,
    /// Purpose label.
    pub purpose: String,
    /// Field kind label.
    pub kind: String,
    /// Action label.
    pub action: String,
    /// Outcome label.
    pub outcome: String,
    /// Subject pseudonym (hex), if the context had a `subject` part.
    pub subject: Option<String>,
    /// Keyed context digest (hex, 16 bytes).
    pub context: String,
    /// `file:line` of the call.
    pub site: String,
    /// Key version of the sealed value.
    pub key_version: u32,
    /// Unix seconds when the value was sealed.
    pub sealed_at: u64,
    /// Version of the access policy that decided.
    pub policy_version: u64,
    /// Items covered by a batch record; `None` (and absent from the JSON) otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Recipient of a share or disclosure; `None` (and absent from the JSON) otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    /// The application's reference; `None` (and absent from the JSON) otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The fields of a record batch, in the caller's order; `None` (and absent from the JSON)
    /// otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<FieldRecord>>,
}

/// The stored label of an event's purpose: `-` for none.
fn purpose_label<'a>(event: &AuditEvent<'a>) -> &'a str {
    event.purpose.map_or(NONE, |p| p.as_str())
}

/// The stored label of an event's kind: `-` for none.
fn kind_label(event: &AuditEvent<'_>) -> &'static str {
    event.kind.map_or(NONE, |k| k.label())
}

/// What a stored record says for "no purpose" or "no kind".
pub(crate) const NONE: &str = "-";

impl EventRecord {
    /// Whether the members with a format of their own have it (SECURITY.md, "Entry"):
    /// `subject` 64 and `context` 32 lowercase hex digits, `recipient` a manifest name,
    /// `reference` of its alphabet. The line parser refuses an entry that is not.
    pub(crate) fn is_well_formed(&self) -> bool {
        self.subject
            .as_deref()
            .is_none_or(|s| unhex::<32>(s).is_some())
            && unhex::<16>(&self.context).is_some()
            && self.recipient.as_deref().is_none_or(is_name)
            && self.reference.as_deref().is_none_or(is_reference)
    }

    /// The stored form of `event`, pseudonymized under `key`.
    pub fn from_event(event: &AuditEvent<'_>, key: &PseudonymKey) -> Self {
        let ctx = event.context;
        // An invalid context is recorded only as a failed attempt (`failed:context`), with the
        // digest of the empty encoding; nothing is opened under it.
        let encoded = ctx.encoded().unwrap_or(&[]);
        Self {
            time: event.time,
            principal: event.accessor.principal().as_str().to_owned(),
            roles: event
                .accessor
                .roles()
                .iter()
                .map(|r| r.as_str().to_owned())
                .collect(),
            purpose: purpose_label(event).to_owned(),
            kind: kind_label(event).to_owned(),
            action: event.action.label().into_owned(),
            outcome: event.outcome.label().to_owned(),
            subject: ctx.part("subject").map(|s| hex(&key.subject(s))),
            context: hex(&key.context(encoded)),
            site: format!("{}:{}", event.call_site.file(), event.call_site.line()),
            key_version: event.key_version.get(),
            sealed_at: event.sealed_at,
            policy_version: event.policy_version,
            count: event.count,
            recipient: event.detail.recipient.map(|r| r.as_str().to_owned()),
            reference: event.detail.reference.map(|r| r.as_str().to_owned()),
            fields: event
                .detail
                .fields
                .map(|f| f.iter().map(FieldRecord::of).collect()),
        }
    }

    /// The serde_json bytes of `from_event(event, key)`, without building the owned record
    /// (the append hot path): written member by member by [`super::json`], which gives
    /// `serde_json`'s bytes (property-tested against the owned record's serialization).
    pub(crate) fn json_of(event: &AuditEvent<'_>, key: &PseudonymKey, out: &mut Vec<u8>) {
        let ctx = event.context;
        let encoded = ctx.encoded().unwrap_or(&[]);
        json::push_key(out, true, "time");
        json::push_u64(out, event.time);
        json::push_key(out, false, "principal");
        json::push_str(out, event.accessor.principal().as_str());
        json::push_key(out, false, "roles");
        out.push(b'[');
        for (i, r) in event.accessor.roles().iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json::push_str(out, r.as_str());
        }
        out.push(b']');
        json::push_key(out, false, "purpose");
        json::push_str(out, purpose_label(event));
        json::push_key(out, false, "kind");
        json::push_str(out, kind_label(event));
        json::push_key(out, false, "action");
        json::push_str(out, &event.action.label());
        json::push_key(out, false, "outcome");
        json::push_str(out, event.outcome.label());
        json::push_key(out, false, "subject");
        match ctx.part("subject") {
            Some(s) => json::push_str(out, HexStr::<64>::of(&key.subject(s)).as_str()),
            None => out.extend_from_slice(b"null"),
        }
        json::push_key(out, false, "context");
        json::push_str(out, HexStr::<32>::of(&key.context(encoded)).as_str());
        json::push_key(out, false, "site");
        json::push_site(out, event.call_site.file(), event.call_site.line());
        json::push_key(out, false, "key_version");
        json::push_u64(out, u64::from(event.key_version.get()));
        json::push_key(out, false, "sealed_at");
        json::push_u64(out, event.sealed_at);
        json::push_key(out, false, "policy_version");
        json::push_u64(out, event.policy_version);
        if let Some(count) = event.count {
            json::push_key(out, false, "count");
            json::push_u64(out, count);
        }
        if let Some(r) = event.detail.recipient {
            json::push_key(out, false, "recipient");
            json::push_str(out, r.as_str());
        }
        if let Some(r) = event.detail.reference {
            json::push_key(out, false, "reference");
            json::push_str(out, r.as_str());
        }
        if let Some(fields) = event.detail.fields {
            json::push_key(out, false, "fields");
            // Record batches only; serializing labels into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, &FieldsRef(fields));
        }
        out.push(b'}');
    }

    /// The (purpose, kind) pairs this record says were read if it is an allowed access: every
    /// allowed field of a record batch, or the record's own purpose and kind.
    pub(crate) fn read_items(&self) -> Vec<(&str, &str)> {
        match &self.fields {
            Some(fields) => fields
                .iter()
                .filter(|f| f.outcome == "allowed")
                .map(|f| (f.purpose.as_str(), f.kind.as_str()))
                .collect(),
            None => vec![(self.purpose.as_str(), self.kind.as_str())],
        }
    }

    /// Whether this record is about subject `id` (pseudonym comparison in constant time).
    pub(crate) fn is_subject(&self, pseudonym: &str) -> bool {
        use subtle::ConstantTimeEq as _;
        self.subject
            .as_deref()
            .is_some_and(|s| bool::from(s.as_bytes().ct_eq(pseudonym.as_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuditKey;
    use crate::internal::testing::with_sample_event;

    /// Each member with a format of its own is checked: the entry as written passes, and
    /// each member changed out of its format (case, length, alphabet) fails on its own.
    #[test]
    fn an_entry_out_of_a_members_format_is_not_well_formed() {
        let key = AuditKey::from_bytes([3; 32]).pseudonym_key();
        let rec = with_sample_event(5, Some("s"), |e| EventRecord::from_event(e, &key));
        let with = |f: &dyn Fn(&mut EventRecord)| {
            let mut r = rec.clone();
            f(&mut r);
            r.is_well_formed()
        };
        assert!(rec.is_well_formed());
        assert!(with(&|r| r.subject = None));
        assert!(with(&|r| r.recipient = Some("authorities".into())));
        assert!(with(&|r| r.reference = Some("ORDER-1/a#b.c:d".into())));
        let subject = rec.subject.clone().unwrap_or_default();
        type Change<'a> = (&'a str, &'a dyn Fn(&mut EventRecord));
        let bad: [Change<'_>; 8] = [
            ("subject upper case", &|r| {
                r.subject = Some(subject.to_uppercase())
            }),
            ("subject short", &|r| {
                r.subject = Some(subject[..62].to_owned())
            }),
            ("context upper case", &|r| {
                r.context = r.context.to_uppercase()
            }),
            ("context long", &|r| r.context.push_str("00")),
            ("recipient upper case", &|r| {
                r.recipient = Some("Acme".into())
            }),
            ("recipient empty", &|r| r.recipient = Some(String::new())),
            ("reference space", &|r| r.reference = Some("ORDER 1".into())),
            ("reference long", &|r| r.reference = Some("a".repeat(65))),
        ];
        for (what, f) in bad {
            assert!(!with(f), "{what}");
        }
    }

    #[test]
    fn no_raw_subject_and_stable_order() {
        let key = AuditKey::from_bytes([3; 32]).pseudonym_key();
        let rec = with_sample_event(5, Some("CANARY-SUBJECT"), |e| {
            EventRecord::from_event(e, &key)
        });
        let json = serde_json::to_string(&rec).unwrap_or_else(|e| panic!("{e}"));
        assert!(!json.contains("CANARY"), "{json}");
        assert!(json.starts_with("{\"time\":"), "{json}");
        let keys = [
            "\"time\"",
            "\"principal\"",
            "\"roles\"",
            "\"purpose\"",
            "\"kind\"",
            "\"action\"",
            "\"outcome\"",
            "\"subject\"",
            "\"context\"",
            "\"site\"",
            "\"key_version\"",
            "\"sealed_at\"",
            "\"policy_version\"",
        ];
        let pos: Vec<usize> = keys
            .iter()
            .map(|k| json.find(k).unwrap_or_else(|| panic!("{k}")))
            .collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{json}");
        assert_eq!(rec.subject.as_ref().map(String::len), Some(64));
        assert_eq!(rec.context.len(), 32);
        let back: EventRecord = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, rec);
        for subject in [None, Some("x")] {
            let (owned, fast) = with_sample_event(4, subject, |e| {
                let mut v = Vec::new();
                EventRecord::json_of(e, &key, &mut v);
                (EventRecord::from_event(e, &key), v)
            });
            let owned = serde_json::to_vec(&owned).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(owned, fast);
        }
    }

    proptest::proptest! {
        /// The hot path's hand-written JSON is `serde_json`'s of the owned record for any
        /// principal, roles, recipient, reference and count (escapes, non-ASCII and empty
        /// strings included), with and without a subject.
        #[test]
        fn hand_written_json_is_serde_json(
            principal in proptest::prelude::any::<String>(),
            roles in proptest::collection::vec("(?s).{0,12}", 0..4),
            recipient in proptest::option::of("[a-z][a-z0-9_]{0,20}"),
            reference in proptest::option::of("[ -~]{1,40}"),
            count in proptest::option::of(proptest::prelude::any::<u64>()),
            subject in proptest::option::of("(?s).{0,30}"),
            n in 0u64..1000,
        ) {
            let key = AuditKey::from_bytes([5; 32]).pseudonym_key();
            let accessor = crate::Accessor::new(&principal, roles.iter().map(|r| crate::Role::new(r)));
            let recipient = recipient.and_then(|r| super::super::RecipientName::new(&r).ok());
            let reference = reference.and_then(|r| super::super::Reference::new(&r).ok());
            let (fast, owned) = with_sample_event(n, subject.as_deref(), |e| {
                let mut e = *e;
                e.accessor = &accessor;
                e.count = count;
                e.detail.recipient = recipient.as_ref();
                e.detail.reference = reference.as_ref();
                let mut v = Vec::new();
                EventRecord::json_of(&e, &key, &mut v);
                (v, EventRecord::from_event(&e, &key))
            });
            proptest::prop_assert_eq!(&fast, &serde_json::to_vec(&owned).unwrap_or_default());
            let back: EventRecord = serde_json::from_slice(&fast).unwrap_or_else(|e| panic!("{e}"));
            proptest::prop_assert_eq!(back, owned);
        }
    }

    #[test]
    fn count_is_written_only_for_batch_records() {
        let key = AuditKey::from_bytes([3; 32]).pseudonym_key();
        let (single, batch) = with_sample_event(2, None, |e| {
            let mut batch = *e;
            batch.count = Some(1234);
            let mut a = Vec::new();
            let mut b = Vec::new();
            EventRecord::json_of(e, &key, &mut a);
            EventRecord::json_of(&batch, &key, &mut b);
            (a, (b, EventRecord::from_event(&batch, &key)))
        });
        // A single-value record is what earlier releases wrote: no `count` member.
        let single = String::from_utf8(single).unwrap_or_default();
        assert!(!single.contains("count"), "{single}");
        assert!(single.ends_with("\"policy_version\":3}"), "{single}");
        let (bytes, owned) = batch;
        let text = String::from_utf8(bytes.clone()).unwrap_or_default();
        assert!(text.ends_with(",\"count\":1234}"), "{text}");
        assert_eq!(
            serde_json::to_vec(&owned).unwrap_or_else(|e| panic!("{e}")),
            bytes
        );
        let back: EventRecord = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.count, Some(1234));
        let old: EventRecord = serde_json::from_str(&single).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(old.count, None);
        assert_eq!(
            serde_json::to_string(&old).unwrap_or_else(|e| panic!("{e}")),
            single
        );
    }
}
