//! Command-line syntax: `netrunner run [OPTIONS] -- PROGRAM [ARGS...]`.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{OsStringValueParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::exit::{self, Exit};

const ABOUT: &str =
    "Run a program safely: no orphans, no zombies, output streamed with backpressure.";

const LONG_ABOUT: &str = "\
Run a program safely: no orphans, no zombies, output streamed with backpressure.

Every program runs in its own process group under a small shepherd process.
When netrunner goes away, however it dies (even by SIGKILL), the shepherd
terminates the program's whole process tree: SIGTERM, then SIGKILL after the
kill timeout.";

const RUN_ABOUT: &str = "Run PROGRAM with ARGS, streaming its output";

const RUN_LONG_ABOUT: &str = "\
Run PROGRAM with ARGS, as a shell runs a foreground job.

By default the program gets netrunner's own stdin, stdout and stderr: it
sees the terminal (colours, prompts), its output is not copied, and the
order of its stdout and stderr lines is kept. When netrunner's stdin is a
terminal and netrunner is in the foreground, the program's process group
becomes the terminal's foreground group: Ctrl-C and Ctrl-\\ reach it
directly, Ctrl-Z stops it and then netrunner (the shell shows the job
stopped), fg and bg continue both. netrunner takes the terminal back when
the program exits. In a pipeline (netrunner's stdout a pipe) the terminal
stays with the pipeline's other commands (`netrunner run -- make | less`)
unless --foreground asks for it. With --timeout the deadline keeps running while the
job is stopped (the shepherd sends SIGCONT with the stop signal).

--pipe, --max-output and --idle-timeout need to see the bytes: then the
output goes through pipes, with backpressure (a slow reader slows the
program down) and byte counts. Job control is the same there while the
program reads netrunner's stdin (not with --pipe, --input or --pty).

PROGRAM is looked up in the PATH of the program's environment (or the
default system PATH when it has none) unless it contains a '/'; a file
without '#!' runs under /bin/sh, as execvp(3) and timeout(1) do.
Everything after PROGRAM belongs to the program, even arguments that look
like netrunner options; put '--' before PROGRAM when it starts with '-'.

SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to netrunner are forwarded to the
program's whole process group. When the program dies of one of them (or
of Ctrl-C / Ctrl-\\ in the foreground), netrunner dies of the same signal,
so a calling script stops as it would without netrunner.";

const RUN_AFTER_HELP: &str = "\
Durations (D) are a number with an optional unit: ms, s, m, h or d (300ms,
2s, 1.5m, 1h, 1d), compounds (1m30s), exponents (1e3); a plain number is
seconds. Sizes: a number with k, M, G (1024-based; KiB, MiB, GiB too) or
kB, MB, GB (1000-based).

Stopping: on --timeout, --idle-timeout or --max-output, the program's
output stays open and keeps being copied while it shuts down (what it
prints in a SIGTERM handler is delivered, its handler can finish); the
stop sequence (--stop-sequence, default TERM, the kill timeout, KILL) is
run by the shepherd, so it completes even if netrunner dies meanwhile.

Exit status:
  N        the program exited with status N
  128+N    the program was killed by signal N (netrunner dies of SIGINT,
           SIGQUIT, SIGTERM, SIGHUP instead when it forwarded them)
  124      --timeout or --idle-timeout expired; the program was stopped
           by the first signal (137 if SIGKILL was needed; with
           --preserve-status, the program's own status)
  125      netrunner failed, or --max-output was exceeded
  126      the program is not executable
  127      the program (or its #! interpreter) was not found
  141      netrunner's stdout was closed by its reader (128 + SIGPIPE);
           the program was terminated
Failures print one line on stderr starting with 'netrunner:'.

Examples:
  netrunner run -- make -j4
  netrunner run --timeout 30s --kill-timeout 2s -- ./flaky-test
  netrunner run --timeout 1m --stop-sequence INT:2s,TERM:5s,KILL -- ./server
  netrunner run --idle-timeout 30s --signal INT -- ./download.sh
  netrunner run --input data.bin --max-output 1048576 -- ./filter > out.bin
  netrunner run --clear-env --env PATH=/usr/bin --cwd /tmp -- env
  netrunner run --stats-json stats.json -- sha256sum big.iso
  netrunner run --pty --input - -- bash       (interactive, like ssh -t)
  netrunner timeout -k 2s 30s ./flaky-test        (timeout(1)'s syntax)
  netrunner run --uid 65534 --gid 65534 --rlimit NOFILE=1024 --rlimit CORE=0 \\
      --umask 077 --no-new-privs --nice 10 -- ./untrusted";

/// The `netrunner` command line.
#[derive(Debug, Parser)]
#[command(
    name = "netrunner",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    propagate_version = true,
    subcommand_required = true
)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: CliCommand,
}

/// netrunner's subcommands.
// Parsed once per process: boxing `RunArgs` would save nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(crate) enum CliCommand {
    /// Run a program.
    #[command(
        about = RUN_ABOUT,
        long_about = RUN_LONG_ABOUT,
        override_usage = "netrunner run [OPTIONS] -- PROGRAM [ARGS...]",
        after_help = "Exit status: the program's, or 124 timeout, 125 failure or --max-output, \
                      126 not executable, 127 not found (more with '--help').",
        after_long_help = RUN_AFTER_HELP
    )]
    Run(RunArgs),
    /// Supervise a long-running program (restarts, readiness).
    #[command(
        about = crate::daemon::ABOUT,
        long_about = crate::daemon::LONG_ABOUT,
        override_usage = crate::daemon::USAGE,
        after_long_help = crate::daemon::AFTER_HELP
    )]
    Daemon(crate::daemon::DaemonArgs),
    /// timeout(1)'s command line: `netrunner timeout [-s SIG] [-k D]
    /// [--preserve-status] [--foreground] [-v] DURATION COMMAND [ARG]...`
    #[command(
        about = TIMEOUT_ABOUT,
        long_about = TIMEOUT_LONG_ABOUT,
        override_usage = "netrunner timeout [OPTIONS] DURATION COMMAND [ARG]...",
        after_help = "Exit status as timeout(1)'s: 124 if COMMAND timed out (137 if it needed \
                      SIGKILL), 125 netrunner failed, 126 not executable, 127 not found, \
                      else COMMAND's."
    )]
    Timeout(TimeoutArgs),
}

