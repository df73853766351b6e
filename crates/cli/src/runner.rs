//! `netrunner run`: starts the program and waits for it, as a shell runs
//! a foreground job.
//!
//! Two ways: **transparent** (the default), where the program gets
//! netrunner's stdin, stdout and stderr and, at a terminal, the terminal's
//! foreground; and **piped** (`--pipe`, `--max-output`, `--idle-timeout`),
//! one `select!` loop over signals sent to netrunner (forwarded to the
//! program's process group), the write of the current chunk (at most one at
//! a time, so nothing more is read from the program until it is written),
//! and the program's next chunk of output or stop. At a terminal both
//! modes hand the program the terminal's foreground when it reads
//! netrunner's stdin, and follow its stops as a shell does.

use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use bytes::Bytes;
use net_runner::{Chunk, End, Process, ProcessEvent, ProcessHandle, Signal, Stdio, StreamEvent};
use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinHandle;

use crate::args::{InputSource, RunArgs, StderrMode};
use crate::exit::{self, Exit};
use crate::job;
use crate::stats_json::Report;
use crate::sys;

/// Where `--stats-json` goes.
enum StatsOut {
    File(File, std::path::PathBuf),
    Stderr,
}

/// What [`start`] did before the runtime exists.
pub(crate) struct Started {
    args: RunArgs,
    stats_out: Option<StatsOut>,
    /// Transparent mode: the spawn, under way.
    transparent: Option<Result<Transparent, Exit>>,
}

/// Starts what can start before the tokio runtime is built: opens the
/// `--stats-json` file and, in transparent mode, creates the spawn, which
/// with a forked shepherd waiting (see `main`) sends the request at once,
/// so the program starts while the runtime is built. `Err`: netrunner's
/// exit, nothing started.
pub(crate) fn start(args: RunArgs) -> Result<Started, Exit> {
    // Open the stats file first: a typo in its path should not cost a run.
    let stats_out = match &args.stats_json {
        Some(path) if path.as_os_str() == "-" => Some(StatsOut::Stderr),
        Some(path) => match File::create(path) {
            Ok(f) => Some(StatsOut::File(f, path.clone())),
            Err(e) => {
                return Err(Exit::failure(
                    exit::FAILURE,
                    format!("cannot write statistics to {}: {e}", path.display()),
                ))
            }
        },
        None => None,
    };
    let transparent = (!args.piped()).then(|| Transparent::start(&args));
    Ok(Started {
        args,
        stats_out,
        transparent,
    })
}

/// Runs the program that [`start`] began to the end and returns how
/// netrunner should exit. The `--stats-json` report, if asked for, is
/// written before returning.
pub(crate) async fn run(started: Started) -> Exit {
    let Started {
        args,
        stats_out,
        transparent,
    } = started;
    let mode = if args.piped() { "pipe" } else { "inherit" };
    let started = match transparent {
        None => start_and_pump(&args).await,
        Some(Ok(t)) => t.wait(&args).await,
        Some(Err(exit)) => Err(exit),
    };
    let (exit, mut report) = match started {
        Ok(done) => done,
        Err(exit) => (exit, Report::default()),
    };
    report.mode = Some(mode);
    let json = report.to_json();
    match stats_out {
        Some(StatsOut::File(mut file, path)) => match file.write_all(json.as_bytes()) {
            Ok(()) => exit,
            Err(e) if exit.message.is_none() => Exit::failure(
                exit::FAILURE,
                format!("cannot write statistics to {}: {e}", path.display()),
            ),
            Err(_) => exit,
        },
        Some(StatsOut::Stderr) => {
            let _ = write_all_fd(rustix::stdio::stderr(), json.as_bytes());
            exit
        }
        None => exit,
    }
}

/// The signals netrunner forwards, and Ctrl-Z when it reaches netrunner.
struct Signals {
    forward: ToForward,
    tstp: tokio::signal::unix::Signal,
}

/// The signals netrunner passes on to the program's group.
struct ToForward {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
}

