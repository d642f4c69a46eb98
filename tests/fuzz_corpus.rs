//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the same entry points
//! the fuzz targets call, so CI covers every input the fuzzers kept.
//!
//! With `FIELDSEAL_WRITE_SEEDS=1` it first writes seed inputs (frozen envelopes, valid and invalid
//! field values) into empty corpus directories.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use fieldseal::internal::fuzzing;
use fieldseal::{Email, IdNumber, PhoneNumber, PostalAddress};

type Target = fn(&[u8]);

fn targets() -> Vec<(&'static str, Target)> {
    vec![
        ("envelope_text", fuzzing::envelope_text),
        ("envelope_binary", fuzzing::envelope_binary),
        ("field_any", fuzzing::any_field),
        ("field_id_number", fuzzing::field::<IdNumber>),
        ("field_phone", fuzzing::field::<PhoneNumber>),
        ("field_email", fuzzing::field::<Email>),
        ("field_address", fuzzing::field::<PostalAddress>),
        ("audit_line", fuzzing::audit_line),
        ("audit_checkpoint", fuzzing::audit_checkpoint),
        ("audit_verify", fuzzing::audit_verify),
        ("policy_manifest", fuzzing::policy_manifest),
        ("keyring_file", fuzzing::keyring_file),
        ("sealed_json", fuzzing::sealed_json),
        ("sealed_postcard", sealed_postcard),
        ("seal_mutate_reveal", fuzzing::seal_mutate_reveal),
        ("key_parsing", fuzzing::key_parsing),
        #[cfg(feature = "share")]
        ("shared_package", fuzzing::shared_package),
    ]
}

