//! `Pkcs11Kek` against SoftHSM2 tokens: round trips, non-exportability of the KEK, typed errors
//! for a wrong PIN, a missing token, key or module, and blobs that do not cross tokens.
//!
//! Keyring files under a token: they load under no other token or provider, and values sealed
//! before a restart open in another process (this test binary re-run as a child).
//!
//! Needs the environment that `scripts/softhsm-env` exports (`scripts/test` sources it):
//! `FIELDSEAL_PKCS11_MODULE`, `FIELDSEAL_PKCS11_TOKEN`, `FIELDSEAL_PKCS11_OTHER_TOKEN`,
//! `FIELDSEAL_PKCS11_PIN`, `SOFTHSM2_CONF`. Without it every test prints why and passes.
#![cfg(feature = "pkcs11")]

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use common::{allow_all, tester};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use fieldseal::builtin::Service;
use fieldseal::{
    Context, Email, Error, Field, FileKek, Guard, KeyProvider, Keyring, NullSink, PinSource,
    Pkcs11Kek, ProviderError, ProviderErrorKind, Sealed,
};

const PIN_VAR: &str = "FIELDSEAL_PKCS11_PIN";

/// The test tokens, from the environment `scripts/softhsm-env` exports.
struct Hsm {
    module: String,
    token: String,
    other_token: String,
    pin: String,
}

fn hsm(test: &str) -> Option<Hsm> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (
        var("FIELDSEAL_PKCS11_MODULE"),
        var("FIELDSEAL_PKCS11_TOKEN"),
        var("FIELDSEAL_PKCS11_OTHER_TOKEN"),
        var(PIN_VAR),
    ) {
        (Some(module), Some(token), Some(other_token), Some(pin)) => Some(Hsm {
            module,
            token,
            other_token,
            pin,
        }),
        _ => {
            eprintln!(
                "skipping pkcs11::{test}: no SoftHSM2 test tokens (FIELDSEAL_PKCS11_MODULE, \
                 _TOKEN, _OTHER_TOKEN, _PIN unset); run scripts/test, or \
                 `source scripts/softhsm-env` first"
            );
            None
        }
    }
}

/// Tests that bypass the provider hold this exclusively, the others shared. The provider
/// serializes its own calls, but a raw cryptoki session of a test would run beside them, and
/// SoftHSM2 2.6 sporadically fails object creation when threads open and close sessions at once
/// (`CKR_GENERAL_ERROR`, `CKR_TEMPLATE_INCONSISTENT`); its file store also breaks when two
/// processes write one token concurrently (the child-process test). And PKCS#11 login state is
/// per process: while one test's session is logged in, a login with a wrong PIN is answered
/// `CKR_USER_ALREADY_LOGGED_IN` without a check.
static TOKENS: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    TOKENS.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    TOKENS.write().unwrap_or_else(|e| e.into_inner())
}

/// A key label no other test (or earlier run against the same tokens) uses.
fn unique(name: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn ok<T>(r: Result<T, ProviderError>) -> T {
    r.unwrap_or_else(|e| {
        panic!(
            "{e}: {:?}",
            std::error::Error::source(&e).map(|s| s.to_string())
        )
    })
}

fn kind<T>(r: Result<T, ProviderError>) -> Option<ProviderErrorKind> {
    r.err().map(|e| e.kind())
}

/// The error and its whole source chain, as text.
fn chain(e: &ProviderError) -> String {
    let mut text = format!("{e} / {e:?}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(" / {s} / {s:?}"));
        source = s.source();
    }
    text
}

fn generate(hsm: &Hsm, token: &str, key_label: &str) -> Pkcs11Kek {
    ok(Pkcs11Kek::builder(token, key_label)
        .module(&hsm.module)
        .pin(PinSource::env(PIN_VAR))
        .open_or_generate())
}

/// A raw cryptoki session on `token`, logged in, for looking at the key from outside.
fn raw_session(hsm: &Hsm, token: &str) -> Session {
    let ctx = Pkcs11::new(&hsm.module).unwrap_or_else(|e| panic!("{e}"));
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => panic!("{e}"),
    }
    let slot = ctx
        .get_slots_with_token()
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .find(|s| ctx.get_token_info(*s).is_ok_and(|i| i.label() == token))
        .unwrap_or_else(|| panic!("no token {token}"));
    let session = ctx.open_rw_session(slot).unwrap_or_else(|e| panic!("{e}"));
    match session.login(UserType::User, Some(&AuthPin::from(hsm.pin.as_str()))) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => panic!("{e}"),
    }
    session
}