impl ToForward {
    /// The next of them to reach netrunner (in this order when several
    /// are pending). Cancel-safe, as each `recv` is.
    async fn next(&mut self) -> Signal {
        tokio::select! {
            biased;
            Some(()) = self.int.recv() => Signal::Int,
            Some(()) = self.term.recv() => Signal::Term,
            Some(()) = self.hup.recv() => Signal::Hup,
            Some(()) = self.quit.recv() => Signal::Quit,
            else => std::future::pending().await,
        }
    }
}

impl Signals {
    fn install() -> Result<Self, Exit> {
        let install = || -> io::Result<Signals> {
            Ok(Signals {
                forward: ToForward {
                    int: signal(SignalKind::interrupt())?,
                    term: signal(SignalKind::terminate())?,
                    hup: signal(SignalKind::hangup())?,
                    quit: signal(SignalKind::quit())?,
                },
                tstp: signal(SignalKind::from_raw(libc::SIGTSTP))?,
            })
        };
        install().map_err(|e| {
            Exit::failure(
                exit::FAILURE,
                format!("cannot install signal handlers: {e}"),
            )
        })
    }
}

/// The signals netrunner forwarded, so that it can die of the same one.
#[derive(Debug, Default, Clone, Copy)]
struct Forwarded(u64);

impl Forwarded {
    fn add(&mut self, sig: Signal) {
        self.0 |= 1 << sig.as_raw();
    }
    fn contains(self, sig: i32) -> bool {
        (0..64).contains(&sig) && self.0 & (1 << sig) != 0
    }
}

/// What `--verbose` says, and when: the stop sequence's signals, timed
/// from the start as the shepherd runs them.
fn verbose_plan(args: &RunArgs) -> Vec<(tokio::time::Instant, String)> {
    let Some(timeout) = args.timeout.filter(|t| !t.is_zero() && args.verbose) else {
        return Vec::new();
    };
    let now = tokio::time::Instant::now();
    let program = args.command[0].to_string_lossy().into_owned();
    let say = |sig: &str| format!("sending signal {sig} to command '{program}'");
    let mut at = timeout;
    let mut plan = Vec::new();
    match &args.stop_sequence {
        Some(spec) => {
            for step in &spec.0 {
                match *step {
                    crate::stop::StopStep::Signal(sig, wait) => {
                        plan.push((at, say(sig.name())));
                        at = at.saturating_add(wait.unwrap_or(args.kill_timeout));
                    }
                    crate::stop::StopStep::CloseStdin(wait) => {
                        plan.push((at, format!("closing the stdin of command '{program}'")));
                        at = at.saturating_add(wait.unwrap_or_default());
                    }
                }
            }
        }
        None => {
            plan.push((at, say(args.signal.unwrap_or(Signal::Term).name())));
            at = at.saturating_add(args.kill_timeout);
        }
    }
    plan.push((at, say("KILL")));
    plan.into_iter()
        .filter_map(|(d, text)| Some((now.checked_add(d)?, text)))
        .collect()
}

/// Prints the `--verbose` lines already due (the program's end was seen
/// in the same wake-up as their timer).
fn flush_verbose(plan: &mut Vec<(tokio::time::Instant, String)>) {
    let now = tokio::time::Instant::now();
    for (_, line) in plan.iter().take_while(|(at, _)| *at <= now) {
        let _ = writeln!(io::stderr(), "netrunner: {line}");
    }
    plan.clear();
}

/// The next `--verbose` line once it is due; never when there is none.
async fn next_verbose(plan: &mut Vec<(tokio::time::Instant, String)>) -> String {
    match plan.first() {
        Some((at, _)) => {
            tokio::time::sleep_until(*at).await;
            plan.remove(0).1
        }
        None => std::future::pending().await,
    }
}

/// The signals netrunner forwards or follows, blocked from before the
/// program starts until their handlers are installed: one that arrives
/// meanwhile is then handled, not fatal to netrunner alone.
const HANDLED_SIGNALS: [i32; 5] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGTSTP,
];

