//! `netrunner`: run a program from the command line through the
//! `net_runner` library.
//!
//! ```text
//! netrunner run [OPTIONS] -- PROGRAM [ARGS...]
//! netrunner daemon [OPTIONS] -- PROGRAM [ARGS...]
//! ```
//!
//! See `netrunner run --help` for the options and exit statuses.

// The doc comments of `args.rs` are clap's `--help` text, written for a
// terminal (`ACTION[:WAIT]`, `<kill timeout>`), not rustdoc markdown.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]
#![warn(unreachable_pub)]
// `unsafe` lives in `sys` only, each block with its `SAFETY:` comment.
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod args;
mod daemon;
mod duration;
mod exit;
mod job;
mod pty_mode;
mod runner;
mod size;
mod stats_json;
mod stop;
#[allow(unsafe_code)]
mod sys;

use std::io::Write as _;

use args::CliCommand;
use exit::Exit;

fn main() {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // One run, one shepherd: none kept started ahead of time, but the one
    // we need forked now, while we have a single thread, which costs far
    // less than exec'ing the shepherd binary; forked before parsing, so
    // that it gets ready while we parse. When that cannot be done (or the
    // command line asks for help), the spawn execs one as usual, from a
    // file cached for the user: a private copy in memory per run would be
    // most of its cost.
    net_runner::set_prestarted_shepherds(0);
    net_runner::set_shepherd_file_cache(true);
    if args::will_run(&argv) {
        let _ = net_runner::prefork_shepherd();
    }
    let cli = match args::parse(argv) {
        Ok(cli) => cli,
        Err(exit) => finish(exit),
    };
    let rt;
    let exit = match cli.command {
        CliCommand::Run(run) => {
            // Before the runtime: the program starts while it is built.
            let started = runner::start(run).unwrap_or_else(|exit| finish(exit));
            rt = runtime();
            rt.block_on(runner::run(started))
        }
        CliCommand::Daemon(d) => {
            rt = runtime();
            rt.block_on(daemon::run(d))
        }
        CliCommand::Timeout(_) => unreachable!("args::parse turns `timeout` into `run`"),
    };
    // `rt` stays alive: `finish` never returns.
    finish(exit)
}

/// A current-thread runtime (no thread of its own), or netrunner's exit.
/// It is never shut down: see [`finish`].
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            finish(Exit::failure(
                exit::FAILURE,
                format!("cannot start the runtime: {e}"),
            ))
        })
}

/// Prints the failure message, if any, and exits. The runtime is not shut
/// down: a thread blocked reading our stdin or writing a stuck stdout must
/// not hold the exit up.
fn finish(exit: Exit) -> ! {
    if let Some(message) = &exit.message {
        let line = format!("netrunner: {}\n", message.replace('\n', " "));
        // A stderr that nobody reads (its pipe full) must not hang us.
        if stderr_writable_within(1000) {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }
    if let Some((signal, whole_group)) = exit.raise {
        job::die_of(signal, whole_group);
    }
    std::process::exit(exit.code)
}

/// Whether stderr can take a short line without blocking (for a pipe, at
/// least `PIPE_BUF` bytes free), waiting up to `ms` milliseconds.
fn stderr_writable_within(ms: i32) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let stderr = rustix::stdio::stderr();
    let timeout = Timespec {
        tv_sec: (ms / 1000).into(),
        tv_nsec: ((ms % 1000) * 1_000_000).into(),
    };
    // On a poll error, try the write anyway.
    !matches!(
        poll(&mut [PollFd::new(&stderr, PollFlags::OUT)], Some(&timeout)),
        Ok(0)
    )
}
