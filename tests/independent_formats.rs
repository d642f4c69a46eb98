//! SECURITY.md's envelope format, key derivation, pseudonyms, blind-index terms and shared
//! packages, implemented a second time from the text alone (`tests/independent/envelope.py` and
//! `share.py`: Python's standard library, with AES-256, GCM, X25519, ChaCha20, Poly1305 and HPKE
//! written out and checked against Wycheproof and RFC 9180 vectors), run against the crate. The
//! two must agree on:
//! - the frozen envelopes of `tests/data/envelopes_v1.txt`: opened, and re-sealed to the same text;
//! - random values of every kind under random purposes, key versions and contexts (up to 16
//!   parts, names that are prefixes of one another, values of 0-1,024 arbitrary bytes): what the
//!   crate seals the second implementation opens, and what it seals the crate opens; the same
//!   for shared packages (feature `share`);
//! - the answer (fields, or the error) for every truncation, for chosen header edits and for
//!   random mutations of binary and text envelopes and packages, when parsed and when opened;
//! - contexts that break a rule, pseudonyms and blind-index terms.
//!
//! A disagreement is a bug in the crate or in SECURITY.md.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use fieldseal::builtin::{Improvement, Service};
use fieldseal::*;
use serde_json::{Value, json};

const NOW: u64 = 1_780_000_000;
const ROOTS: [[u8; 32]; 3] = [[0x31; 32], [0x32; 32], [0x33; 32]];
const PURPOSES: [&str; 4] = [
    "service",
    "improvement",
    "a",
    "purpose_with_32_bytes_of_label_0",
];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs the second implementation over `ops` with the root keys `keys` (version, key) and the
/// retired versions `retired`; returns its answers, one per op. The keys go on stdin.
fn independent(keys: &[(u32, [u8; 32])], retired: &[u32], ops: &[Value]) -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let keys: serde_json::Map<String, Value> = keys
        .iter()
        .map(|(v, k)| (v.to_string(), Value::String(hex(k))))
        .collect();
    let doc = json!({
        "keys": keys,
        "retired": retired,
        "wycheproof": dir.join("tests/data/wycheproof/aes_gcm_test.json"),
        "ops": ops,
    });
    let v = run("envelope.py", &doc);
    // Its AES-256-GCM passed all 66 Wycheproof cases with a 96-bit nonce and a 128-bit tag.
    assert_eq!(v["self_test"]["wycheproof_aes256_gcm"], 66);
    answers(&v, ops.len())
}

fn answers(v: &Value, n: usize) -> Vec<Value> {
    let answers = v["answers"].as_array().cloned().unwrap_or_default();
    assert_eq!(answers.len(), n);
    answers
}

/// Runs `tests/independent/<script>` with `doc` on stdin; returns what it wrote.
fn run(script: &str, doc: &Value) -> Value {
    let mut child = independent_python(script, &[]);
    let input = serde_json::to_vec(doc).unwrap_or_else(|e| panic!("{e}"));
    let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("no stdin"));
    // Written from a thread: the answers may fill the pipe before the input is all read.
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    writer
        .join()
        .unwrap_or_else(|_| panic!("writer panicked"))
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the second implementation failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// An error as the second implementation names it: a format error with its details
/// (`UnknownKind(9)`, `TooLong { max: 16508 }`), any other by its variant.
fn name(e: &Error) -> String {
    match e {
        Error::Format(f) => format!("{f:?}"),
        Error::Context(c) => variant(&format!("{c:?}")),
        Error::Key(k) => variant(&format!("{k:?}")),
        other => variant(&format!("{other:?}")),
    }
}