/// Transparent mode: the program gets our stdio (and the terminal's
/// foreground when we have it); we forward signals, follow its stops, and
/// wait.
struct Transparent {
    spawn: std::pin::Pin<Box<dyn std::future::Future<Output = net_runner::Result<Process>> + Send>>,
    foreground: bool,
}

impl Transparent {
    /// Creates the spawn (see [`start`]), with the handled signals blocked.
    fn start(args: &RunArgs) -> Result<Transparent, Exit> {
        let mut cmd = args.to_command();
        match args.input_source() {
            None | Some(InputSource::Stdin) => {
                cmd.stdin(Stdio::inherit());
            }
            Some(InputSource::File(path)) => {
                let file = open_input(&path)?;
                cmd.stdin(Stdio::from(file));
            }
        }
        cmd.stdout(Stdio::inherit());
        if args.stderr == StderrMode::Consume {
            cmd.stderr(net_runner::Stderr::Inherit);
        }
        // Also with `--input FILE`: a program may open /dev/tty itself
        // (ssh's password prompt).
        let foreground = job::hand_over_terminal(&mut cmd, args.foreground);
        sys::block_for_thread(&HANDLED_SIGNALS)
            .map_err(|e| Exit::failure(exit::FAILURE, format!("cannot block signals: {e}")))?;
        Ok(Transparent {
            spawn: Box::pin(cmd.spawn()),
            foreground,
        })
    }

    /// Installs the signal handlers, then waits for the spawn and the
    /// program's end. `Err` when it could not be started.
    async fn wait(self, args: &RunArgs) -> Result<(Exit, Report), Exit> {
        let Transparent { spawn, foreground } = self;
        // A signal that arrived while the program was starting was kept
        // pending: it reaches the handlers now and is forwarded as soon as
        // the program runs.
        let signals = Signals::install();
        let _ = sys::unblock_for_thread(&HANDLED_SIGNALS);
        let mut signals = signals?;
        let process = spawn.await.map_err(|e| Exit::from_error(&e))?;
        wait_transparent(args, process, &mut signals, foreground).await
    }
}

/// Forwards signals, follows the program's stops, and waits for its end.
async fn wait_transparent(
    args: &RunArgs,
    mut process: Process,
    signals: &mut Signals,
    foreground: bool,
) -> Result<(Exit, Report), Exit> {
    let mut forwarded = Forwarded::default();
    let mut stop_requested = false;
    let mut verbose = verbose_plan(args);
    let handle = process.handle();
    let status = loop {
        tokio::select! {
            biased;
            sig = signals.forward.next() => forward(&handle, sig, &mut forwarded),
            // Before the exit: when both are due at one wake-up, the line
            // for a signal that was sent comes first.
            line = next_verbose(&mut verbose) => {
                let _ = writeln!(io::stderr(), "netrunner: {line}");
            }
            Some(()) = signals.tstp.recv() => {
                // Ctrl-Z reached us, not the program (no terminal handed
                // over): stop it, then ourselves once it has stopped.
                let _ = handle.kill(Signal::Tstp);
                stop_requested = true;
            }
            event = process.wait_event() => match event {
                Ok(ProcessEvent::Stopped(sig)) if foreground || stop_requested => {
                    stop_requested = false;
                    // The library took the terminal back already.
                    job::stop_self(sig);
                    // Continued (fg or bg): so is the program.
                    if let Err(e) = process.resume() {
                        let _ = writeln!(io::stderr(), "netrunner: cannot continue the program: {e}");
                    }
                }
                Ok(ProcessEvent::Exited(status)) => break status,
                Ok(_) => {}
                Err(e) => return Ok((Exit::from_error(&e), Report::from(&process.stats()))),
            },
        }
    };
    flush_verbose(&mut verbose);
    let stats = process.stats();
    keep_until_exit(process);
    let mut report = Report::from(&stats);
    report.clear_byte_counts();
    Ok((
        exit_for(args, status, stats.end, forwarded, foreground),
        report,
    ))
}

