#!/usr/bin/env python3
"""A second verifier of fieldseal's audit log, written from SECURITY.md ("Audit log") alone.

It shares no code with the crate: Python's standard library only (hmac, hashlib, json), and
Ed25519 signature verification written out from RFC 8032. tests/independent_verifier.rs runs it
over logs written by `ChainedLog` and over tampered copies, and compares its answer with
`verify_log`'s.

    audit_verify.py LOG_DIR CHECKPOINT_FILE CHECKPOINT_PUBLIC_KEY_HEX < AUDIT_KEY_HEX

(the audit key, a secret, comes on standard input, not on the command line) prints one line of
JSON: {"entries": N, "checkpoints": M, "fault": SEQ or null, "why": TEXT}.
`entries` counts the lines verified before the first fault, `checkpoints` the checkpoints after
the genesis that verified, `fault` the seq SECURITY.md says a verifier reports for the first
fault. Exit status 0 when the log verified, 1 when it did not, 2 on bad usage.
"""

import hashlib
import hmac
import json
import os
import re
import sys

# --- Notation ----------------------------------------------------------------------------------


def lp(b):
    """u16 big-endian length of b, then b."""
    assert len(b) <= 0xFFFF
    return len(b).to_bytes(2, "big") + b


def hmac256(key, msg):
    return hmac.new(key, msg, hashlib.sha256).digest()


def hkdf_expand_32(prk, info):
    # One block of RFC 5869's Expand: T(1) = HMAC(PRK, info || 0x01).
    return hmac256(prk, info + b"\x01")


def audit_keys(audit_key):
    prk = hmac256(b"fieldseal/v1/audit-key", audit_key)
    mac_key = hkdf_expand_32(prk, lp(b"fieldseal/v1/audit-mac"))
    pseudonym_key = hkdf_expand_32(prk, lp(b"fieldseal/v1/audit-pseudonym"))
    return mac_key, pseudonym_key


# --- Ed25519 verification (RFC 8032, section 5.1.7), strict ------------------------------------

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _add(a, b):
    # Extended twisted Edwards coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, xy = T/Z.
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % P
    bb = (y1 + x1) * (y2 + x2) % P
    cc = 2 * t1 * t2 * D % P
    dd = 2 * z1 * z2 % P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _mul(k, pt):
    acc = (0, 1, 1, 0)
    while k:
        if k & 1:
            acc = _add(acc, pt)
        pt = _add(pt, pt)
        k >>= 1
    return acc


def _encode(pt):
    x, y, z, _ = pt
    zi = pow(z, P - 2, P)
    x, y = x * zi % P, y * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _decode(b):
    """The point encoded by b, or None. Non-canonical encodings (y >= p) are refused."""
    if len(b) != 32:
        return None
    n = int.from_bytes(b, "little")
    sign, y = n >> 255, n & ((1 << 255) - 1)
    if y >= P:
        return None
    u, v = (y * y - 1) % P, (D * y * y + 1) % P
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    if v * x * x % P == (-u) % P:
        x = x * SQRT_M1 % P
    elif v * x * x % P != u:
        return None
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = P - x
    return (x, y, 1, x * y % P)


def _is_identity(pt):
    x, y, z, _ = pt
    return x % P == 0 and (y - z) % P == 0


BASE = _decode((4 * pow(5, P - 2, P) % P).to_bytes(32, "little"))


def ed25519_verify(public, msg, sig):
    """Strict verification: canonical encodings, S < L, no small-order key or R."""
    if len(sig) != 64:
        return False
    a, r = _decode(public), _decode(sig[:32])
    if a is None or r is None:
        return False
    if _is_identity(_mul(8, a)) or _is_identity(_mul(8, r)):
        return False
    s = int.from_bytes(sig[32:], "little")
    if s >= L:
        return False
    k = int.from_bytes(hashlib.sha512(sig[:32] + public + msg).digest(), "little") % L
    minus_a = ((P - a[0]) % P, a[1], a[2], (P - a[3]) % P)
    return _encode(_add(_mul(s, BASE), _mul(k, minus_a))) == sig[:32]


# --- JSON: serde_json's compact output, and nothing else ---------------------------------------


class Bad(Exception):
    pass


class Obj(list):
    """A JSON object: its (name, value) pairs in order (an array is a plain list)."""


def strict_object(raw, members):
    """Parses raw (bytes) as one JSON object whose members are exactly `members` in order
    (each a name, or (name, optional=True)), re-serialized to exactly raw."""
    try:
        text = raw.decode("utf-8")
        pairs = json.loads(text, object_pairs_hook=Obj, parse_constant=_refuse)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise Bad(f"not JSON: {type(e).__name__}") from None
    if not isinstance(pairs, Obj):
        raise Bad("not an object")
    check_members([n for n, _ in pairs], members)
    if canonical(pairs) != raw:
        raise Bad("not canonical")
    return dict(pairs)


