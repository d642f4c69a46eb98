use proptest::prelude::*;
use zeroize::Zeroizing;

use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

fn arr(s: &str) -> [u8; 32] {
    hex(s).try_into().unwrap_or_else(|_| panic!("not 32 bytes"))
}

// RFC 9180, appendix A.2.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305, base
// mode, encryption with sequence number 0.
const INFO: &str = "4f6465206f6e2061204772656369616e2055726e";
const IKM_E: &str = "909a9b35d3dc4713a5e72a4da274b55d3d3821a37e5d099e74a647db583a904b";
const ENC: &str = "1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a";
const PK_RM: &str = "4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a";
const SK_RM: &str = "8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb";
const PT: &str = "4265617574792069732074727574682c20747275746820626561757479";
const AAD: &str = "436f756e742d30";
const CT: &str =
    "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28";

fn rfc_private() -> RecipientPrivateKey {
    RecipientPrivateKey::from_bytes(Zeroizing::new(arr(SK_RM))).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn rfc9180_a21_seal_through_the_wrapper() {
    let pk = RecipientPublicKey::from_bytes(arr(PK_RM)).unwrap_or_else(|e| panic!("{e}"));
    let out = hpke_seal(&pk, &arr(IKM_E), &hex(INFO), &hex(AAD), &hex(PT))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut expected = hex(ENC);
    expected.extend_from_slice(&hex(CT));
    assert_eq!(out, expected);
}

#[test]
fn rfc9180_a21_open_through_the_wrapper() {
    let sk = rfc_private();
    assert_eq!(sk.public_key().to_bytes(), arr(PK_RM));
    let plain = hpke_open(&sk, &hex(ENC), &hex(INFO), &hex(AAD), &hex(CT))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plain.as_slice(), hex(PT).as_slice());
    // Another info or associated data does not open.
    assert!(matches!(
        hpke_open(&sk, &hex(ENC), b"other", &hex(AAD), &hex(CT)),
        Err(Error::Integrity)
    ));
    assert!(matches!(
        hpke_open(&sk, &hex(ENC), &hex(INFO), b"Count-1", &hex(CT)),
        Err(Error::Integrity)
    ));
    assert!(matches!(
        hpke_open(&sk, &hex(ENC)[..31], &hex(INFO), &hex(AAD), &hex(CT)),
        Err(Error::Integrity)
    ));
}

#[test]
fn private_key_round_trips_and_is_redacted() {
    let sk = RecipientPrivateKey::generate().unwrap_or_else(|e| panic!("{e}"));
    let again =
        RecipientPrivateKey::from_bytes(sk.expose_secret()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sk.public_key(), again.public_key());
    let secret = sk.expose_secret();
    let debug = format!("{sk:?}");
    assert_eq!(debug, "RecipientPrivateKey([REDACTED])");
    let pk_debug = format!("{:?}", sk.public_key());
    let secret_hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!pk_debug.contains(&secret_hex[..16]));
}

#[test]
fn low_order_public_keys_are_refused() {
    // The all-zero point and the point of order 8 with u = 1.
    let mut one = [0u8; 32];
    one[0] = 1;
    for bad in [[0u8; 32], one] {
        assert!(matches!(
            RecipientPublicKey::from_bytes(bad),
            Err(Error::Key(KeyError::InvalidPublicKey))
        ));
    }
    assert!(matches!(
        RecipientPublicKey::from_slice(&[9u8; 31]),
        Err(Error::Key(KeyError::InvalidLength))
    ));
}

#[test]
fn binding_is_length_prefixed() {
    let a = binding("ab", FieldKind::Email, "c", b"\x00");
    let b = binding("a", FieldKind::Email, "bc", b"\x00");
    assert_ne!(a, b);
    assert_eq!(&a[..22], b"\x00\x12fieldseal/v1/share\x00\x01".as_slice());
}

fn sample_package(plain_len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    write_header(&mut out, FieldKind::Text, "legal", "authorities", 7);
    out.extend_from_slice(&[0x42; 32]);
    out.extend_from_slice(&vec![0x17; plain_len + 16]);
    out
}

