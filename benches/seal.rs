//! Seal and reveal against raw AES-256-GCM (prepared cipher, fresh 96-bit nonce from
//! `rand::rng()`, the same associated-data size), in the same run.
//!
//! Targets: seal <= 1.25x raw encrypt; reveal (allow-list policy + in-memory audit) <= 2.5x raw
//! decrypt, each against the faster of aes-gcm 0.10 and 0.11 at that size.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fieldseal::builtin::Service;
use fieldseal::*;
use rand::Rng as _;

const SIZES: [usize; 3] = [16, 32, 256];

fn ctx() -> Context {
    Context::new().table("users").column("note").row("12345")
}

/// Associated data length of our envelopes: header for "service" + encoded context above.
fn aad_len() -> usize {
    let header = 4 + 7 + 4 + 8 + 16 + 16 + 12;
    let context = 1 + (1 + 3 + 2 + 5) + (1 + 5 + 2 + 5) + (1 + 6 + 2 + 4);
    header + context
}

fn setup() -> (Guard, Arc<MemorySink>, Accessor) {
    let sink = Arc::new(MemorySink::new());
    let guard = Guard::builder()
        .keyring(Keyring::single(RootKey::from_bytes([3; 32])).expect("static key"))
        .policy(AllowList::new().allow::<Service>(
            Role::new("agent"),
            FieldKind::Text,
            Action::Reveal,
        ))
        .audit(Arc::clone(&sink))
        .build()
        .expect("complete builder");
    (guard, sink, Accessor::new("bench", [Role::new("agent")]))
}

fn bench_seal(c: &mut Criterion) {
    let (guard, _, _) = setup();
    let ctx = ctx();
    let aad = vec![7u8; aad_len()];
    let mut g = c.benchmark_group("seal");
    for size in SIZES {
        g.throughput(Throughput::Bytes(size as u64));
        let msg = "x".repeat(size);
        let text = Text::parse(&msg).expect("valid text");
        g.bench_with_input(BenchmarkId::new("raw-aes-gcm-0.10", size), &size, |b, _| {
            use aes_gcm_010::aead::{Aead, KeyInit, Payload};
            let cipher = aes_gcm_010::Aes256Gcm::new(&[5u8; 32].into());
            b.iter(|| {
                let mut nonce = [0u8; 12];
                rand::rng().fill_bytes(&mut nonce);
                let p = Payload {
                    msg: msg.as_bytes(),
                    aad: &aad,
                };
                black_box(cipher.encrypt(&nonce.into(), p).expect("encrypt"))
            })
        });
        g.bench_with_input(BenchmarkId::new("raw-aes-gcm-0.11", size), &size, |b, _| {
            use aes_gcm::aead::{Aead, KeyInit, Payload};
            let cipher = aes_gcm::Aes256Gcm::new(&[5u8; 32].into());
            b.iter(|| {
                let mut nonce = [0u8; 12];
                rand::rng().fill_bytes(&mut nonce);
                let p = Payload {
                    msg: msg.as_bytes(),
                    aad: &aad,
                };
                black_box(cipher.encrypt(&nonce.into(), p).expect("encrypt"))
            })
        });
        g.bench_with_input(BenchmarkId::new("fieldseal", size), &size, |b, _| {
            b.iter(|| black_box(guard.seal::<Text, Service>(&text, &ctx).expect("seal")))
        });
    }
    g.finish();
}

fn bench_reveal(c: &mut Criterion) {
    let (guard, sink, agent) = setup();
    let ctx = ctx();
    let aad = vec![7u8; aad_len()];
    let mut g = c.benchmark_group("reveal");
    for size in SIZES {
        g.throughput(Throughput::Bytes(size as u64));
        let msg = "x".repeat(size);
        let sealed: Sealed<Text, Service> = guard
            .seal(&Text::parse(&msg).expect("valid"), &ctx)
            .expect("seal");
        // The same decryption under both crate versions, each labelled with the one it uses.
        macro_rules! raw_decrypt {
            ($label:literal, $krate:ident) => {
                g.bench_with_input(BenchmarkId::new($label, size), &size, |b, _| {
                    use $krate::aead::{Aead, KeyInit, Payload};
                    let cipher = $krate::Aes256Gcm::new(&[5u8; 32].into());
                    let nonce = [1u8; 12];
                    let ct = cipher
                        .encrypt(
                            &nonce.into(),
                            Payload {
                                msg: msg.as_bytes(),
                                aad: &aad,
                            },
                        )
                        .expect("encrypt");
                    b.iter(|| {
                        let p = Payload {
                            msg: &ct,
                            aad: &aad,
                        };
                        black_box(cipher.decrypt(&nonce.into(), p).expect("decrypt"))
                    })
                });
            };
        }
        raw_decrypt!("raw-aes-gcm-0.10", aes_gcm_010);
        raw_decrypt!("raw-aes-gcm-0.11", aes_gcm);
        g.bench_with_input(BenchmarkId::new("fieldseal", size), &size, |b, _| {
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
    }
    g.finish();
}

/// Reveal with keys from a keyring file under a file KEK (unwrapped once on load, then cached)
/// against an in-memory keyring: the hot path never calls the provider, so they should be equal
/// within noise. Interleaved in one group.
fn bench_key_source(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("fieldseal-bench-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let kek = FileKek::create(dir.join("kek")).expect("kek");
    drop(Keyring::create(&kek, dir.join("keyring.json")).expect("keyring file"));
    let from_file = Keyring::load(&kek, dir.join("keyring.json")).expect("load");
    let in_memory = Keyring::generate().expect("keyring");
    let agent = Accessor::new("bench", [Role::new("agent")]);
    let ctx = ctx();
    let mut g = c.benchmark_group("reveal-key-source");
    for (label, ring) in [("file-kek", from_file), ("in-memory", in_memory)] {
        let guard = Guard::builder()
            .keyring(ring)
            .policy(AllowList::new().allow::<Service>(
                Role::new("agent"),
                FieldKind::Text,
                Action::Reveal,
            ))
            .audit(NullSink)
            .build()
            .expect("complete builder");
        let sealed: Sealed<Text, Service> = guard
            .seal(&Text::parse(&"x".repeat(32)).expect("valid"), &ctx)
            .expect("seal");
        g.bench_function(label, |b| {
            b.iter(|| black_box(guard.reveal(&agent, &sealed, &ctx).expect("reveal")))
        });
    }
    g.finish();
    std::fs::remove_dir_all(&dir).ok();
}

criterion_group!(benches, bench_seal, bench_reveal, bench_key_source);
criterion_main!(benches);