/// The variant name at the start of a `Debug` string.
fn variant(debug: &str) -> String {
    debug
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn keyring(active: u32, minimum: u32) -> Keyring {
    let mut b = Keyring::builder();
    for (i, root) in ROOTS.iter().enumerate() {
        b = b.key(v(i as u32 + 1), RootKey::from_bytes(*root));
    }
    b.active(v(active))
        .minimum(v(minimum))
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn keys() -> Vec<(u32, [u8; 32])> {
    (1..=3).zip(ROOTS).collect()
}

fn guard(active: u32, minimum: u32) -> Guard {
    Guard::builder()
        .keyring(keyring(active, minimum))
        .policy(allow_all(&PURPOSES))
        .audit(NullSink)
        .clock(Arc::new(FixedClock::new(NOW)))
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The parts of a context: (name, value).
type Parts = Vec<(String, Vec<u8>)>;

/// A context of `parts` as the crate builds it, and as the second implementation receives it.
fn context(parts: &[(String, Vec<u8>)]) -> (Context, Value) {
    let mut ctx = Context::new();
    for (n, val) in parts {
        ctx = ctx.with(n, val);
    }
    let json = parts
        .iter()
        .map(|(n, val)| json!([hex(n.as_bytes()), hex(val)]))
        .collect();
    (ctx, Value::Array(json))
}

fn pick<'a, T>(rng: &mut XorShift, items: &'a [T]) -> &'a T {
    &items[(rng.next() % items.len() as u64) as usize]
}

/// A random valid context: up to 16 parts, names drawn so that some are prefixes of others and
/// some start with a digit or `_`, values of 0-1,024 arbitrary bytes.
fn random_parts(rng: &mut XorShift) -> Parts {
    const ALPHABET: &[u8] = b"ab0_z9";
    let count = (rng.next() % 17) as usize;
    let mut parts: Parts = Vec::new();
    while parts.len() < count {
        let len = match rng.next() % 4 {
            0 => 32,
            _ => 1 + (rng.next() % 4) as usize,
        };
        let name: String = (0..len).map(|_| char::from(*pick(rng, ALPHABET))).collect();
        if parts.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let vlen = match rng.next() % 5 {
            0 => 0,
            1 => 1024,
            _ => (rng.next() % 64) as usize,
        };
        parts.push((name, (0..vlen).map(|_| rng.next() as u8).collect()));
    }
    parts
}

/// A random value of `kind`, as text for `AnyValue::parse`.
fn random_value(rng: &mut XorShift, kind: FieldKind) -> String {
    let word = |rng: &mut XorShift, n: u64| -> String {
        let len = 1 + rng.next() % n;
        (0..len)
            .map(|_| char::from(b'a' + (rng.next() % 26) as u8))
            .collect()
    };
    match kind {
        FieldKind::IdNumber => pick(rng, &["11010519491231002X", "120101199602291547"]).to_string(),
        FieldKind::PhoneNumber => {
            pick(rng, &["+8613800138000", "+14155552671", "+683 4002"]).to_string()
        }
        FieldKind::Email => format!("{}@{}.Example.COM", word(rng, 40), word(rng, 20)),
        FieldKind::PersonName => format!("{} {}", word(rng, 60), pick(rng, &["张三", "Doe"])),
        FieldKind::PostalAddress => format!(
            "country=CN\nregion={}\ncity=北京市\nstreet={}\nstreet={}\npostal_code=100022",
            word(rng, 30),
            word(rng, 120),
            word(rng, 5)
        ),
        FieldKind::IpAddress => {
            if rng.next().is_multiple_of(2) {
                std::net::Ipv4Addr::from(rng.next() as u32).to_string()
            } else {
                std::net::Ipv6Addr::from(u128::from(rng.next()) << 64 | u128::from(rng.next()))
                    .to_string()
            }
        }
        FieldKind::DeviceInfo => format!(
            "user_agent={}\nos={}\nmodel={}",
            word(rng, 200),
            word(rng, 10),
            word(rng, 10)
        ),
        FieldKind::Text => {
            let len = match rng.next() % 4 {
                0 => 4096 / 4,
                _ => 1 + (rng.next() % 300) as usize,
            };
            (0..len)
                .map(|_| *pick(rng, &['a', ' ', 'é', '张', '😀', '\n', '~']))
                .collect()
        }
        other => panic!("no generator for {other}"),
    }
}

fn canonical(value: &AnyValue, g: &Guard) -> Vec<u8> {
    // The canonical bytes of a value, through a round trip of the crate's own.
    let ctx = Context::new();
    let purpose = PurposeId::new("service").unwrap_or_else(|e| panic!("{e}"));
    let s = g
        .seal_any(value, &purpose, &ctx)
        .unwrap_or_else(|e| panic!("{e}"));
    g.reveal_any(&tester(), &s, &ctx)
        .unwrap_or_else(|e| panic!("{e}"))
        .expose_canonical()
        .to_vec()
}

#[test]
fn frozen_envelopes_open_and_reseal_to_the_same_text() {
    let frozen = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/envelopes_v1.txt"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let mut ops = Vec::new();
    let mut expected = Vec::new();
    let g = guard(1, 1);
    for line in frozen.lines() {
        let parts: Vec<&str> = line.split('\t').collect();
        let kind = FieldKind::from_label(parts[0]).unwrap_or_else(|| panic!("{line}"));
        let value =
            AnyValue::parse(kind, &parts[2].replace("\\n", "\n")).unwrap_or_else(|e| panic!("{e}"));
        let plain = canonical(&value, &g);
        let (_, ctx) = context(&[
            ("table".into(), b"kat".to_vec()),
            ("column".into(), b"value".to_vec()),
            ("row".into(), parts[1].as_bytes().to_vec()),
        ]);
        let text = parts[3];
        let bytes = AnySealed::from_text(text)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_bytes();
        // Salt at 23..39 and nonce at 55..67 (label `service`, no subject key).
        ops.push(json!({"op": "open", "text": text, "context": ctx}));
        ops.push(json!({
            "op": "seal", "kind": bytes[1], "purpose": "service", "version": 1,
            "sealed_at": 1_764_000_000u64, "salt": hex(&bytes[23..39]),
            "nonce": hex(&bytes[55..67]), "plaintext": hex(&plain), "context": ctx,
        }));
        expected.push((hex(&plain), text.to_owned()));
    }
    assert_eq!(expected.len(), 11);
    let answers = independent(&[(1, std::array::from_fn(|i| i as u8))], &[], &ops);
    for (i, (plain, text)) in expected.iter().enumerate() {
        assert_eq!(answers[2 * i]["ok"], *plain.as_str(), "line {i}");
        assert_eq!(answers[2 * i + 1]["ok"], *text.as_str(), "line {i}");
    }
}

#[test]
fn random_values_cross_between_the_two_implementations() {
    let mut rng = XorShift(0x0123_4567_89ab_cdef);
    let guards = [guard(1, 1), guard(2, 1), guard(3, 1)];
    let mut ops = Vec::new();
    // (plaintext hex, context, purpose, kind, version, sealed_at) per case.
    let mut cases = Vec::new();
    for i in 0..240 {
        let kind = *pick(&mut rng, &FieldKind::ALL);
        let value = AnyValue::parse(kind, &random_value(&mut rng, kind))
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        let label = *pick(&mut rng, &PURPOSES);
        let purpose = PurposeId::new(label).unwrap_or_else(|e| panic!("{e}"));
        let parts = random_parts(&mut rng);
        let (ctx, ctx_json) = context(&parts);
        let g = &guards[i % 3];
        let sealed = g
            .seal_any(&value, &purpose, &ctx)
            .unwrap_or_else(|e| panic!("{e}"));
        let plain = g
            .reveal_any(&tester(), &sealed, &ctx)
            .unwrap_or_else(|e| panic!("{e}"))
            .expose_canonical()
            .to_vec();
        // 1. The crate's envelope opens there, under its context, and only under it.
        ops.push(json!({"op": "open", "text": sealed.to_text(), "context": ctx_json}));
        let mut other = parts.clone();
        match other.first_mut() {
            Some((_, val)) if rng.next().is_multiple_of(2) => match val.first_mut() {
                Some(b) => *b ^= 1,
                None => val.push(0),
            },
            Some(_) => drop(other.pop()),
            None => other.push(("row".into(), Vec::new())),
        }
        ops.push(
            json!({"op": "open", "hex": hex(sealed.as_bytes()), "context": context(&other).1}),
        );
        // 2. An envelope sealed there, with fresh salt and nonce, under a random version.
        let version = 1 + (rng.next() % 3) as u32;
        let sealed_at = NOW - rng.next() % 1_000_000;
        let salt: Vec<u8> = (0..16).map(|_| rng.next() as u8).collect();
        let nonce: Vec<u8> = (0..12).map(|_| rng.next() as u8).collect();
        ops.push(json!({
            "op": "seal", "kind": kind.code(), "purpose": label, "version": version,
            "sealed_at": sealed_at, "salt": hex(&salt), "nonce": hex(&nonce),
            "plaintext": hex(&plain), "context": ctx_json,
        }));
        cases.push((
            plain,
            ctx,
            context(&other).0,
            purpose,
            kind,
            version,
            sealed_at,
            sealed,
        ));
    }
    let answers = independent(&keys(), &[], &ops);
    let g = guard(3, 1);
    for (i, (plain, ctx, other, purpose, kind, version, sealed_at, ours)) in
        cases.iter().enumerate()
    {
        let [opened, refused, theirs] = &answers[3 * i..3 * i + 3] else {
            unreachable!()
        };
        assert_eq!(opened["ok"], hex(plain), "case {i}: {opened}");
        assert_eq!(refused["error"], "Integrity", "case {i}: {refused}");
        let text = theirs["ok"]
            .as_str()
            .unwrap_or_else(|| panic!("case {i}: {theirs}"));
        let sealed = AnySealed::from_text(text).unwrap_or_else(|e| panic!("case {i}: {e}"));
        assert_eq!(
            (
                sealed.kind(),
                sealed.purpose(),
                sealed.key_version(),
                sealed.sealed_at()
            ),
            (*kind, purpose.clone(), v(*version), *sealed_at)
        );
        let revealed = g
            .reveal_any(&tester(), &sealed, ctx)
            .unwrap_or_else(|e| panic!("case {i}: {e}"));
        assert_eq!(*revealed.expose_canonical(), *plain, "case {i}");
        // And only under its context.
        assert!(
            matches!(
                g.reveal_any(&tester(), &sealed, other),
                Err(Error::Integrity)
            ),
            "case {i}"
        );
        // Version, kind, flags and label are laid out alike by both.
        let fixed = 4 + purpose.as_str().len();
        assert_eq!(
            sealed.as_bytes()[..fixed],
            ours.as_bytes()[..fixed],
            "case {i}"
        );
    }
}

/// Edits of a binary envelope or package: every truncation; each byte of the first `header`
/// set to values that cross every check; lengths past the kind's cap and the format's; 150
/// random edits (a bit flipped, a byte inserted or removed).
fn binary_edits(rng: &mut XorShift, bytes: &[u8], header: usize, kind: FieldKind) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = (0..bytes.len()).map(|n| bytes[..n].to_vec()).collect();
    for at in 0..header {
        for b in [
            0u8, 1, 2, 9, 0x1f, 0x20, 0x21, b'A', b'_', b'0', 0x7f, 0x80, 0xff,
        ] {
            let mut e = bytes.to_vec();
            e[at] = b;
            out.push(e);
        }
    }
    for extra in [1usize, kind.max_canonical_len(), 16_384, 16_508] {
        let mut e = bytes.to_vec();
        e.extend(std::iter::repeat_n(0u8, extra));
        out.push(e);
    }
    for _ in 0..150 {
        let mut e = bytes.to_vec();
        let at = (rng.next() as usize) % e.len();
        match rng.next() % 3 {
            0 => e[at] ^= 1 << (rng.next() % 8),
            1 => e.insert(at, rng.next() as u8),
            _ => drop(e.remove(at)),
        }
        out.push(e);
    }
    out
}