fn aes_key_template(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Label(label.as_bytes().to_vec()),
    ]
}

#[test]
fn wrap_unwrap_round_trip_in_the_token() {
    let Some(hsm) = hsm("wrap_unwrap_round_trip_in_the_token") else {
        return;
    };
    let _tokens = shared();
    let label = unique("kek-round-trip");
    let kek = generate(&hsm, &hsm.token, &label);
    assert!(
        kek.id()
            .starts_with(&format!("pkcs11:{}/{label};serial=", hsm.token)),
        "{}",
        kek.id()
    );

    let secret = [0x42u8; 32];
    let wrapped = ok(kek.wrap(&secret, b"keyring v1"));
    assert_eq!(wrapped.len(), 1 + 12 + 32 + 16);
    assert_eq!(ok(kek.unwrap(&wrapped, b"keyring v1")).as_slice(), &secret);
    // Random IVs: the same secret wraps differently every time.
    assert_ne!(ok(kek.wrap(&secret, b"keyring v1")), wrapped);
    // Other lengths round-trip too (the trait takes any key).
    let short = ok(kek.wrap(b"abc", b""));
    assert_eq!(ok(kek.unwrap(&short, b"")).as_slice(), b"abc");
    // The shortest: an empty key is format byte, IV and tag alone, and still unwraps.
    let empty = ok(kek.wrap(b"", b"aad"));
    assert_eq!(empty.len(), 1 + 12 + 16);
    assert!(ok(kek.unwrap(&empty, b"aad")).is_empty());

    // Opened again (find, not generate): same identity, same key.
    let again = ok(Pkcs11Kek::builder(&hsm.token, &label)
        .module(&hsm.module)
        .pin(PinSource::env(PIN_VAR))
        .open());
    assert_eq!(again.id(), kek.id());
    assert_eq!(
        ok(again.unwrap(&wrapped, b"keyring v1")).as_slice(),
        &secret
    );

    // Tamper set: other aad, each byte flipped, truncated, unknown format byte.
    assert_eq!(
        kind(kek.unwrap(&wrapped, b"keyring v2")),
        Some(ProviderErrorKind::Unwrap)
    );
    for i in 0..wrapped.len() {
        let mut bad = wrapped.clone();
        bad[i] ^= 0x01;
        assert_eq!(
            kind(kek.unwrap(&bad, b"keyring v1")),
            Some(ProviderErrorKind::Unwrap),
            "byte {i}"
        );
    }
    for len in [0, 1, 13, 28, wrapped.len() - 1] {
        assert_eq!(
            kind(kek.unwrap(&wrapped[..len], b"keyring v1")),
            Some(ProviderErrorKind::Unwrap),
            "length {len}"
        );
    }
}

#[test]
fn kek_is_sensitive_and_cannot_be_exported() {
    let Some(hsm) = hsm("kek_is_sensitive_and_cannot_be_exported") else {
        return;
    };
    let _tokens = exclusive();
    let label = unique("kek-export");
    let _kek = generate(&hsm, &hsm.token, &label);

    let session = raw_session(&hsm, &hsm.token);
    let keys = session
        .find_objects(&aes_key_template(&label))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(keys.len(), 1);
    let key = keys[0];
    let attrs = session
        .get_attributes(
            key,
            &[
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::AlwaysSensitive,
                AttributeType::NeverExtractable,
                AttributeType::Token,
                AttributeType::ValueLen,
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    for want in [
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::AlwaysSensitive(true),
        Attribute::NeverExtractable(true),
        Attribute::Token(true),
        Attribute::ValueLen(32.into()),
    ] {
        assert!(attrs.contains(&want), "{want:?} not in {attrs:?}");
    }

    // C_GetAttributeValue(CKA_VALUE) refuses: the value is sensitive.
    let info = session
        .get_attribute_info(key, &[AttributeType::Value])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(info.as_slice(), [AttributeInfo::Sensitive]),
        "{info:?}"
    );
    let value = session
        .get_attributes(key, &[AttributeType::Value])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !value.iter().any(|a| matches!(a, Attribute::Value(_))),
        "CKA_VALUE was returned"
    );

    // C_WrapKey under a wrapping key of our own refuses: the KEK is not extractable.
    let mut template = aes_key_template(&unique("wrapping-key"));
    template.extend([
        Attribute::ValueLen(32.into()),
        Attribute::Token(false),
        Attribute::Wrap(true),
        Attribute::Unwrap(true),
    ]);
    let wrapping = session
        .generate_key(&Mechanism::AesKeyGen, &template)
        .unwrap_or_else(|e| panic!("{e}"));
    for mechanism in [Mechanism::AesKeyWrapPad, Mechanism::AesKeyWrap] {
        match session.wrap_key(&mechanism, wrapping, key) {
            Err(CkError::Pkcs11(RvError::KeyUnextractable, _)) => {}
            other => panic!("{mechanism:?}: expected CKR_KEY_UNEXTRACTABLE, got {other:?}"),
        }
    }
}

