//! Key commitment against multi-key GCM ciphertexts.
//!
//! AES-GCM is not key-committing: anyone who knows two keys can build one ciphertext and tag that
//! authenticate under both (Len, Grubbs and Ristenpart, "Partitioning Oracle Attacks", USENIX
//! Security 2021). GHASH is linear in every ciphertext block, so leaving one block free and
//! solving a single equation in GF(2^128) makes the tag verify under (key 1, AAD) and (key 2,
//! AAD). fieldseal stores a commitment to the epoch key in the header and compares it before
//! decrypting; these tests build such a ciphertext from the documented key derivation (SECURITY.md)
//! and require that the commitment check, on the derive path and on the cached path of the
//! keyring, rejects it. Without the check the crafted envelopes open, so the tests fail.

mod common;

use std::sync::Arc;

use aes::Aes256;
use aes::cipher::{Array, BlockCipherEncrypt, KeyInit};
use common::*;
use fieldseal::builtin::Service;
use fieldseal::hazmat::DeterministicRandom;
use fieldseal::internal::vectors::{aes256gcm_decrypt, aes256gcm_encrypt, hkdf_sha256};
use fieldseal::*;

const ROOT_1: [u8; 32] = [0x31; 32];
const ROOT_2: [u8; 32] = [0x52; 32];
/// Both guards draw the same epoch salt and nonce from this seed.
const SEED: [u8; 32] = [0x7c; 32];
const SEALED_AT: u64 = 1_764_000_000;

// ---------------------------------------------------------------------------------------------
// GF(2^128) in GCM's convention (NIST SP 800-38D, 6.3): a block is read big-endian into a u128,
// so the first bit of the block (the coefficient of x^0) is the u128's most significant bit, and
// the field polynomial x^128 + x^7 + x^2 + x + 1 reduces with R = 0xE1 << 120.

/// The multiplicative identity: the polynomial 1, i.e. the block 0x80 00 .. 00.
const ONE: u128 = 1 << 127;
const R: u128 = 0xE1 << 120;

fn gf_mul(x: u128, y: u128) -> u128 {
    let mut z = 0u128;
    let mut v = y;
    for i in 0..128 {
        if (x >> (127 - i)) & 1 == 1 {
            z ^= v;
        }
        // v = v * x: shift towards higher powers (right in this bit order), reduce on overflow.
        v = if v & 1 == 1 { (v >> 1) ^ R } else { v >> 1 };
    }
    z
}

fn gf_pow(x: u128, e: u128) -> u128 {
    let mut r = ONE;
    for i in (0..128).rev() {
        r = gf_mul(r, r);
        if (e >> i) & 1 == 1 {
            r = gf_mul(r, x);
        }
    }
    r
}

/// Inverse by Fermat: x^(2^128 - 2). Panics on zero, which has none.
fn gf_inv(x: u128) -> u128 {
    assert_ne!(x, 0, "zero has no inverse");
    gf_pow(x, u128::MAX - 1)
}

fn block(bytes: &[u8]) -> u128 {
    let mut b = [0u8; 16];
    b[..bytes.len()].copy_from_slice(bytes);
    u128::from_be_bytes(b)
}

// ---------------------------------------------------------------------------------------------
// GCM by hand: H = E_K(0^128), J0 = nonce || 0^31 1, tag = GHASH_H(A, C) xor E_K(J0).

fn aes_encrypt_block(key: &[u8; 32], input: u128) -> u128 {
    let cipher = Aes256::new(&Array::from(*key));
    let mut b = Array::from(input.to_be_bytes());
    cipher.encrypt_block(&mut b);
    u128::from_be_bytes(b.into())
}

fn ghash(h: u128, aad: &[u8], ct: &[u8]) -> u128 {
    let mut y = 0u128;
    for chunk in aad.chunks(16).chain(ct.chunks(16)) {
        y = gf_mul(y ^ block(chunk), h);
    }
    let lengths = (((aad.len() as u128) * 8) << 64) | ((ct.len() as u128) * 8);
    gf_mul(y ^ lengths, h)
}

/// H and E_K(J0) for one key and nonce.
fn gcm_constants(key: &[u8; 32], nonce: &[u8; 12]) -> (u128, u128) {
    let mut j0 = [0u8; 16];
    j0[..12].copy_from_slice(nonce);
    j0[15] = 1;
    (
        aes_encrypt_block(key, 0),
        aes_encrypt_block(key, u128::from_be_bytes(j0)),
    )
}

