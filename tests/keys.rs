//! Key custody: keyring files under a file KEK, restarts, live rotation under load.

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};

use common::*;
use fieldseal::builtin::Service;
use fieldseal::*;
use zeroize::Zeroizing;

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

fn guard_over(ring: Arc<Keyring>) -> Guard {
    Guard::builder()
        .shared_keyring(ring)
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

#[test]
fn a_keyring_file_round_trips_and_keeps_its_changes() {
    let dir = tempdir();
    let kek = FileKek::create(dir.path().join("kek")).unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("keyring.json");
    let ring = Keyring::create(&kek, &path).unwrap_or_else(|e| panic!("{e}"));
    assert!(Keyring::create(&kek, &path).is_err(), "never overwrites");
    let (audit, ckpt) = ring.audit_keys().unwrap_or_else(|e| panic!("{e}"));
    let v2 = ring.rotate().unwrap_or_else(|e| panic!("{e}"));
    let v3 = ring.rotate().unwrap_or_else(|e| panic!("{e}"));
    ring.retire(v(1)).unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(text.lines().count(), 2);
    let again = Keyring::load(&kek, &path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        again.versions(),
        [
            (v(1), KeyState::Retired),
            (v2, KeyState::DecryptOnly),
            (v3, KeyState::Active)
        ]
    );
    let (audit2, ckpt2) = again.audit_keys().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        ckpt.verifying_key().to_bytes(),
        ckpt2.verifying_key().to_bytes()
    );
    // The audit keys agree: a log written under one verifies under the other.
    let logdir = dir.path().join("log");
    let (log, _) = ChainedLog::builder(&logdir)
        .key(audit)
        .checkpoint_key(ckpt)
        .open()
        .unwrap_or_else(|e| panic!("{e}"));
    append_n(&log, 0, 3);
    drop(log);
    let r = verify_log(&logdir, None, &audit2, &ckpt2.verifying_key())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((r.entries, r.fault), (3, None));
    // In-memory keyrings have no file.
    assert!(matches!(
        Keyring::generate()
            .unwrap_or_else(|e| panic!("{e}"))
            .audit_keys(),
        Err(Error::Key(KeyError::NotPersistent))
    ));
}

/// A provider with a fixed identity and a KEK of the test's choosing: the same identity under
/// another KEK must fail to unwrap, not produce garbage.
#[derive(Debug)]
struct SameIdOtherKek(FileKek, String);
impl KeyProvider for SameIdOtherKek {
    fn id(&self) -> String {
        self.1.clone()
    }
    fn wrap(&self, key: &[u8], aad: &[u8]) -> Result<Vec<u8>, ProviderError> {
        self.0.wrap(key, aad)
    }
    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        self.0.unwrap(wrapped, aad)
    }
}

#[test]
fn the_wrong_kek_or_an_edited_file_is_a_typed_error() {
    let dir = tempdir();
    let kek = FileKek::create(dir.path().join("kek")).unwrap_or_else(|e| panic!("{e}"));
    let other = FileKek::create(dir.path().join("other")).unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("keyring.json");
    drop(Keyring::create(&kek, &path).unwrap_or_else(|e| panic!("{e}")));
    let kind = |r: Result<Keyring, Error>| match r {
        Err(Error::Provider(e)) => format!("provider:{:?}", e.kind()),
        Err(Error::Key(k)) => format!("key:{k:?}"),
        Err(e) => format!("other:{e}"),
        Ok(_) => "ok".into(),
    };
    assert_eq!(kind(Keyring::load(&other, &path)), "provider:WrongProvider");
    let impostor = SameIdOtherKek(other, kek.id());
    assert_eq!(kind(Keyring::load(&impostor, &path)), "provider:Unwrap");
    let original = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    // Un-retiring, re-activating or renumbering a key by editing the body breaks the tag.
    let edits = [
        original.replacen("\"generation\":1", "\"generation\":0", 1),
        original.replacen("\"version\":1,\"state\"", "\"version\":2,\"state\"", 1),
        original.replacen("\"state\":\"active\"", "\"state\":\"retired\"", 1),
    ];
    for edited in &edits {
        assert_ne!(edited, &original);
        std::fs::write(&path, edited).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(kind(Keyring::load(&kek, &path)), "key:FileIntegrity");
    }
    let malformed = [
        String::new(),
        "{}\n".into(),
        original.replace('\n', ""),
        format!("{original}extra\n"),
        original.replacen("fieldseal-keyring", "other-format", 1),
    ];
    for bad in &malformed {
        std::fs::write(&path, bad).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            kind(Keyring::load(&kek, &path)),
            "key:FileMalformed",
            "{bad:?}"
        );
    }
    std::fs::write(
        &path,
        original.replacen(
            "\"version\":1,\"provider\"",
            "\"version\":2,\"provider\"",
            1,
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        kind(Keyring::load(&kek, &path)),
        "key:UnsupportedFileVersion(2)"
    );
    std::fs::write(&path, &original).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(kind(Keyring::load(&kek, &path)), "ok");
    assert_eq!(
        kind(Keyring::load(&kek, dir.path().join("missing"))),
        "other:I/O error: No such file or directory (os error 2)"
    );
}

