//! Heap residue: no heap block the library frees may still hold plaintext or a subject identifier.
//!
//! A scanning global allocator looks at every block freed while the scan is armed and counts the
//! blocks that still contain one of the canary strings below. Reallocation is done as allocate,
//! copy, free, so a `Vec` or `String` holding a secret that grows is caught even where the system
//! allocator could have grown it in place. Blocks that held a value and were wiped before being
//! freed are fine; only unwiped frees count.
//!
//! The canaries are unique substrings of the plaintext values and of the subject identifier that
//! survive canonicalization. The test owns no heap copy of a canary itself: inputs are string
//! literals, and what the library hands back (masks, revealed values) is wiped before it is
//! dropped. It is a single test so that no other test thread frees blocks while the scan is armed.
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::*;
use fieldseal::builtin::Service;
use fieldseal::hazmat::DeterministicRandom;
use fieldseal::*;
use zeroize::Zeroizing;

const ID: &str = "440305198706234156";
const PHONE_NSN: &str = "13987654321";
const EMAIL_LOCAL: &str = "mailcanarylocal";
const EMAIL_DOMAIN: &str = "emaildomcanary";
const NAME: &str = "Namecanaryqv";
const STREET: &str = "Streetcanary";
const DISTRICT: &str = "Districtcanary";
const REGION: &str = "Regioncanary";
const CITY: &str = "Citycanary";
const USER_AGENT: &str = "Uacanaryzz";
const OS: &str = "Oscanaryxx";
const MODEL: &str = "Modelcanary";
const TEXT: &str = "textcanarybody";
const SUBJECT: &str = "subjcanary7731";
/// The interface identifier of the IPv6 canary address, in network order.
const IP_LOW64: [u8; 8] = [0xca, 0xfe, 0xf0, 0x0d, 0xd0, 0x0d, 0xbe, 0xef];

const CANARIES: [&[u8]; 15] = [
    ID.as_bytes(),
    PHONE_NSN.as_bytes(),
    EMAIL_LOCAL.as_bytes(),
    EMAIL_DOMAIN.as_bytes(),
    NAME.as_bytes(),
    STREET.as_bytes(),
    DISTRICT.as_bytes(),
    REGION.as_bytes(),
    CITY.as_bytes(),
    USER_AGENT.as_bytes(),
    OS.as_bytes(),
    MODEL.as_bytes(),
    TEXT.as_bytes(),
    SUBJECT.as_bytes(),
    &IP_LOW64,
];

/// Whether freed blocks are scanned. Global (not per thread): the audit log may free on its own
/// threads.
static ARMED: AtomicBool = AtomicBool::new(false);
/// Freed blocks that held a canary, per canary.
static HITS: [AtomicUsize; CANARIES.len()] = [const { AtomicUsize::new(0) }; CANARIES.len()];
/// Sizes of the first few offending blocks, for the failure message.
static HIT_SIZES: [AtomicUsize; 8] = [const { AtomicUsize::new(0) }; 8];
static HIT_COUNT: AtomicUsize = AtomicUsize::new(0);

/// First bytes of the canaries, for a quick pre-filter.
const FIRST: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < CANARIES.len() {
        t[CANARIES[i][0] as usize] = true;
        i += 1;
    }
    t
};

/// Counts the canaries found in `len` bytes at `p`. Allocates nothing.
///
/// # Safety
/// `p` must be valid for reads of `len` bytes.
unsafe fn scan(p: *const u8, len: usize) {
    let byte = |i: usize| unsafe { std::ptr::read_volatile(p.add(i)) };
    let mut found = false;
    for start in 0..len {
        if !FIRST[usize::from(byte(start))] {
            continue;
        }
        for (c, hits) in CANARIES.iter().zip(&HITS) {
            if start + c.len() <= len && c.iter().enumerate().all(|(k, &b)| byte(start + k) == b) {
                hits.fetch_add(1, Ordering::Relaxed);
                found = true;
            }
        }
    }
    if found {
        let n = HIT_COUNT.fetch_add(1, Ordering::Relaxed);
        if let Some(slot) = HIT_SIZES.get(n) {
            slot.store(len, Ordering::Relaxed);
        }
    }
}

struct Scanning;

