//! Concurrent hot reloads of a `ManifestPolicy`: many threads reload different manifests while
//! observers decide. Versions must only grow for every observer, every decision must be the one
//! the manifest of its version gives, and once all reloads have returned the policy in force is
//! the one installed last, at version 1 + the number of successful reloads.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use fieldseal::*;
use proptest::prelude::*;

/// Filler roles per size class: reloads of different sizes take different times, so a slow
/// reload that started first overlaps fast ones that started later.
const FILLER: [usize; 3] = [0, 300, 2_000];
const OBSERVERS: usize = 2;

/// Manifest number `id`: role `probe` may reveal `FieldKind::ALL[k]` for `p0` iff bit `k` of
/// `id` is set; role `m{id}` marks it; `filler` roles in chains of 60 make it slower to load.
fn manifest(id: usize, filler: usize) -> String {
    let mut t = String::from(
        "version = 1\nhome_region = \"CN\"\n[purposes.p0]\nlegal_basis = \"contract\"\n\
         retention_days = 30\n",
    );
    let kinds: Vec<String> = FieldKind::ALL
        .iter()
        .enumerate()
        .filter(|(k, _)| id >> k & 1 == 1)
        .map(|(_, kind)| format!("\"{}\"", kind.label()))
        .collect();
    t.push_str(&format!(
        "[roles.probe.grants.p0]\nreveal = [{}]\n[roles.m{id}]\n",
        kinds.join(", ")
    ));
    for i in 0..filler {
        t.push_str(&format!("[roles.f{i}]\n"));
        if i % 60 != 0 {
            t.push_str(&format!("inherits = [\"f{}\"]\n", i - 1));
        }
        t.push_str(&format!("[roles.f{i}.grants.p0]\nmask = [\"text\"]\n"));
    }
    t
}

fn allowed(id: usize, k: usize) -> bool {
    id >> k & 1 == 1
}

/// One reload in the plan: the filler size class and whether the text is valid.
type Step = (usize, bool);

fn plan() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec((0..FILLER.len(), prop::bool::weighted(0.85)), 4..14)
}

/// What an observer saw: (version, probe kind, decision) from `verdict`, and versions from
/// `version()`, in its own order.
#[derive(Default)]
struct Seen {
    verdicts: Vec<(u64, usize, Decision)>,
    versions: Vec<u64>,
}

