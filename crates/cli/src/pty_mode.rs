//! `--pty`: the program runs on a pseudo-terminal, and, when netrunner's
//! own stdin is a terminal and `--input -` is given, netrunner behaves like
//! `ssh -t` or `script`: its terminal goes into raw mode (keystrokes reach
//! the program unchanged, ^C included, as a character), the program's
//! terminal follows netrunner's size (SIGWINCH), and the modes are restored
//! on every way out that runs code (the program's end, errors, a broken
//! stdout, signals forwarded to the program, panics). Only SIGKILL leaves
//! the terminal raw (`stty sane` or `reset` repairs it).
//!
//! Everything else (pumping, signals, exit codes) is the pipe mode's loop
//! in `runner.rs`; this module only sizes the terminal and attaches
//! netrunner's own.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use net_runner::ProcessHandle;
use rustix::stdio::{stderr, stdin, stdout};
use rustix::termios::{self, OptionalActions, Termios};
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinHandle;

use crate::args::{InputSource, RunArgs};

/// The size when neither `--pty-size` nor a terminal of netrunner's says.
pub(crate) const DEFAULT_SIZE: (u16, u16) = (24, 80);

/// Parses `--pty-size ROWSxCOLS` (1 to the library's maximum each).
pub(crate) fn parse_size(text: &str) -> Result<(u16, u16), String> {
    let bad = || format!("{text:?} is not ROWSxCOLS (e.g. 24x80)");
    let (rows, cols) = text.split_once(['x', 'X']).ok_or_else(bad)?;
    let (rows, cols): (u16, u16) = (
        rows.trim().parse().map_err(|_| bad())?,
        cols.trim().parse().map_err(|_| bad())?,
    );
    let max = net_runner::Pty::MAX_SIZE;
    if rows == 0 || cols == 0 || rows > max || cols > max {
        return Err(format!("{text:?}: rows and columns must be 1 to {max}"));
    }
    Ok((rows, cols))
}

/// Whether this run attaches netrunner's terminal: `--pty`, `--input -`,
/// and a terminal on stdin.
pub(crate) fn is_interactive(args: &RunArgs) -> bool {
    args.pty && args.input_source() == Some(InputSource::Stdin) && termios::isatty(stdin())
}

/// The program's terminal size at start: `--pty-size`, else the size of
/// netrunner's terminal (stdin's, stdout's or stderr's), else 24x80.
pub(crate) fn initial_size(args: &RunArgs) -> (u16, u16) {
    args.pty_size
        .or_else(|| {
            [stdin(), stdout(), stderr()]
                .into_iter()
                .find_map(window_size)
        })
        .unwrap_or(DEFAULT_SIZE)
}

/// The size of the terminal on `fd`, if it is one (and has a size).
fn window_size(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    let ws = termios::tcgetwinsize(fd).ok()?;
    (ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}

/// netrunner's terminal attached to the program's: raw mode until dropped,
/// and a task that resizes the program's terminal on SIGWINCH.
pub(crate) struct Attached {
    saved: Option<Termios>,
    follow: Option<JoinHandle<()>>,
}

/// Attaches netrunner's terminal when the run is interactive (see
/// [`is_interactive`]); a no-op otherwise. Call once the program runs.
pub(crate) fn attach(args: &RunArgs, handle: &ProcessHandle) -> io::Result<Attached> {
    if !is_interactive(args) {
        return Ok(Attached {
            saved: None,
            follow: None,
        });
    }
    // `--pty-size` fixes the size; otherwise follow ours.
    let follow = match args.pty_size {
        Some(_) => None,
        None => Some(follow_resizes(handle.clone())?),
    };
    let saved = make_raw(stdin())?;
    Ok(Attached {
        saved: Some(saved),
        follow,
    })
}

impl Drop for Attached {
    fn drop(&mut self) {
        if let Some(task) = self.follow.take() {
            task.abort();
        }
        if let Some(saved) = self.saved.take() {
            let _ = termios::tcsetattr(stdin(), OptionalActions::Now, &saved);
        }
    }
}

/// Puts the terminal on `fd` in raw mode; returns the modes to restore.
fn make_raw(fd: impl AsFd) -> io::Result<Termios> {
    let saved = termios::tcgetattr(&fd)?;
    let mut raw = saved.clone();
    raw.make_raw();
    termios::tcsetattr(&fd, OptionalActions::Now, &raw)?;
    Ok(saved)
}

/// On every SIGWINCH, gives the program's terminal netrunner's size.
fn follow_resizes(handle: ProcessHandle) -> io::Result<JoinHandle<()>> {
    let mut winch = signal(SignalKind::window_change())?;
    Ok(tokio::spawn(async move {
        while winch.recv().await.is_some() {
            if let Some((rows, cols)) = window_size(stdin()) {
                // Refused sizes and a finished program: nothing to resize.
                let _ = handle.set_window_size(rows, cols);
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("24x80"), Ok((24, 80)));
        assert_eq!(parse_size("50X132"), Ok((50, 132)));
        for bad in [
            "", "24", "x80", "24x", "0x80", "24x0", "24x80x1", "-1x80", "10001x80", "axb",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }
}