const TIMEOUT_ABOUT: &str = "Run COMMAND with a time limit, with timeout(1)'s syntax";

const TIMEOUT_LONG_ABOUT: &str = "\
Run COMMAND with a time limit, with timeout(1)'s syntax: `timeout 5s make`
becomes `netrunner timeout 5s make`. The same as
`netrunner run --timeout DURATION [OPTIONS] -- COMMAND [ARG]...`, with
netrunner's guarantees: the whole process tree is stopped, nothing
survives netrunner. Differences from timeout(1) are listed in the README.";

/// `netrunner timeout`: timeout(1)'s options and operands.
#[derive(Debug, Args)]
pub(crate) struct TimeoutArgs {
    /// Signal to send on timeout (default TERM)
    #[arg(short = 's', long, value_name = "SIG")]
    pub signal: Option<String>,
    /// Also send KILL if COMMAND still runs this long after the signal
    /// (netrunner default: 5s; timeout(1) never sends it without -k)
    #[arg(short = 'k', long, value_name = "D", allow_hyphen_values = true)]
    pub kill_after: Option<String>,
    /// Exit with COMMAND's status even when it timed out
    #[arg(long)]
    pub preserve_status: bool,
    /// Let COMMAND read the terminal even in a pipeline (netrunner's stdout
    /// a pipe); elsewhere it always can when netrunner runs in the
    /// terminal's foreground
    #[arg(long)]
    pub foreground: bool,
    /// Say on stderr when a signal is sent on timeout
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// DURATION, then COMMAND and its arguments
    #[arg(
        value_name = "DURATION COMMAND",
        required = true,
        num_args = 2..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub operands: Vec<OsString>,
}

impl TimeoutArgs {
    /// The same request as `netrunner run` arguments (parsed again, so that
    /// values get the same checks and messages).
    pub(crate) fn to_run_argv(&self) -> Vec<OsString> {
        let mut argv: Vec<OsString> = vec!["netrunner".into(), "run".into()];
        if let Some(sig) = &self.signal {
            argv.extend(["--signal".into(), sig.into()]);
        }
        if let Some(k) = &self.kill_after {
            argv.push(format!("--kill-timeout={k}").into());
        }
        if self.preserve_status {
            argv.push("--preserve-status".into());
        }
        if self.foreground {
            argv.push("--foreground".into());
        }
        if self.verbose {
            argv.push("--verbose".into());
        }
        let (duration, command) = self.operands.split_first().expect("clap requires two");
        let mut timeout = OsString::from("--timeout=");
        timeout.push(duration);
        argv.push(timeout);
        argv.push("--".into());
        argv.extend(command.iter().cloned());
        argv
    }
}

/// Where the program's stderr goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StderrMode {
    /// To netrunner's stderr, as it arrives.
    Consume,
    /// Into the program's stdout, like `2>&1`.
    Redirect,
    /// To /dev/null.
    Discard,
}

impl From<StderrMode> for net_runner::Stderr {
    fn from(mode: StderrMode) -> Self {
        match mode {
            StderrMode::Consume => net_runner::Stderr::Consume,
            StderrMode::Redirect => net_runner::Stderr::Redirect,
            StderrMode::Discard => net_runner::Stderr::Discard,
        }
    }
}

/// One `--env KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvVar {
    /// The variable's name: not empty, no `=`.
    pub key: OsString,
    /// Its value (may be empty).
    pub value: OsString,
}

/// Parses `KEY=VALUE`, splitting at the first `=`.
pub(crate) fn parse_env(text: OsString) -> Result<EnvVar, String> {
    let bytes = text.as_bytes();
    match bytes.iter().position(|&b| b == b'=') {
        Some(0) => Err(format!(
            "invalid variable {:?}: the name is empty",
            text.to_string_lossy()
        )),
        Some(i) => Ok(EnvVar {
            key: OsString::from_vec(bytes[..i].to_vec()),
            value: OsString::from_vec(bytes[i + 1..].to_vec()),
        }),
        None => Err(format!(
            "invalid variable {:?}: expected KEY=VALUE",
            text.to_string_lossy()
        )),
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::duration::parse(text)
}

fn parse_size(text: &str) -> Result<u64, String> {
    crate::size::parse(text)
}

/// One `--rlimit NAME=SOFT[:HARD]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RlimitArg {
    /// The resource.
    pub resource: net_runner::Resource,
    /// Soft limit ([`net_runner::RLIM_INFINITY`] for unlimited).
    pub soft: u64,
    /// Hard limit; the soft one when not given.
    pub hard: u64,
}

/// Parses `NAME=SOFT[:HARD]`: NAME as `ulimit`/`prlimit` name it (NOFILE,
/// AS, CPU, ... in any case), limits as numbers or `unlimited`.
pub(crate) fn parse_rlimit(text: &str) -> Result<RlimitArg, String> {
    let (name, limits) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=SOFT[:HARD], got {text:?}"))?;
    let resource: net_runner::Resource = name.parse().map_err(|e| format!("{e}"))?;
    let limit = |v: &str| match v {
        "unlimited" | "infinity" => Ok(net_runner::RLIM_INFINITY),
        _ => v
            .parse::<u64>()
            .map_err(|_| format!("{resource} limit {v:?} is not a number or 'unlimited'")),
    };
    let (soft, hard) = match limits.split_once(':') {
        Some((soft, hard)) => (limit(soft)?, limit(hard)?),
        None => {
            let both = limit(limits)?;
            (both, both)
        }
    };
    if soft > hard {
        return Err(format!(
            "{resource}: the soft limit {soft} is above the hard limit {hard}"
        ));
    }
    Ok(RlimitArg {
        resource,
        soft,
        hard,
    })
}

