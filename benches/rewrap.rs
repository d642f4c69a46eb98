//! Key rotation: `Guard::rewrap_batch` over batches of 1,000 to 100,000 envelopes (throughput in
//! envelopes per second), against single `Guard::rewrap` calls.
//!
//! Target: 1,000,000 envelopes in under 3 s on a 2-core machine (>= 330,000 per second); the
//! ignored test `rewrap_a_million` in tests/rewrap.rs checks it end to end.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fieldseal::builtin::Service;
use fieldseal::*;

fn setup() -> (Guard, Accessor) {
    let policy = AllowList::new().allow::<Service>(
        Role::new("key_custodian"),
        FieldKind::Text,
        Action::Rewrap,
    );
    let guard = Guard::builder()
        .keyring(Keyring::single(RootKey::from_bytes([3; 32])).expect("static key"))
        .policy(policy)
        .audit(Arc::new(MemorySink::new()))
        .build()
        .expect("complete builder");
    (
        guard,
        Accessor::new("rotation-job", [Role::new("key_custodian")]),
    )
}

fn ctx(i: usize) -> Context {
    Context::new()
        .table("customers")
        .column("note")
        .row(&i.to_string())
}

fn items(guard: &Guard, n: usize) -> Vec<(AnySealed, Context)> {
    (0..n)
        .map(|i| {
            let text = Text::parse(&format!("customer note {i}")).expect("valid text");
            let s: Sealed<Text, Service> = guard.seal(&text, &ctx(i)).expect("seal");
            (s.into(), ctx(i))
        })
        .collect()
}

fn bench_rewrap(c: &mut Criterion) {
    let (guard, custodian) = setup();
    let mut g = c.benchmark_group("rewrap");
    for n in [1_000usize, 10_000, 100_000] {
        let batch = items(&guard, n);
        guard.keyring().rotate().expect("rotate");
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("batch", n), &n, |b, _| {
            b.iter_batched(
                || batch.clone(),
                |batch| {
                    let report = guard.rewrap_batch(&custodian, batch).expect("batch");
                    assert_eq!(report.rewrapped(), n);
                    black_box(report)
                },
                BatchSize::PerIteration,
            )
        });
    }
    let single: Vec<(Sealed<Text, Service>, Context)> = items(&guard, 1_000)
        .into_iter()
        .map(|(s, c)| (Sealed::try_from(s).expect("text for service"), c))
        .collect();
    g.throughput(Throughput::Elements(single.len() as u64));
    g.bench_function(BenchmarkId::new("single", single.len()), |b| {
        b.iter(|| {
            for (s, c) in &single {
                black_box(guard.rewrap(&custodian, s, c).expect("rewrap"));
            }
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench_rewrap
}
criterion_main!(benches);
