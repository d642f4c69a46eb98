//! The byte formats of log lines and checkpoint lines, shared by the writer, recovery and the
//! verifier.
//!
//! Log line (one per entry, `\n`-terminated):
//! `{"seq":N,"prev":"<64 hex>","entry":{...},"mac":"<64 hex>"}` where
//! `mac_N = HMAC-SHA256(mac key, U_N ‖ mac_{N-1})`, `U_N` is the line without its `mac` member
//! (`{"seq":N,"prev":"…","entry":{…}}`, the serde_json serialization of those three fields in
//! that order), `prev` is the hex of `mac_{N-1}`, sequence numbers start at 1 and `mac_0` is 32
//! zero bytes.
//!
//! Checkpoint line: `{"seq":N,"head":"<64 hex>","time":T,"sig":"<128 hex>"}`, where `sig` is
//! Ed25519 over `lp("fieldseal/v1/audit-checkpoint") ‖ seq (u64 BE) ‖ head (32 bytes) ‖ time
//! (u64 BE)`.
//!
//! Both are parsed strictly: a line must re-serialize to exactly its own bytes.

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::event::EventRecord;
use super::keys::{CheckpointSigningKey, CheckpointVerifyingKey, extend_hex, hex, unhex};
use crate::crypto::kdf::push_lp;

/// Longest accepted line, newline excluded.
pub(crate) const MAX_LINE: usize = 64 * 1024;

/// Whether an entry of `len` bytes makes a line the verifier accepts: seq, prev and mac add
/// under 200 bytes, and a line over [`MAX_LINE`] is refused, so a writer (the log or the
/// PostgreSQL sink) refuses a longer entry (the operation fails closed) rather than write it.
pub(crate) fn entry_fits(len: usize) -> bool {
    len + 256 <= MAX_LINE
}

const CHECKPOINT_DOMAIN: &[u8] = b"fieldseal/v1/audit-checkpoint";

/// The MAC of the entry before the first one.
pub(crate) const GENESIS: [u8; 32] = [0; 32];

#[derive(Serialize)]
struct UnsignedRef<'a> {
    seq: u64,
    prev: &'a str,
    entry: &'a EventRecord,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineOwned {
    seq: u64,
    prev: String,
    entry: EventRecord,
    mac: String,
}

/// A syntactically valid, canonical log line (its MAC not yet checked).
#[derive(Debug)]
pub(crate) struct ParsedLine {
    pub(crate) seq: u64,
    pub(crate) prev: [u8; 32],
    pub(crate) mac: [u8; 32],
    pub(crate) entry: EventRecord,
    /// Length of the unsigned prefix `U_N` without its closing brace.
    body_len: usize,
}

/// A prepared MAC key (the HMAC key schedule is computed once per log).
#[derive(Clone)]
pub(crate) struct ChainMac(hmac::Hmac<Sha256>);

impl ChainMac {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        Self(
            <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("HMAC takes any key length")),
        )
    }

    /// `HMAC(key, body ‖ "}" ‖ prev)`, where `body` is `U_N` without its closing brace.
    pub(crate) fn mac(&self, body: &[u8], prev: &[u8; 32]) -> [u8; 32] {
        let mut m = self.0.clone();
        m.update(body);
        m.update(b"}");
        m.update(prev);
        m.finalize().into_bytes().into()
    }

    /// Whether `line`'s MAC is right for its content, in constant time.
    pub(crate) fn check(&self, raw: &[u8], line: &ParsedLine) -> bool {
        use subtle::ConstantTimeEq as _;
        let body = raw.get(..line.body_len).unwrap_or_default();
        bool::from(self.mac(body, &line.prev).ct_eq(&line.mac))
    }

    /// Appends the line for entry `seq` after `prev` (with its newline) to `out`; returns its
    /// MAC.
    #[cfg(test)]
    pub(crate) fn write_line(
        &self,
        out: &mut Vec<u8>,
        seq: u64,
        prev: &[u8; 32],
        entry: &EventRecord,
    ) -> [u8; 32] {
        let json = serde_json::to_vec(entry).unwrap_or_default();
        self.write_line_json(out, seq, prev, &json)
    }

    /// As [`ChainMac::write_line`], from the entry's serde_json bytes. The prefix written here is
    /// byte for byte what serde_json produces for `{seq, prev, entry}` (checked by the parser).
    pub(crate) fn write_line_json(
        &self,
        out: &mut Vec<u8>,
        seq: u64,
        prev: &[u8; 32],
        entry_json: &[u8],
    ) -> [u8; 32] {
        let start = out.len();
        out.extend_from_slice(b"{\"seq\":");
        super::json::push_u64(out, seq);
        out.extend_from_slice(b",\"prev\":\"");
        extend_hex(out, prev);
        out.extend_from_slice(b"\",\"entry\":");
        out.extend_from_slice(entry_json);
        let mac = self.mac(out.get(start..).unwrap_or_default(), prev);
        out.extend_from_slice(b",\"mac\":\"");
        extend_hex(out, &mac);
        out.extend_from_slice(b"\"}\n");
        mac
    }
}