/// Parses an octal umask: `022`, `0o027`, `0077`.
pub(crate) fn parse_umask(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(mask) if mask <= 0o777 && !digits.is_empty() => Ok(mask),
        _ => Err(format!(
            "{text:?} is not an octal mode from 000 to 777 (e.g. 022)"
        )),
    }
}

/// The group ids of one `--groups`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupList(pub Vec<u32>);

/// Parses a comma-separated list of group ids; empty for none.
pub(crate) fn parse_groups(text: &str) -> Result<GroupList, String> {
    if text.is_empty() {
        return Ok(GroupList(Vec::new()));
    }
    text.split(',')
        .map(|g| {
            g.trim()
                .parse::<u32>()
                .map_err(|_| format!("{g:?} is not a numeric group id"))
        })
        .collect::<Result<_, _>>()
        .map(GroupList)
}

/// One `--cgroup-cpu-max QUOTA[/PERIOD]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CpuMax {
    /// CPU time allowed per period.
    pub quota: Duration,
    /// The period (default 100ms).
    pub period: Duration,
}

/// Parses `QUOTA[/PERIOD]`: each a plain number of microseconds, as in
/// cgroup's `cpu.max` (`50000/100000`), or a duration with a unit (`us`,
/// `ms`, `s`: `50ms/100ms`). The period defaults to 100ms.
pub(crate) fn parse_cpu_max(text: &str) -> Result<CpuMax, String> {
    let one = |part: &str| -> Result<Duration, String> {
        if let Ok(us) = part.parse::<u64>() {
            return Ok(Duration::from_micros(us));
        }
        if let Some(us) = part.strip_suffix("us") {
            if let Ok(us) = us.parse::<u64>() {
                return Ok(Duration::from_micros(us));
            }
        }
        crate::duration::parse(part).map_err(|_| {
            format!("{part:?} in {text:?} is not microseconds or a duration (e.g. 50000/100000, 50ms/100ms)")
        })
    };
    let (quota, period) = match text.split_once('/') {
        Some((q, p)) => (one(q)?, one(p)?),
        None => (one(text)?, Duration::from_millis(100)),
    };
    if !(Duration::from_millis(1)..=Duration::from_secs(1)).contains(&period) {
        return Err(format!("{text:?}: the period must be 1ms to 1s"));
    }
    if quota < Duration::from_millis(1) {
        return Err(format!("{text:?}: the quota must be at least 1ms"));
    }
    Ok(CpuMax { quota, period })
}

/// Where the program's stdin comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InputSource {
    /// netrunner's own stdin (`--input -`).
    Stdin,
    /// A file.
    File(PathBuf),
}

