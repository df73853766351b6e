//! The Markdown table and the numbers the targets are judged on.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::harness::{fmt_dur, gbps, Samples};

pub(crate) struct Row {
    pub test: String,
    pub contender: String,
    pub median: String,
    pub p90: String,
    pub rate: String,
    pub ratio: String,
}

#[derive(Default)]
pub(crate) struct Report {
    pub rows: Vec<Row>,
    /// Medians (seconds) and other figures by key, for the targets.
    pub metrics: BTreeMap<String, f64>,
}

impl Report {
    pub(crate) fn row(
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
    pub(crate) fn na(&mut self, test: &str, contender: &str, why: &str) {
        let dash = || "—".to_string();
        self.row(test, contender, why.into(), dash(), dash(), dash());
    }

    /// A latency row; `per` divides the time for a per-item rate (e.g. runs/s).
    pub(crate) fn time_row(
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
    pub(crate) fn bytes_row(
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

    pub(crate) fn metric(&mut self, key: &str, v: f64) {
        self.metrics.insert(key.into(), v);
    }

    pub(crate) fn get(&self, key: &str) -> Option<f64> {
        self.metrics.get(key).copied()
    }

    pub(crate) fn print_table(&self) {
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
pub(crate) fn ratio(a: f64, b: f64) -> String {
    format!("{:.2}×", a / b)
}

/// Time ratio of two medians (lower is better for the first).
pub(crate) fn time_ratio(a: &Samples, b: &Samples, name: &str) -> String {
    format!("{} {name}", ratio(secs(a.median()), secs(b.median())))
}

/// Throughput ratio (higher is better for the first): b's time / a's time.
pub(crate) fn speed_ratio(a: &Samples, b: &Samples, name: &str) -> String {
    format!("{} {name}", ratio(secs(b.median()), secs(a.median())))
}

pub(crate) fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}
