#!/usr/bin/env python3
"""fieldseal envelope version 1, implemented a second time from SECURITY.md alone.

Sections used: "Stored format: envelope version 1" (notation, binary layout, context encoding,
text form, limits, parsing, sealing and opening), "Key derivation", and the pseudonym and
blind-index derivations under "Anonymization and blind indexes". Nothing here is taken from the
crate's code. Python's standard library only: SHA-256 and HMAC from `hashlib`/`hmac`; AES-256
(FIPS 197) and GCM (NIST SP 800-38D) are written out below, the S-box computed from its
definition, and checked against the Wycheproof AES-GCM vectors before use.

Input (standard input): one JSON document
    {"keys": {"<version>": "<root key hex>", ...}, "retired": [<version>, ...],
     "subject_store": {"kek": "<FileKek hex>", "dir": "<FileSubjectKeys directory>"} (optional),
     "wycheproof": "<path of aes_gcm_test.json>" (optional),
     "ops": [<op>, ...]}
Output (standard output): one JSON document {"self_test": {...}, "answers": [<answer>, ...]},
one answer per op, in order. Ops:
    {"op": "parse", "text": "fs1:..."} | {"op": "parse", "hex": "..."}
        -> {"ok": {kind, flags, purpose, version, sealed_at, subject, ciphertext_len}}
           or {"error": "<FormatError variant>"}
    {"op": "open", "text" | "hex", "context": [[name hex, value hex], ...]}
        -> {"ok": "<plaintext hex>"} or {"error": "<variant>"} (format, context, key or
           "Integrity")
    {"op": "seal", "kind": code, "purpose": label, "version": v, "sealed_at": t,
     "salt": hex, "nonce": hex, "plaintext": hex, "context": [...]}
        -> {"ok": "fs1:..."} or {"error": "<variant>"}
    {"op": "slot", "subject": id, "scope": "" or purpose label}
        -> {"ok": "<key id hex>" or null}: the key id the subject's slot holds
    {"op": "pseudonym", "version": v, "purpose": label, "kind": code, "canonical": hex}
        -> {"ok": "<16 bytes hex>"}
    {"op": "index", "version": v, "purpose": label, "kind": code, "name": index name,
     "bits": b, "canonical": hex}
        -> {"ok": "<ceil(b/8) bytes hex>"}
Key material arrives on standard input only, never in arguments.
"""

import base64
import hashlib
import hmac
import json
import os
import sys

# ---------------------------------------------------------------------------------------------
# AES-256, forward cipher (FIPS 197). GCM needs only the forward direction.


def _gf_mul(a, b):
    """Product in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1."""
    p = 0
    while b:
        if b & 1:
            p ^= a
        a = ((a << 1) ^ 0x11B) if a & 0x80 else (a << 1)
        b >>= 1
    return p


def _sbox():
    inverse = [0] * 256
    for a in range(1, 256):
        for b in range(1, 256):
            if _gf_mul(a, b) == 1:
                inverse[a] = b
                break
    box = []
    for a in range(256):
        x = inverse[a]
        y = 0x63
        for i in range(8):
            bit = ((x >> i) ^ (x >> ((i + 4) % 8)) ^ (x >> ((i + 5) % 8))
                   ^ (x >> ((i + 6) % 8)) ^ (x >> ((i + 7) % 8))) & 1
            y ^= bit << i
        box.append(y)
    return box


SBOX = _sbox()
MUL2 = [_gf_mul(a, 2) for a in range(256)]
MUL3 = [_gf_mul(a, 3) for a in range(256)]


def aes256_round_keys(key):
    """The 60 words of the AES-256 key schedule, as 15 round keys of 16 bytes."""
    assert len(key) == 32
    words = [list(key[4 * i:4 * i + 4]) for i in range(8)]
    rcon = 1
    for i in range(8, 60):
        t = list(words[i - 1])
        if i % 8 == 0:
            t = t[1:] + t[:1]
            t = [SBOX[b] for b in t]
            t[0] ^= rcon
            rcon = _gf_mul(rcon, 2)
        elif i % 8 == 4:
            t = [SBOX[b] for b in t]
        words.append([a ^ b for a, b in zip(words[i - 8], t)])
    return [sum(words[4 * r:4 * r + 4], []) for r in range(15)]


