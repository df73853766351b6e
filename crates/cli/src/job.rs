//! netrunner as a job of its shell: stopping itself after its program
//! stopped, and dying of the signal its program died of.

use std::io::Write as _;

use rustix::process::{self, Signal};
use rustix::termios;

use crate::sys;

/// Stops netrunner as the terminal would have if its group had the
/// terminal: `SIGTSTP` (the signal `stop` says, for `SIGTTIN`/`SIGTTOU`) to
/// its own process group, with the default action meanwhile (tokio's
/// handler is set aside and put back). Returns once continued, or at once
/// in an orphaned process group, where the kernel discards it (nobody could
/// continue us there).
pub(crate) fn stop_self(stop: i32) {
    let sig = match stop {
        libc::SIGTTIN => Signal::TTIN,
        libc::SIGTTOU => Signal::TTOU,
        _ => Signal::TSTP,
    };
    let swapped = sys::set_default_action(sig.as_raw()).ok();
    // The calling (main) thread takes a signal sent to its own process
    // when it does not block it, so it stops on the way out of `kill`
    // and resumes here after SIGCONT.
    let _ = process::kill_current_process_group(sig);
    if let Some(saved) = swapped {
        let _ = saved.restore();
    }
}

/// Dies of `signal` (its default action, no core file of netrunner for
/// SIGQUIT); exits with 128 + `signal` should it be survived somehow.
///
/// `whole_group`: the terminal sent `signal` (Ctrl-C, Ctrl-\) to the
/// program's group, which had the terminal in place of ours; it would
/// have reached our whole group (a calling `bash -c`, the rest of a
/// pipeline) without netrunner, so it is sent there too. A shell running a
/// script only stops the script when it received SIGINT itself.
pub(crate) fn die_of(signal: i32, whole_group: bool) -> ! {
    // Not dumpable: SIGQUIT's core would be netrunner's, not the
    // program's (timeout(1) does the same).
    let _ = process::set_dumpable_behavior(process::DumpableBehavior::NotDumpable);
    let _ = sys::reset_to_default(signal);
    let _ = sys::unblock_for_thread(&[signal]);
    // Our own shepherd ignores SIGINT and SIGQUIT; we are in the group.
    match sys::signal_from_raw(signal) {
        Some(sig) if whole_group => {
            let _ = process::kill_current_process_group(sig);
        }
        Some(sig) => {
            let _ = process::kill_process(process::getpid(), sig);
        }
        // A real-time signal libc keeps for itself: rustix will not send it.
        None => {
            let pid = match whole_group {
                true => 0,
                false => process::getpid().as_raw_nonzero().get(),
            };
            let _ = sys::kill_raw(pid, signal);
        }
    }
    std::process::exit(128 + signal)
}

/// Whether the program (which reads netrunner's stdin) gets the terminal's
/// foreground for the run: netrunner's stdin is a terminal and its process
/// group is that terminal's foreground group, and either netrunner's
/// stdout is not a pipe or `insist` (`--foreground`). A pipe on stdout at
/// a terminal is a pipeline (`netrunner run -- make | less`) whose other
/// commands share netrunner's group and may need the terminal themselves:
/// a pager would lose it to the program and stop.
fn program_gets_terminal(insist: bool) -> bool {
    let stdin = rustix::stdio::stdin();
    let foreground = termios::isatty(stdin)
        && termios::tcgetpgrp(stdin).is_ok_and(|pgrp| pgrp == process::getpgrp());
    foreground && (insist || !stdout_is_pipe())
}

fn stdout_is_pipe() -> bool {
    use rustix::fs::FileType;
    rustix::fs::fstat(rustix::stdio::stdout()).is_ok_and(|st| {
        matches!(
            FileType::from_raw_mode(st.st_mode),
            FileType::Fifo | FileType::Socket
        )
    })
}

/// Gives the program (which reads netrunner's stdin) the terminal's
/// foreground when [`program_gets_terminal`] says so, getting netrunner's
/// own writes ready for it ([`write_from_background`]). Returns whether.
pub(crate) fn hand_over_terminal(cmd: &mut net_runner::Command, insist: bool) -> bool {
    let foreground = program_gets_terminal(insist);
    if foreground {
        write_from_background();
    }
    cmd.foreground(foreground);
    foreground
}

/// Before a run whose program holds the terminal for us: netrunner's own
/// writes to it (`--verbose` lines, failures, the program's output in pipe
/// mode) then come from a background group, which a `stty tostop`
/// terminal stops with SIGTTOU. Ignored, a writer writes anyway; the
/// shepherd resets it for the program, and [`stop_self`] sets the default
/// action for its own use of it.
fn write_from_background() {
    if let Err(e) = sys::ignore(libc::SIGTTOU) {
        let _ = writeln!(std::io::stderr(), "netrunner: cannot ignore SIGTTOU: {e}");
    }
}
