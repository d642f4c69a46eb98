//! The policy layer's cost.
//!
//! - `reveal/warm-cache`: `Guard::reveal` with the reference manifest (decision cache warm,
//!   consent/retention/residency checks, in-memory audit) against raw AES-256-GCM decrypt of the
//!   same size with the same associated-data length. Target: <= 2.5x.
//! - `casbin-enforce/{10,100,1000}` (feature `casbin`): one raw `enforce` call.
//! - `threads`: reveals per second on 1 and 2 threads (null audit sink, so the sink's lock is not
//!   what is measured). Target: >= 1.8x scaling.
//!
//! After the criterion groups a short summary with the ratios is printed.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
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

criterion_group!(benches, bench_reveal, bench_casbin, summary);
criterion_main!(benches);
