//! Property tests: for random manifests and requests, cached decisions equal uncached ones, equal
//! an independent reference evaluator, and (with the `casbin` feature) equal casbin's, across
//! hot reloads.

use std::collections::BTreeSet;

use fieldseal::*;
use proptest::prelude::*;

const ROLES: usize = 6;
const PURPOSES: usize = 4;

/// A random manifest: inheritance edges (child, parent) and grants (role, purpose, action, kind).
#[derive(Debug, Clone)]
struct Spec {
    edges: Vec<(usize, usize)>,
    grants: Vec<(usize, usize, usize, usize)>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::collection::vec((0..ROLES, 0..ROLES), 0..8),
        prop::collection::vec((0..ROLES, 0..PURPOSES, 0..7usize, 0..8usize), 0..40),
    )
        .prop_map(|(edges, grants)| Spec {
            // Parents always have a smaller index: no cycles, depth below casbin's limit of 10.
            edges: edges.into_iter().filter(|(c, p)| c > p).collect(),
            grants,
        })
}

fn toml_of(s: &Spec) -> String {
    let mut t = String::from("version = 1\nhome_region = \"CN\"\n");
    for p in 0..PURPOSES {
        t.push_str(&format!(
            "[purposes.p{p}]\nlegal_basis = \"contract\"\nretention_days = 10\n"
        ));
    }
    for r in 0..ROLES {
        let parents: BTreeSet<String> = s
            .edges
            .iter()
            .filter(|(c, _)| *c == r)
            .map(|(_, p)| format!("\"r{p}\""))
            .collect();
        t.push_str(&format!(
            "[roles.r{r}]\ninherits = [{}]\n",
            parents.into_iter().collect::<Vec<_>>().join(", ")
        ));
        for p in 0..PURPOSES {
            let mine: Vec<_> = s.grants.iter().filter(|g| g.0 == r && g.1 == p).collect();
            if mine.is_empty() {
                continue;
            }
            t.push_str(&format!("[roles.r{r}.grants.p{p}]\n"));
            for a in Action::ALL {
                let kinds: BTreeSet<String> = mine
                    .iter()
                    .filter(|g| Action::ALL[g.2] == a)
                    .map(|g| format!("\"{}\"", FieldKind::ALL[g.3].label()))
                    .collect();
                if !kinds.is_empty() {
                    t.push_str(&format!(
                        "{} = [{}]\n",
                        a.label(),
                        kinds.into_iter().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
        }
    }
    t
}

/// Independent evaluator straight from the spec.
fn reference(s: &Spec, roles: &[usize], purpose: usize, action: usize, kind: usize) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<usize> = roles.iter().copied().filter(|r| *r < ROLES).collect();
    while let Some(r) = stack.pop() {
        if !seen.insert(r) {
            continue;
        }
        stack.extend(s.edges.iter().filter(|(c, _)| *c == r).map(|(_, p)| *p));
    }
    let mask = Action::ALL.iter().position(|a| *a == Action::Mask);
    let reveal = Action::ALL.iter().position(|a| *a == Action::Reveal);
    s.grants.iter().any(|&(r, p, a, k)| {
        seen.contains(&r)
            && p == purpose
            && k == kind
            && (a == action || (Some(action) == mask && Some(a) == reveal))
    })
}

/// A request: role indices (index `ROLES` is a role the manifest does not define), purpose
/// (index `PURPOSES` is undefined), action, kind.
type Req = (Vec<usize>, usize, usize, usize);

fn requests() -> impl Strategy<Value = Vec<Req>> {
    prop::collection::vec(
        (
            prop::collection::vec(0..=ROLES, 0..4),
            0..=PURPOSES,
            0..7usize,
            0..8usize,
        ),
        1..40,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn cached_equals_uncached_across_reloads(
        specs in prop::collection::vec(spec(), 1..4),
        reqs in requests(),
    ) {
        let first = Manifest::from_toml(&toml_of(&specs[0])).unwrap_or_else(|e| panic!("{e}"));
        let policy = ManifestPolicy::new(first, Engine::Native).unwrap_or_else(|e| panic!("{e}"));
        #[cfg(feature = "casbin")]
        let casbin_policy = ManifestPolicy::new(
            Manifest::from_toml(&toml_of(&specs[0])).unwrap_or_else(|e| panic!("{e}")),
            Engine::Casbin,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for (i, s) in specs.iter().enumerate() {
            if i > 0 {
                let m = Manifest::from_toml(&toml_of(s)).unwrap_or_else(|e| panic!("{e}"));
                #[cfg(feature = "casbin")]
                casbin_policy.reload(m.clone()).unwrap_or_else(|e| panic!("{e}"));
                policy.reload(m).unwrap_or_else(|e| panic!("{e}"));
            }
            for (roles, p, a, k) in &reqs {
                let acc = Accessor::new(
                    "prop",
                    roles.iter().map(|r| Role::new(&format!("r{r}"))),
                );
                let purpose = format!("p{p}");
                let req = AccessRequest {
                    accessor: &acc,
                    purpose: &purpose,
                    kind: FieldKind::ALL[*k],
                    action: Action::ALL[*a],
                };
                let want = if reference(s, roles, *p, *a, *k) {
                    Decision::Allow
                } else {
                    Decision::Deny(DenyReason::NotPermitted)
                };
                prop_assert_eq!(policy.decide_uncached(&req), want);
                prop_assert_eq!(policy.decide(&req), want);
                prop_assert_eq!(policy.decide(&req), want);
                prop_assert_eq!(policy.explain_grant(&req).decision, want);
                #[cfg(feature = "casbin")]
                {
                    prop_assert_eq!(casbin_policy.decide_uncached(&req), want);
                    prop_assert_eq!(casbin_policy.decide(&req), want);
                }
            }
        }
    }
}

#[test]
fn report_case_count() {
    println!(
        "policy proptest: 96 cases x up to 3 manifests x up to 39 requests (casbin compared: {})",
        cfg!(feature = "casbin")
    );
}