/// A key whose bytes could leave the token (not sensitive, or extractable: either is enough),
/// or that cannot both encrypt and decrypt, is refused as a KEK.
#[test]
fn open_refuses_an_extractable_key() {
    let Some(hsm) = hsm("open_refuses_an_extractable_key") else {
        return;
    };
    let _tokens = exclusive();
    // (sensitive, extractable, encrypt, decrypt)
    let unfit = [
        (false, true, true, true),
        (true, true, true, true),
        (false, false, true, true),
        (true, false, true, false),
        (true, false, false, true),
    ];
    for (sensitive, extractable, encrypt, decrypt) in unfit {
        let label = unique("kek-unfit");
        let session = raw_session(&hsm, &hsm.token);
        let mut template = aes_key_template(&label);
        template.extend([
            Attribute::ValueLen(32.into()),
            Attribute::Token(true),
            Attribute::Sensitive(sensitive),
            Attribute::Extractable(extractable),
            Attribute::Encrypt(encrypt),
            Attribute::Decrypt(decrypt),
        ]);
        session
            .generate_key(&Mechanism::AesKeyGen, &template)
            .unwrap_or_else(|e| panic!("{e}"));
        for generate in [false, true] {
            let builder = Pkcs11Kek::builder(&hsm.token, &label)
                .module(&hsm.module)
                .pin(PinSource::env(PIN_VAR));
            let r = if generate {
                builder.open_or_generate()
            } else {
                builder.open()
            };
            assert_eq!(
                kind(r),
                Some(ProviderErrorKind::BadKeyMaterial),
                "sensitive {sensitive}, extractable {extractable}, encrypt {encrypt}, decrypt {decrypt}"
            );
        }
    }
}

#[test]
fn two_keys_with_one_label_need_an_id() {
    let Some(hsm) = hsm("two_keys_with_one_label_need_an_id") else {
        return;
    };
    let _tokens = shared();
    let label = unique("kek-twice");
    for id in [[1u8], [2u8]] {
        let _ = ok(Pkcs11Kek::builder(&hsm.token, &label)
            .module(&hsm.module)
            .key_id(id)
            .pin(PinSource::env(PIN_VAR))
            .open_or_generate());
    }
    let ambiguous = Pkcs11Kek::builder(&hsm.token, &label)
        .module(&hsm.module)
        .pin(PinSource::env(PIN_VAR))
        .open();
    assert_eq!(kind(ambiguous), Some(ProviderErrorKind::NotFound));
    let one = ok(Pkcs11Kek::builder(&hsm.token, &label)
        .module(&hsm.module)
        .key_id([2u8])
        .pin(PinSource::env(PIN_VAR))
        .open());
    assert!(one.id().contains(";id=02;"), "{}", one.id());
    let w = ok(one.wrap(&[1; 32], b""));
    let other_id = ok(Pkcs11Kek::builder(&hsm.token, &label)
        .module(&hsm.module)
        .key_id([1u8])
        .pin(PinSource::env(PIN_VAR))
        .open());
    assert_ne!(one.id(), other_id.id());
    assert_eq!(
        kind(other_id.unwrap(&w, b"")),
        Some(ProviderErrorKind::Unwrap)
    );
}

