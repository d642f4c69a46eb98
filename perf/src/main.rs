//! `scripts/perf`: fieldseal against raw AES-256-GCM and peer libraries, in paired rounds, as
//! markdown tables on standard output. See README.md beside Cargo.toml.

#![deny(unsafe_code)]

mod alloc;
mod measure;
mod peers;
mod rows;
mod setup;

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

use std::time::Duration;

use measure::Plan;

fn uptime() -> String {
    std::process::Command::new("uptime")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .or_else(|| std::fs::read_to_string("/proc/loadavg").ok())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    if let Some(other) = args.iter().find(|a| *a != "--quick") {
        eprintln!("usage: fieldseal-perf [--quick] (unknown argument {other:?})");
        std::process::exit(2);
    }
    let plan = if quick {
        Plan {
            rounds: 3,
            batch: Duration::from_millis(8),
        }
    } else {
        Plan {
            rounds: 21,
            batch: Duration::from_millis(50),
        }
    };
    println!(
        "# fieldseal performance{}",
        if quick { " (--quick)" } else { "" }
    );
    println!();
    println!("- load at start: `{}`", uptime());
    println!(
        "- CPU: {} ({} CPUs available)",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for (label, var) in [
        ("fieldseal revision", "FIELDSEAL_PERF_REV"),
        ("rustc", "FIELDSEAL_PERF_RUSTC"),
    ] {
        if let Ok(v) = std::env::var(var) {
            println!("- {label}: {v}");
        }
    }
    println!(
        "- method: {} paired rounds; in each round every contender of a table runs one batch of \
         a fixed size (chosen in warm-up to take about {} ms), in an order rotated each round; \
         ratios are taken within a round, then the median and min–max over the rounds are shown",
        plan.rounds,
        plan.batch.as_millis()
    );
    println!();

    let mut targets = Vec::new();
    rows::seal(plan, &mut targets);
    rows::reveal(plan, &mut targets);
    rows::chained_reveal(plan, &mut targets);
    rows::appends(plan, &mut targets);
    rows::round_trips(plan, &mut targets);
    rows::casbin(plan);
    rows::allocations(if quick { 1_000 } else { 20_000 });
    rows::rewrap(plan);

    println!("## Targets");
    println!();
    println!(
        "| path | target | measured (median, min–max over rounds) | met | against the faster aes-gcm 0.11 API |"
    );
    println!("|---|---|---|---|---|");
    for t in &targets {
        println!(
            "| {} | {} | {} | {} | {} |",
            t.path,
            t.target,
            t.measured,
            if t.met { "yes" } else { "**no**" },
            t.vs_011
        );
    }
    println!();
    println!("- load at end: `{}`", uptime());
}

/// One line of the table of targets.
pub struct Target {
    pub path: String,
    pub target: &'static str,
    pub measured: String,
    /// The same ratio against the faster aes-gcm 0.11 API (the version fieldseal uses), where
    /// the target is a ratio to raw AES-GCM.
    pub vs_011: String,
    pub met: bool,
}