fn gcm_tag(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], ct: &[u8]) -> [u8; 16] {
    let (h, ej0) = gcm_constants(key, nonce);
    (ghash(h, aad, ct) ^ ej0).to_be_bytes()
}

/// Overwrites ciphertext block `free` (a whole 16-byte block) so that one tag authenticates `ct`
/// under both keys with the same nonce and associated data; returns that tag.
///
/// With the free block set to zero, T_k = S_k xor E_k(J0) where S_k = GHASH_{H_k}(A, C). The free
/// block X enters GHASH_{H_k} as X * H_k^p, p = (number of ciphertext blocks) - free + 1 (the
/// length block is multiplied by H^1). Equal tags need
/// X * (H_1^p xor H_2^p) = S_1 xor S_2 xor E_1(J0) xor E_2(J0).
fn collide(
    key1: &[u8; 32],
    key2: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    ct: &mut [u8],
    free: usize,
) -> [u8; 16] {
    let range = free * 16..free * 16 + 16;
    assert!(
        range.end <= ct.len(),
        "the free block must be a whole block"
    );
    ct[range.clone()].fill(0);
    let (h1, e1) = gcm_constants(key1, nonce);
    let (h2, e2) = gcm_constants(key2, nonce);
    let blocks = ct.len().div_ceil(16);
    let p = (blocks - free + 1) as u128;
    let rhs = ghash(h1, aad, ct) ^ ghash(h2, aad, ct) ^ e1 ^ e2;
    let x = gf_mul(rhs, gf_inv(gf_pow(h1, p) ^ gf_pow(h2, p)));
    ct[range].copy_from_slice(&x.to_be_bytes());
    let tag = gcm_tag(key1, nonce, aad, ct);
    assert_eq!(
        tag,
        gcm_tag(key2, nonce, aad, ct),
        "the solved block collides"
    );
    tag
}

// ---------------------------------------------------------------------------------------------
// The documented derivation and encodings (SECURITY.md), computed here independently.

