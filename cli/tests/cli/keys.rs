//! `keygen` and `key …`: keyring files under a KEK, and their error paths.

use super::*;

#[test]
fn keygen_creates_kek_and_keyring_and_never_overwrites() {
    let dir = ok(tempfile::tempdir());
    let kek = dir.path().join("kek");
    let ring = dir.path().join("ring.json");
    fieldseal()
        .arg("keygen")
        .arg("--kek")
        .arg(&kek)
        .arg("--out")
        .arg(&ring)
        .assert()
        .success()
        .stdout(contains("created KEK file"))
        .stdout(contains("version 1 active"))
        .stdout(contains("checkpoint public key"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            ok(std::fs::metadata(&kek)).permissions().mode() & 0o777,
            0o600
        );
    }
    let before = ok(std::fs::read(&ring));
    fieldseal()
        .arg("keygen")
        .arg("--kek")
        .arg(&kek)
        .arg("--out")
        .arg(&ring)
        .assert()
        .code(2)
        .stderr(contains("ring.json: already exists"));
    assert_eq!(ok(std::fs::read(&ring)), before);
    // An existing KEK is reused, not replaced.
    let second = dir.path().join("second.json");
    fieldseal()
        .arg("keygen")
        .arg("--kek")
        .arg(&kek)
        .arg("--out")
        .arg(&second)
        .arg("--json")
        .assert()
        .success()
        .stdout(contains("\"kek_created\":null"));
    let kek = ok(FileKek::open(&kek));
    ok(Keyring::load(&kek, &second));
}

#[test]
fn keygen_with_an_environment_kek() {
    let dir = ok(tempfile::tempdir());
    let ring = dir.path().join("ring.json");
    fieldseal()
        .env(
            "FS_TEST_KEK",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .args(["keygen", "--kek-env", "FS_TEST_KEK", "--out"])
        .arg(&ring)
        .assert()
        .success()
        .stdout(contains("under env:"));
    fieldseal()
        .env(
            "FS_TEST_KEK",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .args(["key", "list", "--kek-env", "FS_TEST_KEK", "--keyring"])
        .arg(&ring)
        .assert()
        .success();
    fieldseal()
        .env_remove("FS_TEST_KEK")
        .args(["key", "list", "--kek-env", "FS_TEST_KEK", "--keyring"])
        .arg(&ring)
        .assert()
        .code(2)
        .stderr(contains("environment variable FS_TEST_KEK is not set"));
    fieldseal()
        .env("FS_TEST_KEK", "c2hvcnQ=")
        .args(["key", "list", "--kek-env", "FS_TEST_KEK", "--keyring"])
        .arg(&ring)
        .assert()
        .code(2)
        .stderr(contains("FS_TEST_KEK: not a KEK"));
}

#[test]
fn keygen_kek_in_a_missing_directory() {
    let dir = ok(tempfile::tempdir());
    fieldseal()
        .arg("keygen")
        .arg("--kek")
        .arg(dir.path().join("no/such/dir/kek"))
        .arg("--out")
        .arg(dir.path().join("ring.json"))
        .assert()
        .code(2)
        .stderr(contains("kek"))
        .stderr(no_backtrace());
    assert!(!dir.path().join("ring.json").exists());
}

#[test]
fn key_lifecycle() {
    let f = Fixture::new();
    f.key(&["list"])
        .assert()
        .success()
        .stdout(contains("1  active"));
    f.key(&["add"]).assert().success().stdout(contains(
        "added version 2 (now decrypt_only); active version 1",
    ));
    f.key(&["activate", "2", "--json"])
        .assert()
        .success()
        .stdout(contains(r#""changed":2,"state":"active","active":2"#));
    f.key(&["retire", "1"])
        .assert()
        .code(2)
        .stderr(contains("pass --yes"));
    f.key(&["retire", "1", "--yes"])
        .assert()
        .success()
        .stdout(contains("retired version 1"));
    f.key(&["rotate"])
        .assert()
        .success()
        .stdout(contains("rotated to version 3 (now active)"));
    f.key(&["list", "--json"]).assert().success().stdout(contains(
        r#""versions":[{"version":1,"state":"retired"},{"version":2,"state":"decrypt_only"},{"version":3,"state":"active"}]"#,
    ));
    f.key(&["retire", "3", "--yes"])
        .assert()
        .code(2)
        .stderr(contains("version 3 is active"));
    f.key(&["activate", "1"])
        .assert()
        .code(2)
        .stderr(contains("version 1 is retired"));
    f.key(&["activate", "9"])
        .assert()
        .code(2)
        .stderr(contains("no key version 9"));
    // The file holds the changes: a fresh load sees them.
    let kek = ok(FileKek::open(f.path("kek")));
    let ring = ok(Keyring::load(&kek, f.path("ring.json")));
    assert_eq!(ring.active_version().get(), 3);
}

#[test]
fn key_checkpoint_public_matches_the_keyring() {
    let f = Fixture::new();
    let kek = ok(FileKek::open(f.path("kek")));
    let ring = ok(Keyring::load(&kek, f.path("ring.json")));
    let (_, signer) = ok(ring.audit_keys());
    let hex: String = signer
        .verifying_key()
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    f.key(&["checkpoint-public"])
        .assert()
        .success()
        .stdout(format!("{hex}\n"));
}

#[test]
fn wrong_kek_damaged_keyring_and_missing_files() {
    let f = Fixture::new();
    ok(FileKek::create(f.path("other-kek")));
    fieldseal()
        .args(["key", "list", "--keyring"])
        .arg(f.path("ring.json"))
        .arg("--kek")
        .arg(f.path("other-kek"))
        .assert()
        .code(2)
        .stderr(contains(
            "ring.json: the keyring was written under another key-encryption key",
        ))
        .stderr(no_backtrace());
    fieldseal()
        .args(["key", "list", "--keyring"])
        .arg(f.path("ring.json"))
        .arg("--kek")
        .arg(f.path("missing-kek"))
        .assert()
        .code(2)
        .stderr(contains("missing-kek: KEK file not found"));
    fieldseal()
        .args(["key", "list", "--keyring"])
        .arg(f.path("missing.json"))
        .arg("--kek")
        .arg(f.path("kek"))
        .assert()
        .code(2)
        .stderr(contains("missing.json: no such file or directory"));
    fieldseal()
        .args(["key", "list", "--keyring"])
        .arg(f.path("ring.json"))
        .assert()
        .code(2)
        .stderr(contains("pass --kek FILE or --kek-env VAR"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        ok(std::fs::set_permissions(
            f.path("kek"),
            std::fs::Permissions::from_mode(0o644),
        ));
        f.key(&["list"])
            .assert()
            .code(2)
            .stderr(contains("readable or writable by group or others"));
        ok(std::fs::set_permissions(
            f.path("kek"),
            std::fs::Permissions::from_mode(0o600),
        ));
    }
    let text = ok(std::fs::read_to_string(f.path("ring.json")));
    ok(std::fs::write(
        f.path("ring.json"),
        text.replacen("\"generation\":", "\"generation\" :", 1),
    ));
    f.key(&["list"])
        .assert()
        .code(2)
        .stderr(contains("keyring integrity check failed"));
    ok(std::fs::write(f.path("ring.json"), "not a keyring\n"));
    f.key(&["list"])
        .assert()
        .code(2)
        .stderr(contains("not a fieldseal keyring file"));
}