/// How netrunner ends for a program that ended with `status` (`end`: why).
fn exit_for(
    args: &RunArgs,
    status: net_runner::ExitStatus,
    end: Option<End>,
    forwarded: Forwarded,
    foreground: bool,
) -> Exit {
    if matches!(end, Some(End::Timeout | End::IdleTimeout)) {
        // One line, as in pipe mode (where it is the library's error).
        let what = match (end, args.timeout, args.idle_timeout) {
            (Some(End::Timeout), Some(t), _) => format!("timed out after {t:?}"),
            (_, _, Some(t)) => format!("no output for {t:?} (idle timeout"),
            _ => "timed out".to_owned(),
        };
        let close = if what.contains('(') { ";" } else { " (" };
        return Exit::failure(
            exit::timed_out(status, args.preserve_status),
            format!("{what}{close}then {status})"),
        );
    }
    if let Some(sig) = status.signal() {
        // Forwarded by us, or sent by the terminal to the program in our
        // place: the caller should see the signal death it would have seen
        // without netrunner.
        if forwarded.contains(sig) {
            return Exit::raise(sig, false);
        }
        if foreground && (sig == libc::SIGINT || sig == libc::SIGQUIT) {
            return Exit::raise(sig, true);
        }
    }
    Exit::from_status(status)
}