/// Options of `netrunner run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Time limit (e.g. 300ms, 2s, 1m): then terminate the program, exit 124
    ///
    /// On expiry the program's process group gets SIGTERM, then SIGKILL after
    /// the kill timeout, and netrunner exits with 124. 0 means no limit.
    #[arg(long, value_name = "D", value_parser = parse_duration, allow_hyphen_values = true)]
    pub timeout: Option<Duration>,

    /// Grace period between SIGTERM and SIGKILL
    ///
    /// Used whenever netrunner terminates the program: on --timeout, on
    /// --max-output, when its stdout is closed, and by the shepherd when
    /// netrunner itself dies. -k and --kill-after as in timeout(1).
    #[arg(
        short = 'k',
        long,
        visible_alias = "kill-after",
        value_name = "D",
        value_parser = parse_duration,
        default_value = "5s",
        allow_hyphen_values = true
    )]
    pub kill_timeout: Duration,

    /// Limit on the program's stdout (and on its stderr), in bytes
    ///
    /// When the program writes more, exactly the first BYTES bytes are
    /// passed on, the program is terminated and netrunner exits with 125.
    /// BYTES may have a unit: k, M, G (powers of 1024, also KiB, MiB,
    /// GiB) or kB, MB, GB (powers of 1000). Implies --pipe for stdout and
    /// stderr.
    #[arg(long, value_name = "BYTES", value_parser = parse_size, allow_hyphen_values = true)]
    pub max_output: Option<u64>,

    /// Feed FILE to the program's stdin ('-': netrunner's own stdin)
    ///
    /// The program reads FILE itself (it is opened by netrunner and handed
    /// over); with --pipe it is copied through a pipe. Without --input the
    /// program reads netrunner's stdin (with --pipe: an empty one). Use
    /// './-' for a file named '-'.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,

    /// Where the program's stderr goes
    #[arg(long, value_name = "MODE", value_enum, default_value_t = StderrMode::Consume)]
    pub stderr: StderrMode,

    /// Set an environment variable for the program (repeatable)
    ///
    /// Split at the first '=': '--env A==b' sets A to '=b'.
    #[arg(
        long = "env",
        value_name = "K=V",
        value_parser = OsStringValueParser::new().try_map(parse_env)
    )]
    pub env: Vec<EnvVar>,

    /// Start the program with an empty environment (plus the --env variables)
    #[arg(long)]
    pub clear_env: bool,

    /// Run the program in DIR
    ///
    /// A relative PROGRAM path ('./tool') is relative to DIR.
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,

    /// Stop the program when it writes no output for D; exit 124
    ///
    /// Measured between chunks netrunner reads: the timer restarts with
    /// every chunk of stdout or stderr. The program is stopped with the
    /// stop sequence as on --timeout.
    #[arg(long, value_name = "D", value_parser = parse_duration, allow_hyphen_values = true)]
    pub idle_timeout: Option<Duration>,

    /// First signal of the stop sequence (like `timeout -s`): SIG, then the
    /// kill timeout, then SIGKILL
    ///
    /// A name (TERM, SIGTERM, INT) or a number. Ignored with --stop-sequence.
    #[arg(short = 's', long, value_name = "SIG", value_parser = crate::stop::parse_signal)]
    pub signal: Option<net_runner::Signal>,

    /// How to stop the program: steps ACTION[:WAIT], comma-separated
    ///
    /// Used on --timeout, --idle-timeout, --max-output, and when netrunner
    /// itself goes away. ACTION is a signal (TERM, SIGINT, 2) or
    /// close-stdin; WAIT is how long to wait before the next step (default:
    /// the kill timeout; 0 for close-stdin). After the last step SIGKILL
    /// ends whatever is left (a final KILL may be written). Example:
    /// close-stdin:1s,INT:2s,TERM:5s,KILL. Default: TERM:<kill timeout>,KILL.
    #[arg(long, value_name = "SPEC", value_parser = crate::stop::parse_spec)]
    pub stop_sequence: Option<crate::stop::StopSpec>,

    /// Run the program as this user id (needs privilege)
    ///
    /// Numeric. Without --groups, the supplementary groups are dropped
    /// when permitted. Without the privilege netrunner fails (exit 125)
    /// before the program starts, never runs it as the invoking user.
    #[arg(long, value_name = "UID")]
    pub uid: Option<u32>,

    /// Run the program with this group id (needs privilege)
    #[arg(long, value_name = "GID")]
    pub gid: Option<u32>,

    /// Supplementary group ids, comma-separated ('' for none; needs privilege)
    #[arg(long, value_name = "GID,...", value_parser = parse_groups)]
    pub groups: Option<GroupList>,

    /// The name the program sees as its argument 0 (PROGRAM is still what runs)
    #[arg(long, value_name = "NAME")]
    pub arg0: Option<OsString>,

    /// The program's file mode creation mask, octal (e.g. 022)
    #[arg(long, value_name = "MODE", value_parser = parse_umask)]
    pub umask: Option<u32>,

    /// A resource limit, NAME=SOFT or NAME=SOFT:HARD (repeatable)
    ///
    /// NAME as ulimit and prlimit know it: CPU, FSIZE, DATA, STACK, CORE,
    /// RSS, NPROC, NOFILE, MEMLOCK, AS, LOCKS, SIGPENDING, MSGQUEUE, NICE,
    /// RTPRIO, RTTIME. Limits are numbers or 'unlimited'; without :HARD the
    /// hard limit is SOFT too. Raising a hard limit needs privilege.
    /// Example: --rlimit NOFILE=1024 --rlimit CORE=0 --rlimit AS=1000000000.
    #[arg(long = "rlimit", value_name = "NAME=SOFT[:HARD]", value_parser = parse_rlimit)]
    pub rlimits: Vec<RlimitArg>,

    /// Forbid the program and its descendants to gain privileges by exec
    /// (PR_SET_NO_NEW_PRIVS: setuid bits and file capabilities are ignored)
    #[arg(long)]
    pub no_new_privs: bool,

    /// The program's nice value, -20 to 19 (absolute; below netrunner's own
    /// needs privilege)
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        value_parser = clap::value_parser!(i32).range(-20..=19)
    )]
    pub nice: Option<i32>,

    // --- cgroups and escaped descendants (issue 13) ----------------------
    /// Run the program in its own cgroup PATH, relative to the base
    ///
    /// The base is netrunner's own cgroup, or NETRUNNER_CGROUP_BASE /
    /// --cgroup-base. PATH is created in the cgroup2 hierarchy and, for each
    /// --cgroup-*-max limit whose controller is a cgroup v1 one (hybrid
    /// hosts), in that hierarchy too. The program is in it before it starts;
    /// everything it starts stays in it and is killed when it ends (also
    /// when netrunner is killed), then the directories are removed. PATH
    /// must be relative, without '.', '..' or empty components (else exit
    /// 125). Needs write access to the hierarchy (root, or a delegated
    /// subtree as base).
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<PathBuf>,

    /// The cgroup under which --cgroup PATH is created, as in
    /// /proc/self/cgroup (e.g. /netrunner); overrides NETRUNNER_CGROUP_BASE
    #[arg(long, value_name = "BASE")]
    pub cgroup_base: Option<PathBuf>,

    /// Memory limit of the program's cgroup (50M, 2G, bytes): past it the
    /// kernel OOM-kills it (stats end: oom_killed)
    ///
    /// Swap is included where it is accounted. Without --cgroup, a cgroup
    /// named netrunner-PID-N is made for the run.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub cgroup_memory_max: Option<u64>,

    /// Most processes and threads in the program's cgroup: fork fails
    /// with EAGAIN past it
    #[arg(long, value_name = "N")]
    pub cgroup_pids_max: Option<u64>,

    /// CPU limit of the program's cgroup: QUOTA per PERIOD (default 100ms),
    /// microseconds or durations: 50000/100000, 50ms, 2s/1s (two CPUs)
    #[arg(long, value_name = "QUOTA[/PERIOD]", value_parser = parse_cpu_max)]
    pub cgroup_cpu_max: Option<CpuMax>,

    /// Let processes the program leaves behind live on after it exits
    ///
    /// By default they are terminated (TERM, the kill timeout, KILL) once
    /// the program exits. With this flag they keep running, re-parented to
    /// init, outside netrunner's control: nothing stops them later, and if
    /// they hold the program's output open, netrunner stops reading after
    /// 2s and fails (exit 125, naming them). They are still terminated
    /// when netrunner itself is killed before the program exits. Cannot be
    /// combined with --cgroup or a --cgroup-*-max limit.
    #[arg(long)]
    pub keep_descendants: bool,

    /// Write statistics as one JSON object when netrunner exits ('-': to
    /// stderr)
    ///
    /// Fields (see the README for an example): mode (inherit or pipe), end
    /// (exited, signalled, timeout, idle_timeout, max_output, killed,
    /// owner_gone, oom_killed), timed_out, exit_code, signal, wall_time_ms,
    /// user_time_ms, system_time_ms, max_rss_bytes; with --pipe the byte
    /// counts bytes_in, bytes_out, bytes_err, read_count, write_count (null
    /// when the program's stdio was inherited: nothing passed through
    /// netrunner); with a cgroup memory_peak_bytes, oom_kills,
    /// cgroup_cpu_time_ms, cpu_throttled_periods, pids_peak (null without
    /// one or where the host lacks the figure). The file is created before
    /// the program starts.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,

    /// Run the program on a pseudo-terminal (its stdin, stdout and stderr
    /// are a terminal; its output comes back as the terminal shows it, with
    /// "\r\n" line ends and input echoed). End of --input is delivered as
    /// end of file through the terminal (^D). With --input - and a terminal
    /// on netrunner's stdin, the run is interactive, like 'ssh -t': the
    /// terminal goes into raw mode (restored at exit), keys such as Ctrl-C
    /// reach the program as characters, and the program's terminal follows
    /// netrunner's size.
    #[arg(long)]
    pub pty: bool,

    /// The program's terminal size with --pty (default: netrunner's
    /// terminal's size, or 24x80). Interactive runs keep this size instead
    /// of following netrunner's terminal.
    #[arg(long, value_name = "ROWSxCOLS", requires = "pty", value_parser = crate::pty_mode::parse_size)]
    pub pty_size: Option<(u16, u16)>,

    // --- Issue 11: transparency and timeout(1) compatibility. ---
    /// Pipe the program's stdout and stderr through netrunner (with
    /// backpressure and byte counts) instead of handing it netrunner's own
    ///
    /// Implied by --max-output and --idle-timeout, which need to see the
    /// bytes; those alone still give the program netrunner's stdin and, at
    /// a terminal, the terminal's foreground, as without pipes. With
    /// --pipe the program's stdin is empty unless --input is given, and it
    /// runs in a background process group (it cannot read the terminal;
    /// netrunner forwards Ctrl-C and Ctrl-Z to it).
    #[arg(long)]
    pub pipe: bool,

    /// At a terminal, give the program the terminal's foreground even when
    /// netrunner's stdout is a pipe. By default a pipeline's other commands
    /// keep it (`netrunner run -- make | less`: the pager needs it); the
    /// program then cannot read the terminal (timeout(1)'s --foreground)
    #[arg(long)]
    pub foreground: bool,

    /// On --timeout, exit with the program's status instead of 124
    /// (timeout(1)'s --preserve-status)
    #[arg(long)]
    pub preserve_status: bool,

    /// Say on stderr when the timeout sends a signal (timeout(1)'s -v)
    #[arg(short = 'v', long)]
    pub verbose: bool,

    /// The program to run and its arguments
    #[arg(
        value_name = "PROGRAM",
        required = true,
        num_args = 1..,
        trailing_var_arg = true
    )]
    pub command: Vec<OsString>,
}

