//! 2^20 seals under one root key and purpose: no (epoch salt, nonce) pair repeats.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::*;
use fieldseal::builtin::Service;
use fieldseal::*;

#[test]
fn no_repeated_salt_nonce_pairs_in_2_pow_20_seals() {
    const N: usize = 1 << 20;
    // A small epoch limit also exercises epoch turnover: 2^20 / 2^16 = 16 epochs.
    let ring = Keyring::builder()
        .key(v(1), RootKey::from_bytes([9; 32]))
        .epoch_limit(1 << 16)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let g = guard_with(ring, Arc::new(MemorySink::new()));
    let value = Text::parse("same value every time").unwrap_or_else(|e| panic!("{e}"));
    let ctx = Context::new().table("t");
    // v1 header for purpose "service" (7 bytes): salt at 23..39, commitment 39..55, nonce 55..67.
    let (salt_at, nonce_at) = (4 + 7 + 4 + 8, 4 + 7 + 4 + 8 + 16 + 16);
    let mut pairs: HashSet<[u8; 28]> = HashSet::with_capacity(N);
    let mut salts: HashSet<[u8; 16]> = HashSet::new();
    let mut repeats = 0usize;
    for _ in 0..N {
        let s: Sealed<Text, Service> = g.seal(&value, &ctx).unwrap_or_else(|e| panic!("{e}"));
        let b = s.as_bytes();
        let mut k = [0u8; 28];
        k[..16].copy_from_slice(&b[salt_at..salt_at + 16]);
        k[16..].copy_from_slice(&b[nonce_at..nonce_at + 12]);
        salts.insert(k[..16].try_into().unwrap_or_else(|_| unreachable!()));
        if !pairs.insert(k) {
            repeats += 1;
        }
    }
    println!(
        "nonces: {N} seals, {} epochs, {repeats} repeated (salt, nonce) pairs",
        salts.len()
    );
    assert_eq!(repeats, 0);
    assert_eq!(salts.len(), 16);
}

/// `after_fork` drops the thread's sealing epoch: the next seal uses a fresh epoch salt (and a
/// reseeded generator), so a forked child cannot continue its parent's nonce sequence.
#[test]
fn after_fork_starts_a_new_epoch() {
    let g = guard();
    let value = Text::parse("v").unwrap_or_else(|e| panic!("{e}"));
    let ctx = Context::new();
    let salt = |s: &Sealed<Text, Service>| s.as_bytes()[23..39].to_vec();
    let a: Sealed<Text, Service> = g.seal(&value, &ctx).unwrap_or_else(|e| panic!("{e}"));
    let b: Sealed<Text, Service> = g.seal(&value, &ctx).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(salt(&a), salt(&b), "same thread, same epoch");
    fieldseal::after_fork().unwrap_or_else(|e| panic!("{e}"));
    let c: Sealed<Text, Service> = g.seal(&value, &ctx).unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(salt(&b), salt(&c), "a new epoch after fork");
    // Values from both epochs still open.
    for s in [&a, &b, &c] {
        assert!(g.reveal(&tester(), s, &ctx).is_ok());
    }
}
