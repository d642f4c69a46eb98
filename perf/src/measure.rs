//! Paired (interleaved) rounds: every contender of a group runs one fixed batch per round, in
//! an order rotated each round, so that drift in the load of a shared machine falls on all of
//! them alike; ratios are taken within a round, then summarized over the rounds.

use std::time::{Duration, Instant};

/// One thing to measure: a closure that performs `k` units of work and returns the wall time
/// of the timed part (set-up such as clearing a sink or preparing inputs stays outside it).
pub struct Contender<'a> {
    pub name: String,
    /// Operations per unit of work: threads x items per call (1 for a plain single-threaded op).
    pub ops_per_unit: u64,
    k: u64,
    batch: Box<dyn FnMut(u64) -> Duration + 'a>,
}

impl<'a> Contender<'a> {
    pub fn new(name: impl Into<String>, batch: impl FnMut(u64) -> Duration + 'a) -> Self {
        Self {
            name: name.into(),
            ops_per_unit: 1,
            k: 1,
            batch: Box::new(batch),
        }
    }

    /// `n` operations per unit of work (threads, or items per batch call).
    pub fn ops(mut self, n: u64) -> Self {
        self.ops_per_unit = n;
        self
    }

    /// Times a closure that performs one operation per call, `k` times.
    pub fn each(name: impl Into<String>, mut op: impl FnMut() + 'a) -> Self {
        Self::new(name, move |k| {
            let start = Instant::now();
            for _ in 0..k {
                op();
            }
            start.elapsed()
        })
    }
}

/// Settings of a run.
#[derive(Clone, Copy)]
pub struct Plan {
    pub rounds: usize,
    /// Wall time one contender's batch should take in one round.
    pub batch: Duration,
}

/// ns per operation, `[contender][round]`.
pub struct Samples {
    pub names: Vec<String>,
    pub ns: Vec<Vec<f64>>,
}

/// Chooses each contender's batch size (doubling until a batch takes `plan.batch`; this is the
/// warm-up), then runs `plan.rounds` rounds, rotating the order by one each round.
pub fn paired(plan: Plan, contenders: &mut [Contender<'_>]) -> Samples {
    for c in contenders.iter_mut() {
        let mut k = 1u64;
        loop {
            let t = (c.batch)(k);
            if t >= plan.batch || k >= 1 << 40 {
                break;
            }
            let grow = if t.is_zero() {
                16.0
            } else {
                (plan.batch.as_secs_f64() / t.as_secs_f64() * 1.2).clamp(1.5, 16.0)
            };
            k = ((k as f64) * grow).ceil() as u64;
        }
        c.k = k;
    }
    let n = contenders.len();
    let mut ns = vec![Vec::with_capacity(plan.rounds); n];
    for round in 0..plan.rounds {
        for i in 0..n {
            let c = &mut contenders[(i + round) % n];
            let t = (c.batch)(c.k);
            ns[(i + round) % n].push(t.as_nanos() as f64 / (c.k * c.ops_per_unit) as f64);
        }
    }
    Samples {
        names: contenders.iter().map(|c| c.name.clone()).collect(),
        ns,
    }
}

/// Median, minimum and maximum.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

pub fn summarize(v: &[f64]) -> Summary {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    Summary {
        median,
        min: s.first().copied().unwrap_or(f64::NAN),
        max: s.last().copied().unwrap_or(f64::NAN),
    }
}

impl Samples {
    pub fn index(&self, name: &str) -> usize {
        self.names
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("no contender named {name}"))
    }

    /// Per round, the smallest ns/op among the named contenders (the fastest raw baseline).
    pub fn fastest_of(&self, names: &[&str]) -> Vec<f64> {
        let idx: Vec<usize> = names.iter().map(|n| self.index(n)).collect();
        (0..self.ns[idx[0]].len())
            .map(|r| {
                idx.iter()
                    .map(|&i| self.ns[i][r])
                    .fold(f64::INFINITY, f64::min)
            })
            .collect()
    }

    pub fn ns_of(&self, name: &str) -> &[f64] {
        &self.ns[self.index(name)]
    }

    pub fn time(&self, name: &str) -> Summary {
        summarize(self.ns_of(name))
    }

    /// Per-round ratios `name / base[round]`, summarized.
    pub fn ratio(&self, name: &str, base: &[f64]) -> Summary {
        let v: Vec<f64> = self
            .ns_of(name)
            .iter()
            .zip(base)
            .map(|(a, b)| a / b)
            .collect();
        summarize(&v)
    }

    /// Per-round ratios `base[round] / name` (how many times faster `name` is), summarized.
    pub fn speedup(&self, name: &str, base: &[f64]) -> Summary {
        let v: Vec<f64> = self
            .ns_of(name)
            .iter()
            .zip(base)
            .map(|(a, b)| b / a)
            .collect();
        summarize(&v)
    }
}

