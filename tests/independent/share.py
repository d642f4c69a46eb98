#!/usr/bin/env python3
"""fieldseal shared packages, version 1, implemented a second time from SECURITY.md alone.

Section used: "Sharing" (package layout, binding `B`, HPKE info and associated data, text form),
with `lp`, the context encoding and the strict base64url rules of the envelope sections (taken
from `envelope.py`, the second implementation of those). HPKE is RFC 9180 base mode with
DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and ChaCha20Poly1305; X25519 (RFC 7748), ChaCha20 and
Poly1305 (RFC 8439) are written out below and checked, before use, against RFC 9180 appendix
A.2.1 (which exercises all of them). Python's standard library only; nothing taken from the
crate's code.

Input (standard input): one JSON document {"ops": [<op>, ...]}; output {"self_test": ...,
"answers": [...]}, one answer per op. Private keys and ephemeral key material arrive on standard
input only. Ops:
    {"op": "parse", "text": "fss1:..."} | {"op": "parse", "hex": "..."}
        -> {"ok": {kind, purpose, recipient, shared_at, ciphertext_len}} or {"error": variant}
    {"op": "open", "text" | "hex", "private_key": hex, "recipient": name, "purpose": label,
     "context": [[name hex, value hex], ...]}
        -> {"ok": "<plaintext hex>"} or {"error": variant}
    {"op": "seal", "public_key": hex, "ikm_e": hex, "kind": code, "purpose": label,
     "recipient": name, "shared_at": t, "plaintext": hex, "context": [...]}
        -> {"ok": "fss1:..."} or {"error": variant}
    {"op": "public_key", "private_key": hex} -> {"ok": hex}
"""

import base64
import hmac
import json
import struct
import sys

from envelope import (KIND_CAP, Refused, decode_text, encode_context, hkdf_expand, hkdf_extract,
                      lp, start, valid_label)

# ---------------------------------------------------------------------------------------------
# X25519 (RFC 7748, section 5).

_P = 2 ** 255 - 19
_A24 = 121665
BASE_POINT = (9).to_bytes(32, "little")


def x25519(scalar, u_bytes):
    k = bytearray(scalar)
    k[0] &= 248
    k[31] &= 127
    k[31] |= 64
    k = int.from_bytes(k, "little")
    x1 = int.from_bytes(u_bytes, "little") & ((1 << 255) - 1)
    x2, z2, x3, z3 = 1, 0, x1, 1
    swap = 0
    for t in range(254, -1, -1):
        bit = (k >> t) & 1
        swap ^= bit
        if swap:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = bit
        a = (x2 + z2) % _P
        aa = a * a % _P
        b = (x2 - z2) % _P
        bb = b * b % _P
        e = (aa - bb) % _P
        c = (x3 + z3) % _P
        d = (x3 - z3) % _P
        da = d * a % _P
        cb = c * b % _P
        x3 = (da + cb) ** 2 % _P
        z3 = x1 * (da - cb) ** 2 % _P
        x2 = aa * bb % _P
        z2 = e * (aa + _A24 * e) % _P
    if swap:
        x2, z2 = x3, z3
    return (x2 * pow(z2, _P - 2, _P) % _P).to_bytes(32, "little")


# ---------------------------------------------------------------------------------------------
# ChaCha20 and Poly1305 (RFC 8439).

_M32 = 0xFFFFFFFF


def _rotl(v, n):
    return ((v << n) | (v >> (32 - n))) & _M32


def _quarter(s, a, b, c, d):
    s[a] = (s[a] + s[b]) & _M32
    s[d] = _rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & _M32
    s[b] = _rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & _M32
    s[d] = _rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & _M32
    s[b] = _rotl(s[b] ^ s[c], 7)


def chacha20_block(key, counter, nonce):
    state = ([0x61707865, 0x3320646E, 0x79622D32, 0x6B206574] + list(struct.unpack("<8I", key))
             + [counter] + list(struct.unpack("<3I", nonce)))
    w = list(state)
    for _ in range(10):
        _quarter(w, 0, 4, 8, 12)
        _quarter(w, 1, 5, 9, 13)
        _quarter(w, 2, 6, 10, 14)
        _quarter(w, 3, 7, 11, 15)
        _quarter(w, 0, 5, 10, 15)
        _quarter(w, 1, 6, 11, 12)
        _quarter(w, 2, 7, 8, 13)
        _quarter(w, 3, 4, 9, 14)
    return struct.pack("<16I", *[(a + b) & _M32 for a, b in zip(w, state)])