/// Piped mode: starts the program and streams its output. `Err` when it
/// could not be started (nothing ran, so there are no statistics).
///
/// When the program reads our own stdin and that is the terminal whose
/// foreground we hold, it gets the foreground as in transparent mode (it
/// can read the terminal; Ctrl-C, Ctrl-\ and Ctrl-Z reach it, and we follow
/// its stops); otherwise it runs in a background group and we forward
/// Ctrl-C and Ctrl-Z ourselves.
async fn start_and_pump(args: &RunArgs) -> Result<(Exit, Report), Exit> {
    let mut cmd = args.to_command();
    let mut foreground = false;
    match args.input_source() {
        // --max-output or --idle-timeout alone: the program still reads
        // our stdin; an explicit --pipe keeps it empty, and so does --pty
        // (its terminal reads end of file at once; `--input -` feeds it).
        None if !args.pipe && !args.pty => {
            cmd.stdin(Stdio::inherit());
            foreground = job::hand_over_terminal(&mut cmd, args.foreground);
        }
        None => {}
        Some(InputSource::Stdin) => {
            cmd.input_reader(tokio::io::stdin());
        }
        Some(InputSource::File(path)) => {
            let file = open_input(&path)?;
            cmd.input_reader(tokio::fs::File::from_std(file));
        }
    }
    // Installed before the program starts: a signal that arrives while it
    // is starting is kept and forwarded as soon as it runs.
    let mut signals = Signals::install()?;
    let mut forwarded = Forwarded::default();
    let mut verbose = verbose_plan(args);
    let mut stream = cmd
        .stream_tagged()
        .await
        .map_err(|e| Exit::from_error(&e))?;
    let handle = stream.handle();
    // --pty with a terminal of ours: raw mode until this returns.
    let _terminal = crate::pty_mode::attach(args, &handle)
        .map_err(|e| Exit::failure(exit::FAILURE, format!("cannot set up the terminal: {e}")))?;
    // Once the timeout and the whole stop sequence have passed (the
    // program's shutdown output is still copied until then), output that
    // cannot be written (a reader that stopped reading) no longer holds
    // netrunner up.
    let mut deadline = args
        .timeout
        .filter(|t| !t.is_zero())
        .and_then(|t| t.checked_add(args.stop_duration()))
        .and_then(|t| tokio::time::Instant::now().checked_add(t))
        .map(|at| Box::pin(tokio::time::sleep_until(at)));
    let mut abandoned = false;
    let mut pending: Option<(Target, JoinHandle<io::Result<()>>)> = None;
    let mut stderr_open = true;
    let mut stop_requested = false;

    let mut owner_gone = false;
    let exit = loop {
        tokio::select! {
            biased;
            sig = signals.forward.next() => forward(&handle, sig, &mut forwarded),
            Some(()) = signals.tstp.recv() => {
                let _ = handle.kill(Signal::Tstp);
                if foreground {
                    // Sent to us alone (Ctrl-Z goes to the program, which
                    // has the terminal): we stop once it has stopped (its
                    // event below).
                    stop_requested = true;
                } else {
                    // The program runs in a background group: stop
                    // ourselves now; continue it when we are continued.
                    job::stop_self(libc::SIGTSTP);
                    let _ = handle.kill(Signal::Cont);
                }
            }
            line = next_verbose(&mut verbose) => {
                let _ = writeln!(io::stderr(), "netrunner: {line}");
            }
            (target, result) = written(&mut pending) => {
                pending = None;
                match (target, result) {
                    (_, Ok(())) => {}
                    (Target::Stdout, Err(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
                        // Our reader is gone (`| head`): dropping the stream
                        // (on return) terminates the program's tree.
                        owner_gone = true;
                        break Exit::code(exit::BROKEN_PIPE);
                    }
                    (Target::Stdout, Err(e)) => {
                        break Exit::failure(exit::FAILURE, format!("cannot write to stdout: {e}"));
                    }
                    // Nowhere left to report it: drop the rest of stderr.
                    (Target::Stderr, Err(_)) => stderr_open = false,
                }
            }
            () = async { deadline.as_mut().expect("checked").await },
                if deadline.is_some() && pending.is_some() && !abandoned =>
            {
                // Forget the stuck write (its thread finishes or dies with
                // us) and let the stream report the timeout.
                abandoned = true;
                pending = None;
            }
            item = stream.next_event(), if pending.is_none() => match item {
                Ok(None) => break match stream.status() {
                    Some(status) => {
                        exit_for(args, status, stream.stats().end, forwarded, foreground)
                    }
                    None => Exit::failure(exit::FAILURE, "the program's exit status was lost"),
                },
                Err(e) => break Exit::from_io(&e, args.preserve_status),
                Ok(Some(StreamEvent::Stopped(sig))) if foreground || stop_requested => {
                    stop_requested = false;
                    // As in transparent mode: the library took the
                    // terminal back already; once we are continued (fg or
                    // bg), so is the program.
                    job::stop_self(sig);
                    if let Err(e) = stream.resume() {
                        let _ = writeln!(io::stderr(), "netrunner: cannot continue the program: {e}");
                    }
                }
                Ok(Some(StreamEvent::Chunk(chunk))) if !abandoned => match chunk {
                    // A file or /dev/null never blocks for long: write it
                    // here instead of a blocking-pool round trip per chunk.
                    Chunk::Stdout(bytes) if Target::Stdout.never_blocks() => {
                        if let Err(e) = write_all_fd(Target::Stdout.fd(), &bytes) {
                            break Exit::failure(
                                exit::FAILURE,
                                format!("cannot write to stdout: {e}"),
                            );
                        }
                    }
                    Chunk::Stdout(bytes) => pending = Some(write(Target::Stdout, bytes)),
                    Chunk::Stderr(bytes) if stderr_open => {
                        pending = Some(write(Target::Stderr, bytes));
                    }
                    Chunk::Stderr(_) => {}
                },
                // Output past the abandoned write; the stops of a program
                // in a background group (ours to follow only when Ctrl-Z
                // reached us, above); continues.
                Ok(Some(_)) => {}
            }
        }
    };
    flush_verbose(&mut verbose);
    let mut report = Report::from(&stream.stats());
    if owner_gone && report.end.is_none() {
        report.end = Some(net_runner::End::OwnerGone.as_str());
    }
    if stream.status().is_some() {
        keep_until_exit(stream);
    }
    Ok((exit, report))
}

/// Keeps what owns a finished program's shepherd until netrunner exits,
/// moments later. Dropping it would start the library's reaper thread only
/// to collect that shepherd, which exits on its own once its report is
/// out: a thread to create and then to stop at our exit, about a tenth of
/// a whole run. Once we are gone, init (or the nearest subreaper) reaps it.
fn keep_until_exit<T: Send + 'static>(owner: T) {
    static KEPT: std::sync::Mutex<Vec<Box<dyn std::any::Any + Send>>> =
        std::sync::Mutex::new(Vec::new());
    KEPT.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Box::new(owner));
}

