#!/usr/bin/env python3
"""fieldseal keyring files (version 1) under a `FileKek`, read a second time from SECURITY.md
alone ("Key providers" and "Keyring file").

Python's standard library only, plus the AES-256-GCM of `envelope.py` and the Ed25519 point
arithmetic of `audit_verify.py` (both second implementations of their own sections). Nothing is
taken from the crate's code.

Input (standard input): {"kek": "<32 bytes hex>", "files": ["<path>", ...], "remac": [...]}; the
KEK is a secret and comes on standard input only. Each `remac` item {"src", "dst", "body"} first
writes `body` to `dst` under the file key of `src` with a valid MAC (see `remac`). Output: {"answers": [...]}, per file either
    {"ok": {"provider": id, "generation": n,
            "keys": [{"version": v, "state": s, "root": hex or null}, ...],
            "audit_key": hex, "checkpoint_public": hex}}
or {"error": "<the crate's error variant>"}. A retired key's root is not unwrapped (null): the
file keeps it for an operator, and a reader has no use for it.
"""

import base64
import hashlib
import hmac
import json
import os
import sys

from audit_verify import BASE, _encode, _mul
from envelope import gcm_decrypt, gcm_encrypt, hkdf_expand, hkdf_extract, lp

MAX_FILE = 1 << 20
STATES = ("active", "decrypt_only", "retired")


class Refused(Exception):
    """A refusal, named as the crate's error variant."""


class Obj(list):
    """A JSON object, as its (name, value) pairs in file order."""

    def names(self):
        return [n for n, _ in self]


def provider_id(kek):
    """`file:` and the first 8 bytes, in hex, of HMAC-SHA256(KEK, "fieldseal/v1/kek-fingerprint")."""
    return "file:" + hmac.new(kek, b"fieldseal/v1/kek-fingerprint", hashlib.sha256).digest()[:8].hex()


def unwrap(key, wrapped, aad, failure, short="FileMalformed"):
    """nonce (12) ‖ ciphertext ‖ tag (16) under AES-256-GCM: `short` if too short to hold
    nonce and tag, `failure` if the tag does not verify."""
    if len(wrapped) < 28:
        raise Refused(short)
    plain = gcm_decrypt(key, wrapped[:12], wrapped[12:-16], wrapped[-16:], aad)
    if plain is None:
        raise Refused(failure)
    return plain


def b64(value):
    """Standard base64 with padding, canonical (non-zero trailing bits refused)."""
    try:
        raw = value.encode("ascii")
        out = base64.b64decode(raw, validate=True)
    except (ValueError, UnicodeEncodeError):
        raise Refused("FileMalformed")
    if base64.b64encode(out) != raw:
        raise Refused("FileMalformed")
    return out


def is_u(v, bits):
    return type(v) is int and 0 <= v < (1 << bits)


def shaped(value, members):
    """A JSON object with exactly these members (in any order, none repeated or unknown), each
    passing its check; else FileMalformed."""
    if not isinstance(value, Obj) or sorted(value.names()) != sorted(members):
        raise Refused("FileMalformed")
    out = dict(value)
    for name, check in members.items():
        if not check(out[name]):
            raise Refused("FileMalformed")
    return out


def is_str(v):
    return isinstance(v, str)


KEY_MEMBERS = {"version": lambda v: is_u(v, 32), "state": is_str, "key": is_str}
BODY_MEMBERS = {
    "format": is_str, "version": lambda v: is_u(v, 32), "provider": is_str, "file_key": is_str,
    "generation": lambda v: is_u(v, 64),
    "keys": lambda v: isinstance(v, list) and not isinstance(v, Obj),
    "audit_key": is_str, "checkpoint_key": is_str,
}


def ed25519_public(seed):
    """RFC 8032, 5.1.5: the public key of a 32-byte private key."""
    h = hashlib.sha512(seed).digest()
    a = bytearray(h[:32])
    a[0] &= 248
    a[31] &= 127
    a[31] |= 64
    return _encode(_mul(int.from_bytes(a, "little"), BASE))


