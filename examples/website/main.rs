//! The reference privacy policy, end to end: every promise of the policy is a step this program
//! performs and checks. It exits non-zero if any step does not behave as the policy says.
//!
//! Run: `cargo run --example website` (human output) or `cargo run --example website -- --json`
//! (one JSON object per step). Keys persist in `FIELDSEAL_DEMO_DIR` (default
//! `target/fieldseal-demo`), so a value sealed by one run opens in the next; the audit log is
//! written under the system temp directory and removed afterwards.

// Shared with tests/website_demo.rs, which uses items this binary does not.
#[allow(dead_code, unreachable_pub)]
mod demo;

fn main() -> std::process::ExitCode {
    let json = std::env::args().skip(1).any(|a| a == "--json");
    let mut out = std::io::stdout().lock();
    match demo::run(&mut out, json) {
        Ok(steps) if steps.iter().all(|s| s.ok) => std::process::ExitCode::SUCCESS,
        Ok(steps) => {
            let failed = steps.iter().filter(|s| !s.ok).count();
            eprintln!("{failed} step(s) did not behave as the policy says");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
