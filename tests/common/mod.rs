//! Shared set-up for integration tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use fieldseal::*;

pub const ROLE: &str = "tester";

/// A policy granting `tester` every action on every kind for the given purposes.
pub fn allow_all(purposes: &[&str]) -> AllowList {
    let mut p = AllowList::new();
    for label in purposes {
        for kind in FieldKind::ALL {
            for action in Action::ALL {
                p = p.allow_dyn(
                    Role::new(ROLE),
                    PurposeId::new(label).unwrap_or_else(|e| panic!("{e}")),
                    kind,
                    action,
                );
            }
        }
    }
    p
}

pub fn tester() -> Accessor {
    Accessor::new("tester-1", [Role::new(ROLE)])
}

pub fn guard_with(keyring: Keyring, sink: Arc<MemorySink>) -> Guard {
    Guard::builder()
        .keyring(keyring)
        .policy(allow_all(&[
            "service",
            "marketing",
            "security",
            "improvement",
            "legal",
            "servicf",
        ]))
        .audit(sink)
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

pub fn guard() -> Guard {
    guard_with(
        Keyring::generate().unwrap_or_else(|e| panic!("{e}")),
        Arc::new(MemorySink::new()),
    )
}

/// A guard whose envelopes are reproducible: root key `[1; 32]`, an allow list, no audit, a
/// fixed clock at `now` and a deterministic random stream. Two of them seal byte for byte alike.
pub fn reproducible_guard(now: u64) -> Guard {
    Guard::builder()
        .keyring(Keyring::single(RootKey::from_bytes([1; 32])).unwrap_or_else(|e| panic!("{e}")))
        .policy(AllowList::new())
        .audit(NullSink)
        .clock(Arc::new(FixedClock::new(now)))
        .dangerous_random_source(Arc::new(
            fieldseal::hazmat::DeterministicRandom::dangerous_new([5; 32]),
        ))
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

pub fn v(n: u32) -> KeyVersion {
    KeyVersion::new(n).unwrap_or_else(|| panic!("zero version"))
}

pub const AUDIT_KEY: [u8; 32] = [0x11; 32];
pub const CKPT_KEY: [u8; 32] = [0x22; 32];

pub fn ckpt_public() -> CheckpointVerifyingKey {
    CheckpointSigningKey::from_bytes(CKPT_KEY).verifying_key()
}

/// Opens a chained log in `dir` with the test keys.
pub fn open_log(
    dir: &std::path::Path,
    durability: Durability,
    checkpoint_every: u64,
) -> (ChainedLog, OpenReport) {
    ChainedLog::builder(dir)
        .key(AuditKey::from_bytes(AUDIT_KEY))
        .checkpoint_key(CheckpointSigningKey::from_bytes(CKPT_KEY))
        .durability(durability)
        .checkpoint_every(checkpoint_every, std::time::Duration::from_secs(3600))
        .open()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Appends sample events `from..to` (subject `s<n % 3>`).
pub fn append_n(log: &ChainedLog, from: u64, to: u64) {
    for n in from..to {
        let subject = format!("s{}", n % 3);
        fieldseal::internal::testing::with_sample_event(n, Some(&subject), |e| {
            log.append(e).unwrap_or_else(|e| panic!("{e}"))
        });
    }
}

/// Verifies one in-memory segment and checkpoint file under the test keys.
pub fn verify_mem(log: &[u8], ckpt: &[u8]) -> VerifyReport {
    verify_bytes(
        &[log.to_vec()],
        ckpt,
        &AuditKey::from_bytes(AUDIT_KEY),
        &ckpt_public(),
    )
}

pub fn verify_dir(dir: &std::path::Path) -> VerifyReport {
    verify_log(dir, None, &AuditKey::from_bytes(AUDIT_KEY), &ckpt_public())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A small deterministic generator for randomized trials (reproducible from its seed).
pub struct XorShift(pub u64);
impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Starts `python3 -B tests/independent/<script> <args>` with piped stdin, stdout and stderr
/// (`-B`: no bytecode cache written next to the script). Secrets go on stdin, never in `args`.
pub fn independent_python(script: &str, args: &[&std::ffi::OsStr]) -> std::process::Child {
    use std::process::{Command, Stdio};
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/independent")
        .join(script);
    Command::new("python3")
        .arg("-B")
        .arg(path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("python3 is needed for this test (scripts/test installs it): {e}")
        })
}

/// Runs the second verifier of the audit log (`tests/independent/audit_verify.py`) over the log
/// in `dir` (segments and `checkpoints.log`), with the checkpoint public key `public` and the
/// audit key `audit_key` (on stdin); returns its JSON answer (`entries`, `checkpoints`, `fault`,
/// `why`), after checking that its exit status says the same (0 sound, 1 a fault).
pub fn independent_audit_verify(
    dir: &std::path::Path,
    public: &[u8; 32],
    audit_key: &[u8],
) -> serde_json::Value {
    use std::io::Write as _;
    let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let checkpoints = dir.join("checkpoints.log");
    let public = hex(public);
    let mut child = independent_python(
        "audit_verify.py",
        &[
            dir.as_os_str(),
            checkpoints.as_os_str(),
            std::ffi::OsStr::new(&public),
        ],
    );
    if let Some(mut stdin) = child.stdin.take() {
        writeln!(stdin, "{}", hex(audit_key)).unwrap_or_else(|e| panic!("{e}"));
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "no answer from the independent verifier ({e}): {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(
        out.status.code(),
        Some(i32::from(!v["fault"].is_null())),
        "{v}"
    );
    v
}
