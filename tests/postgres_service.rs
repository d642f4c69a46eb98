//! The example service (`examples/service.rs`) on 127.0.0.1:0, driven with real HTTP requests:
//! sealed columns, reveals and masks through the guard, denials, consent granted and withdrawn,
//! concurrent requests; then the audit chain they left verifies.
//!
//! Needs the throwaway cluster of `scripts/pg-env`; without it the test prints a skip message
//! and passes.
#![cfg(feature = "postgres")]

mod common;
mod pg;
#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "../examples/service.rs"]
mod service;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};

use common::*;
use fieldseal::postgres::{PgCheckpointer, verify_pg};
use fieldseal::*;
use pg::fresh;

/// One HTTP/1.1 request; (status, body).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{e}"));
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut resp = String::new();
    s.read_to_string(&mut resp)
        .unwrap_or_else(|e| panic!("{e}"));
    let status = resp.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn the_example_service_over_http() {
    let Some(db) = fresh("service") else { return };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = rt.block_on(async {
        let state = service::setup(service::Config {
            owner_url: db.owner.clone(),
            writer_url: db.writer.clone(),
            audit_key: AuditKey::from_bytes(AUDIT_KEY),
            consent_key: [5; 32],
            reveal: service::RevealPath::Async,
        })
        .await
        .unwrap_or_else(|e| panic!("setup: {e}"));
        service::spawn_on_loopback(state)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    });
    assert!(addr.ip().is_loopback());
    PgCheckpointer::new(
        &db.checkpoint,
        &AuditKey::from_bytes(AUDIT_KEY),
        CheckpointSigningKey::from_bytes(CKPT_KEY),
    )
    .and_then(|c| c.checkpoint())
    .unwrap_or_else(|e| panic!("{e}"));

    let (status, body) = http(
        addr,
        "POST",
        "/inquiries",
        &[],
        r#"{"subject":"u-42","phone":"+86 138 0013 8000","email":"Zhang.San@Example.COM"}"#,
    );
    assert_eq!((status, body.as_str()), (201, r#"{"id":1}"#));
    let agent = [
        ("x-principal", "alice"),
        ("x-roles", "support_agent"),
        ("x-subject", "u-42"),
    ];
    assert_eq!(
        http(addr, "GET", "/inquiries/1/phone", &agent, ""),
        (200, "+8613800138000".to_owned())
    );
    let (status, masked) = http(addr, "GET", "/inquiries/1/phone/masked", &agent, "");
    assert_eq!(status, 200);
    assert!(masked.contains('*') && !masked.contains("0013"), "{masked}");
    let intern = [
        ("x-principal", "bob"),
        ("x-roles", "intern"),
        ("x-subject", "u-42"),
    ];
    assert_eq!(
        http(addr, "GET", "/inquiries/1/phone", &intern, ""),
        (403, "denied:not_permitted".to_owned())
    );
    // The subject is bound into the ciphertext: another subject's context does not open it.
    let wrong = [
        ("x-principal", "alice"),
        ("x-roles", "support_agent"),
        ("x-subject", "u-43"),
    ];
    assert_eq!(http(addr, "GET", "/inquiries/1/phone", &wrong, "").0, 409);
    assert_eq!(http(addr, "GET", "/inquiries/9/phone", &agent, "").0, 404);

    // Marketing needs consent, granted and withdrawn through the service.
    let marketer = [
        ("x-principal", "mia"),
        ("x-roles", "marketing"),
        ("x-subject", "u-42"),
    ];
    assert_eq!(
        http(addr, "GET", "/inquiries/1/email", &marketer, ""),
        (403, "denied:consent_missing".to_owned())
    );
    assert_eq!(
        http(
            addr,
            "POST",
            "/consent/u-42/marketing",
            &[("x-principal", "dpo")],
            ""
        )
        .0,
        204
    );
    assert_eq!(
        http(addr, "GET", "/inquiries/1/email", &marketer, ""),
        (200, "Zhang.San@example.com".to_owned())
    );
    assert_eq!(
        http(
            addr,
            "DELETE",
            "/consent/u-42/marketing",
            &[("x-principal", "dpo")],
            ""
        )
        .0,
        204
    );
    assert_eq!(
        http(addr, "GET", "/inquiries/1/email", &marketer, "").0,
        403
    );

    // Concurrent reveals: every one answered and audited.
    let threads: Vec<_> = (0..16)
        .map(|_| std::thread::spawn(move || http(addr, "GET", "/inquiries/1/phone", &agent, "").0))
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap_or_else(|_| panic!("client thread")), 200);
    }

    // 3 reveals or masks + 1 denial + 1 failed (wrong subject: allowed, then failed:integrity)
    // + 3 marketing decisions + 16 reveals.
    let c = PgCheckpointer::new(
        &db.checkpoint,
        &AuditKey::from_bytes(AUDIT_KEY),
        CheckpointSigningKey::from_bytes(CKPT_KEY),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let covered = c.checkpoint().unwrap_or_else(|e| panic!("{e}"));
    let report = verify_pg(&db.owner, &AuditKey::from_bytes(AUDIT_KEY), &ckpt_public())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.is_valid(), "{:?}", report.fault);
    assert_eq!(Some(report.entries), covered);
    assert_eq!(report.entries, 2 + 1 + 2 + 3 + 16);
    drop(rt);
}
