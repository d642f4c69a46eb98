//! Unit tests of the parts that need no token: identity, PIN sources, a missing module.

use super::token::load_module;
use super::*;
use std::path::Path;

#[test]
fn id_escapes_labels_and_appends_id_and_serial() {
    assert_eq!(provider_id("hsm", "kek", None, None), "pkcs11:hsm/kek");
    assert_eq!(
        provider_id("a/b;c", "k ey%", Some(&[0x01, 0xab]), Some("9859d2de")),
        "pkcs11:a%2Fb%3Bc/k%20ey%25;id=01ab;serial=9859d2de"
    );
    // Labels that would join ambiguously stay apart.
    assert_ne!(
        provider_id("a/b", "c", None, None),
        provider_id("a", "b/c", None, None)
    );
}

#[cfg(unix)]
#[test]
fn pin_sources() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("pin");
    std::fs::write(&path, "1234\r\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640))
        .unwrap_or_else(|e| panic!("{e}"));
    let source = PinSource::file(&path);
    assert_eq!(
        source.read().err().map(|e| e.kind()),
        Some(ProviderErrorKind::Permissions)
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("{e}"));
    let pin = source.read_text().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pin.as_str(), "1234");
    assert!(!format!("{source:?}").contains("1234"));
    // Debug names where the PIN comes from, never the PIN.
    assert_eq!(format!("{source:?}"), format!("PinSource::File({path:?})"));
    assert_eq!(
        format!("{:?}", PinSource::env("HSM_PIN")),
        "PinSource::Env(\"HSM_PIN\")"
    );

    std::fs::write(&path, "\n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        source.read().err().map(|e| e.kind()),
        Some(ProviderErrorKind::Login)
    );
    assert_eq!(
        PinSource::file(dir.path().join("missing"))
            .read()
            .err()
            .map(|e| e.kind()),
        Some(ProviderErrorKind::NotFound)
    );
    assert_eq!(
        PinSource::env("FIELDSEAL_TEST_UNSET_PIN_VARIABLE")
            .read()
            .err()
            .map(|e| e.kind()),
        Some(ProviderErrorKind::NotFound)
    );
}

#[test]
fn missing_module_is_not_found_and_no_pin_is_login() {
    let no_pin = Pkcs11Kek::builder("t", "k")
        .module("/nonexistent/fieldseal/libpkcs11.so")
        .open();
    assert_eq!(
        no_pin.err().map(|e| e.kind()),
        Some(ProviderErrorKind::Login)
    );
    assert_eq!(
        load_module(Path::new("/nonexistent/fieldseal/libpkcs11.so"))
            .err()
            .map(|e| e.kind()),
        Some(ProviderErrorKind::NotFound)
    );
}

/// Return values map to error kinds: PIN and login problems are `Login`, a token that is gone
/// is `NotFound`, anything else from the device is `Device`; a failed decryption is `Unwrap`.
#[test]
fn return_values_map_to_error_kinds() {
    use super::token::{ck_error, decrypt_error};
    use cryptoki::context::Function;
    use cryptoki::error::{Error as CkError, RvError};
    let rv = |rv, f| CkError::Pkcs11(rv, f);
    let cases = [
        (RvError::PinIncorrect, ProviderErrorKind::Login),
        (RvError::UserNotLoggedIn, ProviderErrorKind::Login),
        (RvError::TokenNotPresent, ProviderErrorKind::NotFound),
        (RvError::DeviceRemoved, ProviderErrorKind::NotFound),
        (RvError::SlotIdInvalid, ProviderErrorKind::NotFound),
        (RvError::GeneralError, ProviderErrorKind::Device),
        (RvError::DeviceMemory, ProviderErrorKind::Device),
    ];
    for (code, want) in cases {
        assert_eq!(ck_error(rv(code, Function::Login)).kind(), want, "{code:?}");
    }
    assert_eq!(
        decrypt_error(rv(RvError::EncryptedDataInvalid, Function::Decrypt)).kind(),
        ProviderErrorKind::Unwrap
    );
    // The same code from another function is not a failed unwrap.
    assert_eq!(
        decrypt_error(rv(RvError::GeneralError, Function::Encrypt)).kind(),
        ProviderErrorKind::Device
    );
}

/// Only a failure that can mean a lost session is worth a retry on a fresh one.
#[test]
fn only_a_lost_session_is_retried() {
    use super::token::may_be_stale;
    use cryptoki::context::Function;
    use cryptoki::error::{Error as CkError, RvError};
    let rv = |rv| CkError::Pkcs11(rv, Function::Decrypt);
    for stale in [
        RvError::SessionHandleInvalid,
        RvError::SessionClosed,
        RvError::TokenNotPresent,
        RvError::UserNotLoggedIn,
        RvError::ObjectHandleInvalid,
    ] {
        assert!(may_be_stale(&rv(stale)), "{stale:?}");
    }
    for not in [
        RvError::EncryptedDataInvalid,
        RvError::PinIncorrect,
        RvError::MechanismInvalid,
    ] {
        assert!(!may_be_stale(&rv(not)), "{not:?}");
    }
}

/// The details say what is wrong in words, with the counts and lengths they carry.
#[test]
fn details_say_what_is_wrong() {
    use super::token::Detail;
    assert_eq!(
        Detail::AmbiguousKey(2).to_string(),
        "2 AES keys carry the label; give a CKA_ID"
    );
    assert_eq!(
        Detail::KeyLength(16).to_string(),
        "the key is 16 bytes; a KEK is AES-256 (32 bytes)"
    );
    assert_eq!(Detail::NoPin.to_string(), "no PIN source was configured");
}