/// Edits of a text form `text` with prefix `prefix` (`fs1:`, whose stem is `fs`) and longest
/// accepted length `max`: the text itself, other prefixes, padding, foreign characters, lengths
/// of 1 mod 4, non-zero trailing bits, a text of `max` and one of `max + 1` bytes, and a first
/// byte other than the version.
fn text_edits(text: &str, prefix: &str, stem: &str, max: usize) -> Vec<String> {
    let body = &text[prefix.len()..];
    let fill = |n: usize| format!("{prefix}{}", "A".repeat(n - prefix.len()));
    let mut out = vec![
        text.to_owned(),
        String::new(),
        prefix.to_owned(),
        stem.to_owned(),
        format!("{stem}2:{body}"),
        format!("{stem}9:{body}"),
        format!("{stem}A:{body}"),
        format!("{}{body}", prefix.to_uppercase()),
        format!("{stem}1;{body}"),
        format!("{text}="),
        format!("{text}A"),
        format!("{text}AA"),
        text.replace('-', "+"),
        text.replace('_', "/"),
        format!("{text} "),
        fill(max),
        fill(max + 1),
        format!("{prefix}AgAB{}", &body[4..]),
        text[..text.len() - 1].to_owned(),
    ];
    // Trailing bits: the last character moved to a neighbour in the alphabet.
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = text.chars().last().unwrap_or('A');
    let i = alphabet.find(last).unwrap_or(0);
    for j in [i ^ 1, i ^ 2, i ^ 3] {
        let mut t = text[..text.len() - 1].to_owned();
        t.push(char::from(alphabet.as_bytes()[j % 64]));
        out.push(t);
    }
    out
}

/// Values under subject keys, from a `FileSubjectKeys` directory under a `FileKek`: the second
/// implementation reads the store's files, derives the subject's slot from its id and opens the
/// values; after an erasure both refuse them as erased.
#[test]
fn values_under_subject_keys_open_from_the_store_files() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let kek_path = dir.path().join("kek");
    let kek = Arc::new(FileKek::create(&kek_path).unwrap_or_else(|e| panic!("{e}")));
    let kek_bytes = std::fs::read(&kek_path).unwrap_or_else(|e| panic!("{e}"));
    let store_dir = dir.path().join("subject-keys");
    let store = FileSubjectKeys::open(&store_dir).unwrap_or_else(|e| panic!("{e}"));
    let purpose = |p: &str| PurposeId::new(p).unwrap_or_else(|e| panic!("{e}"));
    let g = Guard::builder()
        .keyring(keyring(2, 1))
        .policy(allow_all(&PURPOSES))
        .audit(NullSink)
        .clock(Arc::new(FixedClock::new(NOW)))
        .subject_keys(SubjectKeys::new(kek, Arc::new(store)))
        .subject_key_purpose(purpose("service"), SubjectKeyScope::Subject)
        .subject_key_purpose(purpose("improvement"), SubjectKeyScope::Purpose)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let subjects = ["subject-0", "用户-1", "subject-2"];
    let mut rng = XorShift(0x005b_1ec7);
    // (subject, purpose, plaintext, context, envelope)
    let mut cases = Vec::new();
    for i in 0..30 {
        let subject = subjects[i % 3];
        let label = PURPOSES[(i / 3) % 3];
        let kind = *pick(&mut rng, &FieldKind::ALL);
        let value =
            AnyValue::parse(kind, &random_value(&mut rng, kind)).unwrap_or_else(|e| panic!("{e}"));
        let mut parts = random_parts(&mut rng);
        parts.truncate(15);
        parts.push(("subject".into(), subject.as_bytes().to_vec()));
        let (ctx, _) = context(&parts);
        let sealed = g
            .seal_any(&value, &purpose(label), &ctx)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sealed.info().has_subject_key(), label != "a", "{label}");
        let plain = g
            .reveal_any(&tester(), &sealed, &ctx)
            .unwrap_or_else(|e| panic!("{e}"))
            .expose_canonical()
            .to_vec();
        cases.push((subject, label, plain, parts, sealed));
    }
    let run_ops = |cases: &[(&str, &str, Vec<u8>, Parts, AnySealed)]| {
        let mut ops = Vec::new();
        for (subject, label, _, parts, sealed) in cases {
            let scope = if *label == "improvement" { *label } else { "" };
            ops.push(json!({"op": "open", "text": sealed.to_text(), "context": context(parts).1}));
            ops.push(json!({"op": "parse", "text": sealed.to_text()}));
            ops.push(json!({"op": "slot", "subject": subject, "scope": scope}));
        }
        let doc = json!({
            "keys": {"1": hex(&ROOTS[0]), "2": hex(&ROOTS[1]), "3": hex(&ROOTS[2])},
            "subject_store": {"kek": hex(&kek_bytes), "dir": store_dir},
            "ops": ops,
        });
        answers(&run("envelope.py", &doc), ops.len())
    };
    let answers = run_ops(&cases);
    for (i, (_, label, plain, _, _)) in cases.iter().enumerate() {
        let [opened, parsed, slot] = &answers[3 * i..3 * i + 3] else {
            unreachable!()
        };
        assert_eq!(opened["ok"], hex(plain), "case {i}: {opened}");
        if *label == "a" {
            assert_eq!(parsed["ok"]["subject"], "", "case {i}");
        } else {
            // The envelope names the key its subject's slot holds.
            let id = parsed["ok"]["subject"].as_str().unwrap_or_default();
            assert_eq!(id.len(), 32, "case {i}: {parsed}");
            assert_eq!(slot["ok"], id, "case {i}: {slot}");
        }
    }
    // Erasing subject-0: its values under subject keys no longer open, in either.
    g.erase(&tester(), &SubjectId::new("subject-0"), Erasure::Subject)
        .unwrap_or_else(|e| panic!("{e}"));
    let answers = run_ops(&cases);
    let mut erased = 0;
    for (i, (subject, label, plain, parts, sealed)) in cases.iter().enumerate() {
        let ours = g.reveal_any(&tester(), sealed, &context(parts).0);
        if *subject == "subject-0" && *label != "a" {
            assert_eq!(answers[3 * i]["error"], "Erased", "case {i}");
            assert!(
                matches!(ours, Err(Error::Key(KeyError::Erased))),
                "case {i}"
            );
            assert_eq!(answers[3 * i + 2], json!({"ok": null}), "the slot is gone");
            erased += 1;
        } else {
            assert_eq!(answers[3 * i]["ok"], hex(plain), "case {i}");
            assert!(ours.is_ok(), "case {i}");
        }
    }
    assert_eq!(erased, 7);
}

