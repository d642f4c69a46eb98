//! The policy layer's cost.
//!
//! - `reveal/warm-cache`: `Guard::reveal` with the reference manifest (decision cache warm,
//!   consent/retention/residency checks, in-memory audit) against raw AES-256-GCM decrypt of the
//!   same size with the same associated-data length. Target: <= 2.5x.
//! - `casbin-enforce/{10,100,1000}` (feature `casbin`): one raw `enforce` call.
//! - `threads`: reveals per second on 1 and 2 threads (null audit sink, so the sink's lock is not
//!   what is measured). Target: >= 1.8x scaling.
//! - `seal/{allow-list,manifest}/32`: `Guard::seal` under a one-line allow list and under the
//!   reference manifest, whose categories are checked on every seal. Target: equal within noise.
//! - `compile/*`: manifests at the size limits. `roles-10000` is `MAX_ROLES` roles in
//!   inheritance chains at `MAX_INHERITANCE_DEPTH` (820 KB of TOML), as text to policy
//!   (`from_toml`: parse, lint, compile) and as a parsed manifest to policy (`compile`); target
//!   < 100 ms for the compile. `chain-64` is one chain at the depth limit, `expanded-802k` a
//!   manifest close to `MAX_EXPANDED_GRANTS`, and `chain-2000-refused` the time to refuse a
//!   chain far over the depth limit.
//!
//! After the criterion groups a short summary with the ratios is printed.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use fieldseal::builtin::Service;
use fieldseal::*;

const REFERENCE: &str = include_str!("../examples/reference-policy.toml");
const SIZE: usize = 32;

fn ctx() -> Context {
    Context::new().table("users").column("note").row("12345")
}

fn aad_len() -> usize {
    let header = 4 + 7 + 4 + 8 + 16 + 16 + 12;
    let context = 1 + (1 + 3 + 2 + 5) + (1 + 5 + 2 + 5) + (1 + 6 + 2 + 4);
    header + context
}

fn guard_with(sink: Arc<dyn AuditSink>) -> Guard {
    Guard::builder()
        .keyring(Keyring::single(RootKey::from_bytes([3; 32])).expect("static key"))
        .policy(ManifestPolicy::from_toml(REFERENCE).expect("reference manifest"))
        .consent(MemoryConsent::new())
        .audit(sink)
        .build()
        .expect("complete builder")
}

/// The same guard with a one-line allow list instead of the manifest: separates the policy
/// layer's cost from the rest of the reveal path.
fn allow_list_guard(sink: Arc<dyn AuditSink>) -> Guard {
    Guard::builder()
        .keyring(Keyring::single(RootKey::from_bytes([3; 32])).expect("static key"))
        .policy(AllowList::new().allow::<Service>(
            Role::new("support_agent"),
            FieldKind::Text,
            Action::Reveal,
        ))
        .audit(sink)
        .build()
        .expect("complete builder")
}

fn agent() -> Accessor {
    Accessor::new("bench", [Role::new("support_agent")])
}

struct RawDecrypt {
    cipher: aes_gcm_010::Aes256Gcm,
    ct: Vec<u8>,
    aad: Vec<u8>,
}

impl RawDecrypt {
    fn new() -> Self {
        use aes_gcm_010::aead::{Aead, KeyInit, Payload};
        let cipher = aes_gcm_010::Aes256Gcm::new(&[5u8; 32].into());
        let aad = vec![7u8; aad_len()];
        let msg = vec![b'x'; SIZE];
        let ct = cipher
            .encrypt(
                &[1u8; 12].into(),
                Payload {
                    msg: &msg,
                    aad: &aad,
                },
            )
            .expect("encrypt");
        Self { cipher, ct, aad }
    }
    fn run(&self) -> Vec<u8> {
        use aes_gcm_010::aead::{Aead, Payload};
        self.cipher
            .decrypt(
                &[1u8; 12].into(),
                Payload {
                    msg: &self.ct,
                    aad: &self.aad,
                },
            )
            .expect("decrypt")
    }
}

fn bench_reveal(c: &mut Criterion) {
    let sink = Arc::new(MemorySink::new());
    let guard = guard_with(Arc::clone(&sink) as Arc<dyn AuditSink>);
    let ctx = ctx();
    let agent = agent();
    let sealed: Sealed<Text, Service> = guard
        .seal(&Text::parse(&"x".repeat(SIZE)).expect("valid"), &ctx)
        .expect("seal");
    let raw = RawDecrypt::new();
    let mut g = c.benchmark_group("reveal");
    g.bench_function("raw-aes-gcm-0.10/32", |b| b.iter(|| black_box(raw.run())));
    g.bench_function("warm-cache/32", |b| {
        b.iter_custom(|iters| {
            sink.clear();
            let start = Instant::now();
            for i in 0..iters {
                drop(black_box(
                    guard.reveal(&agent, &sealed, &ctx).expect("reveal"),
                ));
                if i % 1_000_000 == 999_999 {
                    sink.clear();
                }
            }
            start.elapsed()
        })
    });
    g.finish();
}