impl RunArgs {
    /// The program's stdin, when `--input` was given.
    pub(crate) fn input_source(&self) -> Option<InputSource> {
        self.input.as_ref().map(|p| {
            if p.as_os_str() == "-" {
                InputSource::Stdin
            } else {
                InputSource::File(p.clone())
            }
        })
    }

    /// How long the stop sequence can take at most (its waits, or the kill
    /// timeout for the default one), plus a second for the final SIGKILL.
    pub(crate) fn stop_duration(&self) -> Duration {
        let steps = match &self.stop_sequence {
            Some(spec) => spec
                .0
                .iter()
                .map(|step| match *step {
                    crate::stop::StopStep::Signal(_, wait) => wait.unwrap_or(self.kill_timeout),
                    crate::stop::StopStep::CloseStdin(wait) => wait.unwrap_or_default(),
                })
                .fold(Duration::ZERO, Duration::saturating_add),
            None => self.kill_timeout,
        };
        steps.saturating_add(Duration::from_secs(1))
    }

    /// Whether the program's output goes through netrunner (pipes, or the
    /// master of `--pty`), rather than straight to netrunner's stdout and
    /// stderr.
    pub(crate) fn piped(&self) -> bool {
        self.pipe
            || self.pty
            || self.max_output.is_some()
            || self.idle_timeout.is_some_and(|d| !d.is_zero())
    }

    /// The library command for these options, without its input (which
    /// needs opening, see [`input_source`](Self::input_source)).
    pub(crate) fn to_command(&self) -> net_runner::Command {
        let (program, args) = self.command.split_first().expect("clap requires PROGRAM");
        let mut cmd = net_runner::Command::new(program);
        cmd.args(args)
            .kill_timeout(self.kill_timeout)
            .stderr(self.stderr.into());
        if let Some(t) = self.timeout.filter(|t| !t.is_zero()) {
            cmd.timeout(t);
        }
        if let Some(max) = self.max_output {
            cmd.max_output(max);
        }
        if self.clear_env {
            cmd.env_clear();
        }
        for var in &self.env {
            cmd.env(&var.key, &var.value);
        }
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        if let Some(uid) = self.uid {
            cmd.uid(uid);
        }
        if let Some(gid) = self.gid {
            cmd.gid(gid);
        }
        if let Some(groups) = &self.groups {
            cmd.groups(groups.0.iter().copied());
        }
        if let Some(arg0) = &self.arg0 {
            cmd.arg0(arg0);
        }
        if let Some(mask) = self.umask {
            cmd.umask(mask);
        }
        for limit in &self.rlimits {
            cmd.rlimit(limit.resource, limit.soft, limit.hard);
        }
        if self.no_new_privs {
            cmd.no_new_privs(true);
        }
        if let Some(nice) = self.nice {
            cmd.nice(nice);
        }
        if let Some(d) = self.idle_timeout.filter(|d| !d.is_zero()) {
            cmd.idle_timeout(d);
        }
        if let Some(spec) = &self.stop_sequence {
            cmd.stop_sequence(spec.to_sequence());
        } else if let Some(sig) = self.signal {
            cmd.stop_sequence(net_runner::StopSequence::new().signal_then_kill_timeout(sig));
        }
        self.apply_cgroup(&mut cmd);
        if self.pty {
            let (rows, cols) = crate::pty_mode::initial_size(self);
            cmd.pty(rows, cols);
        }
        cmd
    }