#[test]
fn wrong_pin_is_a_login_error() {
    let Some(hsm) = hsm("wrong_pin_is_a_login_error") else {
        return;
    };
    // No session of this process may be logged in while the wrong PIN is tried.
    let _tokens = exclusive();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let wrong = format!("{}x", hsm.pin);
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, format!("{wrong}\n")).unwrap_or_else(|e| panic!("{e}"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&pin_file, std::fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let err = Pkcs11Kek::builder(&hsm.token, unique("kek-wrong-pin"))
        .module(&hsm.module)
        .pin(PinSource::file(&pin_file))
        .open_or_generate()
        .err()
        .unwrap_or_else(|| panic!("a wrong PIN opened the token"));
    assert_eq!(err.kind(), ProviderErrorKind::Login);
    let text = chain(&err);
    assert!(text.contains("PinIncorrect"), "{text}");
    assert!(!text.contains(&wrong) && !text.contains(&hsm.pin), "{text}");

    // The right PIN from a file opens it.
    std::fs::write(&pin_file, format!("{}\n", hsm.pin)).unwrap_or_else(|e| panic!("{e}"));
    let kek = ok(Pkcs11Kek::builder(&hsm.token, unique("kek-pin-file"))
        .module(&hsm.module)
        .pin(PinSource::file(&pin_file))
        .open_or_generate());
    assert!(!format!("{kek:?}").contains(&hsm.pin));
}

#[test]
fn missing_token_key_or_module_is_not_found() {
    let Some(hsm) = hsm("missing_token_key_or_module_is_not_found") else {
        return;
    };
    let _tokens = shared();
    let open = |module: &str, token: &str, key: &str| {
        Pkcs11Kek::builder(token, key)
            .module(module)
            .pin(PinSource::env(PIN_VAR))
            .open()
    };
    assert_eq!(
        kind(open(&hsm.module, "fieldseal-no-such-token", "kek")),
        Some(ProviderErrorKind::NotFound)
    );
    // A generating open does not conjure up a token either.
    assert_eq!(
        kind(
            Pkcs11Kek::builder("fieldseal-no-such-token", "kek")
                .module(&hsm.module)
                .pin(PinSource::env(PIN_VAR))
                .open_or_generate()
        ),
        Some(ProviderErrorKind::NotFound)
    );
    assert_eq!(
        kind(open(&hsm.module, &hsm.token, &unique("kek-never-made"))),
        Some(ProviderErrorKind::NotFound)
    );
    assert_eq!(
        kind(open(
            "/nonexistent/fieldseal/libsofthsm2.so",
            &hsm.token,
            "kek"
        )),
        Some(ProviderErrorKind::NotFound)
    );
    // A file that is not a PKCS#11 module: the device layer failed, nothing panicked.
    let not_a_module = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    assert_eq!(
        kind(open(not_a_module, &hsm.token, "kek")),
        Some(ProviderErrorKind::Device)
    );
    // The token exists, the serial does not.
    assert_eq!(
        kind(
            Pkcs11Kek::builder(&hsm.token, "kek")
                .module(&hsm.module)
                .token_serial("0000000000000000")
                .pin(PinSource::env(PIN_VAR))
                .open()
        ),
        Some(ProviderErrorKind::NotFound)
    );
}

#[test]
fn a_wrap_from_one_token_does_not_unwrap_on_another() {
    let Some(hsm) = hsm("a_wrap_from_one_token_does_not_unwrap_on_another") else {
        return;
    };
    let _tokens = shared();
    // The same key label in both tokens: only the token tells them apart.
    let label = unique("kek-cross");
    let a = generate(&hsm, &hsm.token, &label);
    let b = generate(&hsm, &hsm.other_token, &label);
    assert_ne!(a.id(), b.id());
    assert!(
        b.id()
            .starts_with(&format!("pkcs11:{}/{label};serial=", hsm.other_token))
    );

    let from_a = ok(a.wrap(&[9; 32], b"aad"));
    let from_b = ok(b.wrap(&[9; 32], b"aad"));
    assert_eq!(
        kind(b.unwrap(&from_a, b"aad")),
        Some(ProviderErrorKind::Unwrap)
    );
    assert_eq!(
        kind(a.unwrap(&from_b, b"aad")),
        Some(ProviderErrorKind::Unwrap)
    );
    assert_eq!(ok(a.unwrap(&from_a, b"aad")).as_slice(), &[9; 32]);
    assert_eq!(ok(b.unwrap(&from_b, b"aad")).as_slice(), &[9; 32]);

    // Without the serial in the id, two tokens with the same labels share an id; the wrapped
    // key still does not cross.
    let unbound = |token: &str| {
        ok(Pkcs11Kek::builder(token, &label)
            .module(&hsm.module)
            .bind_serial(false)
            .pin(PinSource::env(PIN_VAR))
            .open())
    };
    let (ua, ub) = (unbound(&hsm.token), unbound(&hsm.other_token));
    assert_eq!(ua.id(), format!("pkcs11:{}/{label}", hsm.token));
    assert_ne!(ua.id(), ub.id(), "token labels differ");
    assert_eq!(
        kind(ub.unwrap(&from_a, b"aad")),
        Some(ProviderErrorKind::Unwrap)
    );
}

#[test]
fn one_provider_serves_many_threads() {
    let Some(hsm) = hsm("one_provider_serves_many_threads") else {
        return;
    };
    let _tokens = shared();
    let kek = Arc::new(generate(&hsm, &hsm.token, &unique("kek-threads")));
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let kek = Arc::clone(&kek);
            std::thread::spawn(move || {
                for n in 0..25u8 {
                    let secret = [t ^ n; 32];
                    let aad = [t, n];
                    let w = ok(kek.wrap(&secret, &aad));
                    assert_eq!(ok(kek.unwrap(&w, &aad)).as_slice(), &secret);
                }
            })
        })
        .collect();
    for t in threads {
        t.join()
            .unwrap_or_else(|_| panic!("a wrapping thread panicked"));
    }
}