const CHILD_ENV: &str = "FIELDSEAL_KEYS_CHILD";

/// The child: loads the keyring named in the environment and reveals every envelope listed in
/// `<dir>/sealed.txt` (one `row text` per line), printing `opened <n>`.
#[test]
fn restart_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let dir = Path::new(&dir);
    let kek = FileKek::open(dir.join("kek")).unwrap_or_else(|e| panic!("{e}"));
    let ring = Keyring::load(&kek, dir.join("keyring.json")).unwrap_or_else(|e| panic!("{e}"));
    let g = guard_over(Arc::new(ring));
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
    println!("\nkeys-child: opened {opened}");
}

/// Values sealed before a restart (under two versions, after a rotation) open in another
/// process that loads the same keyring file.
#[test]
fn values_sealed_before_a_restart_open_after() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = tempdir();
    let kek = FileKek::create(dir.path().join("kek")).unwrap_or_else(|e| panic!("{e}"));
    let ring = Arc::new(
        Keyring::create(&kek, dir.path().join("keyring.json")).unwrap_or_else(|e| panic!("{e}")),
    );
    let g = guard_over(Arc::clone(&ring));
    let mut list = String::new();
    for n in 0..100u64 {
        if n == 50 {
            ring.rotate().unwrap_or_else(|e| panic!("{e}"));
        }
        let s: Sealed<Email, Service> =
            g.seal(&email(n), &ctx(n)).unwrap_or_else(|e| panic!("{e}"));
        list.push_str(&format!("{n} {}\n", s.to_text()));
    }
    std::fs::write(dir.path().join("sealed.txt"), list).unwrap_or_else(|e| panic!("{e}"));
    drop(g);
    drop(ring);
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(exe)
        .args([
            "--exact",
            "restart_child",
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
        .find_map(|l| l.strip_prefix("keys-child: ").map(str::to_owned));
    assert_eq!(
        said.as_deref(),
        Some("opened 100"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn rotation_rules() {
    let ring = Keyring::generate().unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        ring.retire(v(1)),
        Err(Error::Key(KeyError::RetireActive))
    ));
    assert!(matches!(
        ring.activate(v(9)),
        Err(Error::Key(KeyError::UnknownVersion(_)))
    ));
    ring.add_key(v(5), RootKey::generate().unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        ring.add_key(v(5), RootKey::generate().unwrap_or_else(|e| panic!("{e}"))),
        Err(Error::Key(KeyError::DuplicateVersion(_)))
    ));
    assert_eq!(ring.active_version(), v(1));
    ring.activate(v(5)).unwrap_or_else(|e| panic!("{e}"));
    ring.retire(v(1)).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        ring.activate(v(1)),
        Err(Error::Key(KeyError::Retired { .. }))
    ));
    assert_eq!(ring.minimum_version(), v(5));
    assert_eq!(ring.rotate().unwrap_or_else(|e| panic!("{e}")), v(6));
}