def read(kek, path):
    """The checks of "Keyring file", in the order SECURITY.md gives; the first failure is the
    answer."""
    with open(path, "rb") as f:
        data = f.read(MAX_FILE + 1)
    if len(data) > MAX_FILE:
        raise Refused("FileMalformed")
    # Exactly two lines, each ending in a newline.
    lines = data.split(b"\n")
    if len(lines) != 3 or lines[2] != b"":
        raise Refused("FileMalformed")
    body_line, mac_line = lines[0], lines[1]
    body = shaped(parse_json(body_line), BODY_MEMBERS)
    keys = [shaped(k, KEY_MEMBERS) for k in body["keys"]]
    if body["format"] != "fieldseal-keyring":
        raise Refused("FileMalformed")
    if body["version"] != 1:
        raise Refused("UnsupportedFileVersion")
    provider = provider_id(kek)
    if body["provider"] != provider:
        raise Refused("WrongProvider")
    # The provider's unwrap: whatever does not unwrap, too short included, is Unwrap.
    file_key = unwrap(kek, b64(body["file_key"]),
                      lp(b"fieldseal/v1/keyring-file-key") + lp(provider.encode("ascii")),
                      "Unwrap", "Unwrap")
    if len(file_key) != 32:
        raise Refused("FileMalformed")
    mac = shaped(parse_json(mac_line), {"mac": is_str})["mac"]
    if len(mac) != 64 or any(c not in "0123456789abcdef" for c in mac):
        raise Refused("FileMalformed")
    mac_key = hkdf_expand(hkdf_extract(b"", file_key), b"fieldseal/v1/keyring-mac", 32)
    if not hmac.compare_digest(hmac.new(mac_key, body_line, hashlib.sha256).digest(),
                               bytes.fromhex(mac)):
        raise Refused("FileIntegrity")
    audit, checkpoint = b64(body["audit_key"]), b64(body["checkpoint_key"])

    def secret(name, wrapped):
        return unwrap(file_key, wrapped, lp(b"fieldseal/v1/keyring-secret") + lp(name),
                      "FileIntegrity")

    out, seen = [], set()
    for k in keys:
        v, state = k["version"], k["state"]
        if v == 0 or state not in STATES:
            raise Refused("FileMalformed")
        wrapped = b64(k["key"])
        root = None if state == "retired" else secret(b"root/%d" % v, wrapped)
        if root is not None and len(root) != 32:
            raise Refused("InvalidLength")
        if v in seen:
            raise Refused("DuplicateVersion")
        seen.add(v)
        out.append({"version": v, "state": state, "root": root and root.hex()})
    audit = secret(b"audit", audit)
    if len(audit) != 32:
        raise Refused("InvalidLength")
    checkpoint = secret(b"checkpoint", checkpoint)
    if len(checkpoint) != 32:
        raise Refused("InvalidLength")
    if sum(1 for k in out if k["state"] == "active") != 1:
        raise Refused("NoActiveKey")
    return {
        "provider": provider, "generation": body["generation"],
        "keys": sorted(out, key=lambda k: k["version"]),
        "audit_key": audit.hex(), "checkpoint_public": ed25519_public(checkpoint).hex(),
    }


def parse_json(line):
    """RFC 8259 JSON whose strings are Unicode scalar values (a lone surrogate escape such as
    `\\ud800` is refused) and whose numbers, to be read as integers, are written without a
    sign, fraction or exponent (`-0` is not an integer)."""
    try:
        value = json.loads(line.decode("utf-8"), object_pairs_hook=Obj,
                           parse_int=lambda t: float(t) if t.startswith("-") else int(t))
    except (ValueError, UnicodeDecodeError):
        raise Refused("FileMalformed")
    if not scalar_strings(value):
        raise Refused("FileMalformed")
    return value


def scalar_strings(v):
    if isinstance(v, str):
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(v, Obj):
        return all(scalar_strings(n) and scalar_strings(x) for n, x in v)
    if isinstance(v, list):
        return all(scalar_strings(x) for x in v)
    return True


def remac(kek, src, dst, body, reseal):
    """Writes `body` to `dst` as a keyring file under the file key of `src`, with a valid MAC,
    after sealing each secret of `reseal` ({member: [name, plaintext hex]}) into its member: for
    tests of what is checked after the MAC (the file key is all a forger would need)."""
    with open(src, "rb") as f:
        first = json.loads(f.read().split(b"\n")[0])
    file_key = unwrap(kek, b64(first["file_key"]),
                      lp(b"fieldseal/v1/keyring-file-key") + lp(first["provider"].encode()),
                      "Unwrap")
    if reseal:
        doc = json.loads(body)
        for member, (name, plain) in reseal.items():
            nonce = os.urandom(12)
            ct, tag = gcm_encrypt(file_key, nonce, bytes.fromhex(plain),
                                  lp(b"fieldseal/v1/keyring-secret") + lp(name.encode()))
            # A member path: "audit_key", or "keys.1.key" for the second key's secret.
            *path, last = member.split(".")
            target = doc
            for step in path:
                target = target[int(step)] if step.isdigit() else target[step]
            target[last] = base64.b64encode(nonce + ct + tag).decode("ascii")
        body = json.dumps(doc, separators=(",", ":"))
    mac_key = hkdf_expand(hkdf_extract(b"", file_key), b"fieldseal/v1/keyring-mac", 32)
    raw = body.encode("utf-8")
    mac = hmac.new(mac_key, raw, hashlib.sha256).hexdigest()
    with open(dst, "wb") as f:
        f.write(raw + b"\n" + json.dumps({"mac": mac}, separators=(",", ":")).encode() + b"\n")


def main():
    doc = json.load(sys.stdin)
    kek = bytes.fromhex(doc["kek"])
    for r in doc.get("remac", []):
        remac(kek, r["src"], r["dst"], r["body"], r.get("reseal", {}))
    answers = []
    for path in doc["files"]:
        try:
            answers.append({"ok": read(kek, path)})
        except Refused as e:
            answers.append({"error": e.args[0]})
    json.dump({"answers": answers}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