#[test]
fn provider_is_send_sync_and_debug_names_no_pin() {
    fn send_sync<T: Send + Sync + std::fmt::Debug>() {}
    send_sync::<Pkcs11Kek>();
    let Some(hsm) = hsm("provider_is_send_sync_and_debug_names_no_pin") else {
        return;
    };
    let _tokens = shared();
    let kek = generate(&hsm, &hsm.token, &unique("kek-debug"));
    let debug = format!("{kek:?}");
    assert!(debug.contains(&kek.id()), "{debug}");
    assert!(!debug.contains(&hsm.pin), "{debug}");
    let pin_source = format!("{:?}", PinSource::env(PIN_VAR));
    assert!(!pin_source.contains(&hsm.pin));
}

/// What a keyring load failed with: the provider error kind, or another error's text.
fn load_error(r: Result<Keyring, Error>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(Error::Provider(e)) => format!("provider:{:?}", e.kind()),
        Err(e) => format!("other:{e}"),
    }
}

#[test]
fn a_keyring_written_under_one_token_loads_under_no_other_provider() {
    let Some(hsm) = hsm("a_keyring_written_under_one_token_loads_under_no_other_provider") else {
        return;
    };
    let _tokens = exclusive();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("keyring.json");
    let label = unique("kek-keyring");
    let a = generate(&hsm, &hsm.token, &label);
    let b = generate(&hsm, &hsm.other_token, &label);
    drop(Keyring::create(&a, &path).unwrap_or_else(|e| panic!("{e}")));
    let file = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        file.contains(&format!("\"provider\":\"{}\"", a.id())),
        "{file}"
    );

    assert_eq!(
        load_error(Keyring::load(&b, &path)),
        "provider:WrongProvider"
    );
    let file_kek = FileKek::create(dir.path().join("kek")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        load_error(Keyring::load(&file_kek, &path)),
        "provider:WrongProvider"
    );
    assert_eq!(load_error(Keyring::load(&a, &path)), "ok");

    // Same labels, same id (serial not bound), but the key was replaced in the token: the file
    // key does not unwrap, and the load says so.
    let unbound = || {
        ok(Pkcs11Kek::builder(&hsm.token, &label)
            .module(&hsm.module)
            .bind_serial(false)
            .pin(PinSource::env(PIN_VAR))
            .open_or_generate())
    };
    let path2 = dir.path().join("keyring-unbound.json");
    drop(Keyring::create(&unbound(), &path2).unwrap_or_else(|e| panic!("{e}")));
    let session = raw_session(&hsm, &hsm.token);
    for key in session
        .find_objects(&aes_key_template(&label))
        .unwrap_or_else(|e| panic!("{e}"))
    {
        session
            .destroy_object(key)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    drop(session);
    let replaced = unbound();
    assert_eq!(
        load_error(Keyring::load(&replaced, &path2)),
        "provider:Unwrap"
    );
    // The serial-bound provider finds the new key by its label: the file key does not unwrap.
    assert_eq!(load_error(Keyring::load(&a, &path)), "provider:Unwrap");
}

const CHILD_ENV: &str = "FIELDSEAL_PKCS11_CHILD";

