//! A writer for the entry JSON of the append hot path, byte for byte what `serde_json` writes
//! for the same record (property-tested against it: `serde_json` of the owned
//! [`EventRecord`](super::EventRecord) stays the definition, and the strict parser re-serializes
//! every line with it).
//!
//! `serde_json` escapes each string through its generic formatter, which is most of the cost
//! of an entry's JSON. Here a string that needs no escape (no `"`, `\` or control character:
//! every label, hex digest and ordinary identifier) is copied in one piece after one scan; any
//! other string is handed to `serde_json` itself.

/// Appends `s` as a JSON string (quoted, escaped as `serde_json` escapes).
pub(crate) fn push_str(out: &mut Vec<u8>, s: &str) {
    if needs_escape(s.as_bytes()) {
        // Writing a `&str` into a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// Appends the JSON string of `file:line` (a call site), as `serde_json` writes the same text.
pub(crate) fn push_site(out: &mut Vec<u8>, file: &str, line: u32) {
    if needs_escape(file.as_bytes()) {
        let _ = serde_json::to_writer(&mut *out, &format!("{file}:{line}"));
    } else {
        out.push(b'"');
        out.extend_from_slice(file.as_bytes());
        out.push(b':');
        push_u64(out, u64::from(line));
        out.push(b'"');
    }
}

/// Whether `serde_json` would escape any byte of `b` (`"`, `\` or a control character below
/// 0x20; it writes DEL and every non-ASCII character as they are). A fold without an early
/// exit, so that it vectorizes.
fn needs_escape(b: &[u8]) -> bool {
    b.iter().fold(false, |acc, &c| acc | escaped(c))
}

/// Whether `serde_json` escapes byte `c`.
fn escaped(c: u8) -> bool {
    matches!(c, 0..=0x1f | b'"' | b'\\')
}

/// Appends the decimal digits of `n` (as `serde_json` writes an unsigned integer).
pub(crate) fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    // A u64 has at most 20 digits, written from the right.
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    for d in digits.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        at -= 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(at..).unwrap_or_default());
}

/// Appends `,"name":` (or `{"name":` for the first member): `name` is a constant member name
/// that needs no escape.
pub(crate) fn push_key(out: &mut Vec<u8>, first: bool, name: &str) {
    out.push(if first { b'{' } else { b',' });
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn serde(s: &str) -> Vec<u8> {
        serde_json::to_vec(s).unwrap_or_default()
    }

    #[test]
    fn every_escaped_byte_is_escaped_and_no_other() {
        for c in 0u8..=0x7f {
            let s = format!("a{}b", char::from(c));
            let mut out = Vec::new();
            push_str(&mut out, &s);
            assert_eq!(out, serde(&s), "byte {c:#x}");
            assert_eq!(
                needs_escape(s.as_bytes()),
                c < 0x20 || c == b'"' || c == b'\\',
                "byte {c:#x}"
            );
        }
        // Two escaped bytes do not cancel out (the fold is an `or`), anywhere in the string.
        for pair in ["\"\"", "\\\\", "\n\"", "\u{1f}\\"] {
            for s in [
                pair.to_owned(),
                format!("a{pair}b"),
                format!("{}{pair}", "x".repeat(70)),
            ] {
                let mut out = Vec::new();
                push_str(&mut out, &s);
                assert_eq!(out, serde(&s), "{s:?}");
            }
        }
        // One escaped byte anywhere in a long string (past any vector width) is seen.
        for at in [0, 15, 16, 31, 32, 63, 64, 200] {
            let mut s = "x".repeat(201);
            s.replace_range(at..=at, "\"");
            let mut out = Vec::new();
            push_str(&mut out, &s);
            assert_eq!(out, serde(&s), "at {at}");
        }
    }

    #[test]
    fn integers_and_sites_as_serde_writes_them() {
        for n in [0, 1, 9, 10, 99, 100, 12_345, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, n);
            assert_eq!(out, serde_json::to_vec(&n).unwrap_or_default());
        }
        for (file, line) in [("src/a.rs", 7), ("C:\\x\\y.rs", 1), ("q\"\n.rs", u32::MAX)] {
            let mut out = Vec::new();
            push_site(&mut out, file, line);
            assert_eq!(out, serde(&format!("{file}:{line}")), "{file}");
        }
        let mut out = Vec::new();
        push_key(&mut out, true, "time");
        push_key(&mut out, false, "seq");
        assert_eq!(out, b"{\"time\":,\"seq\":");
    }

    proptest! {
        #[test]
        fn strings_as_serde_writes_them(s in any::<String>(), t in "[ -~\\n\\t\"\\\\]{0,80}") {
            for s in [&s, &t] {
                let mut out = b"x".to_vec();
                push_str(&mut out, s);
                prop_assert_eq!(&out[1..], &serde(s)[..]);
            }
        }

        #[test]
        fn numbers_and_sites_as_serde_writes_them(n in any::<u64>(), f in any::<String>(), l in any::<u32>()) {
            let mut out = Vec::new();
            push_u64(&mut out, n);
            prop_assert_eq!(out, serde_json::to_vec(&n).unwrap_or_default());
            let mut out = Vec::new();
            push_site(&mut out, &f, l);
            prop_assert_eq!(out, serde(&format!("{f}:{l}")));
        }
    }
}