#[test]
fn package_parse_checks_every_field() {
    let ok = sample_package(5);
    let p = package::parse(&ok).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (p.kind, p.purpose, p.recipient, p.shared_at),
        (FieldKind::Text, "legal", "authorities", 7)
    );
    assert_eq!(p.header.len(), 1 + 1 + 1 + 5 + 1 + 11 + 8);
    use crate::error::FormatError as F;
    let with = |at: usize, b: u8| {
        let mut v = ok.clone();
        v[at] = b;
        package::parse(&v).err()
    };
    assert_eq!(package::parse(&[]).err(), Some(F::Empty));
    assert_eq!(with(0, 2), Some(F::UnsupportedVersion(2)));
    assert_eq!(with(1, 0), Some(F::UnknownKind(0)));
    assert_eq!(with(3, b'L'), Some(F::InvalidPurposeLabel));
    assert_eq!(with(9, b'A'), Some(F::InvalidName));
    assert_eq!(with(8, 0), Some(F::InvalidName));
    assert_eq!(with(2, 0), Some(F::InvalidPurposeLabel));
    assert_eq!(
        package::parse(&ok[..ok.len() - 6]).err(),
        Some(F::Truncated)
    );
    let long = sample_package(FieldKind::Text.max_canonical_len() + 1);
    assert_eq!(package::parse(&long).err(), Some(F::CiphertextLength));
    assert!(package::parse(&sample_package(FieldKind::Text.max_canonical_len())).is_ok());
    let mut huge = ok.clone();
    huge.resize(MAX_PACKAGE_LEN + 1, 0);
    assert_eq!(
        package::parse(&huge).err(),
        Some(F::TooLong {
            max: MAX_PACKAGE_LEN
        })
    );
}

#[test]
fn package_limit_is_the_documented_one() {
    assert_eq!(MAX_PACKAGE_LEN, 16_508);
    let mut out = Vec::new();
    let (p, r) = ("a".repeat(32), "b".repeat(32));
    write_header(&mut out, FieldKind::Text, &p, &r, 0);
    out.extend_from_slice(&[0; 32]);
    out.resize(out.len() + FieldKind::Text.max_canonical_len() + 16, 0);
    assert!(out.len() <= MAX_PACKAGE_LEN);
}

#[test]
fn package_text_is_strict() {
    let p = SharedPackage::from_trusted(sample_package(3));
    let text = p.to_text();
    assert!(text.starts_with("fss1:"));
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = text
        .chars()
        .last()
        .and_then(|c| ALPHABET.find(c))
        .unwrap_or(0);
    let flipped = ALPHABET.as_bytes()[last ^ 1] as char;
    assert_eq!(p.as_bytes().len() % 3, 1);
    assert_eq!(
        SharedPackage::from_text(&text).map(|q| q == p).ok(),
        Some(true)
    );
    for bad in [
        String::new(),
        "fs1:AAAA".to_owned(),
        format!("{text}="),
        // Non-zero trailing bits in the last character (79 bytes: one left over).
        format!("{}{flipped}", &text[..text.len() - 1]),
        text.replace("fss1:", "fss2:"),
    ] {
        assert!(SharedPackage::from_text(&bad).is_err(), "{bad}");
    }
}

proptest! {
    #[test]
    fn package_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = package::parse(&bytes);
        let _ = SharedPackage::from_text(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn package_round_trips(purpose in "[a-z][a-z0-9_]{0,31}", recipient in "[a-z][a-z0-9_]{0,31}",
                           at in any::<u64>(), n in 0usize..64) {
        let mut out = Vec::new();
        write_header(&mut out, FieldKind::Email, &purpose, &recipient, at);
        out.extend_from_slice(&[1; 32]);
        out.extend_from_slice(&vec![2; n + 16]);
        let p = SharedPackage::from_bytes(&out).unwrap_or_else(|e| panic!("{e}"));
        prop_assert_eq!(p.purpose_label(), purpose.as_str());
        prop_assert_eq!(p.recipient(), recipient.as_str());
        prop_assert_eq!(p.shared_at(), at);
        let q = SharedPackage::from_text(&p.to_text()).unwrap_or_else(|e| panic!("{e}"));
        prop_assert_eq!(q, p);
    }
}
