//! `netrunner daemon`: supervises a program with the library's `Daemon`.
//!
//! The program's stdout and stderr pass through unchanged (a channel that
//! blocks the program when our stdout is slow); restarts and readiness are
//! announced as `netrunner:` lines on stderr; SIGTERM and SIGINT mean a
//! graceful stop, SIGHUP is forwarded to the program's group.

use std::io::Write as _;
use std::time::Duration;

use clap::Args;
use net_runner::daemon::{
    Daemon, DaemonError, DaemonEvent, Framing, OutputSink, Overflow, Readiness, Restart,
};
use net_runner::{Chunk, Signal};
use tokio::io::AsyncWriteExt;
use tokio::signal::unix::{signal, SignalKind};

use crate::args::RunArgs;
use crate::exit::{self, Exit};

pub(crate) const ABOUT: &str = "Supervise PROGRAM: restart it by a policy, wait for it to be ready";

pub(crate) const LONG_ABOUT: &str = "\
Supervise PROGRAM: keep it running by a restart policy, with exponential
backoff and a restart limit, and wait for it to be ready.

The program's stdout and stderr pass through to netrunner's unchanged; its
stdin is empty. Restarts and readiness are announced on stderr as lines
starting with 'netrunner:' (--quiet silences them). SIGTERM and SIGINT stop
it gracefully (the stop sequence: by default SIGTERM, the kill timeout,
SIGKILL); SIGHUP is forwarded to its process group.";

pub(crate) const USAGE: &str = "netrunner daemon [OPTIONS] -- PROGRAM [ARGS...]";

pub(crate) const AFTER_HELP: &str = "\
Restart policies: never, on-failure (non-zero exit, death by a signal, the
idle timeout, --timeout, not ready in time after a restart), always. The
backoff doubles from --backoff up to --backoff-max (plus up to 25 % jitter)
and starts again from --backoff after a run that stayed up 30 s. More than
--max-restarts restarts within --within: netrunner gives up.

Readiness (one of): --ready-pattern REGEX on a line of stdout or stderr;
--ready-notify, the systemd protocol (the program gets NOTIFY_SOCKET, a
socket in a private 0700 directory, and sends READY=1; only its own process
tree counts); --ready-tcp HOST:PORT, a connect probe. Checked at every
start; --ready-timeout applies to each.

Exit status:
  0        stopped by SIGTERM or SIGINT (or the program ended with 0 and
           the policy did not restart it)
  N        with --restart never (or on-failure after an exit 0): the
           program's status; 128+N if it was killed by signal N
  125      the restart limit was reached, readiness timed out, or
           netrunner failed; one 'netrunner:' line says which
  126, 127 the program is not executable / not found
  141      netrunner's stdout was closed by its reader

Examples:
  netrunner daemon --ready-tcp 127.0.0.1:8080 -- ./server --port 8080
  netrunner daemon --restart always --max-restarts 10 --within 1m -- ./worker
  netrunner daemon --ready-pattern 'listening on' --idle-timeout 5m -- ./api";

/// Options of `netrunner daemon`.
#[derive(Debug, Args)]
pub(crate) struct DaemonArgs {
    /// Name in netrunner's messages (default: the program's file name)
    #[arg(long, value_name = "N")]
    pub name: Option<String>,

    /// When to restart: never, on-failure, always
    #[arg(long, value_name = "POLICY", default_value = "on-failure", value_parser = parse_restart)]
    pub restart: Restart,

    /// Give up after more than N restarts within --within
    #[arg(long, value_name = "N", default_value_t = net_runner::daemon::DEFAULT_MAX_RESTARTS)]
    pub max_restarts: u32,

    /// The window of --max-restarts
    #[arg(long, value_name = "D", default_value = "60s", value_parser = parse_duration)]
    pub within: Duration,

    /// First backoff delay before a restart (doubles each time)
    #[arg(long, value_name = "D", default_value = "100ms", value_parser = parse_duration)]
    pub backoff: Duration,

    /// Longest backoff delay
    #[arg(long, value_name = "D", default_value = "30s", value_parser = parse_duration)]
    pub backoff_max: Duration,

    /// Ready when a line of output matches REGEX
    #[arg(long, value_name = "REGEX", conflicts_with_all = ["ready_notify", "ready_tcp"])]
    pub ready_pattern: Option<String>,

    /// Ready when the program sends READY=1 to $NOTIFY_SOCKET (systemd protocol)
    #[arg(long, conflicts_with = "ready_tcp")]
    pub ready_notify: bool,

    /// Ready when a TCP connection to HOST:PORT succeeds
    #[arg(long, value_name = "HOST:PORT")]
    pub ready_tcp: Option<String>,

    /// How long each start has to become ready
    #[arg(long, value_name = "D", default_value = "30s", value_parser = parse_duration)]
    pub ready_timeout: Duration,

    /// No 'netrunner:' lines about starts, readiness and restarts
    #[arg(long, short)]
    pub quiet: bool,

    #[command(flatten)]
    pub run: RunArgs,
}

fn parse_restart(text: &str) -> Result<Restart, String> {
    text.parse()
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::duration::parse(text)
}

