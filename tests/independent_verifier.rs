//! SECURITY.md's audit log format, implemented a second time from the text alone
//! (`tests/independent/audit_verify.py`: Python's standard library, and Ed25519 verification
//! written out from RFC 8032), run over logs that `ChainedLog` wrote and over tampered copies of
//! them. Both verifiers must agree on every log: how many entries verified, the first bad seq,
//! and for a sound log how many checkpoints. A disagreement is a bug in the crate or in
//! SECURITY.md. Some tampered lines and checkpoints carry a valid MAC or signature but break the
//! canonical form, so that a verifier which checked only the MAC would be caught too.

mod common;

use std::path::{Path, PathBuf};

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
    let v = independent_audit_verify(dir, &ckpt_public().to_bytes(), &AUDIT_KEY);
    let answer = Answer {
        entries: v["entries"].as_u64().unwrap_or(u64::MAX),
        checkpoints: v["checkpoints"].as_u64().unwrap_or(u64::MAX),
        fault: v["fault"].as_u64(),
    };
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
    assert_eq!(theirs.entries, ours.entries, "{what}: entries");
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
    // escapes, the mac and the closing quote after it), in lines at the start, middle and end.
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

/// The chain-MAC key of the test audit key (32 bytes `11`), as SECURITY.md's known answer
/// gives it.
const CHAIN_MAC_KEY: &str = "addeedc1a9a3ad8139c419f68f13c14eca7ece0951478b4fede08a31e4172175";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

/// `line` (with its newline) rewritten by `edit` on its `U_N` and given the MAC that `U_N`'s new
/// bytes call for: a line whose MAC verifies, whatever the edit did to its form.
fn remac(line: &[u8], edit: impl Fn(&str) -> String) -> Vec<u8> {
    use hmac::{Hmac, KeyInit, Mac};
    let text = std::str::from_utf8(line).unwrap_or_else(|e| panic!("{e}"));
    // `,"mac":"` + 64 hex digits + `"}` + newline.
    let u = format!("{}}}", &text[..text.len() - 75]);
    let prev_at = u.find("\"prev\":\"").unwrap_or_else(|| panic!("prev")) + 8;
    let prev = unhex(&u[prev_at..prev_at + 64]);
    let edited = edit(&u);
    let mut m = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&unhex(CHAIN_MAC_KEY))
        .unwrap_or_else(|e| panic!("{e}"));
    m.update(edited.as_bytes());
    m.update(&prev);
    let mac = hex(&m.finalize().into_bytes());
    format!("{},\"mac\":\"{mac}\"}}\n", &edited[..edited.len() - 1]).into_bytes()
}

/// A named edit of a line's `U_N`.
type Edit<'a> = (&'a str, &'a dyn Fn(&str) -> String);

