//! The compiled forms of a manifest that decisions read: the grant table (inheritance expanded,
//! `reveal` implying `mask`) and the seal rule (which kinds the categories collect per purpose).

use rustc_hash::FxHashMap;

use crate::field::FieldKind;
use crate::policy::Action;
use crate::policy::error::{LintError, ManifestError};
use crate::policy::inherit::{self, Hierarchy};
use crate::policy::manifest::{MAX_EXPANDED_GRANTS, Manifest, purpose_index};

/// One slot per field-kind code (codes start at 1).
const KIND_SLOTS: usize = 9;

/// The action's bit in a slot. Actions are a handful (fewer than 16), so a `u16` holds them.
fn bit(action: Action) -> u16 {
    1u16.checked_shl(u32::from(action as u8)).unwrap_or(0)
}

/// Per field-kind code, the action bits granted.
type Slots = [u16; KIND_SLOTS];

/// The compiled grant table: per role, the purposes it holds grants for (inheritance expanded)
/// with the action bits per field kind.
#[derive(Debug, Default)]
pub(crate) struct Table {
    roles: FxHashMap<Box<str>, u32>,
    purposes: FxHashMap<Box<str>, u32>,
    /// Indexed by role: (purpose index, action bits per kind), sorted by purpose index.
    grants: Vec<Box<[(u32, Slots)]>>,
}

impl Table {
    /// Expands inheritance once per role, parents first, each role from its parents' finished
    /// grants: linear in roles plus inheritance edges times the purposes inherited along them.
    ///
    /// # Errors
    /// The lint errors of a manifest whose inheritance cannot be expanded (a cycle, or too much
    /// work). A linted manifest has neither, so this is a second line of defence.
    pub(crate) fn compile(m: &Manifest) -> Result<Self, ManifestError> {
        let h = Hierarchy::new(&m.roles);
        let Some(order) = h.order() else {
            let cycles = inherit::cycles(&h);
            return Err(ManifestError::Lint(
                cycles
                    .into_iter()
                    .map(LintError::InheritanceCycle)
                    .collect(),
            ));
        };
        let index = purpose_index(&m.purposes);
        let own: Vec<Vec<(u32, Slots)>> = m
            .roles
            .values()
            .map(|spec| {
                spec.grants
                    .iter()
                    .filter_map(|(purpose, actions)| {
                        let p = *index.get(purpose.as_str())?;
                        let mut slots = [0; KIND_SLOTS];
                        for (action, kinds) in actions {
                            let mut bits = bit(*action);
                            if *action == Action::Reveal {
                                bits |= bit(Action::Mask);
                            }
                            for k in kinds {
                                if let Some(s) = slots.get_mut(usize::from(k.code())) {
                                    *s |= bits;
                                }
                            }
                        }
                        Some((p, slots))
                    })
                    .collect()
            })
            .collect();
        let merge = |a: &mut Slots, b: Slots| {
            for (x, y) in a.iter_mut().zip(b) {
                *x |= y;
            }
        };
        let grants = h
            .expand(&order, &own, m.purposes.len(), merge, MAX_EXPANDED_GRANTS)
            .map_err(|inherit::OverCap| {
                ManifestError::Lint(vec![LintError::TooManyExpandedGrants {
                    max: MAX_EXPANDED_GRANTS,
                }])
            })?;
        Ok(Self {
            roles: m
                .roles
                .keys()
                .map(|r| Box::from(r.as_str()))
                .zip(0..)
                .collect(),
            purposes: index.into_iter().map(|(p, i)| (Box::from(p), i)).collect(),
            grants,
        })
    }

    pub(crate) fn allows(
        &self,
        role: &str,
        purpose: &str,
        kind: FieldKind,
        action: Action,
    ) -> bool {
        let (Some(&r), Some(&p)) = (self.roles.get(role), self.purposes.get(purpose)) else {
            return false;
        };
        let Some(held) = self.grants.get(r as usize) else {
            return false;
        };
        held.binary_search_by_key(&p, |e| e.0)
            .ok()
            .and_then(|i| held.get(i))
            .and_then(|(_, slots)| slots.get(usize::from(kind.code())))
            .is_some_and(|b| b & bit(action) != 0)
    }
}

/// Which field kinds may be sealed for which purpose, from the manifest's categories.
#[derive(Debug)]
pub(crate) enum SealRule {
    /// The manifest defines no categories: every kind for every purpose.
    Any,
    /// Per purpose, a bit per field-kind code; purposes not listed allow nothing.
    Listed(FxHashMap<Box<str>, u16>),
}

impl SealRule {
    pub(crate) fn compile(m: &Manifest) -> Self {
        if m.categories.is_empty() {
            return SealRule::Any;
        }
        let mut by_purpose: FxHashMap<Box<str>, u16> = FxHashMap::default();
        for c in m.categories.values() {
            let kinds = c.kinds.iter().fold(0u16, |acc, k| {
                acc | 1u16.checked_shl(u32::from(k.code())).unwrap_or(0)
            });
            for p in &c.purposes {
                *by_purpose.entry(p.as_str().into()).or_default() |= kinds;
            }
        }
        SealRule::Listed(by_purpose)
    }

    pub(crate) fn allows(&self, purpose: &str, kind: FieldKind) -> bool {
        match self {
            SealRule::Any => true,
            SealRule::Listed(by_purpose) => by_purpose.get(purpose).is_some_and(|kinds| {
                kinds & 1u16.checked_shl(u32::from(kind.code())).unwrap_or(0) != 0
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_its_own_bit() {
        let mut seen = 0u16;
        for a in Action::ALL {
            let b = bit(a);
            assert_ne!(b, 0, "{a} has no bit");
            assert_eq!(seen & b, 0, "{a} shares a bit");
            seen |= b;
        }
    }

    #[test]
    fn anonymize_is_granted_on_its_own() {
        let m = Manifest::from_toml(
            "version = 1\nhome_region = \"CN\"\n[purposes.improvement]\nlegal_basis = \"legitimate_interest\"\nretention_days = 1\n[roles.job.grants.improvement]\nanonymize = [\"ip_address\"]\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let t = Table::compile(&m).unwrap_or_else(|e| panic!("{e}"));
        assert!(t.allows(
            "job",
            "improvement",
            FieldKind::IpAddress,
            Action::Anonymize
        ));
        assert!(!t.allows("job", "improvement", FieldKind::IpAddress, Action::Reveal));
        assert!(!t.allows("job", "improvement", FieldKind::IpAddress, Action::Mask));
        assert!(!t.allows("job", "improvement", FieldKind::Email, Action::Anonymize));
    }
}