/// Nanoseconds with a unit that suits them.
pub fn human_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e4 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// A rate (per second) with a unit that suits it.
pub fn human_rate(per_s: f64) -> String {
    if per_s >= 1e6 {
        format!("{:.2} M/s", per_s / 1e6)
    } else if per_s >= 1e3 {
        format!("{:.0} k/s", per_s / 1e3)
    } else {
        format!("{per_s:.0}/s")
    }
}

/// `1.23x (1.10–1.40)`.
pub fn ratio_cell(s: Summary) -> String {
    let f = |x: f64| {
        if x >= 100.0 {
            format!("{x:.0}")
        } else if x >= 10.0 {
            format!("{x:.1}")
        } else {
            format!("{x:.2}")
        }
    };
    format!("{}x ({}–{})", f(s.median), f(s.min), f(s.max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn median_of_odd_and_even_counts() {
        let s = summarize(&[3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(summarize(&[4.0, 1.0, 3.0, 2.0]).median, 2.5);
        assert!(summarize(&[]).median.is_nan());
    }

    fn samples() -> Samples {
        Samples {
            names: vec!["a".into(), "b".into(), "c".into()],
            ns: vec![vec![10.0, 30.0], vec![20.0, 15.0], vec![40.0, 60.0]],
        }
    }

    #[test]
    fn ratios_are_taken_within_a_round() {
        let s = samples();
        let base = s.fastest_of(&["a", "b"]);
        assert_eq!(base, vec![10.0, 15.0]);
        // c / fastest per round: 4 and 4, although the medians (50 / 17.5) differ more.
        let r = s.ratio("c", &base);
        assert_eq!((r.median, r.min, r.max), (4.0, 4.0, 4.0));
        let up = s.speedup("a", s.ns_of("c"));
        assert_eq!((up.min, up.max), (2.0, 4.0));
    }

    #[test]
    fn every_contender_runs_once_per_round_in_rotated_order() {
        let order = RefCell::new(Vec::new());
        let mut contenders: Vec<Contender<'_>> = ["x", "y", "z"]
            .into_iter()
            .map(|n| {
                let order = &order;
                Contender::new(n, move |k| {
                    order.borrow_mut().push((n, k));
                    // Long enough that the warm-up settles on k = 1.
                    Duration::from_millis(2)
                })
                .ops(2)
            })
            .collect();
        let plan = Plan {
            rounds: 3,
            batch: Duration::from_millis(1),
        };
        let s = paired(plan, &mut contenders);
        drop(contenders);
        let order = order.into_inner();
        // Warm-up: one batch each, in order; then rounds starting at x, y, z.
        let names: Vec<&str> = order.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            ["x", "y", "z", "x", "y", "z", "y", "z", "x", "z", "x", "y"]
        );
        assert!(order.iter().all(|(_, k)| *k == 1));
        // 2 ms over one unit of two operations: 1 ms per operation, every round.
        assert_eq!(s.ns_of("y"), &[1e6, 1e6, 1e6]);
    }

    #[test]
    fn warm_up_grows_the_batch_until_it_takes_the_target_time() {
        let seen = RefCell::new(Vec::new());
        let mut c = vec![Contender::new("grow", |k| {
            seen.borrow_mut().push(k);
            Duration::from_micros(10 * k)
        })];
        let plan = Plan {
            rounds: 1,
            batch: Duration::from_millis(5),
        };
        paired(plan, &mut c);
        drop(c);
        let seen = seen.into_inner();
        let last = *seen.last().expect("one timed round");
        assert!(seen.windows(2).take(seen.len() - 2).all(|w| w[1] > w[0]));
        assert!(last * 10 >= 5_000, "the batch reached 5 ms: k = {last}");
    }

    #[test]
    fn human_units() {
        assert_eq!(human_ns(512.0), "512 ns");
        assert_eq!(human_ns(1_500.0), "1.50 µs");
        assert_eq!(human_ns(25_400.0), "25.4 µs");
        assert_eq!(human_ns(2_620_000.0), "2.62 ms");
        assert_eq!(human_rate(217_000.0), "217 k/s");
        assert_eq!(human_rate(1_780_000.0), "1.78 M/s");
        let r = Summary {
            median: 2.4749,
            min: 12.3,
            max: 190.0,
        };
        assert_eq!(ratio_cell(r), "2.47x (12.3–190)");
    }
}