#[test]
fn both_verifiers_refuse_a_valid_mac_on_a_line_or_checkpoint_of_another_form() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write_log(dir.path());
    let original = lines(dir.path());
    // The same line with its MAC made anew verifies: the crafting is right.
    let to = copy(dir.path());
    let mut ls = original.clone();
    ls[2] = remac(&original[2], str::to_owned);
    assert_eq!(ls[2], original[2]);
    let k = 2;
    let forms: [Edit<'_>; 8] = [
        ("an escape serde_json does not write", &|u| {
            u.replacen("\"principal\":\"p", "\"principal\":\"\\u0070", 1)
        }),
        ("an escaped slash", &|u| u.replacen('/', "\\/", 1)),
        ("whitespace", &|u| u.replacen("{\"seq\":", "{\"seq\": ", 1)),
        ("uppercase hex", &|u| {
            let at = u
                .find("\"context\":\"")
                .unwrap_or_else(|| panic!("context"))
                + 11;
            format!(
                "{}{}{}",
                &u[..at],
                u[at..at + 32].to_uppercase(),
                &u[at + 32..]
            )
        }),
        ("an optional member as null", &|u| {
            format!("{},\"count\":null}}}}", &u[..u.len() - 2])
        }),
        ("a number with a fraction", &|u| {
            let at = u.find("\"time\":").unwrap_or_else(|| panic!("time")) + 7;
            let end = at + u[at..].find(',').unwrap_or_else(|| panic!("end"));
            format!("{}{}.0{}", &u[..at], &u[at..end], &u[end..])
        }),
        ("a member left out", &|u| {
            u.replacen(",\"kind\":\"phone_number\"", "", 1)
        }),
        ("a member twice", &|u| {
            format!("{},\"time\":0}}}}", &u[..u.len() - 2])
        }),
    ];
    for (what, edit) in forms {
        let mut ls = original.clone();
        ls[k] = remac(&original[k], edit);
        assert_ne!(ls[k], original[k], "{what}: the edit changed nothing");
        std::fs::write(segment(to.path()), ls.concat()).unwrap_or_else(|e| panic!("{e}"));
        agree(to.path(), what, Some(k as u64 + 1));
    }
    // A checkpoint in array form under its own (valid) signature, and one whose signature's S
    // has the group order added (valid for a verifier that does not insist on S < L).
    let ckpt_path = to.path().join("checkpoints.log");
    std::fs::write(segment(to.path()), original.concat()).unwrap_or_else(|e| panic!("{e}"));
    let ckpt = std::fs::read(dir.path().join("checkpoints.log")).unwrap_or_else(|e| panic!("{e}"));
    let ck: Vec<String> = String::from_utf8(ckpt)
        .unwrap_or_else(|e| panic!("{e}"))
        .split_inclusive('\n')
        .map(str::to_owned)
        .collect();
    let first: u64 = ck[1]
        .split([':', ','])
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a checkpoint's seq"));
    let v: serde_json::Value = serde_json::from_str(&ck[2]).unwrap_or_else(|e| panic!("{e}"));
    let array_form = format!(
        "[[\"seq\",{}],[\"head\",{}],[\"time\",{}],[\"sig\",{}]]\n",
        v["seq"], v["head"], v["time"], v["sig"]
    );
    let sig = unhex(v["sig"].as_str().unwrap_or_default());
    // The group order L, little-endian (RFC 8032).
    let l = unhex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");
    let mut s_plus_l = sig.clone();
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(sig[32 + i]) + u16::from(l[i]) + carry;
        s_plus_l[32 + i] = (sum & 0xff) as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
    let s_plus_l_line = ck[2].replace(v["sig"].as_str().unwrap_or_default(), &hex(&s_plus_l));
    for (what, line) in [
        ("a checkpoint in array form", array_form),
        ("a signature with S + L", s_plus_l_line),
    ] {
        let mut lines = ck.clone();
        lines[2] = line;
        std::fs::write(&ckpt_path, lines.concat()).unwrap_or_else(|e| panic!("{e}"));
        agree(to.path(), what, Some(first + 1));
    }
    // Checkpoints out of order, and the log edited after the one moved back.
    let mut lines = ck.clone();
    lines.swap(1, 2);
    std::fs::write(&ckpt_path, lines.concat()).unwrap_or_else(|e| panic!("{e}"));
    agree(to.path(), "checkpoints out of order", Some(first));
    let mut ls = original.clone();
    ls[first as usize + 3][2] ^= 0x01;
    std::fs::write(segment(to.path()), ls.concat()).unwrap_or_else(|e| panic!("{e}"));
    agree(
        to.path(),
        "checkpoints out of order, log edited after",
        Some(first),
    );
    // A checkpoint beyond the end of a torn log, then the first one again (out of order): the
    // checkpoints are read on past the truncation, with the log edited before the tear or not.
    let mut lines = ck.clone();
    lines.push(ck[1].clone());
    std::fs::write(&ckpt_path, lines.concat()).unwrap_or_else(|e| panic!("{e}"));
    let mut ls = original.clone();
    if let Some(last) = ls.last_mut() {
        last.truncate(last.len() / 2);
    }
    std::fs::write(segment(to.path()), ls.concat()).unwrap_or_else(|e| panic!("{e}"));
    agree(
        to.path(),
        "torn, a checkpoint out of order after one beyond",
        Some(first),
    );
    ls[first as usize + 3][2] ^= 0x01;
    std::fs::write(segment(to.path()), ls.concat()).unwrap_or_else(|e| panic!("{e}"));
    agree(
        to.path(),
        "edited and torn, the same checkpoints",
        Some(first),
    );
}

#[test]
fn both_verifiers_follow_the_chain_across_segments() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (log, _) = ChainedLog::builder(dir.path())
        .key(AuditKey::from_bytes(AUDIT_KEY))
        .checkpoint_key(CheckpointSigningKey::from_bytes(CKPT_KEY))
        .durability(Durability::Buffered)
        .max_segment_bytes(2_000)
        .open()
        .unwrap_or_else(|e| panic!("{e}"));
    append_n(&log, 0, 20);
    log.checkpoint().unwrap_or_else(|e| panic!("{e}"));
    drop(log);
    let seg = |n: u64| dir.path().join(format!("audit-{n:06}.log"));
    assert!(seg(3).exists(), "at least three segments");
    agree(dir.path(), "segments", None);
    let first = std::fs::read(seg(1)).unwrap_or_else(|e| panic!("{e}"));
    let second = std::fs::read(seg(2)).unwrap_or_else(|e| panic!("{e}"));
    let in_first = first.iter().filter(|&&b| b == b'\n').count() as u64;
    // The second segment's first line begun at the end of the first: cut across the boundary.
    let to = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for entry in std::fs::read_dir(dir.path()).unwrap_or_else(|e| panic!("{e}")) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        if let Some(name) = path.file_name() {
            std::fs::copy(&path, to.path().join(name)).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let to_seg = |n: u64| to.path().join(format!("audit-{n:06}.log"));
    std::fs::write(to_seg(1), [&first[..], &second[..10]].concat())
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(to_seg(2), &second[10..]).unwrap_or_else(|e| panic!("{e}"));
    agree(
        to.path(),
        "a line cut across two segments",
        Some(in_first + 1),
    );
    // The second segment gone: the chain breaks at its first seq.
    std::fs::write(to_seg(1), &first).unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_file(to_seg(2)).unwrap_or_else(|e| panic!("{e}"));
    agree(to.path(), "a segment deleted", Some(in_first + 1));
}