def aes256_encrypt_block(round_keys, block):
    # State byte at row r, column c is s[r + 4c], as the input is laid out.
    s = [b ^ k for b, k in zip(block, round_keys[0])]
    for rnd in range(1, 15):
        s = [SBOX[b] for b in s]
        s = [s[(r + 4 * ((c + r) % 4))] for c in range(4) for r in range(4)]
        if rnd != 14:
            m = []
            for c in range(4):
                a0, a1, a2, a3 = s[4 * c:4 * c + 4]
                m += [MUL2[a0] ^ MUL3[a1] ^ a2 ^ a3,
                      a0 ^ MUL2[a1] ^ MUL3[a2] ^ a3,
                      a0 ^ a1 ^ MUL2[a2] ^ MUL3[a3],
                      MUL3[a0] ^ a1 ^ a2 ^ MUL2[a3]]
            s = m
        s = [b ^ k for b, k in zip(s, round_keys[rnd])]
    return bytes(s)


# ---------------------------------------------------------------------------------------------
# GCM (NIST SP 800-38D) with a 96-bit IV and a 128-bit tag.

_R = 0xE1 << 120


def _gf128_mul(x, y):
    z = 0
    v = y
    for i in range(127, -1, -1):
        if (x >> i) & 1:
            z ^= v
        v = (v >> 1) ^ _R if v & 1 else v >> 1
    return z


def _ghash(h, data):
    y = 0
    for i in range(0, len(data), 16):
        y = _gf128_mul(y ^ int.from_bytes(data[i:i + 16], "big"), h)
    return y


def _pad16(b):
    return b + bytes(-len(b) % 16)


def _gctr(rk, counter_block, data):
    out = bytearray()
    ctr = int.from_bytes(counter_block[12:], "big")
    for i in range(0, len(data), 16):
        cb = counter_block[:12] + ctr.to_bytes(4, "big")
        ks = aes256_encrypt_block(rk, cb)
        out += bytes(a ^ b for a, b in zip(data[i:i + 16], ks))
        ctr = (ctr + 1) & 0xFFFFFFFF
    return bytes(out)


def _gcm_tag(rk, j0, aad, ct):
    h = int.from_bytes(aes256_encrypt_block(rk, bytes(16)), "big")
    lengths = (8 * len(aad)).to_bytes(8, "big") + (8 * len(ct)).to_bytes(8, "big")
    s = _ghash(h, _pad16(aad) + _pad16(ct) + lengths)
    e = int.from_bytes(aes256_encrypt_block(rk, j0), "big")
    return (s ^ e).to_bytes(16, "big")


def gcm_encrypt(key, nonce, plaintext, aad):
    assert len(nonce) == 12
    rk = aes256_round_keys(key)
    j0 = nonce + b"\x00\x00\x00\x01"
    first = nonce + b"\x00\x00\x00\x02"
    ct = _gctr(rk, first, plaintext)
    return ct, _gcm_tag(rk, j0, aad, ct)


def gcm_decrypt(key, nonce, ct, tag, aad):
    """The plaintext, or None when the tag does not verify."""
    rk = aes256_round_keys(key)
    j0 = nonce + b"\x00\x00\x00\x01"
    if not hmac.compare_digest(_gcm_tag(rk, j0, aad, ct), tag):
        return None
    return _gctr(rk, nonce + b"\x00\x00\x00\x02", ct)


def wycheproof_self_test(path):
    """Runs every AES-256 case with a 96-bit IV and a 128-bit tag; raises on a disagreement."""
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    ran = 0
    for group in doc["testGroups"]:
        if (group["keySize"], group["ivSize"], group["tagSize"]) != (256, 96, 128):
            continue
        for t in group["tests"]:
            key, iv = bytes.fromhex(t["key"]), bytes.fromhex(t["iv"])
            aad, msg = bytes.fromhex(t["aad"]), bytes.fromhex(t["msg"])
            ct, tag = bytes.fromhex(t["ct"]), bytes.fromhex(t["tag"])
            opened = gcm_decrypt(key, iv, ct, tag, aad)
            if t["result"] == "invalid":
                if opened is not None:
                    raise AssertionError("wycheproof %d: invalid case opened" % t["tcId"])
            else:
                if (ct, tag) != gcm_encrypt(key, iv, msg, aad) or opened != msg:
                    raise AssertionError("wycheproof %d: wrong answer" % t["tcId"])
            ran += 1
    return ran


# ---------------------------------------------------------------------------------------------
# Notation and key derivation.