#[cfg(feature = "casbin")]
const MODEL: &str = "[request_definition]\nr = sub, dom, obj, act\n[policy_definition]\n\
    p = sub, dom, obj, act\n[role_definition]\ng = _, _, _\n[policy_effect]\n\
    e = some(where (p.eft == allow))\n[matchers]\n\
    m = r.dom == p.dom && r.obj == p.obj && r.act == p.act && g(r.sub, p.sub, r.dom)\n";

#[cfg(feature = "casbin")]
fn casbin_with(rules: usize) -> CasbinPolicy {
    let mut lines = String::new();
    for i in 0..rules {
        lines.push_str(&format!("p, role{i}, service, email, reveal\n"));
    }
    CasbinPolicy::from_text(MODEL, &lines).expect("casbin policy")
}

#[cfg(feature = "casbin")]
fn bench_casbin(c: &mut Criterion) {
    let mut g = c.benchmark_group("casbin-enforce");
    for rules in [10, 100, 1000] {
        let p = casbin_with(rules);
        let role = format!("role{}", rules - 1);
        g.bench_function(format!("{rules}"), |b| {
            b.iter(|| {
                black_box(
                    p.enforce(&role, "service", "email", "reveal")
                        .expect("enforce"),
                )
            })
        });
    }
    g.finish();
}

#[cfg(not(feature = "casbin"))]
fn bench_casbin(_: &mut Criterion) {}

/// Reveals per second with `threads` threads sharing one guard.
fn throughput(guard: &Guard, sealed: &Sealed<Text, Service>, threads: usize, per: u64) -> f64 {
    let ctx = ctx();
    let agent = agent();
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..per {
                    drop(black_box(
                        guard.reveal(&agent, sealed, &ctx).expect("reveal"),
                    ));
                }
            });
        }
    });
    (threads as u64 * per) as f64 / start.elapsed().as_secs_f64()
}

fn per_op(mut f: impl FnMut(), n: u32) -> Duration {
    for _ in 0..n / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed() / n
}

fn summary(_: &mut Criterion) {
    let sink = Arc::new(MemorySink::new());
    let guard = guard_with(Arc::clone(&sink) as Arc<dyn AuditSink>);
    let ctx = ctx();
    let agent = agent();
    let sealed: Sealed<Text, Service> = guard
        .seal(&Text::parse(&"x".repeat(SIZE)).expect("valid"), &ctx)
        .expect("seal");
    let raw = RawDecrypt::new();
    let n = 200_000;
    let t_raw = per_op(|| drop(black_box(raw.run())), n);
    let t_rev = per_op(
        || {
            drop(black_box(
                guard.reveal(&agent, &sealed, &ctx).expect("reveal"),
            ))
        },
        n,
    );
    sink.clear();
    let base_sink = Arc::new(MemorySink::new());
    let base = allow_list_guard(Arc::clone(&base_sink) as Arc<dyn AuditSink>);
    let t_base = per_op(
        || {
            drop(black_box(
                base.reveal(&agent, &sealed, &ctx).expect("reveal"),
            ))
        },
        n,
    );
    base_sink.clear();
    let ratio = |t: Duration| t.as_secs_f64() / t_raw.as_secs_f64();
    println!(
        "summary: raw aes-gcm decrypt {t_raw:?}; reveal with manifest policy (warm cache) {t_rev:?} = {:.2}x (target <= 2.5x); with a one-line allow list {t_base:?} = {:.2}x",
        ratio(t_rev),
        ratio(t_base)
    );

    // The policy decision alone (cache hit), without keys, AEAD or audit.
    let policy = ManifestPolicy::from_toml(REFERENCE).expect("reference manifest");
    let decide = |threads: u64, per: u64| {
        let agent = Accessor::new("bench", [Role::new("support_agent")]);
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    for _ in 0..per {
                        let req = AccessRequest {
                            accessor: &agent,
                            purpose: "service",
                            kind: FieldKind::Text,
                            action: Action::Reveal,
                        };
                        let _ = black_box(policy.decide(black_box(&req)));
                    }
                });
            }
        });
        (threads * per) as f64 / start.elapsed().as_secs_f64()
    };
    let _ = decide(1, 200_000);
    let (one, two) = (decide(1, 2_000_000), decide(2, 2_000_000));
    println!(
        "summary: decide only (warm cache): 1 thread {one:.0}/s ({:.0} ns), 2 threads {two:.0}/s, scaling {:.2}x",
        1e9 / one,
        two / one
    );

    let per = 400_000;
    for (name, g) in [
        ("manifest policy", guard_with(Arc::new(NullSink))),
        ("allow list", allow_list_guard(Arc::new(NullSink))),
    ] {
        let sealed: Sealed<Text, Service> = g
            .seal(&Text::parse(&"x".repeat(SIZE)).expect("valid"), &ctx)
            .expect("seal");
        let _ = throughput(&g, &sealed, 1, per / 4);
        let one = throughput(&g, &sealed, 1, per);
        let two = throughput(&g, &sealed, 2, per);
        println!(
            "summary: {name}: 1 thread {one:.0}/s, 2 threads {two:.0}/s, scaling {:.2}x (target >= 1.8x)",
            two / one
        );
    }
}