const MAC_SUFFIX_LEN: usize = 8 + 64 + 2;

/// The sequence number of a line, read from its prefix without parsing the rest.
pub(crate) fn quick_seq(raw: &[u8]) -> Option<u64> {
    let rest = raw.strip_prefix(b"{\"seq\":")?;
    let end = rest.iter().position(|&b| b == b',')?;
    let digits = rest.get(..end)?;
    // Canonical decimal only: ASCII digits (`parse` alone would take a `+`) without a leading
    // zero. An empty or out-of-range number does not parse.
    if !digits.iter().all(u8::is_ascii_digit) || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Accepts a line without parsing its entry if its MAC verifies for `expected` after `head`.
///
/// Sound because only the key holder can produce a verifying MAC, and the writer only writes
/// canonical lines; callers that need the entry still parse it strictly.
pub(crate) fn fast_accept(
    raw: &[u8],
    expected: u64,
    head: &[u8; 32],
    mac: &ChainMac,
) -> Option<[u8; 32]> {
    use subtle::ConstantTimeEq as _;
    // The same length limit as `parse_line`: open and the verifier never disagree on a line.
    if raw.len() > MAX_LINE {
        return None;
    }
    let split = raw.len().checked_sub(MAC_SUFFIX_LEN)?;
    let (body, suffix) = raw.split_at(split);
    let hexmac = suffix.strip_prefix(b",\"mac\":\"")?.strip_suffix(b"\"}")?;
    let tag = unhex::<32>(std::str::from_utf8(hexmac).ok()?)?;
    if quick_seq(raw)? != expected {
        return None;
    }
    let prefix_len = 7 + expected.to_string().len() + 9;
    let prev_text = body.get(prefix_len..prefix_len + 64)?;
    if body.get(prefix_len - 9..prefix_len)? != b",\"prev\":\"" || prev_text != hex(head).as_bytes()
    {
        return None;
    }
    bool::from(mac.mac(body, head).ct_eq(&tag)).then_some(tag)
}

/// Parses one log line (without its newline). `None` unless it is well-formed and canonical.
pub(crate) fn parse_line(raw: &[u8]) -> Option<ParsedLine> {
    if raw.len() > MAX_LINE {
        return None;
    }
    let owned: LineOwned = serde_json::from_slice(raw).ok()?;
    if !owned.entry.is_well_formed() {
        return None;
    }
    let prev = unhex::<32>(&owned.prev)?;
    let mac = unhex::<32>(&owned.mac)?;
    let mut canon = serde_json::to_vec(&UnsignedRef {
        seq: owned.seq,
        prev: &owned.prev,
        entry: &owned.entry,
    })
    .ok()?;
    canon.pop();
    let body_len = canon.len();
    canon.extend_from_slice(b",\"mac\":\"");
    canon.extend_from_slice(owned.mac.as_bytes());
    canon.extend_from_slice(b"\"}");
    if canon != raw {
        return None;
    }
    Some(ParsedLine {
        seq: owned.seq,
        prev,
        mac,
        entry: owned.entry,
        body_len,
    })
}

/// A signed statement that the chain had head MAC `head` at `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    /// Sequence number of the last entry covered.
    pub(crate) seq: u64,
    /// That entry's MAC.
    pub(crate) head: [u8; 32],
    /// Unix seconds when the checkpoint was made.
    pub(crate) time: u64,
    sig: [u8; 64],
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointJson {
    seq: u64,
    head: String,
    time: u64,
    sig: String,
}

fn checkpoint_message(seq: u64, head: &[u8; 32], time: u64) -> Vec<u8> {
    let mut m = Vec::with_capacity(80);
    push_lp(&mut m, CHECKPOINT_DOMAIN);
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(head);
    m.extend_from_slice(&time.to_be_bytes());
    m
}

impl Checkpoint {
    pub(crate) fn sign(key: &CheckpointSigningKey, seq: u64, head: [u8; 32], time: u64) -> Self {
        let sig = key.sign(&checkpoint_message(seq, &head, time));
        Self {
            seq,
            head,
            time,
            sig,
        }
    }

    /// Whether the signature is valid under `key`.
    pub(crate) fn verify(&self, key: &CheckpointVerifyingKey) -> bool {
        key.verify(
            &checkpoint_message(self.seq, &self.head, self.time),
            &self.sig,
        )
    }

    /// The line, newline included.
    pub(crate) fn to_line(self) -> Vec<u8> {
        let mut v = serde_json::to_vec(&CheckpointJson {
            seq: self.seq,
            head: hex(&self.head),
            time: self.time,
            sig: hex(&self.sig),
        })
        .unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// Parses one checkpoint line (without its newline), strictly.
    pub(crate) fn parse(raw: &[u8]) -> Option<Self> {
        if raw.len() > 1024 {
            return None;
        }
        let j: CheckpointJson = serde_json::from_slice(raw).ok()?;
        let c = Self {
            seq: j.seq,
            head: unhex::<32>(&j.head)?,
            time: j.time,
            sig: unhex::<64>(&j.sig)?,
        };
        let mut again = c.to_line();
        again.pop();
        (again == raw).then_some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuditKey;
    use crate::internal::testing::with_sample_event;

    #[test]
    fn an_entry_fits_with_room_for_seq_prev_and_mac() {
        assert!(entry_fits(0));
        assert!(entry_fits(MAX_LINE - 256));
        assert!(!entry_fits(MAX_LINE - 255));
        assert!(!entry_fits(MAX_LINE));
    }

    #[test]
    fn line_round_trip_and_mac() {
        let key = AuditKey::from_bytes([9; 32]);
        let mac = ChainMac::new(key.mac_key());
        let entry = with_sample_event(1, Some("s"), |e| {
            EventRecord::from_event(e, &key.pseudonym_key())
        });
        let mut out = Vec::new();
        let m = mac.write_line(&mut out, 1, &GENESIS, &entry);
        assert_eq!(out.last(), Some(&b'\n'));
        let raw = &out[..out.len() - 1];
        let p = parse_line(raw).unwrap_or_else(|| panic!("parse"));
        assert_eq!((p.seq, p.prev, p.mac), (1, GENESIS, m));
        assert!(mac.check(raw, &p));
        let other = ChainMac::new(AuditKey::from_bytes([8; 32]).mac_key());
        assert!(!other.check(raw, &p));
        let mut spaced = raw.to_vec();
        spaced.insert(1, b' ');
        assert!(parse_line(&spaced).is_none());
    }

    /// `quick_seq` reads exactly the canonical decimal forms: no empty number, no leading zero,
    /// up to `u64::MAX` (20 digits), nothing longer.
    #[test]
    fn quick_seq_reads_canonical_numbers_only() {
        let seq = |digits: &str| quick_seq(format!("{{\"seq\":{digits},\"prev\"").as_bytes());
        assert_eq!(seq("0"), Some(0));
        assert_eq!(seq("7"), Some(7));
        assert_eq!(seq("12"), Some(12));
        assert_eq!(seq("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "",
            "01",
            "00",
            "007",
            "+12",
            "-1",
            " 1",
            "18446744073709551616",
            "118446744073709551615",
            "1a",
        ] {
            assert_eq!(seq(bad), None, "{bad:?}");
        }
        assert_eq!(quick_seq(b"{\"seq\":12"), None);
        assert_eq!(quick_seq(b"{\"sequence\":12,"), None);
    }

    /// The hand-written prefix is what serde_json writes, at every digit count of `seq`.
    #[test]
    fn written_lines_are_canonical_at_every_seq_width() {
        let key = AuditKey::from_bytes([9; 32]);
        let mac = ChainMac::new(key.mac_key());
        let entry = with_sample_event(1, Some("s"), |e| {
            EventRecord::from_event(e, &key.pseudonym_key())
        });
        let mut seqs = vec![0, 1, 9, 10, 99, 100, u64::MAX - 1, u64::MAX];
        seqs.extend((1..20).map(|p| 10u64.pow(p) - 1));
        seqs.extend((1..20).map(|p| 10u64.pow(p)));
        for seq in seqs {
            let mut digits = Vec::new();
            crate::audit::json::push_u64(&mut digits, seq);
            assert_eq!(digits, seq.to_string().into_bytes());
            let mut out = Vec::new();
            mac.write_line(&mut out, seq, &[seq as u8; 32], &entry);
            let raw = &out[..out.len() - 1];
            let p = parse_line(raw).unwrap_or_else(|| panic!("parse at {seq}"));
            assert_eq!((p.seq, p.prev), (seq, [seq as u8; 32]));
            assert!(mac.check(raw, &p));
        }
    }

    /// A validly MACed line over the limit (only the audit key's holder can make one) is
    /// refused by the fast path of `open` exactly as by the verifier's parser.
    #[test]
    fn an_overlong_line_is_refused_by_both_paths() {
        let key = AuditKey::from_bytes([9; 32]);
        let mac = ChainMac::new(key.mac_key());
        let mut entry = with_sample_event(1, None, |e| {
            EventRecord::from_event(e, &key.pseudonym_key())
        });
        entry.principal = "p".repeat(MAX_LINE);
        let mut out = Vec::new();
        mac.write_line(&mut out, 1, &GENESIS, &entry);
        let raw = &out[..out.len() - 1];
        assert!(raw.len() > MAX_LINE);
        assert!(fast_accept(raw, 1, &GENESIS, &mac).is_none());
        assert!(parse_line(raw).is_none());
        // The limit SECURITY.md documents.
        assert_eq!(MAX_LINE, 65_536);
        // At exactly the limit, the same line is accepted by both; one byte more is not.
        let line_of = |principal_len: usize, entry: &mut EventRecord| {
            entry.principal = "p".repeat(principal_len);
            let mut out = Vec::new();
            let m = mac.write_line(&mut out, 1, &GENESIS, entry);
            out.pop();
            (out, m)
        };
        let (probe, _) = line_of(1000, &mut entry);
        let exact = 1000 + MAX_LINE - probe.len();
        let (raw, m) = line_of(exact, &mut entry);
        assert_eq!(raw.len(), MAX_LINE);
        assert_eq!(fast_accept(&raw, 1, &GENESIS, &mac), Some(m));
        assert!(parse_line(&raw).is_some());
        let (raw, _) = line_of(exact + 1, &mut entry);
        assert_eq!(raw.len(), MAX_LINE + 1);
        assert!(fast_accept(&raw, 1, &GENESIS, &mac).is_none());
        assert!(parse_line(&raw).is_none());
    }

    /// A line whose MAC chains from the head but whose `prev` text names another MAC (only the
    /// key holder could make one) is not accepted by the fast path.
    #[test]
    fn fast_path_requires_prev_to_name_the_head() {
        let key = AuditKey::from_bytes([9; 32]);
        let mac = ChainMac::new(key.mac_key());
        let entry = with_sample_event(1, Some("s"), |e| {
            EventRecord::from_event(e, &key.pseudonym_key())
        });
        let json = serde_json::to_vec(&entry).unwrap_or_default();
        let head = [7u8; 32];
        for prev_text in [hex(&[8u8; 32]), hex(&head)] {
            let mut body = format!("{{\"seq\":3,\"prev\":\"{prev_text}\",\"entry\":").into_bytes();
            body.extend_from_slice(&json);
            let tag = mac.mac(&body, &head);
            let mut raw = body;
            raw.extend_from_slice(b",\"mac\":\"");
            raw.extend_from_slice(hex(&tag).as_bytes());
            raw.extend_from_slice(b"\"}");
            let accepted = fast_accept(&raw, 3, &head, &mac);
            assert_eq!(accepted.is_some(), prev_text == hex(&head), "{prev_text}");
        }
    }

    #[test]
    fn checkpoint_round_trip() {
        let sk = CheckpointSigningKey::from_bytes([4; 32]);
        let c = Checkpoint::sign(&sk, 7, [1; 32], 99);
        let mut line = c.to_line();
        line.pop();
        let back = Checkpoint::parse(&line).unwrap_or_else(|| panic!("parse"));
        assert_eq!(back, c);
        assert!(back.verify(&sk.verifying_key()));
        let other = CheckpointSigningKey::from_bytes([5; 32]).verifying_key();
        assert!(!back.verify(&other));
    }
}