/// Two threads seal and reveal 100,000 values in all while a third adds and activates a
/// version and retires the oldest. The only failures are `Retired`, exactly for values under
/// the retired version revealed after the retirement; nothing revealed before it fails.
#[test]
fn rotation_under_load() {
    const PER_THREAD: u64 = 50_000;
    let ring = Arc::new(Keyring::generate().unwrap_or_else(|e| panic!("{e}")));
    let g = Arc::new(guard_over(Arc::clone(&ring)));
    // 0: before the new version, 1: retiring, 2: retired.
    let phase = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(3));
    let progress = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..2u64)
        .map(|t| {
            let (g, phase, start, progress) = (
                Arc::clone(&g),
                Arc::clone(&phase),
                Arc::clone(&start),
                Arc::clone(&progress),
            );
            std::thread::spawn(move || {
                let agent = tester();
                let mut kept: Vec<(u64, Sealed<Email, Service>)> = Vec::new();
                let (mut ok, mut retired, mut other) = (0u64, 0u64, 0u64);
                let mut versions = std::collections::BTreeMap::<u32, u64>::new();
                let mut reached_back = false;
                start.wait();
                for i in 0..PER_THREAD {
                    let n = t * PER_THREAD + i;
                    let s: Sealed<Email, Service> =
                        g.seal(&email(n), &ctx(n)).unwrap_or_else(|e| panic!("{e}"));
                    *versions.entry(s.key_version().get()).or_default() += 1;
                    kept.push((n, s));
                    // Reveal an earlier value (every 7th step reaches back a long way; the
                    // first step after the retirement is seen reaches back to the very first
                    // value, sealed under version 1, so a refusal is certain to be exercised).
                    let before = phase.load(Ordering::SeqCst);
                    let back = if before == 2 && !reached_back {
                        reached_back = true;
                        i
                    } else if i % 7 == 0 {
                        i / 2
                    } else {
                        i.min(3)
                    };
                    let (m, old) = &kept[(i - back) as usize];
                    let got = g.reveal(&agent, old, &ctx(*m));
                    let after = phase.load(Ordering::SeqCst);
                    match got {
                        Ok(v) => {
                            assert_eq!(v.expose_secret().as_str(), email(*m).as_str());
                            assert!(
                                !(before == 2
                                    && old.key_version()
                                        == KeyVersion::new(1).unwrap_or_else(|| unreachable!())),
                                "a retired version opened"
                            );
                            ok += 1;
                        }
                        Err(Error::Key(KeyError::Retired { version, .. })) => {
                            assert_eq!(version.get(), 1, "only version 1 is retired");
                            assert!(after >= 1, "failed before the retirement began");
                            retired += 1;
                        }
                        Err(e) => {
                            eprintln!("unexpected: {e}");
                            other += 1;
                        }
                    }
                    progress.fetch_add(1, Ordering::Relaxed);
                }
                (ok, retired, other, versions)
            })
        })
        .collect();
    start.wait();
    let wait_for = |n: u64| {
        while progress.load(Ordering::Relaxed) < n {
            std::thread::yield_now();
        }
    };
    wait_for(30_000);
    let v2 = ring.rotate().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v2, v(2));
    wait_for(60_000);
    phase.store(1, Ordering::SeqCst);
    ring.retire(v(1)).unwrap_or_else(|e| panic!("{e}"));
    phase.store(2, Ordering::SeqCst);
    let mut totals = (0, 0, 0);
    let mut sealed_under = std::collections::BTreeMap::<u32, u64>::new();
    for w in workers {
        let (ok, retired, other, versions) = w.join().unwrap_or_else(|_| panic!("worker panicked"));
        totals = (totals.0 + ok, totals.1 + retired, totals.2 + other);
        for (k, n) in versions {
            *sealed_under.entry(k).or_default() += n;
        }
    }
    println!(
        "rotation under load: {} reveals ok, {} refused as retired, {} other failures; sealed per version {sealed_under:?}",
        totals.0, totals.1, totals.2
    );
    assert_eq!(totals.2, 0, "no failure other than Retired");
    assert_eq!(totals.0 + totals.1, 2 * PER_THREAD);
    assert!(
        totals.1 > 0,
        "values under version 1 were revealed after it was retired"
    );
    assert!(sealed_under.get(&2).copied().unwrap_or(0) > 0);
    // Sealing switched to version 2 and stayed there: every later seal is under version 2.
    let s: Sealed<Email, Service> = g.seal(&email(0), &ctx(0)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.key_version(), v2);
}