unsafe impl GlobalAlloc for Scanning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.load(Ordering::Relaxed) {
            unsafe { scan(ptr, layout.size()) };
        }
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !ARMED.load(Ordering::Relaxed) {
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // Always move, so that the old block is scanned as freed: growing in place is luck, not
        // a property of the code.
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return std::ptr::null_mut();
        };
        let new = unsafe { System.alloc(new_layout) };
        if !new.is_null() {
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[global_allocator]
static GLOBAL: Scanning = Scanning;

/// Parses, seals, reveals and masks one value of kind `F` through `guard`, including a denied
/// reveal and one in the wrong context.
fn exercise<F: Field + PartialEq>(guard: &Guard, input: &str, ctx: &Context) {
    let nobody = Accessor::new("nobody", [Role::new("intern")]);
    let value = F::parse(input).unwrap_or_else(|e| panic!("{e}"));
    let shown = Zeroizing::new(value.mask());
    let sealed: Sealed<F, Service> = guard.seal(&value, ctx).unwrap_or_else(|e| panic!("{e}"));
    let copy: Sealed<F, Service> =
        Sealed::from_text(&sealed.to_text()).unwrap_or_else(|e| panic!("{e}"));
    let revealed = guard
        .reveal(&tester(), &copy, ctx)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(*revealed.expose_secret() == value);
    let remasked = Zeroizing::new(revealed.mask());
    assert!(*remasked == *shown);
    drop(revealed);
    let masked = Zeroizing::new(
        guard
            .mask(&tester(), &sealed, ctx)
            .unwrap_or_else(|e| panic!("{e}")),
    );
    assert!(*masked == *shown);
    assert!(matches!(
        guard.reveal(&nobody, &sealed, ctx),
        Err(Error::Denied { .. })
    ));
    let elsewhere = ctx.clone().with("extra", b"x");
    assert!(matches!(
        guard.reveal(&tester(), &sealed, &elsewhere),
        Err(Error::Integrity)
    ));
    // The runtime-typed path: seal, reveal (value and text form) and mask.
    let any_value = AnyValue::parse(F::KIND, input).unwrap_or_else(|e| panic!("{e}"));
    let service = PurposeId::of::<Service>();
    let any = guard
        .seal_any(&any_value, &service, ctx)
        .unwrap_or_else(|e| panic!("{e}"));
    let opened = guard
        .reveal_any(&tester(), &any, ctx)
        .unwrap_or_else(|e| panic!("{e}"));
    let text = opened.expose_text();
    let canonical = opened.expose_canonical();
    assert_eq!(opened.kind(), F::KIND);
    drop((text, canonical, opened));
    let masked = Zeroizing::new(
        guard
            .mask_any(&tester(), &any, ctx)
            .unwrap_or_else(|e| panic!("{e}")),
    );
    assert!(*masked == *shown);
    // Re-sealing inside the crate: single, and a batch with one item that fails after it was
    // admitted (wrong context) beside one that succeeds.
    let rewrapped = guard
        .rewrap(&tester(), &sealed, ctx)
        .unwrap_or_else(|e| panic!("{e}"));
    let report = guard
        .rewrap_batch(
            &tester(),
            [
                (AnySealed::from(rewrapped), ctx.clone()),
                (any, elsewhere.clone()),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((report.rewrapped(), report.failed()), (1, 1));
    drop(report);
    drop(copy);
    drop(sealed.into_bytes());
}

/// Every kind, through `guard`, in contexts built in several orders.
fn exercise_all(guard: &Guard, subject: &SubjectId) {
    let contexts = [
        Context::new()
            .table("users")
            .column("value")
            .row("17")
            .subject(subject),
        Context::new()
            .subject(subject)
            .table("users")
            .column("value")
            .row("17"),
        Context::new().subject(subject),
        Context::new()
            .row("17")
            .subject(subject)
            .with("tenant", b"acme")
            .with("zone", b"eu"),
    ];
    for ctx in &contexts {
        let copy = ctx.clone();
        assert!(copy == *ctx);
        drop(copy);
        exercise::<IdNumber>(guard, " 440305198706234156 ", ctx);
        exercise::<PhoneNumber>(guard, "+86 139 8765 4321", ctx);
        exercise::<Email>(
            guard,
            "  mailcanarylocal@emaildomcanary\u{23a}.Example ",
            ctx,
        );
        exercise::<Email>(guard, "mailcanarylocal@EMAILDOMCANARY.example.com", ctx);
        exercise::<PersonName>(guard, "  Namecanaryqv  Jose\u{301}\u{3000}Smith ", ctx);
        exercise::<PostalAddress>(
            guard,
            "country=de\nregion=Regioncanary\ncity=Citycanary\ndistrict=Districtcanary\n\
             street=Streetcanary 88\nstreet=Hinterhaus\npostal_code=10115",
            ctx,
        );
        exercise::<IpAddress>(guard, "2001:db8:1:2:cafe:f00d:d00d:beef", ctx);
        exercise::<IpAddress>(guard, "192.0.2.77", ctx);
        exercise::<DeviceInfo>(
            guard,
            "user_agent=Mozilla/5.0 (Uacanaryzz)\nos=Oscanaryxx 14\nmodel=Modelcanary",
            ctx,
        );
        exercise::<Text>(guard, "note: textcanarybody, call back", ctx);
    }
    // Rejected values, after some normalization work was done on them.
    for (input, kind) in [
        (
            "mailcanarylocal@emaildomcanary\u{23a}-.example",
            FieldKind::Email,
        ),
        (
            "mailcanarylocal@emaildomcanary\u{23a}.example\u{7}",
            FieldKind::Email,
        ),
        (
            "Namecanaryqv Namecanaryqv Namecanaryqv Namecanaryqv Namecanaryqv Namecanaryqv \
             Namecanaryqv Namecanaryqv Namecanaryqv Namecanaryqv Namecanaryqv Namecanaryqv",
            FieldKind::PersonName,
        ),
        (
            "country=DE\nregion=Regioncanary\ncity=Citycanary\ndistrict=Districtcanary\n\
             street=Streetcanary 88\npostal_code=1",
            FieldKind::PostalAddress,
        ),
        (
            "country=DE\nregion=Regioncanary\nstreet=Streetcanary 88\nstreet=x\u{7f}",
            FieldKind::PostalAddress,
        ),
        (
            "user_agent=Mozilla/5.0 (Uacanaryzz)\nmodel=Modelcanary\nos=Oscanaryxx\u{7}",
            FieldKind::DeviceInfo,
        ),
        ("note: textcanarybody\0", FieldKind::Text),
    ] {
        let err = match kind {
            FieldKind::Email => Email::parse(input).err(),
            FieldKind::PersonName => PersonName::parse(input).err(),
            FieldKind::PostalAddress => PostalAddress::parse(input).err(),
            FieldKind::DeviceInfo => DeviceInfo::parse(input).err(),
            _ => Text::parse(input).err(),
        };
        assert_eq!(err.map(|e| e.kind()), Some(kind));
    }
    let bad = Context::new().subject(subject).with("Bad", b"x");
    assert!(bad.check().is_err());
    // The builders, outside of `parse`.
    let address = PostalAddress::builder()
        .country("DE")
        .region("Regioncanary")
        .city("Citycanary")
        .district("Districtcanary")
        .street_line("Streetcanary 88")
        .postal_code("10115")
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let lines = address.to_lines();
    assert!(PostalAddress::parse(&lines).unwrap_or_else(|e| panic!("{e}")) == address);
    let device = DeviceInfo::builder()
        .user_agent("Mozilla/5.0 (Uacanaryzz)")
        .os("Oscanaryxx 14")
        .model("Modelcanary")
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(DeviceInfo::parse(&device.to_lines()).unwrap_or_else(|e| panic!("{e}")) == device);
}

fn report() -> String {
    let mut out = String::new();
    for (c, hits) in CANARIES.iter().zip(&HITS) {
        let n = hits.load(Ordering::Relaxed);
        if n > 0 {
            out.push_str(&format!("{} x{n}; ", String::from_utf8_lossy(c)));
        }
    }
    let sizes: Vec<usize> = HIT_SIZES
        .iter()
        .map(|s| s.load(Ordering::Relaxed))
        .filter(|&s| s > 0)
        .collect();
    out.push_str(&format!("first block sizes {sizes:?}"));
    out
}

#[test]
fn no_plaintext_or_subject_in_freed_heap_blocks() {
    let keyring =
        || Keyring::single(RootKey::from_bytes([7; 32])).unwrap_or_else(|e| panic!("{e}"));
    let rng = || Arc::new(DeterministicRandom::dangerous_new([9; 32]));
    let memory = Arc::new(MemorySink::new());
    let in_memory = Guard::builder()
        .keyring(keyring())
        .policy(allow_all(&["service"]))
        .audit(Arc::clone(&memory))
        .clock(Arc::new(FixedClock::new(1_764_000_000)))
        .dangerous_random_source(rng())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (log, _) = open_log(dir.path(), Durability::Buffered, 8);
    let log = Arc::new(log);
    let chained = Guard::builder()
        .keyring(keyring())
        .policy(allow_all(&["service"]))
        .audit(Arc::clone(&log))
        .clock(Arc::new(FixedClock::new(1_764_000_000)))
        .dangerous_random_source(rng())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));

    ARMED.store(true, Ordering::SeqCst);
    let subject = SubjectId::new(SUBJECT);
    exercise_all(&in_memory, &subject);
    exercise_all(&chained, &subject);
    log.sync().unwrap_or_else(|e| panic!("{e}"));
    let audit_key = AuditKey::from_bytes(AUDIT_KEY);
    let verified =
        verify_log(dir.path(), None, &audit_key, &ckpt_public()).unwrap_or_else(|e| panic!("{e}"));
    assert!(verified.is_valid());
    let reads = verified
        .subject_access(&audit_key.pseudonym_key(), &subject)
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(!reads.is_empty());
    drop(reads);
    drop(verified);
    drop(subject);
    drop(chained);
    drop(in_memory);
    ARMED.store(false, Ordering::SeqCst);

    assert!(!memory.is_empty());
    drop(log);
    // What reached the disk is a pseudonym, never the subject or a value.
    for entry in std::fs::read_dir(dir.path()).unwrap_or_else(|e| panic!("{e}")) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
        for c in CANARIES {
            assert!(
                !bytes.windows(c.len()).any(|w| w == c),
                "{} in {}",
                String::from_utf8_lossy(c),
                path.display()
            );
        }
    }
    assert_eq!(HIT_COUNT.load(Ordering::SeqCst), 0, "{}", report());
}