/// Every truncation, header edits and random mutations of real envelopes: the two parsers, and
/// the two openers, give the same answer.
#[test]
fn mutated_envelopes_get_the_same_answer_from_both() {
    let mut rng = XorShift(0x005e_ed0f_ab1e);
    let g = guard(2, 2);
    let mut inputs: Vec<(Vec<u8>, Parts)> = Vec::new();
    let mut texts: Vec<(String, Parts)> = Vec::new();
    for kind in FieldKind::ALL {
        let value =
            AnyValue::parse(kind, &random_value(&mut rng, kind)).unwrap_or_else(|e| panic!("{e}"));
        let parts = random_parts(&mut rng);
        let (ctx, _) = context(&parts);
        let label = *pick(&mut rng, &PURPOSES);
        let purpose = PurposeId::new(label).unwrap_or_else(|e| panic!("{e}"));
        let env = g
            .seal_any(&value, &purpose, &ctx)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_bytes();
        for e in binary_edits(&mut rng, &env, 60 + label.len(), kind) {
            inputs.push((e, parts.clone()));
        }
        // Two checks at once: a subject key's flag with a retired (1), an unknown (4) and a
        // live (3) version; a retired and an unknown version alone.
        let version_at = 4 + label.len();
        for (flag, version) in [(1u8, 1u8), (1, 4), (1, 3), (0, 1), (0, 4)] {
            let mut e = env.clone();
            e[2] = flag;
            e[version_at + 3] = version;
            inputs.push((e, parts.clone()));
        }
        let text = AnySealed::from_bytes(&env)
            .unwrap_or_else(|e| panic!("{e}"))
            .to_text();
        for t in text_edits(&text, "fs1:", "fs", 22_016) {
            texts.push((t, parts.clone()));
        }
    }
    // Answers of the crate: the parse, then the open (by a keyring whose minimum is 2, so that
    // version 1 is retired and version 4 unknown).
    let describe = |parsed: Result<AnySealed, Error>, ctx: &Context| -> (Value, Value) {
        match parsed {
            Err(e) => (json!({"error": name(&e)}), json!({"error": name(&e)})),
            Ok(s) => {
                let info = s.info();
                let fields = json!({
                    "kind": s.kind().code(), "flags": u8::from(info.has_subject_key()),
                    "purpose": s.purpose_label(), "version": s.key_version().get(),
                    "sealed_at": s.sealed_at(), "ciphertext_len": info.ciphertext_len(),
                });
                let opened = match g.reveal_any(&tester(), &s, ctx) {
                    Ok(r) => json!({"ok": hex(&r.expose_canonical())}),
                    Err(e) => json!({"error": name(&e)}),
                };
                (json!({"ok": fields}), opened)
            }
        }
    };
    let mut ops = Vec::new();
    let mut ours = Vec::new();
    for (bytes, parts) in &inputs {
        let (ctx, ctx_json) = context(parts);
        ops.push(json!({"op": "parse", "hex": hex(bytes)}));
        ops.push(json!({"op": "open", "hex": hex(bytes), "context": ctx_json}));
        ours.push((
            format!("{} bytes", bytes.len()),
            describe(AnySealed::from_bytes(bytes), &ctx),
        ));
    }
    for (text, parts) in &texts {
        let (ctx, ctx_json) = context(parts);
        ops.push(json!({"op": "parse", "text": text}));
        ops.push(json!({"op": "open", "text": text, "context": ctx_json}));
        let shown: String = text.chars().take(12).collect();
        ours.push((
            format!("text {shown}… ({})", text.len()),
            describe(AnySealed::from_text(text), &ctx),
        ));
    }
    let answers = independent(&keys(), &[1], &ops);
    let mut opened = 0;
    let mut seen = std::collections::BTreeSet::new();
    for (i, (what, (parsed, open))) in ours.iter().enumerate() {
        for answer in [parsed, open] {
            if let Some(e) = answer["error"].as_str() {
                seen.insert(variant(e));
            }
        }
        let mut theirs = answers[2 * i].clone();
        if let Some(fields) = theirs.get_mut("ok").and_then(Value::as_object_mut) {
            fields.remove("subject");
        }
        assert_eq!(theirs, *parsed, "parse of input {i} ({what})");
        // An edit that turns the label into another valid one names a purpose the policy does
        // not know: the crate denies before any key work, which the second implementation
        // (no policy) cannot say.
        let label = parsed["ok"]["purpose"].as_str();
        if label.is_some_and(|l| !PURPOSES.contains(&l)) {
            assert_eq!(
                *open,
                json!({"error": "Denied"}),
                "open of input {i} ({what})"
            );
            continue;
        }
        assert_eq!(answers[2 * i + 1], *open, "open of input {i} ({what})");
        opened += usize::from(open.get("ok").is_some());
    }
    // Every check of the parser and of the opener was reached, and some inputs opened.
    let every = [
        "Base64",
        "CiphertextLength",
        "Denied",
        "Empty",
        "Integrity",
        "InvalidPurposeLabel",
        "Retired",
        "ReservedFlags",
        "SubjectKeyUnavailable",
        "TooLong",
        "Truncated",
        "UnknownKind",
        "UnknownPrefix",
        "UnknownVersion",
        "UnsupportedVersion",
        "VersionMismatch",
        "ZeroKeyVersion",
    ];
    assert_eq!(seen, every.iter().map(|e| e.to_string()).collect());
    assert!(opened >= 8, "{opened}");
    eprintln!(
        "{} binary and {} text inputs, {opened} opened, {} errors seen",
        inputs.len(),
        texts.len(),
        seen.len()
    );
    assert_eq!((inputs.len(), texts.len()), (9_401, 176));
}

#[test]
fn pseudonyms_and_index_terms_agree() {
    let g = guard(2, 1);
    let mut rng = XorShift(77);
    let mut ops = Vec::new();
    let mut ours = Vec::new();
    for i in 0..40 {
        let email = Email::parse(&random_value(&mut rng, FieldKind::Email))
            .unwrap_or_else(|e| panic!("{e}"));
        let ctx = Context::new().row(&i.to_string());
        let sealed: Sealed<Email, Improvement> =
            g.seal(&email, &ctx).unwrap_or_else(|e| panic!("{e}"));
        let Anonymized::Pseudonym(p) = g
            .anonymize(&tester(), &sealed, &ctx, Anonymization::Pseudonym)
            .unwrap_or_else(|e| panic!("{e}"))
        else {
            panic!("not a pseudonym")
        };
        ops.push(json!({
            "op": "pseudonym", "version": p.version().get(), "purpose": "improvement",
            "kind": FieldKind::Email.code(), "canonical": hex(&email.canonical_bytes()),
        }));
        ours.push(hex(p.as_bytes()));
        let bits = 20 + (i % 20) as u8;
        let index = BlindIndex::<Email, Service>::builder("by_email")
            .expected_rows(1 << 40)
            .distinct_values(1 << 40)
            .bits(bits)
            .build()
            .unwrap_or_else(|e| panic!("{bits}: {e}"));
        let term = g
            .blind_index(&tester(), &email, &ctx, &index)
            .unwrap_or_else(|e| panic!("{e}"));
        ops.push(json!({
            "op": "index", "version": term.version().get(), "purpose": "service",
            "kind": FieldKind::Email.code(), "name": "by_email", "bits": term.bits(),
            "canonical": hex(&email.canonical_bytes()),
        }));
        ours.push(hex(&term.to_bytes()));
    }
    let answers = independent(&keys(), &[], &ops);
    for (i, want) in ours.iter().enumerate() {
        assert_eq!(answers[i]["ok"], *want.as_str(), "op {i}: {}", ops[i]);
    }
}

