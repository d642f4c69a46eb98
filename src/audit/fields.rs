//! The fields one record-batch audit record covers: the kind, purpose and outcome of each field
//! of a [`Guard::reveal_record`](crate::Guard::reveal_record), in the caller's order. Never a
//! value.

use serde::ser::SerializeSeq as _;
use serde::{Deserialize, Serialize, Serializer};

use super::Outcome;
use crate::field::FieldKind;
use crate::purpose::PurposeId;

/// One field of a record batch, as its audit record lists it: kind, purpose and what was
/// decided for it. Holds no value and no context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditField {
    pub(crate) purpose: PurposeId,
    pub(crate) kind: FieldKind,
    pub(crate) outcome: Outcome,
}

impl AuditField {
    /// The field's purpose (from its envelope's header).
    pub fn purpose(&self) -> &PurposeId {
        &self.purpose
    }
    /// The field's kind.
    pub fn kind(&self) -> FieldKind {
        self.kind
    }
    /// The decision for this field: `allowed`, or the reason it was denied. (A field that was
    /// allowed and then failed to open gets a `failed:*` record of its own.)
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }
}

/// The stored form of an [`AuditField`]: one element of an entry's `fields` array,
/// `{"purpose":…,"kind":…,"outcome":…}` in that order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FieldRecord {
    /// Purpose label.
    pub purpose: String,
    /// Field kind label.
    pub kind: String,
    /// Outcome label (`allowed` or `denied:<reason>`).
    pub outcome: String,
}

impl FieldRecord {
    pub(crate) fn of(f: &AuditField) -> Self {
        Self {
            purpose: f.purpose.as_str().to_owned(),
            kind: f.kind.label().to_owned(),
            outcome: f.outcome.label().to_owned(),
        }
    }
}

/// Borrowed mirror of a `fields` array: the same JSON as `Vec<FieldRecord>`.
pub(crate) struct FieldsRef<'a>(pub(crate) &'a [AuditField]);

#[derive(Serialize)]
struct FieldRef<'a> {
    purpose: &'a str,
    kind: &'static str,
    outcome: &'static str,
}

impl Serialize for FieldsRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for f in self.0 {
            seq.serialize_element(&FieldRef {
                purpose: f.purpose.as_str(),
                kind: f.kind.label(),
                outcome: f.outcome.label(),
            })?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuditKey;
    use crate::audit::EventRecord;
    use crate::internal::testing::with_sample_event;
    use crate::policy::DenyReason;
    use proptest::prelude::*;

    fn field(purpose: &str, kind: FieldKind, outcome: Outcome) -> AuditField {
        AuditField {
            purpose: PurposeId::new(purpose).unwrap_or_else(|e| panic!("{e}")),
            kind,
            outcome,
        }
    }

    /// The hot path's borrowed JSON, the owned record's JSON and the parsed line agree, and a
    /// line without `fields` is what earlier releases wrote.
    #[test]
    fn fields_are_written_only_for_record_batches() {
        let key = AuditKey::from_bytes([3; 32]).pseudonym_key();
        let listed = [
            field("service", FieldKind::Email, Outcome::Allowed),
            field(
                "marketing",
                FieldKind::PhoneNumber,
                Outcome::Denied(DenyReason::ConsentMissing),
            ),
        ];
        let (plain, batch, owned) = with_sample_event(2, Some("s"), |e| {
            let mut b = *e;
            b.count = Some(2);
            b.detail.fields = Some(&listed);
            let (mut x, mut y) = (Vec::new(), Vec::new());
            EventRecord::json_of(e, &key, &mut x);
            EventRecord::json_of(&b, &key, &mut y);
            (x, y, EventRecord::from_event(&b, &key))
        });
        let plain = String::from_utf8(plain).unwrap_or_default();
        assert!(!plain.contains("fields"), "{plain}");
        let text = String::from_utf8(batch.clone()).unwrap_or_default();
        assert!(
            text.ends_with(
                ",\"count\":2,\"fields\":[{\"purpose\":\"service\",\"kind\":\"email\",\
                 \"outcome\":\"allowed\"},{\"purpose\":\"marketing\",\"kind\":\"phone_number\",\
                 \"outcome\":\"denied:consent_missing\"}]}"
            ),
            "{text}"
        );
        assert_eq!(
            serde_json::to_vec(&owned).unwrap_or_else(|e| panic!("{e}")),
            batch
        );
        let back: EventRecord = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, owned);
        assert_eq!(back.read_items(), [("service", "email")]);
        let old: EventRecord = serde_json::from_str(&plain).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(old.fields, None);
        // Unknown members of a field are rejected.
        let extra = text.replace(
            "\"outcome\":\"allowed\"}",
            "\"outcome\":\"allowed\",\"v\":1}",
        );
        assert!(serde_json::from_str::<EventRecord>(&extra).is_err());
    }

    proptest! {
        #[test]
        fn borrowed_and_owned_fields_serialize_alike(
            picks in prop::collection::vec((0usize..8, any::<bool>(), "[a-z][a-z0-9_]{0,31}"), 0..40)
        ) {
            let listed: Vec<AuditField> = picks
                .iter()
                .map(|(k, allowed, p)| {
                    let kind = FieldKind::ALL[*k % FieldKind::ALL.len()];
                    let outcome = if *allowed {
                        Outcome::Allowed
                    } else {
                        Outcome::Denied(DenyReason::NotPermitted)
                    };
                    field(p, kind, outcome)
                })
                .collect();
            let owned: Vec<FieldRecord> = listed.iter().map(FieldRecord::of).collect();
            let a = serde_json::to_vec(&FieldsRef(&listed)).unwrap_or_default();
            let b = serde_json::to_vec(&owned).unwrap_or_default();
            prop_assert_eq!(&a, &b);
            let back: Vec<FieldRecord> = serde_json::from_slice(&a).unwrap_or_default();
            prop_assert_eq!(back, owned);
        }
    }
}