/// The `sealed_postcard` target's body (the fuzz crate's target calls the same).
fn sealed_postcard(data: &[u8]) {
    use fieldseal::builtin::Service;
    use fieldseal::{Email, Sealed};
    fuzzing::sealed_binary(
        postcard::from_bytes::<Sealed<Email, Service>>(data),
        |s| postcard::to_allocvec(s).ok(),
        |b| postcard::from_bytes(b).ok(),
    );
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

fn write_seeds() {
    let frozen = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/envelopes_v1.txt"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let texts: Vec<String> = frozen
        .lines()
        .filter_map(|l| l.split('\t').nth(3).map(str::to_owned))
        .collect();
    let field_inputs: [(u8, &str); 12] = [
        (0, "11010519491231002X"),
        (0, "11010519491231002x"),
        (0, "110105194912310021"),
        (1, "+86 138 0013 8000"),
        (1, "0086-10-6552-9988"),
        (1, "+1 (415) 555-2671"),
        (2, "Zhang.San@Example.COM"),
        (2, "a..b@example.com"),
        (3, "张三"),
        (
            4,
            "country=CN\nregion=北京市\ncity=北京市\nstreet=建国路88号\npostal_code=100022",
        ),
        (5, "2001:db8::1"),
        (6, "user_agent=Mozilla/5.0\nos=Linux\nmodel=X1"),
    ];
    let mut seeds: Vec<(&str, Vec<u8>)> = Vec::new();
    for t in &texts {
        seeds.push(("envelope_text", t.as_bytes().to_vec()));
        let b64 = t.trim_start_matches("fs1:");
        let bin = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .unwrap_or_else(|e| panic!("{e}"));
        seeds.push(("envelope_binary", bin));
    }
    for (k, s) in field_inputs {
        let mut any = vec![k];
        any.extend_from_slice(s.as_bytes());
        seeds.push(("field_any", any));
        let target = match k {
            0 => "field_id_number",
            1 => "field_phone",
            2 => "field_email",
            4 => "field_address",
            _ => continue,
        };
        seeds.push((target, s.as_bytes().to_vec()));
    }
    seeds.extend(audit_seeds());
    seeds.extend(new_target_seeds(&texts));
    for (i, (target, data)) in seeds.into_iter().enumerate() {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join(format!("seed-{i:03}")), data).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Seeds for the keyring-file, serde, round-trip and key-parsing targets.
fn new_target_seeds(texts: &[String]) -> Vec<(&'static str, Vec<u8>)> {
    use fieldseal::builtin::Service;
    use fieldseal::{Email, Sealed};
    let mut seeds = Vec::new();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ring = dir.path().join("keyring.json");
    fuzzing::keyring_seed(&ring).unwrap_or_else(|e| panic!("{e}"));
    let ring = std::fs::read(&ring).unwrap_or_else(|e| panic!("{e}"));
    seeds.push(("keyring_file", ring.clone()));
    seeds.push(("keyring_file", ring[..ring.len() / 2].to_vec()));
    for t in texts {
        seeds.push(("sealed_json", format!("\"{t}\"").into_bytes()));
        if let Ok(s) = Sealed::<Email, Service>::from_text(t) {
            let bin = postcard::to_allocvec(&s).unwrap_or_else(|e| panic!("{e}"));
            seeds.push(("sealed_postcard", bin));
        }
    }
    for (op, text) in [
        (0u8, "hello"),
        (1, "x"),
        (2, "a longer text value"),
        (3, "中文"),
    ] {
        let mut d = vec![op, 0, 7, 42];
        d.extend_from_slice(text.as_bytes());
        seeds.push(("seal_mutate_reveal", d));
    }
    seeds.push((
        "key_parsing",
        b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_vec(),
    ));
    seeds.push(("key_parsing", vec![7; 32]));
    seeds
}

/// A small deterministic log (fixed keys and clock): its lines, checkpoints and whole files.
fn audit_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use fieldseal::{AuditKey, ChainedLog, CheckpointSigningKey, Durability, FixedClock};
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (log, _) = ChainedLog::builder(dir.path())
        .key(AuditKey::from_bytes(fuzzing::FUZZ_AUDIT_KEY))
        .checkpoint_key(CheckpointSigningKey::from_bytes(
            fuzzing::FUZZ_CHECKPOINT_KEY,
        ))
        .durability(Durability::Buffered)
        .clock(std::sync::Arc::new(FixedClock::new(1_700_000_000)))
        .open()
        .unwrap_or_else(|e| panic!("{e}"));
    for n in 0..6u64 {
        let subject = (n % 2 == 0).then_some("subject-1");
        fieldseal::internal::testing::with_sample_event(n, subject, |e| {
            log.append(e).unwrap_or_else(|e| panic!("{e}"))
        });
        if n == 2 || n == 5 {
            log.checkpoint().unwrap_or_else(|e| panic!("{e}"));
        }
    }
    drop(log);
    let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap_or_else(|e| panic!("{e}"));
    let (log, ckpt) = (read("audit-000001.log"), read("checkpoints.log"));
    let mut seeds = Vec::new();
    for line in log.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        seeds.push(("audit_line", line.to_vec()));
    }
    for line in ckpt.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        seeds.push(("audit_checkpoint", line.to_vec()));
    }
    let mut whole = log.clone();
    whole.push(0xff);
    whole.extend_from_slice(&ckpt);
    seeds.push(("audit_verify", whole));
    seeds.push(("audit_verify", log[..log.len() - 7].to_vec()));
    let mut swapped: Vec<&[u8]> = log.split_inclusive(|&b| b == b'\n').collect();
    swapped.swap(1, 2);
    seeds.push(("audit_verify", swapped.concat()));
    seeds
}

#[test]
fn replay_committed_corpora() {
    if std::env::var_os("FIELDSEAL_WRITE_SEEDS").is_some() {
        write_seeds();
    }
    let mut total = 0;
    for (name, run) in targets() {
        let dir = corpus_dir(name);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut n = 0;
        for entry in entries {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            run(&data);
            n += 1;
        }
        assert!(n > 0, "empty corpus for {name}");
        println!("fuzz corpus {name}: {n} inputs replayed");
        total += n;
    }
    println!("fuzz corpora: {total} inputs replayed");
}