fn lp(out: &mut Vec<u8>, part: &[u8]) {
    out.extend_from_slice(&u16::try_from(part.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(part);
}

/// (AES-256-GCM key, commitment) of the epoch key for `root`, purpose, kind and epoch salt.
fn epoch_key(root: &[u8; 32], purpose: &str, kind: FieldKind, salt: &[u8]) -> ([u8; 32], Vec<u8>) {
    let mut info = Vec::new();
    lp(&mut info, b"fieldseal/v1/purpose-key");
    lp(&mut info, &[1]);
    lp(&mut info, purpose.as_bytes());
    lp(&mut info, &[kind.code()]);
    lp(&mut info, &[]);
    // HKDF-Extract(salt = "fieldseal/v1/root-key", IKM = root) then Expand(info, 32).
    let purpose_key = hkdf_sha256(b"fieldseal/v1/root-key", root, &info, 32)
        .unwrap_or_else(|| panic!("HKDF length"));
    let mut info = Vec::new();
    lp(&mut info, b"fieldseal/v1/epoch-key");
    let okm = hkdf_sha256(salt, &purpose_key, &info, 48).unwrap_or_else(|| panic!("HKDF length"));
    let mut key = [0u8; 32];
    key.copy_from_slice(&okm[..32]);
    (key, okm[32..].to_vec())
}

/// Part count, then per part in name order: u8 name length, name, u16 value length, value.
fn encode_context(parts: &[(&str, &str)]) -> Vec<u8> {
    let mut sorted = parts.to_vec();
    sorted.sort();
    let mut out = vec![u8::try_from(sorted.len()).unwrap_or(u8::MAX)];
    for (name, value) in sorted {
        out.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(name.as_bytes());
        lp(&mut out, value.as_bytes());
    }
    out
}

const CONTEXT: [(&str, &str); 3] = [("table", "logins"), ("column", "ip"), ("row", "4711")];

fn context() -> Context {
    Context::new()
        .table(CONTEXT[0].1)
        .column(CONTEXT[1].1)
        .row(CONTEXT[2].1)
}

/// Header offsets for purpose `service` (7 bytes) without a subject key.
const LABEL_LEN: usize = 7;
const SALT_AT: usize = 4 + LABEL_LEN + 4 + 8;
const COMMITMENT_AT: usize = SALT_AT + 16;
const NONCE_AT: usize = COMMITMENT_AT + 16;
const HEADER_LEN: usize = NONCE_AT + 12;

/// A guard over a single version-1 root key, with the fixed seed and clock.
fn guard(root: [u8; 32]) -> (Guard, Arc<MemorySink>) {
    let sink = Arc::new(MemorySink::new());
    let g = Guard::builder()
        .keyring(Keyring::single(RootKey::from_bytes(root)).unwrap_or_else(|e| panic!("{e}")))
        .policy(allow_all(&["service"]))
        .audit(Arc::clone(&sink))
        .clock(Arc::new(FixedClock::new(SEALED_AT)))
        .dangerous_random_source(Arc::new(DeterministicRandom::dangerous_new(SEED)))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    (g, sink)
}

fn seal<F: Field>(g: &Guard, value: &str) -> Sealed<F, Service> {
    let v = F::parse(value).unwrap_or_else(|e| panic!("{e}"));
    g.seal::<F, Service>(&v, &context())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A ciphertext that authenticates under the epoch keys of both root keys.
struct Crafted {
    envelope: Vec<u8>,
    key1: [u8; 32],
    key2: [u8; 32],
    nonce: [u8; 12],
    aad: Vec<u8>,
}

/// Takes the header of `sealed` (made by the guard over `ROOT_1`: its salt, nonce and key-1
/// commitment), keeps its ciphertext except block `free`, and solves that block so the tag is
/// valid under the epoch keys of `ROOT_1` and `ROOT_2` for the same salt.
fn craft<F: Field>(sealed: &Sealed<F, Service>, free: usize) -> Crafted {
    let bytes = sealed.as_bytes();
    let header = &bytes[..HEADER_LEN];
    let salt = &header[SALT_AT..COMMITMENT_AT];
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&header[NONCE_AT..HEADER_LEN]);
    let (key1, commitment1) = epoch_key(&ROOT_1, "service", F::KIND, salt);
    let (key2, commitment2) = epoch_key(&ROOT_2, "service", F::KIND, salt);
    assert_eq!(
        commitment1,
        &header[COMMITMENT_AT..NONCE_AT],
        "derivation as documented"
    );
    assert_ne!(commitment1, commitment2);
    let mut aad = header.to_vec();
    aad.extend_from_slice(&encode_context(&CONTEXT));
    let mut ct = bytes[HEADER_LEN..bytes.len() - 16].to_vec();
    let tag = collide(&key1, &key2, &nonce, &aad, &mut ct, free);
    let mut envelope = header.to_vec();
    envelope.extend_from_slice(&ct);
    envelope.extend_from_slice(&tag);
    Crafted {
        envelope,
        key1,
        key2,
        nonce,
        aad,
    }
}

impl Crafted {
    /// Raw AES-GCM (as the crate calls it) accepts the ciphertext under both keys.
    fn assert_opens_under_both_keys(&self) -> (Vec<u8>, Vec<u8>) {
        let body = &self.envelope[HEADER_LEN..];
        let p1 = aes256gcm_decrypt(&self.key1, &self.nonce, &self.aad, body)
            .unwrap_or_else(|| panic!("crafted ciphertext must authenticate under key 1"));
        let p2 = aes256gcm_decrypt(&self.key2, &self.nonce, &self.aad, body)
            .unwrap_or_else(|| panic!("crafted ciphertext must authenticate under key 2"));
        assert_ne!(p1, p2, "two keys, two plaintexts");
        (p1, p2)
    }

    fn sealed<F: Field>(&self) -> Sealed<F, Service> {
        Sealed::from_bytes(&self.envelope).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The outcomes the sink recorded, oldest first.
fn outcomes(sink: &MemorySink) -> Vec<Outcome> {
    sink.records().iter().map(|r| r.outcome).collect()
}

#[test]
fn hand_built_gcm_matches_the_crate() {
    // Field arithmetic: identity, inverse, and x * x^-1 for a few elements.
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..8 {
        let x = (u128::from(rng.next()) << 64) | u128::from(rng.next());
        assert_eq!(gf_mul(x, ONE), x);
        assert_eq!(gf_mul(ONE, x), x);
        assert_eq!(gf_mul(x, gf_inv(x)), ONE);
    }
    // Tags: the hand-built GHASH and the crate's AES-GCM agree, whole and partial blocks.
    let key = [0x0b; 32];
    let nonce = [0x0c; 12];
    for (aad_len, pt_len) in [(0, 0), (0, 16), (13, 1), (16, 32), (37, 47), (70, 64)] {
        let aad: Vec<u8> = (0..aad_len).map(|i| i as u8).collect();
        let pt: Vec<u8> = (0..pt_len).map(|i| (i * 7) as u8).collect();
        let out = aes256gcm_encrypt(&key, &nonce, &aad, &pt);
        let (ct, tag) = out.split_at(pt_len);
        assert_eq!(
            gcm_tag(&key, &nonce, &aad, ct),
            tag,
            "aad {aad_len}, pt {pt_len}"
        );
    }
}

#[test]
fn documented_derivation_and_associated_data_open_a_sealed_value() {
    let (g, _) = guard(ROOT_1);
    let sealed = seal::<IpAddress>(&g, "2001:db8::17");
    let bytes = sealed.as_bytes();
    let header = &bytes[..HEADER_LEN];
    let (key, commitment) = epoch_key(
        &ROOT_1,
        "service",
        FieldKind::IpAddress,
        &header[SALT_AT..COMMITMENT_AT],
    );
    assert_eq!(commitment, &header[COMMITMENT_AT..NONCE_AT]);
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&header[NONCE_AT..]);
    let mut aad = header.to_vec();
    aad.extend_from_slice(&encode_context(&CONTEXT));
    let plain = aes256gcm_decrypt(&key, &nonce, &aad, &bytes[HEADER_LEN..])
        .unwrap_or_else(|| panic!("documented derivation must open the envelope"));
    let want = IpAddress::parse("2001:db8::17").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plain, want.canonical_bytes().to_vec());
}

/// The keyring derives the epoch key for the envelope's salt (nothing cached) and must refuse it
/// on the commitment: the GCM tag alone would accept it.
#[test]
fn multi_key_ciphertext_is_rejected_on_the_derive_path() {
    let (g1, _) = guard(ROOT_1);
    // One 16-byte block (an IPv6 address): every plaintext is a valid value, so without the
    // commitment check the reveal under key 2 would succeed.
    let crafted = craft(&seal::<IpAddress>(&g1, "2001:db8::17"), 0);
    let (p1, _) = crafted.assert_opens_under_both_keys();

    // Under ring 1 it is an ordinary envelope (its commitment is key 1's).
    let opened = g1
        .reveal(&tester(), &crafted.sealed::<IpAddress>(), &context())
        .unwrap_or_else(|e| panic!("ring 1 opens the crafted envelope: {e}"));
    assert_eq!(opened.expose_secret().canonical_bytes().to_vec(), p1);

    // Ring 2 has never seen this salt: it derives key 2, whose commitment differs.
    let (g2, sink2) = guard(ROOT_2);
    match g2.reveal(&tester(), &crafted.sealed::<IpAddress>(), &context()) {
        Err(Error::Integrity) => {}
        Ok(v) => panic!(
            "key commitment not checked: opened as {}",
            v.expose_secret().addr()
        ),
        Err(e) => panic!("expected Error::Integrity, got {e:?}"),
    }
    assert_eq!(
        outcomes(&sink2),
        [Outcome::Allowed, Outcome::Failed(FailureKind::Integrity)]
    );
    // Still refused the second time (a rejected key is not cached).
    assert!(matches!(
        g2.mask(&tester(), &crafted.sealed::<IpAddress>(), &context()),
        Err(Error::Integrity)
    ));
}

/// Ring 2 already holds the epoch key for this salt (it sealed under it), so the envelope is
/// checked against the cached key's commitment.
#[test]
fn multi_key_ciphertext_is_rejected_on_the_cached_path() {
    let (g1, _) = guard(ROOT_1);
    let crafted = craft(&seal::<IpAddress>(&g1, "2001:db8::17"), 0);
    crafted.assert_opens_under_both_keys();

    let (g2, sink2) = guard(ROOT_2);
    // Same seed: ring 2 draws the same epoch salt and caches its own key for it.
    let own = seal::<IpAddress>(&g2, "198.51.100.7");
    assert_eq!(
        own.as_bytes()[SALT_AT..COMMITMENT_AT],
        crafted.envelope[SALT_AT..COMMITMENT_AT],
        "both rings use one epoch salt"
    );
    match g2.reveal(&tester(), &crafted.sealed::<IpAddress>(), &context()) {
        Err(Error::Integrity) => {}
        Ok(v) => panic!(
            "cached key commitment not checked: opened as {}",
            v.expose_secret().addr()
        ),
        Err(e) => panic!("expected Error::Integrity, got {e:?}"),
    }
    assert_eq!(
        outcomes(&sink2),
        [Outcome::Allowed, Outcome::Failed(FailureKind::Integrity)]
    );
    // Ring 2's own envelope under the cached key still opens.
    let mine = g2
        .reveal(&tester(), &own, &context())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mine.expose_secret().addr().to_string(), "198.51.100.7");
}

/// The same with a longer value and a free block in the middle: 69 bytes are five ciphertext
/// blocks, and the second enters GHASH multiplied by H^5. Both keyring paths.
#[test]
fn multi_key_ciphertext_with_a_free_middle_block_is_rejected() {
    let (g1, _) = guard(ROOT_1);
    let value = "order 4711 shipped to the pickup point on the corner, ask at the desk";
    let sealed = seal::<Text>(&g1, value);
    let ct_len = sealed.as_bytes().len() - HEADER_LEN - 16;
    assert!(ct_len > 48, "at least three whole blocks and a partial one");
    let crafted = craft(&sealed, 1);
    let (p1, _) = crafted.assert_opens_under_both_keys();
    // Under key 1 only the free block differs from the sealed value.
    assert_eq!(p1[..16], value.as_bytes()[..16]);
    assert_eq!(p1[32..], value.as_bytes()[32..]);

    for warm_cache in [false, true] {
        let (g2, sink2) = guard(ROOT_2);
        if warm_cache {
            let own = seal::<Text>(&g2, "cached");
            assert_eq!(
                own.as_bytes()[SALT_AT..COMMITMENT_AT],
                crafted.envelope[SALT_AT..COMMITMENT_AT]
            );
        }
        match g2.reveal(&tester(), &crafted.sealed::<Text>(), &context()) {
            Err(Error::Integrity) => {}
            Ok(_) => panic!("key commitment not checked (cache warm: {warm_cache})"),
            Err(e) => panic!("expected Error::Integrity (cache warm: {warm_cache}), got {e:?}"),
        }
        // A failed open is recorded as such; a decrypted-but-unparsable value would not be.
        assert_eq!(
            outcomes(&sink2).last(),
            Some(&Outcome::Failed(FailureKind::Integrity)),
            "cache warm: {warm_cache}"
        );
    }
}

/// A value that authenticates but whose plaintext does not parse as its kind (as when a kind's
/// rules tighten after values were sealed) is refused with `Error::Field` and leaves a
/// `failed:field` record after the allowed one.
#[test]
fn an_authentic_value_that_does_not_parse_is_recorded() {
    let (g, sink) = guard(ROOT_1);
    let sealed = seal::<Text>(&g, "sixteen bytes!!!");
    let bytes = sealed.as_bytes();
    let header = &bytes[..HEADER_LEN];
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&header[NONCE_AT..HEADER_LEN]);
    let (key, _) = epoch_key(
        &ROOT_1,
        "service",
        FieldKind::Text,
        &header[SALT_AT..COMMITMENT_AT],
    );
    let mut aad = header.to_vec();
    aad.extend_from_slice(&encode_context(&CONTEXT));
    // Not UTF-8: no `Text` parses from it, yet it is sealed under the right key and context.
    let body = aes256gcm_encrypt(&key, &nonce, &aad, &[0xff; 16]);
    let mut envelope = header.to_vec();
    envelope.extend_from_slice(&body);
    let forged: Sealed<Text, Service> =
        Sealed::from_bytes(&envelope).unwrap_or_else(|e| panic!("{e}"));
    let got = g.reveal(&tester(), &forged, &context());
    assert!(matches!(got, Err(Error::Field(_))), "{got:?}");
    assert_eq!(
        outcomes(&sink),
        [Outcome::Allowed, Outcome::Failed(FailureKind::Field)]
    );
    assert_eq!(sink.records()[1].outcome.label(), "failed:field");
}
