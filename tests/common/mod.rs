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

pub fn v(n: u32) -> KeyVersion {
    KeyVersion::new(n).unwrap_or_else(|| panic!("zero version"))
}