fn bench_seal(c: &mut Criterion) {
    let ctx = ctx();
    let text = Text::parse(&"x".repeat(SIZE)).expect("valid");
    let mut g = c.benchmark_group("seal");
    for (name, guard) in [
        ("allow-list", allow_list_guard(Arc::new(NullSink))),
        ("manifest", guard_with(Arc::new(NullSink))),
    ] {
        g.bench_function(format!("{name}/{SIZE}"), |b| {
            b.iter(|| black_box(guard.seal::<Text, Service>(&text, &ctx).expect("seal")))
        });
    }
    g.finish();
}

/// A manifest header with purposes `p0`..
fn purposes(n: usize) -> String {
    let mut t = String::from("version = 1\nhome_region = \"CN\"\n");
    for p in 0..n {
        t.push_str(&format!(
            "[purposes.p{p}]\nlegal_basis = \"contract\"\nretention_days = 30\n"
        ));
    }
    t
}

/// `roles` roles in inheritance chains of `chain` roles, each granting itself one kind for one
/// of five purposes (as in `tests/policy_limits.rs`).
fn chains(roles: usize, chain: usize) -> String {
    let mut t = purposes(5);
    for i in 0..roles {
        t.push_str(&format!("[roles.r{i}]\n"));
        if i % chain != 0 {
            t.push_str(&format!("inherits = [\"r{}\"]\n", i - 1));
        }
        t.push_str(&format!(
            "[roles.r{i}.grants.p{}]\nreveal = [\"{}\"]\n",
            i % 5,
            FieldKind::ALL[i % FieldKind::ALL.len()].label()
        ));
    }
    t
}

/// One role granting 2,000 purposes and 400 roles inheriting it: 802,000 expansion steps.
fn expanded() -> String {
    let mut t = purposes(2_000);
    for p in 0..2_000 {
        t.push_str(&format!("[roles.g.grants.p{p}]\nreveal = [\"text\"]\n"));
    }
    for h in 0..400 {
        t.push_str(&format!("[roles.h{h}]\ninherits = [\"g\"]\n"));
    }
    t
}

fn bench_compile(c: &mut Criterion) {
    let mut g = c.benchmark_group("compile");
    g.sample_size(20);
    let cases = [
        ("roles-10000", chains(MAX_ROLES, MAX_INHERITANCE_DEPTH + 1)),
        (
            "chain-64",
            chains(MAX_INHERITANCE_DEPTH + 1, MAX_INHERITANCE_DEPTH + 1),
        ),
        ("expanded-802k", expanded()),
    ];
    for (name, text) in &cases {
        assert!(text.len() <= MAX_MANIFEST_BYTES);
        let manifest = Manifest::from_toml(text).expect("within the limits");
        g.bench_function(format!("{name}/from_toml"), |b| {
            b.iter(|| ManifestPolicy::from_toml(black_box(text)).expect("compiles"))
        });
        g.bench_function(format!("{name}/compile"), |b| {
            b.iter_batched(
                || manifest.clone(),
                |m| ManifestPolicy::new(m, Engine::Native).expect("compiles"),
                BatchSize::LargeInput,
            )
        });
    }
    let too_deep = chains(2_000, 2_000);
    g.bench_function("chain-2000-refused", |b| {
        b.iter(|| ManifestPolicy::from_toml(black_box(&too_deep)).is_err())
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_reveal,
    bench_casbin,
    bench_seal,
    bench_compile,
    summary
);
criterion_main!(benches);