/// Runs the daemon until it is stopped or gives up; how netrunner exits.
pub(crate) async fn run(args: DaemonArgs) -> Exit {
    for (given, flag) in [
        (args.run.max_output.is_some(), "--max-output"),
        (args.run.input.is_some(), "--input"),
        (args.run.stats_json.is_some(), "--stats-json"),
    ] {
        if given {
            return Exit::failure(
                exit::FAILURE,
                format!("{flag} is not supported by 'netrunner daemon'"),
            );
        }
    }
    let readiness = match (&args.ready_pattern, args.ready_notify, &args.ready_tcp) {
        (Some(re), _, _) => match Readiness::pattern(re) {
            Ok(r) => Some(r),
            Err(e) => return Exit::failure(exit::FAILURE, format!("--ready-pattern: {e}")),
        },
        (None, true, _) => Some(Readiness::notify()),
        (None, false, Some(addr)) => Some(Readiness::tcp(addr.clone())),
        (None, false, None) => None,
    };
    let mut signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            return Exit::failure(
                exit::FAILURE,
                format!("cannot install signal handlers: {e}"),
            )
        }
    };
    let mut cmd = args.run.to_command();
    cmd.input(bytes::Bytes::new()); // an empty stdin, as `netrunner run`
    let (sink, mut output) = OutputSink::channel(16, Overflow::Block, Framing::Chunks);
    let quiet = args.quiet;
    let has_readiness = readiness.is_some();
    let mut builder = Daemon::builder(cmd)
        .restart(args.restart)
        .max_restarts(args.max_restarts, args.within)
        .backoff(args.backoff, args.backoff_max)
        .ready_timeout(args.ready_timeout)
        .output(sink);
    if let Some(name) = &args.name {
        builder = builder.name(name);
    }
    if let Some(r) = readiness {
        builder = builder.ready(r);
    }
    let name = args.name.clone().unwrap_or_else(|| {
        let program = std::path::Path::new(&args.run.command[0]);
        program
            .file_name()
            .unwrap_or(program.as_os_str())
            .to_string_lossy()
            .into_owned()
    });
    builder = builder.on_event(move |e| {
        if !quiet {
            announce(&name, e, has_readiness);
        }
    });

    // Copies the program's output to ours; ends at the daemon's end or
    // when our stdout is closed (Err).
    let mut writer = tokio::spawn(async move {
        let (mut out, mut err) = (tokio::io::stdout(), tokio::io::stderr());
        while let Some(chunk) = output.recv().await {
            match chunk {
                Chunk::Stdout(b) => {
                    out.write_all(&b).await?;
                    out.flush().await?;
                }
                Chunk::Stderr(b) => {
                    let _ = err.write_all(&b).await;
                    let _ = err.flush().await;
                }
            }
        }
        Ok::<(), std::io::Error>(())
    });

    let start = builder.start();
    tokio::pin!(start);
    let daemon = tokio::select! {
        r = &mut start => match r {
            Ok(d) => d,
            Err(e) => {
                let _ = (&mut writer).await;
                return exit_for(&e);
            }
        },
        // Dropping the start stops what was started (the shepherd finishes
        // the stop sequence).
        () = signals.stop() => return Exit::code(0),
    };
    let handle = daemon.handle();
    let wait = daemon.wait();
    tokio::pin!(wait);
    let mut stop_asked = false;
    let mut broken = false;
    let mut writer_done = false;
    let result = loop {
        tokio::select! {
            r = &mut wait => break r,
            _ = signals.int.recv() => {
                stop_asked = true;
                handle.request_stop();
            }
            _ = signals.term.recv() => {
                stop_asked = true;
                handle.request_stop();
            }
            _ = signals.hup.recv() => {
                let _ = handle.signal(Signal::Hup);
            }
            r = &mut writer, if !writer_done => {
                writer_done = true;
                if !matches!(r, Ok(Ok(()))) {
                    broken = true;
                    handle.request_stop();
                }
            }
        }
    };
    if !writer_done {
        if let Ok(Err(_)) = writer.await {
            broken = true;
        }
    }
    if broken {
        return Exit::code(exit::BROKEN_PIPE);
    }
    match result {
        Ok(_) if stop_asked => Exit::code(0),
        Ok(status) => match status.last_exit {
            Some(s) => Exit::from_status(s),
            None => Exit::code(0),
        },
        Err(e) => exit_for(&e),
    }
}

fn exit_for(e: &DaemonError) -> Exit {
    match e {
        DaemonError::Spawn { source, name } => {
            let mut exit = Exit::from_error(source);
            exit.message = Some(format!("daemon {name}: {source}"));
            exit
        }
        other => Exit::failure(exit::FAILURE, other.to_string()),
    }
}

/// One `netrunner:` line about an event.
fn announce(name: &str, event: &DaemonEvent, has_readiness: bool) {
    let line = match event {
        DaemonEvent::Started { number: 1, pid } => format!("{name}: started (pid {pid})"),
        DaemonEvent::Started { number, pid } => {
            format!("{name}: restarted (start {number}, pid {pid})")
        }
        DaemonEvent::Ready { pid } if has_readiness => format!("{name}: ready (pid {pid})"),
        DaemonEvent::Ended { end, .. } => format!("{name}: {end}"),
        DaemonEvent::Restarting { delay, restarts } => {
            format!("{name}: restarting in {delay:.1?} (restart {restarts})")
        }
        _ => return,
    };
    let _ = writeln!(std::io::stderr(), "netrunner: {line}");
}

/// SIGTERM and SIGINT (a stop), SIGHUP (forwarded).
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    async fn stop(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}