/// Contexts that break a rule: both refuse to seal with them, naming the same first problem.
#[test]
fn invalid_contexts_are_refused_alike() {
    let g = guard(1, 1);
    let long = |n: usize| "n".repeat(n);
    let many = |n: usize| -> Parts { (0..n).map(|i| (format!("p{i}"), Vec::new())).collect() };
    let mut cases: Vec<Parts> = vec![
        vec![("".into(), Vec::new())],
        vec![("Row".into(), Vec::new())],
        vec![("row-1".into(), Vec::new())],
        vec![("é".into(), Vec::new())],
        vec![(long(33), Vec::new())],
        vec![(long(32), vec![0; 1025])],
        vec![(long(32), vec![0; 1024]), ("row".into(), vec![1; 1025])],
        vec![("row".into(), Vec::new()), ("row".into(), Vec::new())],
        vec![("row".into(), vec![0; 1025]), ("Row".into(), Vec::new())],
        vec![("Row".into(), vec![0; 1025])],
        vec![("row".into(), Vec::new()), ("row".into(), vec![0; 1025])],
        many(16),
        many(17),
        many(40),
    ];
    let mut with_dup = many(16);
    with_dup.push(("p0".into(), Vec::new()));
    cases.push(with_dup);
    let mut with_bad = many(16);
    with_bad.push(("P".into(), Vec::new()));
    cases.push(with_bad);
    let value = AnyValue::parse(FieldKind::Text, "x").unwrap_or_else(|e| panic!("{e}"));
    let purpose = PurposeId::new("service").unwrap_or_else(|e| panic!("{e}"));
    let mut ops = Vec::new();
    let mut ours = Vec::new();
    for parts in &cases {
        let (ctx, ctx_json) = context(parts);
        ops.push(json!({
            "op": "seal", "kind": FieldKind::Text.code(), "purpose": "service", "version": 1,
            "sealed_at": NOW, "salt": hex(&[0; 16]), "nonce": hex(&[0; 12]), "plaintext": "78",
            "context": ctx_json,
        }));
        ours.push(match g.seal_any(&value, &purpose, &ctx) {
            Ok(_) => json!("sealed"),
            Err(e) => json!({"error": name(&e)}),
        });
    }
    let answers = independent(&keys(), &[], &ops);
    for (i, want) in ours.iter().enumerate() {
        let theirs = if answers[i].get("ok").is_some() {
            json!("sealed")
        } else {
            answers[i].clone()
        };
        assert_eq!(theirs, *want, "context {i}");
    }
    assert_eq!(ours[11], json!("sealed"));
}

/// Shared packages (feature `share`) against `tests/independent/share.py`.
#[cfg(feature = "share")]
mod share {
    use super::*;
    use zeroize::Zeroizing;

    const RECIPIENTS: [&str; 2] = ["authorities", "recipient_with_a_32_byte_name_00"];