def check_members(names, members):
    """names must be `members` (each a name, or (name, True) for an optional one) in order,
    optional ones left out or not."""
    i = 0
    for m in members:
        name, optional = (m, False) if isinstance(m, str) else m
        if i < len(names) and names[i] == name:
            i += 1
        elif not optional:
            raise Bad(f"member {name} missing or out of order")
    if i != len(names):
        raise Bad(f"unexpected members in {names}")


def _refuse(name):
    raise ValueError(f"constant {name}")


def canonical(value):
    """serde_json's compact bytes for a value parsed with object_pairs_hook=Obj."""
    try:
        return _dump(value).encode("utf-8")
    except RecursionError:
        raise Bad("nested too deep") from None


def _dump(v):
    if isinstance(v, Obj):
        return "{" + ",".join(_dump_str(k) + ":" + _dump(x) for k, x in v) + "}"
    if isinstance(v, list):
        return "[" + ",".join(_dump(x) for x in v) + "]"
    if isinstance(v, str):
        return _dump_str(v)
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    raise Bad(f"a {type(v).__name__} is never written")


_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
          "\r": "\\r"}


def _dump_str(s):
    out = []
    for ch in s:
        if ch in _SHORT:
            out.append(_SHORT[ch])
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            raise Bad("lone surrogate")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def u64(v, what):
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 2**64:
        raise Bad(f"{what} is not a u64")
    return v


def text(v, what):
    if not isinstance(v, str):
        raise Bad(f"{what} is not a string")
    return v


def hex_of(v, n, what):
    if not isinstance(v, str) or not re.fullmatch(f"[0-9a-f]{{{2 * n}}}", v):
        raise Bad(f"{what} is not {n} bytes of lowercase hex")
    return bytes.fromhex(v)


# --- Entries and lines -------------------------------------------------------------------------

ENTRY = ["time", "principal", "roles", "purpose", "kind", "action", "outcome", "subject",
         "context", "site", "key_version", "sealed_at", "policy_version", ("count", True),
         ("recipient", True), ("reference", True), ("fields", True)]
NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
REFERENCE = re.compile(r"[A-Za-z0-9._:/#-]{1,64}")


def check_entry(e):
    u64(e["time"], "time")
    text(e["principal"], "principal")
    if not isinstance(e["roles"], list) or isinstance(e["roles"], Obj):
        raise Bad("roles is not an array")
    for r in e["roles"]:
        text(r, "a role")
    for m in ("purpose", "kind", "action", "outcome", "site"):
        text(e[m], m)
    if e["subject"] is not None:
        hex_of(e["subject"], 32, "subject")
    hex_of(e["context"], 16, "context")
    if u64(e["key_version"], "key_version") >= 2**32:
        raise Bad("key_version is not a u32")
    u64(e["sealed_at"], "sealed_at")
    u64(e["policy_version"], "policy_version")
    if "count" in e:
        u64(e["count"], "count")
    if "recipient" in e and not NAME.fullmatch(text(e["recipient"], "recipient")):
        raise Bad("recipient is not a manifest name")
    if "reference" in e and not REFERENCE.fullmatch(text(e["reference"], "reference")):
        raise Bad("reference has a character outside its alphabet")
    if "fields" in e:
        if not isinstance(e["fields"], list) or isinstance(e["fields"], Obj):
            raise Bad("fields is not an array")
        for f in e["fields"]:
            if not isinstance(f, Obj):
                raise Bad("a field is not an object")
            check_members([n for n, _ in f], ["purpose", "kind", "outcome"])
            for _, v in f:
                text(v, "a field's member")


def parse_line(raw):
    """(seq, prev, entry, mac, U) of one log line (without its newline)."""
    if len(raw) > 65536:
        raise Bad("line longer than 65,536 bytes")
    line = strict_object(raw, ["seq", "prev", "entry", "mac"])
    seq = u64(line["seq"], "seq")
    prev = hex_of(line["prev"], 32, "prev")
    mac = hex_of(line["mac"], 32, "mac")
    entry = line["entry"]
    if not isinstance(entry, Obj):
        raise Bad("entry is not an object")
    check_members([n for n, _ in entry], ENTRY)
    check_entry(dict(entry))
    # U_N: the line without its mac member (the closing brace kept).
    tail = b',"mac":"' + line["mac"].encode() + b'"}'
    if not raw.endswith(tail):
        raise Bad("mac is not the last member")
    return seq, prev, mac, raw[: len(raw) - len(tail)] + b"}"


def parse_checkpoint(raw, public):
    if len(raw) > 1024:
        raise Bad("checkpoint line longer than 1,024 bytes")
    c = strict_object(raw, ["seq", "head", "time", "sig"])
    seq, time = u64(c["seq"], "seq"), u64(c["time"], "time")
    head = hex_of(c["head"], 32, "head")
    sig = hex_of(c["sig"], 64, "sig")
    msg = lp(b"fieldseal/v1/audit-checkpoint") + seq.to_bytes(8, "big") + head + \
        time.to_bytes(8, "big")
    if len(msg) != 79 or not ed25519_verify(public, msg, sig):
        raise Bad("bad checkpoint signature")
    return seq, head