    /// The cgroup flags and --keep-descendants.
    fn apply_cgroup(&self, cmd: &mut net_runner::Command) {
        if let Some(path) = &self.cgroup {
            cmd.cgroup(path);
        }
        if let Some(base) = &self.cgroup_base {
            cmd.cgroup_base(base);
        }
        if let Some(max) = self.cgroup_memory_max {
            cmd.memory_max(max);
        }
        if let Some(max) = self.cgroup_pids_max {
            cmd.pids_max(max);
        }
        if let Some(cpu) = self.cgroup_cpu_max {
            cmd.cpu_max(cpu.quota, cpu.period);
        }
        if self.keep_descendants {
            cmd.kill_leftovers(false);
        }
    }
}

/// Whether `argv` asks to run a program, judged before parsing it (to
/// start the shepherd meanwhile): `run` or `timeout`, with no request for
/// help or the version among netrunner's own arguments. A wrong guess
/// costs time, never behaviour: a shepherd nobody asks for exits with us.
pub(crate) fn will_run(argv: &[OsString]) -> bool {
    let Some(sub) = argv.get(1) else {
        return false;
    };
    (sub == "run" || sub == "timeout")
        && !argv[2..]
            .iter()
            .take_while(|a| *a != "--")
            .any(|a| ["-h", "--help", "-V", "--version"].iter().any(|h| a == h))
}

/// Parses the command line. `Err` carries how to exit right away: after
/// `--help` or `--version` (already printed) with 0, on a usage error with
/// 125 and a one-line message.
pub(crate) fn parse<I, T>(argv: I) -> Result<Cli, Exit>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let sub = argv
        .get(1)
        .and_then(|a| a.to_str())
        .unwrap_or_default()
        .to_owned();
    let cli = Cli::try_parse_from(&argv).map_err(|e| clap_exit(&e, &sub))?;
    match cli.command {
        CliCommand::Timeout(t) => {
            Cli::try_parse_from(t.to_run_argv()).map_err(|e| clap_exit(&e, "timeout"))
        }
        CliCommand::Run(_) | CliCommand::Daemon(_) => Ok(cli),
    }
}

fn clap_exit(e: &clap::Error, sub: &str) -> Exit {
    match e.kind() {
        clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
            let _ = e.print();
            Exit::code(0)
        }
        _ => usage_error(e, sub),
    }
}