def lp(b):
    assert len(b) <= 0xFFFF
    return len(b).to_bytes(2, "big") + b


def hkdf_extract(salt, ikm):
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def hkdf_expand(prk, info, length):
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
        i += 1
    return out[:length]


def root_prk(root):
    return hkdf_extract(b"fieldseal/v1/root-key", root)


def purpose_key(root, label, kind, subject_id=b""):
    info = (lp(b"fieldseal/v1/purpose-key") + lp(b"\x01") + lp(label) + lp(bytes([kind]))
            + lp(subject_id))
    return hkdf_expand(root_prk(root), info, 32)


def epoch_key_and_commitment(pkey, salt):
    okm = hkdf_expand(hkdf_extract(salt, pkey), lp(b"fieldseal/v1/epoch-key"), 48)
    return okm[:32], okm[32:]


def subject_epoch_key_and_commitment(pkey, secret, salt):
    """Under a subject key: IKM = purpose key ‖ subject secret."""
    okm = hkdf_expand(hkdf_extract(salt, pkey + secret), lp(b"fieldseal/v1/subject-epoch-key"), 48)
    return okm[:32], okm[32:]


# A `FileSubjectKeys` directory under a `FileKek` ("Subject keys and erasure", "Key providers"):
# one file per entry, named by its 16-byte id in lowercase hex, holding the provider's wrapping
# nonce (12) ‖ ciphertext ‖ tag (16) under AES-256-GCM with the KEK. Set by `main`.
SUBJECT_STORE = {}


def store_get(entry_id, aad):
    """The unwrapped entry `entry_id`, or None when the store has none."""
    try:
        with open(os.path.join(SUBJECT_STORE["dir"], entry_id.hex()), "rb") as f:
            wrapped = f.read()
    except FileNotFoundError:
        return None
    if len(wrapped) < 28:
        raise Refused("Unwrap")
    plain = gcm_decrypt(SUBJECT_STORE["kek"], wrapped[:12], wrapped[12:-16], wrapped[-16:], aad)
    if plain is None:
        raise Refused("Unwrap")
    return plain


def subject_secret(key_id):
    secret = store_get(key_id, lp(b"fieldseal/v1/subject-key") + lp(key_id))
    if secret is None:
        raise Refused("Erased")
    return secret


def subject_slot(subject, scope):
    """The key id a subject's slot holds for `scope` (empty, or a purpose label), or None."""
    zero = bytes(16)
    index_key = store_get(zero, lp(b"fieldseal/v1/subject-index-key") + lp(zero))
    if index_key is None:
        return None
    slot = hmac.new(index_key, lp(b"fieldseal/v1/subject-key-id") + lp(subject) + lp(scope),
                    hashlib.sha256).digest()[:16]
    return store_get(slot, lp(b"fieldseal/v1/subject-key-slot") + lp(slot))


def pseudonym(root, label, kind, canonical):
    info = lp(b"fieldseal/v1/pseudonym-key") + lp(b"\x01") + lp(label)
    key = hkdf_expand(root_prk(root), info, 32)
    return hmac.new(key, lp(bytes([kind])) + canonical, hashlib.sha256).digest()[:16]


def index_term(root, label, kind, name, bits, canonical):
    info = (lp(b"fieldseal/v1/index-key") + lp(b"\x01") + lp(label) + lp(bytes([kind]))
            + lp(name))
    key = hkdf_expand(root_prk(root), info, 32)
    mac = hmac.new(key, canonical, hashlib.sha256).digest()
    n = (bits + 7) // 8
    term = bytearray(mac[:n])
    if bits % 8:
        term[-1] &= (0xFF << (8 - bits % 8)) & 0xFF
    return bytes(term)


# ---------------------------------------------------------------------------------------------
# Format.

KIND_CAP = {1: 18, 2: 16, 3: 254, 4: 512, 5: 3102, 6: 16, 7: 2567, 8: 4096}
MAX_PLAINTEXT = 16384
MAX_ENVELOPE = 16508
MAX_TEXT = 22016
B64URL = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class Refused(Exception):
    """A refusal, named as the crate's error variant."""


def valid_label(b):
    return (1 <= len(b) <= 32 and 0x61 <= b[0] <= 0x7A
            and all(0x61 <= c <= 0x7A or 0x30 <= c <= 0x39 or c == 0x5F for c in b))