def chacha20_xor(key, counter, nonce, data):
    out = bytearray()
    for i in range(0, len(data), 64):
        block = chacha20_block(key, counter + i // 64, nonce)
        out += bytes(a ^ b for a, b in zip(data[i:i + 64], block))
    return bytes(out)


def poly1305(key, msg):
    r = int.from_bytes(key[:16], "little") & 0x0FFFFFFC0FFFFFFC0FFFFFFC0FFFFFFF
    s = int.from_bytes(key[16:32], "little")
    p = (1 << 130) - 5
    acc = 0
    for i in range(0, len(msg), 16):
        acc = (acc + int.from_bytes(msg[i:i + 16] + b"\x01", "little")) * r % p
    return ((acc + s) & ((1 << 128) - 1)).to_bytes(16, "little")


def _poly_input(aad, ct):
    pad = lambda b: bytes(-len(b) % 16)  # noqa: E731
    return (aad + pad(aad) + ct + pad(ct) + struct.pack("<Q", len(aad))
            + struct.pack("<Q", len(ct)))


def chacha20poly1305_seal(key, nonce, aad, plaintext):
    otk = chacha20_block(key, 0, nonce)[:32]
    ct = chacha20_xor(key, 1, nonce, plaintext)
    return ct + poly1305(otk, _poly_input(aad, ct))


def chacha20poly1305_open(key, nonce, aad, sealed):
    """The plaintext, or None when the tag does not verify."""
    if len(sealed) < 16:
        return None
    ct, tag = sealed[:-16], sealed[-16:]
    otk = chacha20_block(key, 0, nonce)[:32]
    if not hmac.compare_digest(poly1305(otk, _poly_input(aad, ct)), tag):
        return None
    return chacha20_xor(key, 1, nonce, ct)


# ---------------------------------------------------------------------------------------------
# HPKE (RFC 9180), base mode, single shot (sequence number 0).

_KEM_SUITE = b"KEM" + (0x0020).to_bytes(2, "big")
_HPKE_SUITE = (b"HPKE" + (0x0020).to_bytes(2, "big") + (0x0001).to_bytes(2, "big")
               + (0x0003).to_bytes(2, "big"))


def _labeled_extract(suite, salt, label, ikm):
    return hkdf_extract(salt, b"HPKE-v1" + suite + label + ikm)


def _labeled_expand(suite, prk, label, info, length):
    return hkdf_expand(prk, length.to_bytes(2, "big") + b"HPKE-v1" + suite + label + info, length)


def derive_key_pair(ikm):
    prk = _labeled_extract(_KEM_SUITE, b"", b"dkp_prk", ikm)
    sk = _labeled_expand(_KEM_SUITE, prk, b"sk", b"", 32)
    return sk, x25519(sk, BASE_POINT)


def _shared_secret(dh, enc, pk_r):
    if dh == bytes(32):
        raise Refused("Integrity")
    prk = _labeled_extract(_KEM_SUITE, b"", b"eae_prk", dh)
    return _labeled_expand(_KEM_SUITE, prk, b"shared_secret", enc + pk_r, 32)


def _key_schedule(shared, info):
    psk_id_hash = _labeled_extract(_HPKE_SUITE, b"", b"psk_id_hash", b"")
    info_hash = _labeled_extract(_HPKE_SUITE, b"", b"info_hash", info)
    context = b"\x00" + psk_id_hash + info_hash
    secret = _labeled_extract(_HPKE_SUITE, shared, b"secret", b"")
    return (_labeled_expand(_HPKE_SUITE, secret, b"key", context, 32),
            _labeled_expand(_HPKE_SUITE, secret, b"base_nonce", context, 12))


def hpke_seal(pk_r, ikm_e, info, aad, plaintext):
    sk_e, enc = derive_key_pair(ikm_e)
    key, nonce = _key_schedule(_shared_secret(x25519(sk_e, pk_r), enc, pk_r), info)
    return enc, chacha20poly1305_seal(key, nonce, aad, plaintext)


def hpke_open(sk_r, enc, info, aad, sealed):
    pk_r = x25519(sk_r, BASE_POINT)
    key, nonce = _key_schedule(_shared_secret(x25519(sk_r, enc), enc, pk_r), info)
    plain = chacha20poly1305_open(key, nonce, aad, sealed)
    if plain is None:
        raise Refused("Integrity")
    return plain


def rfc9180_a21_self_test():
    """RFC 9180, appendix A.2.1, encryption with sequence number 0: seal from ikmE, and open."""
    h = bytes.fromhex
    info = h("4f6465206f6e2061204772656369616e2055726e")
    ikm_e = h("909a9b35d3dc4713a5e72a4da274b55d3d3821a37e5d099e74a647db583a904b")
    enc = h("1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a")
    pk_r = h("4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a")
    sk_r = h("8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb")
    pt = h("4265617574792069732074727574682c20747275746820626561757479")
    aad = h("436f756e742d30")
    ct = h("1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1"
           "b51a28")
    if x25519(sk_r, BASE_POINT) != pk_r:
        raise AssertionError("X25519 public key")
    if hpke_seal(pk_r, ikm_e, info, aad, pt) != (enc, ct):
        raise AssertionError("HPKE seal")
    if hpke_open(sk_r, enc, info, aad, ct) != pt:
        raise AssertionError("HPKE open")
    return True


# ---------------------------------------------------------------------------------------------
# Package, version 1.

MAX_PACKAGE = 16508
MAX_PACKAGE_TEXT = 5 + 4 * -(-MAX_PACKAGE // 3)


def parse(b):
    r, kind = start(b, MAX_PACKAGE)
    # Unlike an envelope's label length, these lengths are not checked before their bytes are
    # taken: a length beyond the input is Truncated, 0 or over 32 fails the name rule.
    purpose = r.take(r.byte())
    if not valid_label(purpose):
        raise Refused("InvalidPurposeLabel")
    recipient = r.take(r.byte())
    if not valid_label(recipient):
        raise Refused("InvalidName")
    shared_at = int.from_bytes(r.take(8), "big")
    header = b[:r.pos]
    enc = r.take(32)
    sealed = r.rest()
    if len(sealed) < 16:
        raise Refused("Truncated")
    if len(sealed) - 16 > KIND_CAP[kind]:
        raise Refused("CiphertextLength")
    return {"kind": kind, "purpose": purpose, "recipient": recipient, "shared_at": shared_at,
            "header": header, "enc": enc, "sealed": sealed}


def binding(purpose, kind, recipient, context):
    return (lp(b"fieldseal/v1/share") + lp(b"\x01") + lp(purpose) + lp(bytes([kind]))
            + lp(recipient) + lp(context))


def package_bytes(op):
    if "text" in op:
        return decode_text(op["text"], b"fss1:", MAX_PACKAGE_TEXT)
    return bytes.fromhex(op["hex"])


def context_of(op):
    return encode_context([(bytes.fromhex(n), bytes.fromhex(v)) for n, v in op["context"]])


def open_package(op):
    context = context_of(op)
    p = parse(package_bytes(op))
    # The caller's recipient and purpose, not the package's, go into the binding.
    b = binding(op["purpose"].encode("ascii"), p["kind"], op["recipient"].encode("ascii"),
                context)
    return hpke_open(bytes.fromhex(op["private_key"]), p["enc"], b, p["header"] + b,
                     p["sealed"]).hex()


def seal_package(op):
    purpose, recipient = op["purpose"].encode("ascii"), op["recipient"].encode("ascii")
    kind = op["kind"]
    b = binding(purpose, kind, recipient, context_of(op))
    header = (bytes([1, kind, len(purpose)]) + purpose + bytes([len(recipient)]) + recipient
              + op["shared_at"].to_bytes(8, "big"))
    enc, sealed = hpke_seal(bytes.fromhex(op["public_key"]), bytes.fromhex(op["ikm_e"]), b,
                            header + b, bytes.fromhex(op["plaintext"]))
    data = header + enc + sealed
    return "fss1:" + base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def answer(op):
    try:
        if op["op"] == "parse":
            p = parse(package_bytes(op))
            return {"ok": {"kind": p["kind"], "purpose": p["purpose"].decode("ascii"),
                           "recipient": p["recipient"].decode("ascii"),
                           "shared_at": p["shared_at"], "ciphertext_len": len(p["sealed"]) - 16}}
        if op["op"] == "open":
            return {"ok": open_package(op)}
        if op["op"] == "seal":
            return {"ok": seal_package(op)}
        if op["op"] == "public_key":
            return {"ok": x25519(bytes.fromhex(op["private_key"]), BASE_POINT).hex()}
        return {"error": "unknown op"}
    except Refused as e:
        return {"error": e.args[0]}


def main():
    doc = json.load(sys.stdin)
    report = {"rfc9180_a21": rfc9180_a21_self_test()}
    json.dump({"self_test": report, "answers": [answer(op) for op in doc["ops"]]}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