# --- The log -----------------------------------------------------------------------------------


def segments(log_dir):
    """The segments' bytes in number order: files `audit-` + six or more ASCII digits + `.log`,
    numbered from 1 to 2^64 - 1 (a missing one shows as a break in the chain)."""
    found = []
    for name in os.listdir(log_dir):
        m = re.fullmatch(r"audit-([0-9]{6,})\.log", name)
        if m and 1 <= int(m.group(1)) < 2**64:
            found.append((int(m.group(1)), name))
    found.sort()
    out = []
    for _, name in found:
        with open(os.path.join(log_dir, name), "rb") as f:
            out.append(f.read())
    return out


def log_lines(segs):
    """Every line (without its newline), and whether the last one is torn. A line runs within
    one segment: one cut at the end of a segment that is not the last is a fault of its own
    (returned as None in its place)."""
    lines = []
    for i, data in enumerate(segs):
        parts = data.split(b"\n")
        rest = parts.pop()
        lines.extend(parts)
        if rest:
            if i + 1 < len(segs):
                lines.append(None)
                return lines, False
            return lines, True
    return lines, False


def verify(log_dir, ckpt_path, audit_key, public):
    mac_key, _ = audit_keys(audit_key)
    lines, torn = log_lines(segments(log_dir))
    heads = [bytes(32)]  # heads[n] = mac_n
    fault, why = None, ""
    for i, raw in enumerate(lines):
        want = i + 1
        try:
            if raw is None:
                raise Bad("line cut at the end of a segment")
            seq, prev, mac, u = parse_line(raw)
            if seq != want:
                raise Bad(f"seq {seq} where {want} belongs")
            if prev != heads[-1]:
                raise Bad("prev is not the previous line's mac")
            if not hmac.compare_digest(hmac256(mac_key, u + heads[-1]), mac):
                raise Bad("mac does not verify")
        except Bad as e:
            fault, why = want, f"line {want}: {e}"
            break
        heads.append(mac)
    torn_tail = fault is None and torn
    if torn_tail:
        fault, why = len(heads), "torn last line"
    entries = len(heads) - 1

    # Checkpoints.
    try:
        with open(ckpt_path, "rb") as f:
            ckpt = f.read()
    except FileNotFoundError:
        ckpt = b""
    ck_lines = ckpt.split(b"\n")
    ck_torn = ck_lines.pop()
    last_valid, matched, ck_fault, ck_why, truncated = None, 0, None, "", None
    for raw in ck_lines + ([ck_torn] if ck_torn else []):
        try:
            seq, head = parse_checkpoint(raw, public)
        except Bad as e:
            # One past the last valid checkpoint (the genesis counts): the first entry no
            # longer covered by a trusted checkpoint.
            ck_fault = 1 if last_valid is None else last_valid + 1
            ck_why = f"checkpoint line after seq {last_valid}: {e}"
            break
        if last_valid is not None and seq <= last_valid:
            ck_fault, ck_why = max(seq, 1), f"checkpoint {seq} out of order"
            break
        if seq > entries:
            # Beyond the log's end: a truncation, unless the log broke earlier (that fault is
            # reported); the checkpoints after it are read on either way.
            if (fault is None or torn_tail) and truncated is None:
                truncated = (entries + 1, f"log ends before checkpoint {seq}")
            last_valid = seq
            continue
        if heads[seq] != head:
            ck_fault, ck_why = max(seq, 1), f"checkpoint {seq} names another head"
            break
        last_valid = seq
        matched += seq >= 1
    if truncated is not None and (ck_fault is None or truncated[0] < ck_fault):
        ck_fault, ck_why = truncated
    if ck_fault is None and last_valid is None and entries > 0:
        ck_fault, ck_why = 1, "no valid checkpoint"
    if ck_fault is not None and (fault is None or ck_fault < fault):
        fault, why = ck_fault, ck_why
    return {"entries": entries, "checkpoints": matched, "fault": fault, "why": why}


def main(argv):
    if len(argv) != 4:
        print("usage: audit_verify.py LOG_DIR CHECKPOINT_FILE CHECKPOINT_PUBLIC_KEY_HEX "
              "< AUDIT_KEY_HEX", file=sys.stderr)
        return 2
    try:
        key, public = bytes.fromhex(sys.stdin.readline().strip()), bytes.fromhex(argv[3])
    except ValueError:
        print("keys must be hex", file=sys.stderr)
        return 2
    if len(key) != 32 or len(public) != 32:
        print("keys must be 32 bytes", file=sys.stderr)
        return 2
    try:
        report = verify(argv[1], argv[2], key, public)
    except Bad as e:
        report = {"entries": 0, "checkpoints": 0, "fault": 1, "why": str(e)}
    except OSError as e:
        print(f"cannot read the log: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report, sort_keys=True))
    return 0 if report["fault"] is None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