def decode_text(text, prefix=b"fs1:", max_len=MAX_TEXT):
    """A text form (`fs1:` envelopes, `fss1:` packages) to its binary bytes: steps 1-4 of text
    parsing. The prefix is a stem, the version digit and `:`."""
    raw = text.encode("utf-8")
    if not raw:
        raise Refused("Empty")
    if len(raw) > max_len:
        raise Refused("TooLong { max: %d }" % max_len)
    if not raw.startswith(prefix):
        n = len(prefix)
        if (len(raw) >= n and raw[:n - 2] == prefix[:n - 2] and 0x30 <= raw[n - 2] <= 0x39
                and raw[n - 1] == 0x3A):
            raise Refused("UnsupportedVersion(%d)" % (raw[n - 2] - 0x30))
        raise Refused("UnknownPrefix")
    body = raw[len(prefix):]
    if not body:
        raise Refused("Empty")
    if any(c not in B64URL for c in body) or len(body) % 4 == 1:
        raise Refused("Base64")
    data = base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4))
    # Non-zero trailing bits: the canonical encoding of the bytes differs from the input.
    if base64.urlsafe_b64encode(data).rstrip(b"=") != body:
        raise Refused("Base64")
    if data[0] != 1:
        raise Refused("VersionMismatch")
    return data