fn observe(policy: &ManifestPolicy, done: &AtomicBool) -> Seen {
    let probe = Accessor::new("observer", [Role::new("probe")]);
    let mut seen = Seen::default();
    let mut k = 0;
    // At least a few rounds even if the reloads finish first.
    let mut rounds = 0;
    while !done.load(Ordering::Acquire) || rounds < 64 {
        rounds += 1;
        k = (k + 1) % FieldKind::ALL.len();
        let req = AccessRequest {
            accessor: &probe,
            purpose: "p0",
            kind: FieldKind::ALL[k],
            action: Action::Reveal,
        };
        // Twice: the second answer comes from this thread's cache.
        for _ in 0..2 {
            let v = policy.verdict(&req);
            seen.verdicts.push((v.policy_version, k, v.decision));
        }
        seen.versions.push(policy.version());
    }
    seen
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn concurrent_reloads_install_in_order(plan in plan(), reloaders in 2..5usize) {
        // Manifest 0 is the initial one; reload `i` loads manifest `i + 1`.
        let texts: Vec<String> = plan
            .iter()
            .enumerate()
            .map(|(i, &(size, valid))| {
                let t = manifest(i + 1, FILLER[size]);
                if valid { t } else { t.replace("retention_days = 30", "retention_days = 0") }
            })
            .collect();
        let policy = ManifestPolicy::from_toml(&manifest(0, 0)).unwrap_or_else(|e| panic!("{e}"));
        let next = AtomicUsize::new(0);
        let done = AtomicBool::new(false);
        let installed: Mutex<Vec<(u64, usize)>> = Mutex::new(Vec::new());
        let failed = AtomicUsize::new(0);
        let seen: Vec<Seen> = std::thread::scope(|s| {
            let observers: Vec<_> = (0..OBSERVERS)
                .map(|_| s.spawn(|| observe(&policy, &done)))
                .collect();
            let workers: Vec<_> = (0..reloaders)
                .map(|_| {
                    s.spawn(|| {
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(text) = texts.get(i) else { break };
                            match policy.reload_toml(text) {
                                Ok(version) => installed
                                    .lock()
                                    .unwrap_or_else(|e| panic!("{e}"))
                                    .push((version, i + 1)),
                                Err(_) => {
                                    failed.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    })
                })
                .collect();
            for w in workers {
                w.join().unwrap_or_else(|_| panic!("reloader panicked"));
            }
            done.store(true, Ordering::Release);
            observers
                .into_iter()
                .map(|o| o.join().unwrap_or_else(|_| panic!("observer panicked")))
                .collect()
        });
        let mut installed = installed.into_inner().unwrap_or_else(|e| panic!("{e}"));
        installed.sort_unstable();
        let successes = plan.iter().filter(|s| s.1).count();
        prop_assert_eq!(failed.load(Ordering::Relaxed), plan.len() - successes);
        // Every successful reload installed its own version, 2, 3, ...: no gaps, no repeats.
        let versions: Vec<u64> = installed.iter().map(|&(v, _)| v).collect();
        let want: Vec<u64> = (2..).take(successes).collect();
        prop_assert_eq!(&versions, &want);
        prop_assert_eq!(policy.version(), 1 + successes as u64);
        // In force: the manifest of the reload that installed last.
        let last = installed.last().map_or(0, |&(_, id)| id);
        let text = if last == 0 { manifest(0, 0) } else { texts[last - 1].clone() };
        let expected = Manifest::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
        let markers: Vec<String> = policy
            .manifest()
            .roles()
            .filter(|r| r.starts_with('m'))
            .map(str::to_owned)
            .collect();
        prop_assert!(
            *policy.manifest() == expected,
            "in force: {:?}, installed last: m{}", markers, last
        );
        // Which manifest each version holds.
        let id_of = |v: u64| -> Option<usize> {
            if v == 1 {
                return Some(0);
            }
            installed.iter().find(|&&(iv, _)| iv == v).map(|&(_, id)| id)
        };
        for (o, seen) in seen.iter().enumerate() {
            // Versions never go back for an observer, whichever call it made.
            for w in seen.versions.windows(2) {
                prop_assert!(w[0] <= w[1], "observer {}: version() {} then {}", o, w[0], w[1]);
            }
            for w in seen.verdicts.windows(2) {
                prop_assert!(
                    w[0].0 <= w[1].0,
                    "observer {}: decided by version {} then {}", o, w[0].0, w[1].0
                );
            }
            // Each decision is the one the manifest of its version gives.
            for &(v, k, d) in &seen.verdicts {
                let id = id_of(v);
                prop_assert!(id.is_some(), "observer {}: version {} never installed", o, v);
                let want = if id.is_some_and(|id| allowed(id, k)) {
                    Decision::Allow
                } else {
                    Decision::Deny(DenyReason::NotPermitted)
                };
                prop_assert_eq!(d, want, "observer {} version {} kind {}", o, v, k);
            }
        }
        // And this thread, which has not asked before, is answered by the rules in force.
        let probe = Accessor::new("main", [Role::new("probe")]);
        for (k, kind) in FieldKind::ALL.into_iter().enumerate() {
            let v = policy.verdict(&AccessRequest {
                accessor: &probe,
                purpose: "p0",
                kind,
                action: Action::Reveal,
            });
            prop_assert_eq!(v.policy_version, 1 + successes as u64);
            prop_assert_eq!(v.decision == Decision::Allow, allowed(last, k));
        }
    }
}

/// The version check in the observers above interleaves `version()` and `verdict()`; this one
/// checks the two together: once a thread has seen version `v` from either, neither answers
/// with an older one, while another thread reloads as fast as it can.
#[test]
fn a_thread_never_sees_an_older_version_after_a_newer_one() {
    let policy =
        Arc::new(ManifestPolicy::from_toml(&manifest(0, 0)).unwrap_or_else(|e| panic!("{e}")));
    let texts: Vec<String> = (1..=8).map(|id| manifest(id, 0)).collect();
    let done = Arc::new(AtomicBool::new(false));
    let reloader = {
        let (policy, done) = (Arc::clone(&policy), Arc::clone(&done));
        std::thread::spawn(move || {
            for round in 0..2_000 {
                policy
                    .reload_toml(&texts[round % texts.len()])
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            done.store(true, Ordering::Release);
        })
    };
    let probe = Accessor::new("observer", [Role::new("probe")]);
    let mut high = 0;
    let mut k = 0;
    while !done.load(Ordering::Acquire) {
        k = (k + 1) % 3;
        let req = AccessRequest {
            accessor: &probe,
            purpose: "p0",
            kind: FieldKind::ALL[k],
            action: Action::Reveal,
        };
        let v = policy.verdict(&req).policy_version;
        assert!(v >= high, "verdict of version {v} after version {high}");
        high = v;
        let now = policy.version();
        assert!(now >= high, "version() {now} after version {high}");
        high = now;
    }
    reloader
        .join()
        .unwrap_or_else(|_| panic!("reloader panicked"));
    assert_eq!(policy.version(), 2_001);
}