    /// Share grants on every kind for two purposes, to two recipients that need no consent.
    fn sharing_guard() -> Guard {
        let kinds = FieldKind::ALL
            .iter()
            .map(|k| format!("{:?}", k.label()))
            .collect::<Vec<_>>()
            .join(", ");
        let manifest = format!(
            r#"
            version = 1
            home_region = "CN"
            [purposes.service]
            legal_basis = "contract"
            retention_days = 30
            [purposes.improvement]
            legal_basis = "contract"
            retention_days = 30
            [roles.{ROLE}.grants.service]
            share = [{kinds}]
            [roles.{ROLE}.grants.improvement]
            share = [{kinds}]
            [recipients.authorities]
            basis = "legal_obligation"
            purposes = ["service", "improvement"]
            [recipients.recipient_with_a_32_byte_name_00]
            basis = "legal_obligation"
            purposes = ["service", "improvement"]
            "#
        );
        let policy = ManifestPolicy::from_toml(&manifest).unwrap_or_else(|e| panic!("{e}"));
        Guard::builder()
            .keyring(keyring(1, 1))
            .policy(policy)
            .audit(NullSink)
            .clock(Arc::new(FixedClock::new(NOW)))
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn private_key(rng: &mut XorShift) -> ([u8; 32], RecipientPrivateKey) {
        let bytes: [u8; 32] = std::array::from_fn(|_| rng.next() as u8);
        let key = RecipientPrivateKey::from_bytes(Zeroizing::new(bytes))
            .unwrap_or_else(|e| panic!("{e}"));
        (bytes, key)
    }

    fn random_bytes(rng: &mut XorShift, n: usize) -> Vec<u8> {
        (0..n).map(|_| rng.next() as u8).collect()
    }

    fn recipient(n: &str) -> RecipientName {
        RecipientName::new(n).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A random value sealed and shared by the crate, with what it was shared for.
    struct Shared {
        plain: Vec<u8>,
        parts: Parts,
        purpose: &'static str,
        recipient: &'static str,
        key: [u8; 32],
        package: SharedPackage,
    }

    fn share_one(g: &Guard, rng: &mut XorShift) -> Shared {
        let kind = *pick(rng, &FieldKind::ALL);
        let value =
            AnyValue::parse(kind, &random_value(rng, kind)).unwrap_or_else(|e| panic!("{e}"));
        let purpose = *pick(rng, &["service", "improvement"]);
        let to = *pick(rng, &RECIPIENTS);
        let parts = random_parts(rng);
        let (ctx, _) = context(&parts);
        let id = PurposeId::new(purpose).unwrap_or_else(|e| panic!("{e}"));
        let sealed = g
            .seal_any(&value, &id, &ctx)
            .unwrap_or_else(|e| panic!("{e}"));
        let plain = g
            .reveal_any(&tester(), &sealed, &ctx)
            .map(|r| r.expose_canonical().to_vec());
        // The policy grants share, not reveal: the canonical bytes come from a value parsed
        // and sealed by an allow-list guard instead.
        let plain = plain.unwrap_or_else(|_| canonical(&value, &guard(1, 1)));
        let (key, private) = private_key(rng);
        let package = g
            .share_any(
                &tester(),
                &sealed,
                &recipient(to),
                &private.public_key(),
                &ctx,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        Shared {
            plain,
            parts,
            purpose,
            recipient: to,
            key,
            package,
        }
    }

    fn open_op(s: &Shared, package: Value, recipient: &str, purpose: &str, parts: &Parts) -> Value {
        let mut op = json!({
            "op": "open", "private_key": hex(&s.key), "recipient": recipient,
            "purpose": purpose, "context": context(parts).1,
        });
        if let (Some(o), Some(p)) = (op.as_object_mut(), package.as_object()) {
            o.extend(p.clone());
        }
        op
    }

    #[test]
    fn packages_cross_between_the_two_implementations() {
        let g = sharing_guard();
        let mut rng = XorShift(0x0005_4a4e_d000);
        let mut ops = Vec::new();
        let mut cases = Vec::new();
        for _ in 0..60 {
            let s = share_one(&g, &mut rng);
            let text = json!({"text": s.package.to_text()});
            // 1. The crate's package opens there for what it was shared for, and only for that.
            ops.push(open_op(&s, text.clone(), s.recipient, s.purpose, &s.parts));
            let other_recipient = if s.recipient == RECIPIENTS[0] {
                RECIPIENTS[1]
            } else {
                RECIPIENTS[0]
            };
            ops.push(open_op(
                &s,
                text.clone(),
                other_recipient,
                s.purpose,
                &s.parts,
            ));
            let other_purpose = if s.purpose == "service" {
                "improvement"
            } else {
                "service"
            };
            ops.push(open_op(
                &s,
                text.clone(),
                s.recipient,
                other_purpose,
                &s.parts,
            ));
            let mut other_parts = s.parts.clone();
            other_parts.push(("zz_extra".into(), Vec::new()));
            if other_parts.len() > 16 {
                other_parts.drain(..2);
            }
            ops.push(open_op(&s, text, s.recipient, s.purpose, &other_parts));
            // 2. A package made there, from fresh ephemeral key material, for the same.
            let (_, private) = (
                s.key,
                RecipientPrivateKey::from_bytes(Zeroizing::new(s.key))
                    .unwrap_or_else(|e| panic!("{e}")),
            );
            let shared_at = NOW - rng.next() % 1_000_000;
            ops.push(json!({
                "op": "seal", "public_key": hex(&private.public_key().to_bytes()),
                "ikm_e": hex(&random_bytes(&mut rng, 32)), "kind": s.package.kind().code(),
                "purpose": s.purpose, "recipient": s.recipient, "shared_at": shared_at,
                "plaintext": hex(&s.plain), "context": context(&s.parts).1,
            }));
            ops.push(json!({"op": "public_key", "private_key": hex(&s.key)}));
            cases.push((s, private, shared_at));
        }
        let v = run("share.py", &json!({ "ops": ops }));
        assert_eq!(v["self_test"]["rfc9180_a21"], true);
        let answers = answers(&v, ops.len());
        for (i, (s, private, shared_at)) in cases.iter().enumerate() {
            let a = &answers[6 * i..6 * i + 6];
            assert_eq!(a[0]["ok"], hex(&s.plain), "case {i}: {}", a[0]);
            for (j, refused) in a[1..4].iter().enumerate() {
                assert_eq!(
                    refused["error"], "Integrity",
                    "case {i}, change {j}: {refused}"
                );
            }
            assert_eq!(
                a[5]["ok"],
                hex(&private.public_key().to_bytes()),
                "case {i}"
            );
            let text = a[4]["ok"]
                .as_str()
                .unwrap_or_else(|| panic!("case {i}: {}", a[4]));
            let theirs = SharedPackage::from_text(text).unwrap_or_else(|e| panic!("case {i}: {e}"));
            assert_eq!(
                (
                    theirs.kind(),
                    theirs.purpose_label(),
                    theirs.recipient(),
                    theirs.shared_at()
                ),
                (s.package.kind(), s.purpose, s.recipient, *shared_at)
            );
            let id = PurposeId::new(s.purpose).unwrap_or_else(|e| panic!("{e}"));
            let opened = open_shared(
                private,
                &theirs,
                &recipient(s.recipient),
                &id,
                &context(&s.parts).0,
            )
            .unwrap_or_else(|e| panic!("case {i}: {e}"));
            assert_eq!(*opened.expose_canonical(), s.plain, "case {i}");
        }
    }

    #[test]
    fn mutated_packages_get_the_same_answer_from_both() {
        let g = sharing_guard();
        let mut rng = XorShift(0x0bad_5ea1);
        let mut ops = Vec::new();
        let mut ours = Vec::new();
        for _ in 0..8 {
            let s = share_one(&g, &mut rng);
            let private = RecipientPrivateKey::from_bytes(Zeroizing::new(s.key))
                .unwrap_or_else(|e| panic!("{e}"));
            let id = PurposeId::new(s.purpose).unwrap_or_else(|e| panic!("{e}"));
            let (ctx, _) = context(&s.parts);
            let header = 12 + s.purpose.len() + s.recipient.len();
            let describe = |parsed: Result<SharedPackage, Error>| -> (Value, Value) {
                match parsed {
                    Err(e) => (json!({"error": name(&e)}), json!({"error": name(&e)})),
                    Ok(p) => {
                        let fields = json!({
                            "kind": p.kind().code(), "purpose": p.purpose_label(),
                            "recipient": p.recipient(), "shared_at": p.shared_at(),
                            "ciphertext_len": p.as_bytes().len() - 60
                                - p.purpose_label().len() - p.recipient().len(),
                        });
                        let opened =
                            match open_shared(&private, &p, &recipient(s.recipient), &id, &ctx) {
                                Ok(r) => json!({"ok": hex(&r.expose_canonical())}),
                                Err(e) => json!({"error": name(&e)}),
                            };
                        (json!({"ok": fields}), opened)
                    }
                }
            };
            for e in binary_edits(
                &mut rng,
                s.package.as_bytes(),
                header + 32,
                s.package.kind(),
            ) {
                ops.push(json!({"op": "parse", "hex": hex(&e)}));
                ops.push(open_op(
                    &s,
                    json!({"hex": hex(&e)}),
                    s.recipient,
                    s.purpose,
                    &s.parts,
                ));
                ours.push((
                    format!("{} bytes", e.len()),
                    describe(SharedPackage::from_bytes(&e)),
                ));
            }
            for t in text_edits(&s.package.to_text(), "fss1:", "fss", 22_017) {
                ops.push(json!({"op": "parse", "text": t}));
                ops.push(open_op(
                    &s,
                    json!({"text": t}),
                    s.recipient,
                    s.purpose,
                    &s.parts,
                ));
                let shown: String = t.chars().take(12).collect();
                ours.push((
                    format!("text {shown}… ({})", t.len()),
                    describe(SharedPackage::from_text(&t)),
                ));
            }
        }
        let v = run("share.py", &json!({ "ops": ops }));
        let answers = answers(&v, ops.len());
        let mut seen = std::collections::BTreeSet::new();
        let mut opened = 0;
        for (i, (what, (parsed, open))) in ours.iter().enumerate() {
            for answer in [parsed, open] {
                if let Some(e) = answer["error"].as_str() {
                    seen.insert(variant(e));
                }
            }
            assert_eq!(answers[2 * i], *parsed, "parse of input {i} ({what})");
            assert_eq!(answers[2 * i + 1], *open, "open of input {i} ({what})");
            opened += usize::from(open.get("ok").is_some());
        }
        // Every check of the parser and of the opener was reached, and some inputs opened.
        let every = [
            "Base64",
            "CiphertextLength",
            "Empty",
            "Integrity",
            "InvalidName",
            "InvalidPurposeLabel",
            "TooLong",
            "Truncated",
            "UnknownKind",
            "UnknownPrefix",
            "UnsupportedVersion",
            "VersionMismatch",
        ];
        assert_eq!(seen, every.iter().map(|e| e.to_string()).collect());
        assert_eq!(ours.len(), 10_369);
        assert!(opened >= 8, "{opened}");
    }
}

/// Keyring files under a `FileKek` against `tests/independent/keyring.py`.
mod keyring_file {
    use super::*;

    /// The crate's reading of a keyring file, in the second implementation's terms.
    fn ours(kek: &FileKek, path: &Path) -> Value {
        match Keyring::load(kek, path) {
            Err(Error::Provider(p)) => json!({"error": format!("{:?}", p.kind())}),
            Err(e) => json!({"error": name(&e)}),
            Ok(k) => {
                let keys: Vec<Value> = k
                    .versions()
                    .iter()
                    .map(|(v, s)| json!({"version": v.get(), "state": s.label()}))
                    .collect();
                let public = k
                    .audit_keys()
                    .map(|(_, c)| hex(&c.verifying_key().to_bytes()))
                    .unwrap_or_default();
                json!({"ok": {"keys": keys, "checkpoint_public": public}})
            }
        }
    }

    /// The second implementation's answer, less what the crate does not show (the roots, the
    /// audit key, the generation and the provider id).
    fn comparable(answer: &Value) -> Value {
        let mut a = answer.clone();
        if let Some(ok) = a.get_mut("ok").and_then(Value::as_object_mut) {
            for hidden in ["audit_key", "generation", "provider"] {
                ok.remove(hidden);
            }
            if let Some(keys) = ok.get_mut("keys").and_then(Value::as_array_mut) {
                for k in keys {
                    if let Some(k) = k.as_object_mut() {
                        k.remove("root");
                    }
                }
            }
        }
        a
    }

    fn read(kek: &[u8], files: &[&Path]) -> Vec<Value> {
        let v = run("keyring.py", &json!({"kek": hex(kek), "files": files}));
        answers(&v, files.len())
    }

    #[test]
    fn a_keyring_file_reads_alike_and_its_keys_open_values_and_verify_the_log() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let kek_path = dir.path().join("kek");
        let kek = FileKek::create(&kek_path).unwrap_or_else(|e| panic!("{e}"));
        let kek_bytes = std::fs::read(&kek_path).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("keyring");
        let g = Guard::builder()
            .keyring(Keyring::create(&kek, &path).unwrap_or_else(|e| panic!("{e}")))
            .policy(allow_all(&PURPOSES))
            .audit(NullSink)
            .clock(Arc::new(FixedClock::new(NOW)))
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        // Values under versions 1-4; then 5 is made, 3 activated, 1 retired.
        let value = AnyValue::parse(FieldKind::Email, "zhang.san@example.com")
            .unwrap_or_else(|e| panic!("{e}"));
        let purpose = PurposeId::new("service").unwrap_or_else(|e| panic!("{e}"));
        let ctx = Context::new().table("t").row("1");
        let mut sealed = Vec::new();
        for _ in 0..4 {
            let s = g
                .seal_any(&value, &purpose, &ctx)
                .unwrap_or_else(|e| panic!("{e}"));
            sealed.push(s);
            g.keyring().rotate().unwrap_or_else(|e| panic!("{e}"));
        }
        g.keyring().activate(v(3)).unwrap_or_else(|e| panic!("{e}"));
        g.keyring().retire(v(1)).unwrap_or_else(|e| panic!("{e}"));

        let answer = &read(&kek_bytes, &[&path])[0];
        assert_eq!(comparable(answer), ours(&kek, &path), "{answer}");
        let states: Vec<&str> = (0..5)
            .map(|i| {
                answer["ok"]["keys"][i]["state"]
                    .as_str()
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(
            states,
            [
                "retired",
                "decrypt_only",
                "active",
                "decrypt_only",
                "decrypt_only"
            ]
        );
        assert_eq!(answer["ok"]["provider"], kek.id());
        // The roots it unwrapped open the crate's values through the envelope implementation.
        let roots: Vec<(u32, [u8; 32])> = (0..5)
            .filter_map(|i| {
                let k = &answer["ok"]["keys"][i];
                let root = k["root"].as_str()?;
                let mut bytes = [0u8; 32];
                for (j, b) in bytes.iter_mut().enumerate() {
                    *b = u8::from_str_radix(&root[2 * j..2 * j + 2], 16).ok()?;
                }
                Some((k["version"].as_u64()? as u32, bytes))
            })
            .collect();
        assert_eq!(roots.len(), 4, "every root but the retired one");
        let ops: Vec<Value> = sealed
            .iter()
            .map(|s| {
                json!({"op": "open", "text": s.to_text(), "context": context(&[
                    ("table".into(), b"t".to_vec()), ("row".into(), b"1".to_vec()),
                ]).1})
            })
            .collect();
        let opened = independent(&roots, &[1], &ops);
        assert_eq!(opened[0]["error"], "Retired", "version 1 is retired");
        assert!(matches!(
            g.reveal_any(&tester(), &sealed[0], &ctx),
            Err(Error::Key(KeyError::Retired { .. }))
        ));
        for o in &opened[1..] {
            assert_eq!(o["ok"], hex(b"zhang.san@example.com"), "{o}");
        }
        // The audit key it unwrapped verifies a log written with the keyring's keys.
        let (audit, checkpoint) = g.keyring().audit_keys().unwrap_or_else(|e| panic!("{e}"));
        let log_dir = dir.path().join("log");
        let (log, _) = ChainedLog::builder(&log_dir)
            .key(audit)
            .checkpoint_key(checkpoint)
            .open()
            .unwrap_or_else(|e| panic!("{e}"));
        append_n(&log, 0, 5);
        log.checkpoint().unwrap_or_else(|e| panic!("{e}"));
        drop(log);
        let unhex = |key: &str| -> Vec<u8> {
            let s = answer["ok"][key].as_str().unwrap_or_default();
            (0..s.len() / 2)
                .filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
                .collect()
        };
        let public: [u8; 32] = unhex("checkpoint_public").try_into().unwrap_or([0; 32]);
        let report = independent_audit_verify(&log_dir, &public, &unhex("audit_key"));
        assert_eq!(report["entries"], 5, "{report}");
        assert_eq!(report["fault"], Value::Null, "{report}");
        assert!(report["checkpoints"].as_u64() >= Some(1), "{report}");
    }

    #[test]
    fn edited_keyring_files_get_the_same_answer_from_both() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let kek_path = dir.path().join("kek");
        let kek = FileKek::create(&kek_path).unwrap_or_else(|e| panic!("{e}"));
        let kek_bytes = std::fs::read(&kek_path).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("keyring");
        let keyring = Keyring::create(&kek, &path).unwrap_or_else(|e| panic!("{e}"));
        keyring.rotate().unwrap_or_else(|e| panic!("{e}"));
        keyring.rotate().unwrap_or_else(|e| panic!("{e}"));
        keyring.retire(v(1)).unwrap_or_else(|e| panic!("{e}"));
        let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
        let body_end = text.iter().position(|&b| b == b'\n').unwrap_or(text.len());
        let body = String::from_utf8_lossy(&text[..body_end]).into_owned();
        let mac = String::from_utf8_lossy(&text[body_end..]).into_owned();

        let mut variants: Vec<Vec<u8>> = vec![text.clone(), Vec::new(), b"\n".to_vec()];
        // A bit flipped in every fifth byte, and truncations.
        for at in (0..text.len()).step_by(5) {
            let mut t = text.clone();
            t[at] ^= 0x01;
            variants.push(t);
        }
        for n in (0..text.len()).step_by(37) {
            variants.push(text[..n].to_vec());
        }
        // Line structure.
        let mac_line = mac
            .trim_end_matches('\n')
            .trim_start_matches('\n')
            .to_owned();
        for t in [
            format!("{body}\n{mac_line}"),
            format!("{body}\r\n{mac_line}\r\n"),
            format!("{body}\n{mac_line}\n\n"),
            format!("{body}\n{mac_line}\n{mac_line}\n"),
            format!("\n{body}\n{mac_line}\n"),
            format!("{body} \n{mac_line}\n"),
            format!("{body}\n{}\n", mac_line.to_uppercase()),
            format!("{body}\n{}\n", mac_line.replace("{\"mac\":", "{\"mac\" :")),
            format!("{body}\n{}\n", mac_line.replace('}', ",\"x\":1}")),
            format!("{body}\n{{}}\n"),
            format!("{body}\n"),
            format!("{body}{}\n", " ".repeat((1 << 20) - body.len())),
        ] {
            variants.push(t.into_bytes());
        }
        // Members: reordered, missing, unknown, repeated, of another value.
        let swap = body.replacen(
            "\"format\":\"fieldseal-keyring\",\"version\":1",
            "\"version\":1,\"format\":\"fieldseal-keyring\"",
            1,
        );
        let edits = [
            swap,
            body.replacen("\"version\":1", "\"version\":2", 1),
            body.replacen("\"version\":1", "\"version\":\"1\"", 1),
            body.replacen(
                "\"format\":\"fieldseal-keyring\"",
                "\"format\":\"other\"",
                1,
            ),
            body.replacen("{", "{\"extra\":0,", 1),
            body.replacen("{", "{\"format\":\"fieldseal-keyring\",", 1),
            body.replacen("\"state\":\"retired\"", "\"state\":\"decrypt_only\"", 1),
            body.replacen("\"state\":\"retired\"", "\"state\":\"gone\"", 1),
            body.replacen("\"state\":\"active\"", "\"state\":\"decrypt_only\"", 1),
            body.replacen("\"version\":2,", "\"version\":9,", 1),
            body.replacen("\"version\":3,", "\"version\":0,", 1),
            body.replacen(",\"generation\":", ",\"generation\":1", 1),
            body.replacen("\"provider\":\"file:", "\"provider\":\"env:", 1),
            body.replacen("\"file_key\":\"", "\"file_key\":\"A", 1),
            body.replacen("\"file_key\":\"", "\"file_key\":\"AAAA", 1),
            // JSON that Python's parser would take: a signed zero, a lone surrogate.
            body.replacen("\"version\":1", "\"version\":-0", 1),
            body.replacen("\"provider\":\"", "\"provider\":\"\\ud800", 1),
            body.replacen("\"generation\":", "\"generation\":-", 1),
        ];
        for b in edits {
            variants.push(format!("{b}{mac}").into_bytes());
        }
        // The file key's base64 replaced: too short to unwrap; unpadded; non-zero trailing bits.
        let start = body.find("\"file_key\":\"").unwrap_or(0) + 12;
        let end = body[start..].find('"').map_or(start, |e| start + e);
        for value in ["AAAA", "AAAAAA==", "AAAAAA", "AAAAAB==", "AAAAAA=="] {
            variants.push(format!("{}{value}{}{mac}", &body[..start], &body[end..]).into_bytes());
        }
        let mut files = Vec::new();
        for (i, bytes) in variants.iter().enumerate() {
            let p = dir.path().join(format!("variant-{i}"));
            std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("{e}"));
            files.push(p);
        }
        let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
        let theirs = read(&kek_bytes, &refs);
        let mut seen = std::collections::BTreeSet::new();
        for (i, p) in files.iter().enumerate() {
            let mine = ours(&kek, p);
            if let Some(e) = mine["error"].as_str() {
                seen.insert(variant(e));
            }
            assert_eq!(
                comparable(&theirs[i]),
                mine,
                "variant {i}: {}",
                String::from_utf8_lossy(&variants[i])
                    .chars()
                    .take(400)
                    .collect::<String>()
            );
        }
        // Edits past the MAC: re-MACed by the second implementation with the file key.
        let parsed: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}"));
        type Edit = fn(&mut Value);
        let remacs: [(&str, Edit); 15] = [
            ("unchanged (members re-ordered)", |_| {}),
            ("two active", |b| b["keys"][1]["state"] = json!("active")),
            ("none active", |b| {
                b["keys"][2]["state"] = json!("decrypt_only")
            }),
            ("no keys", |b| b["keys"] = json!([])),
            ("version 0", |b| b["keys"][1]["version"] = json!(0)),
            ("unknown state", |b| b["keys"][1]["state"] = json!("gone")),
            ("a repeated retired version", |b| {
                b["keys"][1]["state"] = json!("retired");
                b["keys"][1]["version"] = json!(1);
            }),
            ("a repeated live version", |b| {
                b["keys"][1]["version"] = json!(3)
            }),
            ("keys in reverse order", |b| {
                if let Some(k) = b["keys"].as_array_mut() {
                    k.reverse();
                }
            }),
            ("two roots swapped", |b| {
                let k2 = b["keys"][1]["key"].clone();
                b["keys"][1]["key"] = b["keys"][2]["key"].clone();
                b["keys"][2]["key"] = k2;
            }),
            ("a retired root damaged", |b| {
                b["keys"][0]["key"] = json!("AAAA")
            }),
            ("a live root too short", |b| {
                b["keys"][2]["key"] = json!("AAAA")
            }),
            ("audit and checkpoint swapped", |b| {
                let a = b["audit_key"].clone();
                b["audit_key"] = b["checkpoint_key"].clone();
                b["checkpoint_key"] = a;
            }),
            ("audit key not base64", |b| b["audit_key"] = json!("!!")),
            ("an unknown member in a key", |b| {
                b["keys"][1]["note"] = json!(1)
            }),
        ];
        let mut remac = Vec::new();
        let mut remac_files = Vec::new();
        let mut what: Vec<String> = Vec::new();
        for (i, (name, edit)) in remacs.iter().enumerate() {
            let mut b = parsed.clone();
            edit(&mut b);
            let dst = dir.path().join(format!("remac-{i}"));
            remac.push(json!({"src": path, "dst": dst, "body": b.to_string()}));
            remac_files.push(dst);
            what.push((*name).to_owned());
        }
        // Secrets of another length than 32 bytes, sealed under the file key: refused, but not
        // a retired root's (not opened on load).
        for (member, name, len) in [
            ("audit_key", "audit", 31),
            ("checkpoint_key", "checkpoint", 33),
            ("keys.2.key", "root/3", 16),
            ("keys.0.key", "root/1", 16),
        ] {
            let dst = dir.path().join(format!("reseal-{member}"));
            remac.push(json!({
                "src": path, "dst": dst, "body": body,
                "reseal": {member: [name, hex(&vec![9; len])]},
            }));
            remac_files.push(dst);
            what.push(format!("{member} of {len} bytes"));
        }
        // A file of exactly 1 MiB (the body padded with trailing spaces) loads; one byte more
        // does not. The MAC line is 75 bytes with its newline.
        for extra in [0, 1] {
            let pad = (1 << 20) - (body.len() + 1 + 75) + extra;
            let dst = dir.path().join(format!("padded-{extra}"));
            remac.push(
                json!({"src": path, "dst": dst, "body": format!("{body}{}", " ".repeat(pad))}),
            );
            remac_files.push(dst);
            what.push(format!("1 MiB + {extra}"));
        }
        let v = run(
            "keyring.py",
            &json!({"kek": hex(&kek_bytes), "remac": remac, "files": remac_files}),
        );
        let theirs = answers(&v, remac_files.len());
        for (i, p) in remac_files.iter().enumerate() {
            let mine = ours(&kek, p);
            if let Some(e) = mine["error"].as_str() {
                seen.insert(variant(e));
            }
            assert_eq!(comparable(&theirs[i]), mine, "re-MACed: {}", what[i]);
        }
        let sizes: Vec<u64> = remac_files[remac_files.len() - 2..]
            .iter()
            .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
            .collect();
        assert_eq!(sizes, [1 << 20, (1 << 20) + 1]);
        assert!(
            theirs[theirs.len() - 2].get("ok").is_some(),
            "exactly 1 MiB loads"
        );
        let errors = [
            "DuplicateVersion",
            "FileIntegrity",
            "FileMalformed",
            "InvalidLength",
            "NoActiveKey",
            "UnsupportedFileVersion",
            "Unwrap",
            "WrongProvider",
        ];
        // Another KEK: another provider id.
        let other_path = dir.path().join("other-kek");
        let other = FileKek::create(&other_path).unwrap_or_else(|e| panic!("{e}"));
        let other_bytes = std::fs::read(&other_path).unwrap_or_else(|e| panic!("{e}"));
        let theirs = read(&other_bytes, &[&path]);
        assert_eq!(comparable(&theirs[0]), ours(&other, &path));
        assert_eq!(seen, errors.iter().map(|e| e.to_string()).collect());
        eprintln!(
            "{} variants and {} re-MACed bodies, errors seen: {seen:?}",
            variants.len(),
            remacs.len()
        );
    }
}