/// A clap error as netrunner's one-line failure; `sub` is the subcommand
/// the command line named, whose `--help` it points to.
pub(crate) fn usage_error(e: &clap::Error, sub: &str) -> Exit {
    let text = e.to_string();
    let in_run = text.contains("Usage: netrunner run") || sub == "run";
    let summary = if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        "missing command; usage: netrunner run [OPTIONS] -- PROGRAM [ARGS...]".to_owned()
    } else {
        // The first paragraph of clap's message, on one line.
        text.lines()
            .map(str::trim)
            .skip_while(|l| l.is_empty())
            .take_while(|l| !l.is_empty() && !l.starts_with("Usage:"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let summary = summary.strip_prefix("error: ").unwrap_or(&summary);
    let help = if sub == "timeout" {
        "netrunner timeout --help"
    } else if in_run {
        "netrunner run --help"
    } else {
        "netrunner --help"
    };
    Exit::failure(exit::FAILURE, format!("{summary} (see '{help}')"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn will_run_only_for_a_run_without_help() {
        let os = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        for yes in [
            &["netrunner", "run", "--", "true"][..],
            &["netrunner", "run", "--timeout", "5s", "--", "ls", "--help"],
            &["netrunner", "timeout", "5", "true"],
        ] {
            assert!(will_run(&os(yes)), "{yes:?}");
        }
        for no in [
            &["netrunner"][..],
            &["netrunner", "--help"],
            &["netrunner", "help", "run"],
            &["netrunner", "daemon", "--", "server"],
            &["netrunner", "run", "--help"],
            &["netrunner", "run", "-V", "--", "true"],
            &["netrunner", "timeout", "-h"],
        ] {
            assert!(!will_run(&os(no)), "{no:?}");
        }
    }

    fn run_args(argv: &[&str]) -> Result<RunArgs, Exit> {
        let full = ["netrunner", "run"].iter().chain(argv).copied();
        parse(full).map(|cli| match cli.command {
            CliCommand::Run(r) => r,
            CliCommand::Timeout(_) => unreachable!("parse turns it into run"),
            other => panic!("{other:?}"),
        })
    }

    fn ok(argv: &[&str]) -> RunArgs {
        run_args(argv).unwrap_or_else(|e| panic!("{argv:?}: {e:?}"))
    }

    fn err(argv: &[&str]) -> String {
        let e = run_args(argv).expect_err("should fail");
        assert_eq!(e.code, 125, "{e:?}");
        e.message.unwrap()
    }

    #[test]
    fn defaults() {
        let a = ok(&["--", "echo", "hi"]);
        assert_eq!(a.command, ["echo", "hi"]);
        assert_eq!(a.timeout, None);
        assert_eq!(a.kill_timeout, Duration::from_secs(5));
        assert_eq!(a.max_output, None);
        assert_eq!(a.input_source(), None);
        assert_eq!(a.stderr, StderrMode::Consume);
        assert!(a.env.is_empty() && !a.clear_env);
        assert_eq!(a.cwd, None);
        assert_eq!(a.stats_json, None);
    }

    #[test]
    fn every_option() {
        let a = ok(&[
            "--timeout",
            "300ms",
            "--kill-timeout",
            "1",
            "--max-output",
            "42",
            "--input",
            "in.txt",
            "--stderr",
            "redirect",
            "--env",
            "A=1",
            "--env=B==2",
            "--env",
            "C=",
            "--clear-env",
            "--cwd",
            "/tmp",
            "--stats-json",
            "s.json",
            "--",
            "prog",
        ]);
        assert_eq!(a.timeout, Some(Duration::from_millis(300)));
        assert_eq!(a.kill_timeout, Duration::from_secs(1));
        assert_eq!(a.max_output, Some(42));
        assert_eq!(a.input_source(), Some(InputSource::File("in.txt".into())));
        assert_eq!(a.stderr, StderrMode::Redirect);
        let env: Vec<(&str, &str)> = a
            .env
            .iter()
            .map(|v| (v.key.to_str().unwrap(), v.value.to_str().unwrap()))
            .collect();
        assert_eq!(env, [("A", "1"), ("B", "=2"), ("C", "")]);
        assert!(a.clear_env);
        assert_eq!(a.cwd, Some("/tmp".into()));
        assert_eq!(a.stats_json, Some("s.json".into()));
        assert_eq!(a.command, ["prog"]);
    }

    #[test]
    fn identity_and_hardening_options() {
        use net_runner::{Resource, RLIM_INFINITY};
        let a = ok(&[
            "--uid",
            "1000",
            "--gid",
            "100",
            "--groups",
            "100,27",
            "--arg0",
            "zero",
            "--umask",
            "027",
            "--rlimit",
            "NOFILE=1024",
            "--rlimit",
            "as=100:unlimited",
            "--rlimit=RLIMIT_CORE=0:0",
            "--no-new-privs",
            "--nice",
            "-5",
            "--",
            "prog",
        ]);
        assert_eq!((a.uid, a.gid), (Some(1000), Some(100)));
        assert_eq!(a.groups, Some(GroupList(vec![100, 27])));
        assert_eq!(a.arg0.as_deref(), Some(std::ffi::OsStr::new("zero")));
        assert_eq!(a.umask, Some(0o027));
        let limits: Vec<_> = a
            .rlimits
            .iter()
            .map(|l| (l.resource, l.soft, l.hard))
            .collect();
        assert_eq!(
            limits,
            [
                (Resource::Nofile, 1024, 1024),
                (Resource::As, 100, RLIM_INFINITY),
                (Resource::Core, 0, 0)
            ]
        );
        assert!(a.no_new_privs);
        assert_eq!(a.nice, Some(-5));
        assert_eq!(
            ok(&["--groups", "", "--", "x"]).groups,
            Some(GroupList(vec![]))
        );
        let d = ok(&["--", "x"]);
        assert!(d.uid.is_none() && d.rlimits.is_empty() && !d.no_new_privs && d.nice.is_none());
    }

    #[test]
    fn hardening_parse_errors_name_the_option() {
        for (argv, option, detail) in [
            (&["--uid", "root"][..], "--uid", "root"),
            (&["--gid=-1"], "--gid", "-1"),
            (&["--groups", "1,x"], "--groups", "group id"),
            (&["--umask", "999"], "--umask", "octal"),
            (&["--rlimit", "FILES=1"], "--rlimit", "unknown resource"),
            (&["--rlimit", "NOFILE"], "--rlimit", "NAME=SOFT[:HARD]"),
            (&["--rlimit", "NOFILE=lots"], "--rlimit", "not a number"),
            (
                &["--rlimit", "NOFILE=10:5"],
                "--rlimit",
                "above the hard limit",
            ),
            (&["--nice", "20"], "--nice", "20"),
        ] {
            let argv: Vec<&str> = argv.iter().copied().chain(["--", "true"]).collect();
            let msg = err(&argv);
            assert!(
                msg.contains(option) && msg.contains(detail),
                "{argv:?}: {msg}"
            );
            assert!(!msg.contains('\n'), "{argv:?}: {msg}");
        }
    }

    #[test]
    fn dash_input_is_stdin() {
        assert_eq!(
            ok(&["--input", "-", "--", "cat"]).input_source(),
            Some(InputSource::Stdin)
        );
        assert_eq!(
            ok(&["--input", "./-", "--", "cat"]).input_source(),
            Some(InputSource::File("./-".into()))
        );
    }

    #[test]
    fn stderr_modes() {
        for (name, mode) in [
            ("consume", StderrMode::Consume),
            ("redirect", StderrMode::Redirect),
            ("discard", StderrMode::Discard),
        ] {
            assert_eq!(ok(&["--stderr", name, "--", "x"]).stderr, mode);
        }
        assert!(err(&["--stderr", "inherit", "--", "x"]).contains("inherit"));
    }

    #[test]
    fn program_arguments_are_not_netrunner_options() {
        let a = ok(&["--", "ls", "--timeout", "-l", "--", "x"]);
        assert_eq!(a.command, ["ls", "--timeout", "-l", "--", "x"]);
        assert_eq!(a.timeout, None);
        // Without `--`, everything after PROGRAM is still the program's.
        let a = ok(&["--timeout", "1s", "ls", "-l", "--timeout", "2s"]);
        assert_eq!(a.command, ["ls", "-l", "--timeout", "2s"]);
        assert_eq!(a.timeout, Some(Duration::from_secs(1)));
        // A program starting with '-' after `--`.
        assert_eq!(ok(&["--", "-weird"]).command, ["-weird"]);
    }

    #[test]
    fn usage_errors_are_one_line_125() {
        for argv in [
            &["--timeout", "3x", "--", "true"][..],
            &["--timeout", "-1", "--", "true"],
            &["--kill-timeout", "", "--", "true"],
            &["--max-output", "lots", "--", "true"],
            &["--max-output", "-5", "--", "true"],
            &["--env", "NOEQUALS", "--", "true"],
            &["--env", "=v", "--", "true"],
            &["--bogus", "--", "true"],
            &["--"],
            &[],
        ] {
            let msg = err(argv);
            assert!(!msg.contains('\n'), "{argv:?}: {msg}");
            assert!(!msg.starts_with("error"), "{argv:?}: {msg}");
        }
        assert!(err(&["--timeout", "3x", "--", "true"]).contains("3x"));
        assert!(err(&["--env", "NOEQUALS", "--", "true"]).contains("KEY=VALUE"));
    }

    #[test]
    fn missing_subcommand_is_a_usage_error() {
        let e = parse(["netrunner"]).unwrap_err();
        assert_eq!(e.code, 125);
        let e = parse(["netrunner", "walk"]).unwrap_err();
        assert_eq!(e.code, 125);
    }

    #[test]
    fn zero_timeout_means_none() {
        let a = ok(&["--timeout", "0", "--", "true"]);
        assert_eq!(a.timeout, Some(Duration::ZERO));
        // The library command gets no timeout: checked through a real run.
        let out = a.to_command().run_blocking().unwrap();
        assert!(out.status.success());
    }

    #[test]
    fn to_command_applies_env_cwd_and_stderr() {
        let a = ok(&[
            "--clear-env",
            "--env",
            "X=1",
            "--env",
            "Y=two words",
            "--cwd",
            "/",
            "--stderr",
            "redirect",
            "--",
            "/bin/sh",
            "-c",
            "echo \"$X|$Y|$HOME|$(pwd)\" >&2",
        ]);
        let out = a.to_command().run_blocking().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "1|two words||/\n");
        assert!(out.stderr.is_empty());
    }

    #[test]
    fn timeout_compatible_options() {
        let a = ok(&[
            "-k",
            "2s",
            "-s",
            "INT",
            "--preserve-status",
            "-v",
            "--",
            "x",
        ]);
        assert_eq!(a.kill_timeout, Duration::from_secs(2));
        assert_eq!(a.signal, Some(net_runner::Signal::Int));
        assert!(a.preserve_status && a.verbose);
        assert_eq!(
            ok(&["--kill-after=1m30s", "--", "x"]).kill_timeout,
            Duration::from_secs(90)
        );
        assert_eq!(
            ok(&["--max-output", "1k", "--", "x"]).max_output,
            Some(1024)
        );
        assert_eq!(
            ok(&["--max-output", "2MiB", "--", "x"]).max_output,
            Some(2 << 20)
        );
        assert_eq!(
            ok(&["--timeout", "1d", "--", "x"]).timeout,
            Some(Duration::from_secs(86400))
        );
        assert_eq!(
            ok(&["--timeout", "1e3", "--", "x"]).timeout,
            Some(Duration::from_secs(1000))
        );
    }

    /// `netrunner timeout ARGS` is `netrunner run` with the same meaning.
    #[test]
    fn timeout_form_translates_one_to_one() {
        let t = |argv: &[&str]| -> RunArgs {
            let full = ["netrunner", "timeout"].iter().chain(argv).copied();
            match parse(full)
                .unwrap_or_else(|e| panic!("{argv:?}: {e:?}"))
                .command
            {
                CliCommand::Run(r) => r,
                other => panic!("{other:?}"),
            }
        };
        let a = t(&[
            "-s",
            "KILL",
            "-k",
            "1",
            "--preserve-status",
            "-v",
            "1.5",
            "sleep",
            "-x",
            "--",
            "y",
        ]);
        assert_eq!(a.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(a.signal, Some(net_runner::Signal::Kill));
        assert_eq!(a.kill_timeout, Duration::from_secs(1));
        assert!(a.preserve_status && a.verbose);
        assert_eq!(a.command, ["sleep", "-x", "--", "y"]);
        let a = t(&["--foreground", "5m", "make"]);
        assert_eq!(a.timeout, Some(Duration::from_secs(300)));
        assert_eq!(a.command, ["make"]);
        assert!(a.foreground && !t(&["5m", "make"]).foreground);
        let e = parse(["netrunner", "timeout", "5x", "true"]).unwrap_err();
        let msg = e.message.unwrap();
        assert!(
            msg.contains("5x") && msg.contains("netrunner timeout --help"),
            "{msg}"
        );
        assert_eq!(parse(["netrunner", "timeout", "5"]).unwrap_err().code, 125);
    }

    #[test]
    fn negative_values_name_the_option() {
        for (argv, option) in [
            (&["--timeout", "-1"][..], "--timeout"),
            (&["--kill-timeout", "-2s"], "--kill-timeout"),
            (&["-k", "-2s"], "--kill-timeout"),
            (&["--idle-timeout", "-1ms"], "--idle-timeout"),
            (&["--max-output", "-5"], "--max-output"),
        ] {
            let argv: Vec<&str> = argv.iter().copied().chain(["--", "true"]).collect();
            let msg = err(&argv);
            assert!(
                msg.contains(option) && msg.contains("negative"),
                "{argv:?}: {msg}"
            );
            assert!(msg.contains("'netrunner run --help'"), "{argv:?}: {msg}");
        }
    }

    #[test]
    fn help_subcommand() {
        for argv in [
            &["netrunner", "help"][..],
            &["netrunner", "help", "run"],
            &["netrunner", "help", "timeout"],
        ] {
            assert_eq!(
                parse(argv.iter().copied()).unwrap_err(),
                Exit::code(0),
                "{argv:?}"
            );
        }
    }

    #[test]
    fn pipes_only_when_an_option_needs_the_bytes() {
        assert!(!ok(&["--", "x"]).piped());
        assert!(!ok(&["--stderr", "redirect", "--input", "f", "--", "x"]).piped());
        assert!(ok(&["--pipe", "--", "x"]).piped());
        assert!(ok(&["--max-output", "1", "--", "x"]).piped());
        assert!(ok(&["--idle-timeout", "1s", "--", "x"]).piped());
        assert!(!ok(&["--idle-timeout", "0", "--", "x"]).piped());
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