class Reader:
    """Takes fields off the front of a byte string; input that ends inside one is Truncated."""

    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        if len(self.data) - self.pos < n:
            raise Refused("Truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def byte(self):
        return self.take(1)[0]

    def rest(self):
        return self.data[self.pos:]


def start(b, max_len):
    """The checks an envelope and a package share: size, version 1, an assigned kind code.
    Returns the reader past the kind, and the kind."""
    if not b:
        raise Refused("Empty")
    if len(b) > max_len:
        raise Refused("TooLong { max: %d }" % max_len)
    r = Reader(b)
    version = r.byte()
    if version != 1:
        raise Refused("UnsupportedVersion(%d)" % version)
    kind = r.byte()
    if kind not in KIND_CAP:
        raise Refused("UnknownKind(%d)" % kind)
    return r, kind


def parse_binary(b):
    """The fields of a binary envelope, checked in layout order (binary parsing, steps 1-7)."""
    r, kind = start(b, MAX_ENVELOPE)
    flags = r.byte()
    if flags & 0xFE:
        raise Refused("ReservedFlags(%d)" % flags)
    length = r.byte()
    if length == 0 or length > 32:
        raise Refused("InvalidPurposeLabel")
    label = r.take(length)
    if not valid_label(label):
        raise Refused("InvalidPurposeLabel")
    version = int.from_bytes(r.take(4), "big")
    if version == 0:
        raise Refused("ZeroKeyVersion")
    sealed_at = int.from_bytes(r.take(8), "big")
    subject = r.take(16) if flags & 1 else b""
    salt = r.take(16)
    commitment = r.take(16)
    nonce = r.take(12)
    header = b[:r.pos]
    rest = r.rest()
    if len(rest) < 16 or len(rest) > MAX_PLAINTEXT + 16:
        raise Refused("CiphertextLength")
    ciphertext, tag = rest[:-16], rest[-16:]
    # The per-kind cap, applied by every parser that knows the kind.
    if len(ciphertext) > KIND_CAP[kind]:
        raise Refused("CiphertextLength")
    return {
        "kind": kind, "flags": flags, "label": label, "version": version,
        "sealed_at": sealed_at, "subject": subject, "salt": salt, "commitment": commitment,
        "nonce": nonce, "header": header, "ciphertext": ciphertext, "tag": tag,
    }


def encode_context(parts):
    """Canonical context encoding; the first broken rule is the refusal."""
    seen = set()
    for name, value in parts:
        if not (1 <= len(name) <= 32 and all(
                0x61 <= c <= 0x7A or 0x30 <= c <= 0x39 or c == 0x5F for c in name)):
            raise Refused("InvalidName")
        if len(value) > 1024:
            raise Refused("ValueTooLong")
        if len(seen) == 16:
            raise Refused("TooManyParts")
        if name in seen:
            raise Refused("DuplicateName")
        seen.add(name)
    out = bytes([len(parts)])
    for name, value in sorted(parts):
        out += bytes([len(name)]) + name + len(value).to_bytes(2, "big") + value
    return out


def envelope_bytes(op):
    if "text" in op:
        return decode_text(op["text"])
    return bytes.fromhex(op["hex"])


def context_of(op):
    return [(bytes.fromhex(n), bytes.fromhex(v)) for n, v in op["context"]]


def open_envelope(keys, retired, op):
    """Opening as "Sealing and opening" orders it: a value under a subject key first (without a
    subject-key store SubjectKeyUnavailable, with one Erased when its key is gone), then a
    version the keyring does not hold, then a retired one."""
    env = parse_binary(envelope_bytes(op))
    aad_context = encode_context(context_of(op))
    secret = None
    if env["flags"] & 1:
        if not SUBJECT_STORE:
            raise Refused("SubjectKeyUnavailable")
        secret = subject_secret(env["subject"])
    if env["version"] in retired:
        raise Refused("Retired")
    if env["version"] not in keys:
        raise Refused("UnknownVersion")
    pkey = purpose_key(keys[env["version"]], env["label"], env["kind"], env["subject"])
    if secret is None:
        key, commitment = epoch_key_and_commitment(pkey, env["salt"])
    else:
        key, commitment = subject_epoch_key_and_commitment(pkey, secret, env["salt"])
    if not hmac.compare_digest(commitment, env["commitment"]):
        raise Refused("Integrity")
    plain = gcm_decrypt(key, env["nonce"], env["ciphertext"], env["tag"],
                        env["header"] + aad_context)
    if plain is None:
        raise Refused("Integrity")
    return plain.hex()


def seal(keys, op):
    label = op["purpose"].encode("ascii")
    if not valid_label(label):
        raise Refused("InvalidPurposeLabel")
    kind, version = op["kind"], op["version"]
    plaintext = bytes.fromhex(op["plaintext"])
    if len(plaintext) > KIND_CAP[kind]:
        raise Refused("CiphertextLength")
    aad_context = encode_context(context_of(op))
    salt, nonce = bytes.fromhex(op["salt"]), bytes.fromhex(op["nonce"])
    key, commitment = epoch_key_and_commitment(purpose_key(keys[version], label, kind), salt)
    header = (bytes([1, kind, 0, len(label)]) + label + version.to_bytes(4, "big")
              + op["sealed_at"].to_bytes(8, "big") + salt + commitment + nonce)
    ct, tag = gcm_encrypt(key, nonce, plaintext, header + aad_context)
    return "fs1:" + base64.urlsafe_b64encode(header + ct + tag).rstrip(b"=").decode("ascii")


def answer(keys, retired, op):
    try:
        kind = op["op"]
        if kind == "parse":
            env = parse_binary(envelope_bytes(op))
            return {"ok": {
                "kind": env["kind"], "flags": env["flags"],
                "purpose": env["label"].decode("ascii"), "version": env["version"],
                "sealed_at": env["sealed_at"], "subject": env["subject"].hex(),
                "ciphertext_len": len(env["ciphertext"]),
            }}
        if kind == "open":
            return {"ok": open_envelope(keys, retired, op)}
        if kind == "seal":
            return {"ok": seal(keys, op)}
        if kind == "slot":
            key_id = subject_slot(op["subject"].encode("utf-8"), op["scope"].encode("ascii"))
            return {"ok": key_id.hex() if key_id is not None else None}
        if kind == "pseudonym":
            return {"ok": pseudonym(keys[op["version"]], op["purpose"].encode("ascii"),
                                    op["kind"], bytes.fromhex(op["canonical"])).hex()}
        if kind == "index":
            return {"ok": index_term(keys[op["version"]], op["purpose"].encode("ascii"),
                                     op["kind"], op["name"].encode("ascii"), op["bits"],
                                     bytes.fromhex(op["canonical"])).hex()}
        return {"error": "unknown op"}
    except Refused as e:
        return {"error": e.args[0]}


def main():
    doc = json.load(sys.stdin)
    keys = {int(v): bytes.fromhex(k) for v, k in doc["keys"].items()}
    retired = set(doc.get("retired", []))
    if "subject_store" in doc:
        SUBJECT_STORE.update(kek=bytes.fromhex(doc["subject_store"]["kek"]),
                             dir=doc["subject_store"]["dir"])
    report = {}
    if "wycheproof" in doc:
        report["wycheproof_aes256_gcm"] = wycheproof_self_test(doc["wycheproof"])
    answers = [answer(keys, retired, op) for op in doc["ops"]]
    json.dump({"self_test": report, "answers": answers}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
