//! The `--stats-json` report.
//!
//! One flat JSON object, written by hand (every value is a number or
//! `null`, every key a fixed ASCII name):
//!
//! ```json
//! {"mode":"pipe","end":"exited","timed_out":false,"bytes_in":5,"bytes_out":5,
//!  "bytes_err":0,"read_count":1,"write_count":1,"wall_time_ms":3,"exit_code":0,
//!  "signal":null,"user_time_ms":0,"system_time_ms":1,"max_rss_bytes":2097152}
//! ```
//!
//! `mode` is `inherit` (the program had netrunner's stdio: the byte
//! counts are `null`, nothing passed through netrunner) or `pipe`.
//! `timed_out` is true when `end` is `timeout` or `idle_timeout`.
//!
//! `end` says how the run ended: `exited`, `signalled` (a signal nobody
//! here sent), `timeout`, `idle_timeout`, `max_output`, `killed` (netrunner
//! forwarded a signal it received), `owner_gone` (netrunner stopped early
//! because its own stdout was closed), `oom_killed` (the kernel's OOM
//! killer, at the cgroup's memory limit); `null` if the program never started.
//!
//! With a cgroup, `memory_peak_bytes`, `oom_kills`, `cgroup_cpu_time_ms`,
//! `cpu_throttled_periods` and `pids_peak` are the cgroup's figures, read
//! after the program exited; `null` without a cgroup or where the host
//! does not provide the figure.
//!
//! `exit_code` is set when the program exited, `signal` (the signal number)
//! when a signal killed it; both are `null` when its end was never seen (it
//! could not be started, or netrunner stopped early because its own stdout
//! was closed). CPU times and peak memory are `null` in that case too.

use std::fmt::Write as _;
use std::time::Duration;

use net_runner::Stats;

/// The figures written to the `--stats-json` file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Report {
    /// `inherit` (the program had netrunner's stdio) or `pipe`.
    pub mode: Option<&'static str>,
    /// Bytes written to the program's stdin (`None`: not seen).
    pub bytes_in: Option<u64>,
    /// Bytes read from its stdout.
    pub bytes_out: Option<u64>,
    /// Bytes read from its stderr.
    pub bytes_err: Option<u64>,
    /// Reads from stdout and stderr.
    pub read_count: Option<u64>,
    /// Writes to stdin.
    pub write_count: Option<u64>,
    /// From the start of the program until its exit was seen.
    pub wall_time: Duration,
    /// Its exit code, if it exited.
    pub exit_code: Option<i32>,
    /// The number of the signal that killed it, if one did.
    pub signal: Option<i32>,
    /// User CPU time of the program and its reaped descendants.
    pub user_time: Option<Duration>,
    /// System CPU time of the program and its reaped descendants.
    pub system_time: Option<Duration>,
    /// Its peak resident set size.
    pub max_rss_bytes: Option<u64>,
    /// How the run ended (`exited`, `signalled`, `timeout`, `idle_timeout`,
    /// `max_output`, `killed`, `owner_gone`, `oom_killed`), when known.
    pub end: Option<&'static str>,
    /// The cgroup's figures, with `--cgroup` or a cgroup limit.
    pub cgroup: Option<net_runner::CgroupStats>,
}

impl From<&Stats> for Report {
    fn from(s: &Stats) -> Self {
        Report {
            mode: None,
            bytes_in: Some(s.bytes_in),
            bytes_out: Some(s.bytes_out),
            bytes_err: Some(s.bytes_err),
            read_count: Some(s.read_count),
            write_count: Some(s.write_count),
            wall_time: s.wall_time,
            exit_code: s.exit_status.and_then(|st| st.code()),
            signal: s.exit_status.and_then(|st| st.signal()),
            user_time: s.user_time,
            system_time: s.system_time,
            max_rss_bytes: s.max_rss_bytes,
            end: s.end.map(|e| e.as_str()),
            cgroup: s.cgroup,
        }
    }
}

fn millis(d: Duration) -> u128 {
    d.as_millis()
}

impl Report {
    /// Forgets the byte counts: nothing passed through netrunner.
    pub(crate) fn clear_byte_counts(&mut self) {
        self.bytes_in = None;
        self.bytes_out = None;
        self.bytes_err = None;
        self.read_count = None;
        self.write_count = None;
    }

    /// Whether the run timed out (the `timed_out` field).
    fn timed_out(&self) -> bool {
        matches!(self.end, Some("timeout" | "idle_timeout"))
    }

