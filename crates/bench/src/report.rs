//! The Markdown table and the numbers the targets are judged on.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::harness::{fmt_dur, gbps, Samples};

pub struct Row {
    pub test: String,
    pub contender: String,
    pub median: String,
    pub p90: String,
    pub rate: String,
    pub ratio: String,
}

#[derive(Default)]
pub struct Report {
    pub rows: Vec<Row>,
    /// Medians (seconds) and other figures by key, for the targets.
    pub metrics: BTreeMap<String, f64>,
}

impl Report {
    pub fn row(
        &mut self,
        test: &str,
        contender: &str,
        median: String,
        p90: String,
        rate: String,
        ratio: String,
    ) {
        self.rows.push(Row {
            test: test.into(),
            contender: contender.into(),
            median,
            p90,
            rate,
            ratio,
        });
    }

    /// A row that could not be measured.
    pub fn na(&mut self, test: &str, contender: &str, why: &str) {
        let dash = || "—".to_string();
        self.row(test, contender, why.into(), dash(), dash(), dash());
    }

    /// A latency row; `per` divides the time for a per-item rate (e.g. runs/s).
    pub fn time_row(
        &mut self,
        test: &str,
        contender: &str,
        s: &Samples,
        per: Option<u64>,
        ratio: String,
    ) {
        let rate = per.map_or("—".into(), |n| {
            format!("{:.0} /s", n as f64 / s.median().as_secs_f64())
        });
        self.row(
            test,
            contender,
            fmt_dur(s.median()),
            fmt_dur(s.p90()),
            rate,
            ratio,
        );
    }

    /// A throughput row (rate at the median time).
    pub fn bytes_row(
        &mut self,
        test: &str,
        contender: &str,
        s: &Samples,
        bytes: u64,
        ratio: String,
    ) {
        let rate = format!("{:.2} GB/s", gbps(bytes, s.median()));
        self.row(
            test,
            contender,
            fmt_dur(s.median()),
            fmt_dur(s.p90()),
            rate,
            ratio,
        );
    }

    pub fn metric(&mut self, key: &str, v: f64) {
        self.metrics.insert(key.into(), v);
    }

    pub fn get(&self, key: &str) -> Option<f64> {
        self.metrics.get(key).copied()
    }

    pub fn print_table(&self) {
        println!("| Test | Contender | Median | p90 | Rate | Ratio |");
        println!("|---|---|--:|--:|--:|---|");
        // A `|` inside a cell (even in a code span) would split it.
        let cell = |s: &str| s.replace('|', "\\|");
        let mut last = "";
        for r in &self.rows {
            let test = if r.test == last { "" } else { r.test.as_str() };
            last = &r.test;
            println!(
                "| {} | {} | {} | {} | {} | {} |",
                cell(test),
                cell(&r.contender),
                cell(&r.median),
                cell(&r.p90),
                cell(&r.rate),
                cell(&r.ratio)
            );
        }
    }
}

/// `a / b` formatted as `0.93×`.
pub fn ratio(a: f64, b: f64) -> String {
    format!("{:.2}×", a / b)
}

/// Time ratio of two medians (lower is better for the first).
pub fn time_ratio(a: &Samples, b: &Samples, name: &str) -> String {
    format!("{} {name}", ratio(secs(a.median()), secs(b.median())))
}

/// Throughput ratio (higher is better for the first): b's time / a's time.
pub fn speed_ratio(a: &Samples, b: &Samples, name: &str) -> String {
    format!("{} {name}", ratio(secs(b.median()), secs(a.median())))
}

pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}
