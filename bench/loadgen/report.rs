//! The figures: the markdown report, the latency histogram and counts of one load run, and
//! the load average recorded next to each.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::args::Args;

/// The 1-minute load average, recorded next to every figure.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

pub struct Report {
    pub rows: Vec<String>,
}

impl Report {
    /// The table on stdout, after a line saying what signet was and how it logged.
    pub fn print(&self, args: &Args) {
        // signet inherits the load generator's environment but for `RUST_LOG`: the log format
        // is `SIGNET_LOG_FORMAT`'s if set (the deployment manifest's is `json`).
        let format = std::env::var("SIGNET_LOG_FORMAT").unwrap_or_else(|_| "plain".into());
        let cores = crate::procs::split().map_or(
            "the load generator and signet share the machine's cores".to_owned(),
            |s| format!("signet, the echo server and nginx on CPU {}; the load generator, wrk, h2load and the registries on CPU {} (`--split-cpus`: where a scenario keeps a registry busy, its clients share their CPU with it)", s.servers, s.clients),
        );
        println!(
            "signet: `{}` (a separate process), RUST_LOG {}, log format {format}; {cores}.\n",
            args.signet.display(),
            args.signet_log.as_deref().map_or(
                "unset (signet's default: one info line per review, to a file)".to_owned(),
                |l| format!("= {l}")
            )
        );
        println!("| scenario | figure | limit | ratio to limit | target | load (1 min) |");
        println!("|---|---|---|---|---|---|");
        for r in &self.rows {
            println!("{r}");
        }
    }

    pub fn row(&mut self, scenario: &str, figure: &str, limit: &str, ratio: &str, target: &str) {
        let line = format!(
            "| {scenario} | {figure} | {limit} | {ratio} | {target} | {} |",
            load()
        );
        eprintln!("{line}");
        self.rows.push(line);
    }
}

/// Latencies in nanoseconds and counts of one load run.
pub struct Stats {
    pub hist: Histogram<u64>,
    pub ok: u64,
    pub errors: u64,
    /// Of the errors, reviews with no answer within `REVIEW_TIMEOUT`.
    pub timeouts: u64,
    /// Answers whose `allowed` was not the expected one.
    pub wrong: u64,
    /// Of those, answers that allowed what should have been denied (the dangerous kind).
    pub wrongly_allowed: u64,
    /// The messages of the first few wrong answers, to say why.
    pub wrong_samples: Vec<String>,
    pub elapsed: Duration,
}

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, 120_000_000_000, 3).expect("histogram bounds")
}

impl Stats {
    pub fn empty() -> Stats {
        Stats {
            hist: histogram(),
            ok: 0,
            errors: 0,
            timeouts: 0,
            wrong: 0,
            wrongly_allowed: 0,
            wrong_samples: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }

    pub fn merge(&mut self, other: &Stats) {
        self.hist.add(&other.hist).expect("same bounds");
        self.ok += other.ok;
        self.errors += other.errors;
        self.timeouts += other.timeouts;
        self.wrong += other.wrong;
        self.wrongly_allowed += other.wrongly_allowed;
        for m in &other.wrong_samples {
            if self.wrong_samples.len() < 3 && !self.wrong_samples.contains(m) {
                self.wrong_samples.push(m.clone());
            }
        }
    }

    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Quantile in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1e6
    }

    pub fn latency(&self) -> String {
        format!(
            "p50 {:.3} / p90 {:.3} / p99 {:.3} / p99.9 {:.3} ms",
            self.ms(0.5),
            self.ms(0.9),
            self.ms(0.99),
            self.ms(0.999)
        )
    }

    pub fn summary(&self) -> String {
        let mut s = format!("{:.0} reviews/s; {}", self.rate(), self.latency());
        if self.errors > 0 || self.wrong > 0 {
            s.push_str(&format!(
                "; {} errors, {} wrong ({} wrongly allowed)",
                self.errors, self.wrong, self.wrongly_allowed
            ));
            for m in &self.wrong_samples {
                s.push_str(&format!("; e.g. “{m}”"));
            }
        }
        s
    }
}

pub fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "-".into()
    }
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}