fn open_input(path: &Path) -> Result<File, Exit> {
    let open = || -> io::Result<File> {
        let file = File::open(path)?;
        if file.metadata()?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a directory",
            ));
        }
        Ok(file)
    };
    open().map_err(|e| {
        Exit::failure(
            exit::FAILURE,
            format!("cannot read input {}: {e}", path.display()),
        )
    })
}

fn forward(handle: &ProcessHandle, signal: Signal, forwarded: &mut Forwarded) {
    forwarded.add(signal);
    if let Err(e) = handle.kill(signal) {
        let _ = writeln!(io::stderr(), "netrunner: cannot forward {signal}: {e}");
    }
}

/// Which of netrunner's outputs a chunk goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Stdout,
    Stderr,
}

impl Target {
    /// A regular file or a character device such as /dev/null (checked once).
    fn never_blocks(self) -> bool {
        static CACHE: [std::sync::OnceLock<bool>; 2] =
            [std::sync::OnceLock::new(), std::sync::OnceLock::new()];
        *CACHE[self as usize].get_or_init(|| {
            let Ok(st) = rustix::fs::fstat(self.fd()) else {
                return false;
            };
            match rustix::fs::FileType::from_raw_mode(st.st_mode) {
                rustix::fs::FileType::RegularFile => true,
                rustix::fs::FileType::CharacterDevice => !rustix::termios::isatty(self.fd()),
                _ => false,
            }
        })
    }

    fn fd(self) -> BorrowedFd<'static> {
        match self {
            Target::Stdout => rustix::stdio::stdout(),
            Target::Stderr => rustix::stdio::stderr(),
        }
    }
}

/// Writes `bytes` to `target` on a blocking thread, so that a full pipe
/// blocks neither the loop nor signal forwarding.
fn write(target: Target, bytes: Bytes) -> (Target, JoinHandle<io::Result<()>>) {
    let task = tokio::task::spawn_blocking(move || write_all_fd(target.fd(), &bytes));
    (target, task)
}

/// The result of the pending write; never completes when there is none.
async fn written(
    pending: &mut Option<(Target, JoinHandle<io::Result<()>>)>,
) -> (Target, io::Result<()>) {
    match pending {
        Some((target, task)) => {
            let result = task.await.unwrap_or_else(|e| Err(io::Error::other(e)));
            (*target, result)
        }
        None => std::future::pending().await,
    }
}

/// Writes all of `data` to `fd`, also when `fd` was left non-blocking by
/// whoever shares it (waits for room instead of failing with EAGAIN).
pub(crate) fn write_all_fd(fd: impl AsFd, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match rustix::io::write(&fd, data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => {
                // Errors (EINTR) just retry.
                let _ = poll(&mut [PollFd::new(&fd, PollFlags::OUT)], None);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn pipe() -> (File, File) {
        let (r, w) = rustix::pipe::pipe().unwrap();
        (File::from(r), File::from(w))
    }

    #[test]
    fn write_all_fd_waits_on_a_non_blocking_pipe() {
        let (mut r, w) = pipe();
        let flags = rustix::fs::fcntl_getfl(&w).unwrap();
        rustix::fs::fcntl_setfl(&w, flags | rustix::fs::OFlags::NONBLOCK).unwrap();
        // Far more than a pipe holds: EAGAIN must be waited out.
        let data: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
        let expected = data.clone();
        let writer = std::thread::spawn(move || {
            let r = write_all_fd(&w, &data);
            drop(w);
            r
        });
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        writer.join().unwrap().unwrap();
        assert!(got == expected);
    }

    #[test]
    fn write_all_fd_reports_a_closed_reader() {
        let (r, w) = pipe();
        drop(r);
        let e = write_all_fd(&w, b"x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    }
}