    /// The report as one line of JSON, ending with a newline.
    pub(crate) fn to_json(&self) -> String {
        fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
            v.map_or_else(|| "null".to_owned(), |v| v.to_string())
        }
        let cg = self.cgroup.unwrap_or_default();
        let fields: [(&str, String); 19] = [
            // Fixed lowercase identifiers: quoted, no escaping needed.
            ("mode", opt(self.mode.map(|m| format!("\"{m}\"")))),
            ("end", opt(self.end.map(|e| format!("\"{e}\"")))),
            ("timed_out", self.timed_out().to_string()),
            ("bytes_in", opt(self.bytes_in)),
            ("bytes_out", opt(self.bytes_out)),
            ("bytes_err", opt(self.bytes_err)),
            ("read_count", opt(self.read_count)),
            ("write_count", opt(self.write_count)),
            ("wall_time_ms", millis(self.wall_time).to_string()),
            ("exit_code", opt(self.exit_code)),
            ("signal", opt(self.signal)),
            ("user_time_ms", opt(self.user_time.map(millis))),
            ("system_time_ms", opt(self.system_time.map(millis))),
            ("max_rss_bytes", opt(self.max_rss_bytes)),
            ("memory_peak_bytes", opt(cg.memory_peak_bytes)),
            ("oom_kills", opt(cg.oom_kills)),
            ("cgroup_cpu_time_ms", opt(cg.cpu_usage.map(millis))),
            ("cpu_throttled_periods", opt(cg.cpu_throttled_periods)),
            ("pids_peak", opt(cg.pids_peak)),
        ];
        let mut out = String::from("{");
        for (i, (key, value)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            // Keys are fixed ASCII identifiers: no escaping needed.
            let _ = write!(out, "\"{key}\":{value}");
        }
        out.push_str("}\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::from_str(json).expect("valid JSON") {
            serde_json::Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn empty_report_has_every_key() {
        let json = Report::default().to_json();
        assert!(json.ends_with("}\n"));
        let map = parse(&json);
        let keys: Vec<&str> = map.keys().map(String::as_str).collect();
        let mut expected = vec![
            "mode",
            "timed_out",
            "bytes_in",
            "bytes_out",
            "bytes_err",
            "read_count",
            "write_count",
            "wall_time_ms",
            "exit_code",
            "signal",
            "user_time_ms",
            "system_time_ms",
            "max_rss_bytes",
            "end",
            "memory_peak_bytes",
            "oom_kills",
            "cgroup_cpu_time_ms",
            "cpu_throttled_periods",
            "pids_peak",
        ];
        let mut keys = keys;
        keys.sort_unstable();
        expected.sort_unstable();
        assert_eq!(keys, expected);
        assert!(map["exit_code"].is_null());
        assert!(map["signal"].is_null());
        assert!(map["max_rss_bytes"].is_null());
        assert!(map["end"].is_null());
        assert!(map["bytes_in"].is_null());
        assert!(map["mode"].is_null());
    }

    #[test]
    fn values() {
        let r = Report {
            mode: Some("pipe"),
            bytes_in: Some(1),
            bytes_out: Some(u64::MAX),
            bytes_err: Some(3),
            read_count: Some(4),
            write_count: Some(5),
            wall_time: Duration::from_micros(12_999),
            exit_code: Some(-1),
            signal: None,
            user_time: Some(Duration::from_secs(2)),
            system_time: Some(Duration::ZERO),
            max_rss_bytes: Some(4096),
            end: Some("idle_timeout"),
            cgroup: None,
        };
        let map = parse(&r.to_json());
        assert_eq!(map["bytes_in"], 1);
        assert_eq!(map["bytes_out"], u64::MAX);
        assert_eq!(map["bytes_err"], 3);
        assert_eq!(map["read_count"], 4);
        assert_eq!(map["write_count"], 5);
        assert_eq!(map["wall_time_ms"], 12);
        assert_eq!(map["exit_code"], -1);
        assert!(map["signal"].is_null());
        assert_eq!(map["user_time_ms"], 2000);
        assert_eq!(map["system_time_ms"], 0);
        assert_eq!(map["max_rss_bytes"], 4096);
        assert_eq!(map["end"], "idle_timeout");
        assert_eq!(map["mode"], "pipe");
        assert_eq!(map["timed_out"], true);
        let mut inherit = r.clone();
        inherit.clear_byte_counts();
        inherit.end = Some("exited");
        let map = parse(&inherit.to_json());
        assert!(map["bytes_out"].is_null() && map["read_count"].is_null());
        assert_eq!(map["timed_out"], false);
    }

    #[test]
    fn from_library_stats() {
        let out = net_runner::Command::new("sh")
            .args(["-c", "cat; echo e >&2; kill -TERM $$"])
            .input("hello")
            .run_blocking()
            .unwrap();
        let r = Report::from(&out.stats);
        assert_eq!(
            (r.bytes_in, r.bytes_out, r.bytes_err),
            (Some(5), Some(5), Some(2))
        );
        assert_eq!((r.exit_code, r.signal), (None, Some(libc::SIGTERM)));
        assert_eq!(r.end, Some("signalled"));
        assert!(r.max_rss_bytes.unwrap() > 0);
        assert!(r.user_time.is_some() && r.system_time.is_some());
    }
}
