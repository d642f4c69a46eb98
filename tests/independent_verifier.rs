//! SECURITY.md's audit log format, implemented a second time from the text alone
//! (`tests/independent/audit_verify.py`: Python's standard library, and Ed25519 verification
//! written out from RFC 8032), run over logs that `ChainedLog` wrote and over tampered copies of
//! them. Both verifiers must agree on every log: how many entries and checkpoints verified, and
//! the first bad seq. A disagreement is a bug in the crate or in SECURITY.md.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use fieldseal::*;

/// What a verifier says about a log.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    entries: u64,
    checkpoints: u64,
    fault: Option<u64>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The independent verifier's answer, and its reason for a fault.
fn independent(dir: &Path) -> (Answer, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/independent/audit_verify.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(dir)
        .arg(dir.join("checkpoints.log"))
        .arg(hex(&AUDIT_KEY))
        .arg(hex(&ckpt_public().to_bytes()))
        .output()
        .unwrap_or_else(|e| {
            panic!("python3 is needed for this test (scripts/test installs it): {e}")
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "no answer from the independent verifier ({e}): {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let answer = Answer {
        entries: v["entries"].as_u64().unwrap_or(u64::MAX),
        checkpoints: v["checkpoints"].as_u64().unwrap_or(u64::MAX),
        fault: v["fault"].as_u64(),
    };
    // Its exit status says the same as its answer.
    assert_eq!(out.status.code(), Some(i32::from(answer.fault.is_some())));
    (answer, v["why"].as_str().unwrap_or_default().to_owned())
}

/// `verify_log`'s answer.
fn ours(dir: &Path) -> Answer {
    let r = verify_dir(dir);
    Answer {
        entries: r.entries,
        checkpoints: r.checkpoints as u64,
        fault: r.fault.map(|f| f.seq),
    }
}

/// A log of every shape of entry the crate writes: sample reveals with and without a subject,
/// reveals through a guard by an accessor whose principal and roles need every JSON escape (and
/// some characters that must not be escaped), a denial, an application event with recipient and
/// reference, a record batch (`count` and `fields`); checkpoints along the way.
fn write_log(dir: &Path) -> u64 {
    let log = std::sync::Arc::new(open_log(dir, Durability::Buffered, 7).0);
    append_n(&log, 0, 7);
    log.checkpoint().unwrap_or_else(|e| panic!("{e}"));
    append_n(&log, 7, 12);
    log.checkpoint().unwrap_or_else(|e| panic!("{e}"));
    for n in 12..15 {
        fieldseal::internal::testing::with_sample_event(n, None, |e| {
            log.append(e).unwrap_or_else(|e| panic!("{e}"))
        });
    }
    let guard = Guard::builder()
        .keyring(Keyring::generate().unwrap_or_else(|e| panic!("{e}")))
        .policy(allow_all(&["service", "legal"]))
        .audit(std::sync::Arc::clone(&log))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let ctx = Context::new()
        .table("users")
        .row("7")
        .subject(&SubjectId::new("subject \"7\"\n"));
    let odd = Accessor::new(
        "ops \"q\" \\ / \u{1}\u{8}\u{9}\u{a}\u{c}\u{d}\u{1f}\u{7f} é 漢 😀",
        [Role::new(ROLE), Role::new("r\u{0}le/ü")],
    );
    let sealed: Sealed<Text, builtin::Service> = guard
        .seal(
            &Text::parse("hello").unwrap_or_else(|e| panic!("{e}")),
            &ctx,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let revealed = guard
        .reveal(&odd, &sealed, &ctx)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(revealed.expose_secret().as_str(), "hello");
    let stranger = Accessor::new("stranger", [Role::new("nobody")]);
    assert!(guard.reveal(&stranger, &sealed, &ctx).is_err(), "denied");
    let name = AppEventName::new("legal_disclosure").unwrap_or_else(|e| panic!("{e}"));
    let event = AppEvent::new(name)
        .purpose(PurposeId::new("legal").unwrap_or_else(|e| panic!("{e}")))
        .kind(FieldKind::IdNumber)
        .context(ctx.clone())
        .recipient(RecipientName::new("authorities").unwrap_or_else(|e| panic!("{e}")))
        .reference(Reference::new("ORDER-2026/118#a.b:c").unwrap_or_else(|e| panic!("{e}")));
    guard
        .record_event(&odd, &event)
        .unwrap_or_else(|e| panic!("{e}"));
    let fields: Vec<AnySealed> = ["a", "b"]
        .iter()
        .map(|t| {
            let value = AnyValue::parse(FieldKind::Text, t).unwrap_or_else(|e| panic!("{e}"));
            let purpose = PurposeId::new("service").unwrap_or_else(|e| panic!("{e}"));
            guard
                .seal_any(&value, &purpose, &ctx)
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    let record = guard
        .reveal_record(&odd, &fields, &ctx)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(record.opened(), 2);
    log.checkpoint().unwrap_or_else(|e| panic!("{e}"));
    append_n(&log, 100, 110);
    log.checkpoint().unwrap_or_else(|e| panic!("{e}"));
    drop(guard);
    drop(log);
    let written = verify_dir(dir);
    assert!(written.is_valid(), "{:?}", written.fault);
    written.entries
}

/// A copy of the log in `from` (segments and checkpoints) in a new directory.
fn copy(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for name in ["audit-000001.log", "checkpoints.log"] {
        std::fs::copy(from.join(name), to.path().join(name)).unwrap_or_else(|e| panic!("{e}"));
    }
    to
}

/// The log's lines, each with its newline.
fn lines(dir: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(dir.join("audit-000001.log")).unwrap_or_else(|e| panic!("{e}"));
    data.split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

fn segment(dir: &Path) -> PathBuf {
    dir.join("audit-000001.log")
}

/// Both verifiers' answers agree, and say `fault`.
fn agree(dir: &Path, what: &str, fault: Option<u64>) {
    let (theirs, why) = independent(dir);
    let ours = ours(dir);
    assert_eq!(ours.fault, fault, "{what}: verify_log");
    assert_eq!(
        theirs.fault, fault,
        "{what}: the independent verifier ({why})"
    );
    if fault.is_none() {
        assert_eq!(theirs, ours, "{what}");
    }
}

#[test]
fn both_verifiers_accept_every_entry_the_log_writes() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let n = write_log(dir.path());
    assert!(n >= 29, "{n} entries");
    let (theirs, why) = independent(dir.path());
    assert_eq!(theirs, ours(dir.path()), "{why}");
    assert_eq!((theirs.entries, theirs.fault), (n, None));
    assert!(theirs.checkpoints >= 4, "{theirs:?}");
    // The odd accessor's line really holds the escapes (and the raw characters) verified.
    let data = std::fs::read(segment(dir.path())).unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8(data).unwrap_or_else(|e| panic!("{e}"));
    assert!(text.contains(r#""principal":"ops \"q\" \\ / \u0001\b\t\n\f\r\u001f"#));
    assert!(text.contains("\u{7f} é 漢 😀\""));
    assert!(text.contains(r#""fields":[{"purpose":"service","kind":"text","outcome":"allowed"}"#));
    assert!(text.contains(r#""reference":"ORDER-2026/118#a.b:c""#));
}

#[test]
fn both_verifiers_find_the_same_first_fault() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let n = write_log(dir.path());
    let original = lines(dir.path());
    let write = |to: &Path, ls: &[Vec<u8>]| {
        std::fs::write(segment(to), ls.concat()).unwrap_or_else(|e| panic!("{e}"));
    };
    let mut tried = 0;
    // One byte changed, at positions spread over the line (seq, prev, the entry's members, the
    // escapes, the mac), in lines at the start, middle and end.
    for k in [0, 15, 16, 17, 18, original.len() - 1] {
        let line = &original[k];
        for at in [
            2,
            9,
            20,
            80,
            line.len() / 2,
            line.len() - 40,
            line.len() - 3,
        ] {
            for flip in [0x01, 0x20] {
                let mut ls = original.clone();
                ls[k][at] ^= flip;
                let to = copy(dir.path());
                write(to.path(), &ls);
                agree(
                    to.path(),
                    &format!("line {} byte {at} ^ {flip:#x}", k + 1),
                    Some(k as u64 + 1),
                );
                tried += 1;
            }
        }
    }
    for k in [0, 7, 16, 20] {
        let to = copy(dir.path());
        let mut ls = original.clone();
        ls.remove(k);
        write(to.path(), &ls);
        agree(
            to.path(),
            &format!("line {} deleted", k + 1),
            Some(k as u64 + 1),
        );
        let mut ls = original.clone();
        ls.swap(k, k + 1);
        write(to.path(), &ls);
        agree(
            to.path(),
            &format!("lines {} and {} swapped", k + 1, k + 2),
            Some(k as u64 + 1),
        );
        let mut ls = original.clone();
        ls.insert(k, original[k].clone());
        write(to.path(), &ls);
        agree(
            to.path(),
            &format!("line {} duplicated", k + 1),
            Some(k as u64 + 2),
        );
        tried += 3;
    }
    // The last line torn (no newline), then cut off whole: behind the last checkpoint.
    let to = copy(dir.path());
    let mut ls = original.clone();
    if let Some(last) = ls.last_mut() {
        last.truncate(last.len() / 2);
    }
    write(to.path(), &ls);
    agree(to.path(), "last line torn", Some(n));
    ls.pop();
    write(to.path(), &ls);
    agree(to.path(), "last line cut", Some(n));
    tried += 2;
    // Checkpoints: a signature byte changed in the second (the genesis and the first stay
    // valid: the first entry no longer covered is one past the first's seq), then the file gone.
    let to = copy(dir.path());
    let ckpt_path = to.path().join("checkpoints.log");
    let ckpt = std::fs::read(&ckpt_path).unwrap_or_else(|e| panic!("{e}"));
    let mut ck: Vec<Vec<u8>> = ckpt
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    assert!(ck.len() >= 4, "{} checkpoints", ck.len());
    let first: u64 = String::from_utf8_lossy(&ck[1])
        .split(['=', ':', ','])
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a checkpoint's seq"));
    let sig_at = ck[2].len() - 10;
    ck[2][sig_at] ^= 0x01;
    std::fs::write(&ckpt_path, ck.concat()).unwrap_or_else(|e| panic!("{e}"));
    agree(to.path(), "a checkpoint's signature", Some(first + 1));
    std::fs::remove_file(&ckpt_path).unwrap_or_else(|e| panic!("{e}"));
    agree(to.path(), "no checkpoints", Some(1));
    tried += 2;
    assert!(tried >= 100, "{tried} tamperings");
}