fn guard_over(ring: Keyring) -> Guard {
    Guard::builder()
        .keyring(ring)
        .policy(allow_all(&["service"]))
        .audit(NullSink)
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn ctx(n: u64) -> Context {
    Context::new().table("t").row(&n.to_string())
}

fn email(n: u64) -> Email {
    Email::parse(&format!("user{n}@example.com")).unwrap_or_else(|e| panic!("{e}"))
}

/// The child: opens the token key named in `<dir>/label`, loads `<dir>/keyring.json` and
/// reveals every envelope in `<dir>/sealed.txt` (`row text` per line), printing `opened <n>`.
#[test]
fn keyring_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let Some(hsm) = hsm("keyring_child") else {
        panic!("the child lost the SoftHSM2 environment");
    };
    let dir = Path::new(&dir);
    let label = std::fs::read_to_string(dir.join("label")).unwrap_or_else(|e| panic!("{e}"));
    let kek = ok(Pkcs11Kek::builder(&hsm.token, label.trim())
        .module(&hsm.module)
        .pin(PinSource::env(PIN_VAR))
        .open());
    let ring = Keyring::load(&kek, dir.join("keyring.json")).unwrap_or_else(|e| panic!("{e}"));
    let g = guard_over(ring);
    let list = std::fs::read_to_string(dir.join("sealed.txt")).unwrap_or_else(|e| panic!("{e}"));
    let mut opened = 0;
    for line in list.lines() {
        let (row, text) = line.split_once(' ').unwrap_or_else(|| panic!("bad line"));
        let n: u64 = row.parse().unwrap_or_else(|e| panic!("{e}"));
        let sealed: Sealed<Email, Service> = text.parse().unwrap_or_else(|e| panic!("{e}"));
        let got = g
            .reveal(&tester(), &sealed, &ctx(n))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.expose_secret().as_str(), email(n).as_str());
        opened += 1;
    }
    println!("\npkcs11-child: opened {opened}");
}

/// A keyring created under a token key, with values sealed (under two versions), opens them in
/// another process that finds the same token key and loads the file.
#[test]
fn values_sealed_under_a_token_kek_open_in_another_process() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let Some(hsm) = hsm("values_sealed_under_a_token_kek_open_in_another_process") else {
        return;
    };
    let _tokens = exclusive();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let label = unique("kek-restart");
    std::fs::write(dir.path().join("label"), &label).unwrap_or_else(|e| panic!("{e}"));
    let kek = generate(&hsm, &hsm.token, &label);
    let ring =
        Keyring::create(&kek, dir.path().join("keyring.json")).unwrap_or_else(|e| panic!("{e}"));
    let ring = Arc::new(ring);
    let g = Guard::builder()
        .shared_keyring(Arc::clone(&ring))
        .policy(allow_all(&["service"]))
        .audit(NullSink)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut list = String::new();
    for n in 0..40u64 {
        if n == 20 {
            ring.rotate().unwrap_or_else(|e| panic!("{e}"));
        }
        let s: Sealed<Email, Service> =
            g.seal(&email(n), &ctx(n)).unwrap_or_else(|e| panic!("{e}"));
        list.push_str(&format!("{n} {}\n", s.to_text()));
    }
    std::fs::write(dir.path().join("sealed.txt"), list).unwrap_or_else(|e| panic!("{e}"));
    drop(g);
    drop(ring);
    drop(kek);
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(exe)
        .args([
            "--exact",
            "keyring_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let said = BufReader::new(&out.stdout[..])
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("pkcs11-child: ").map(str::to_owned));
    assert_eq!(
        said.as_deref(),
        Some("opened 40"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The provider keeps its session between calls; when the token logs the process out (or the
/// key is replaced), the next call opens a new session and logs in again.
#[test]
fn a_provider_recovers_from_a_logout_and_a_replaced_key() {
    let Some(hsm) = hsm("a_provider_recovers_from_a_logout_and_a_replaced_key") else {
        return;
    };
    let _tokens = exclusive();
    let label = unique("kek-recover");
    let kek = generate(&hsm, &hsm.token, &label);
    let wrapped = ok(kek.wrap(&[5; 32], b"aad"));

    let session = raw_session(&hsm, &hsm.token);
    session.logout().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ok(kek.unwrap(&wrapped, b"aad")).as_slice(), &[5; 32]);

    for key in session
        .find_objects(&aes_key_template(&label))
        .unwrap_or_else(|e| panic!("{e}"))
    {
        session
            .destroy_object(key)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // Gone: a typed error, then a fresh key under the same label is found again.
    assert_eq!(
        kind(kek.unwrap(&wrapped, b"aad")),
        Some(ProviderErrorKind::NotFound)
    );
    drop(generate(&hsm, &hsm.token, &label));
    assert_eq!(
        kind(kek.unwrap(&wrapped, b"aad")),
        Some(ProviderErrorKind::Unwrap)
    );
    let again = ok(kek.wrap(&[6; 32], b"aad"));
    assert_eq!(ok(kek.unwrap(&again, b"aad")).as_slice(), &[6; 32]);
}
