//! PTY mode: the options, and what the library does on the master (the
//! shepherd opens the pair and keeps no copy of either end once the child
//! has exec'd; see docs/architecture.md, "PTY mode").

use std::io;
use std::os::fd::AsFd;

use rustix::termios::{LocalModes, SpecialCodeIndex, Winsize};

use crate::Error;

/// A pseudo-terminal for the child: its size, and whether it starts in raw
/// mode. Given to [`Command::pty_with`](crate::Command::pty_with);
/// [`Command::pty`](crate::Command::pty) is the short form for a cooked
/// terminal.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), net_runner::Error> {
/// use net_runner::{Command, Pty};
/// let out = Command::new("stty").arg("size").pty_with(Pty::new(40, 120)).run().await?;
/// assert_eq!(out.stdout, b"40 120\r\n");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pty {
    rows: u16,
    cols: u16,
    raw: bool,
}

impl Pty {
    /// The largest number of rows or columns accepted; more is
    /// [`Error::InvalidOption`] (the kernel takes any `u16`, no terminal
    /// has that many).
    ///
    /// ```
    /// assert_eq!(net_runner::Pty::MAX_SIZE, 10_000);
    /// ```
    pub const MAX_SIZE: u16 = 10_000;

    /// A cooked terminal (line editing, echo, `\n` written as `\r\n`, ^C
    /// as SIGINT: what a shell gets) of `rows` × `cols`.
    ///
    /// ```
    /// let pty = net_runner::Pty::new(24, 80);
    /// assert_eq!(pty.size(), (24, 80));
    /// ```
    pub fn new(rows: u16, cols: u16) -> Self {
        Pty {
            rows,
            cols,
            raw: false,
        }
    }

    /// Starts the terminal in raw mode (`cfmakeraw`: no echo, no line
    /// editing, no signals from keys, output unchanged), as `ssh -t` puts
    /// the local one. Default: cooked.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// use net_runner::{Command, Pty};
    /// // Raw: "\n" stays "\n" (cooked would give "\r\n").
    /// let out = Command::new("printf").arg("a\\n").pty_with(Pty::new(24, 80).raw(true)).run().await?;
    /// assert_eq!(out.stdout, b"a\n");
    /// # Ok(()) }
    /// ```
    pub fn raw(mut self, raw: bool) -> Self {
        self.raw = raw;
        self
    }

    /// `(rows, cols)`.
    ///
    /// ```
    /// assert_eq!(net_runner::Pty::new(50, 132).size(), (50, 132));
    /// ```
    pub fn size(&self) -> (u16, u16) {
        (self.rows, self.cols)
    }

    /// Whether the terminal starts in raw mode.
    ///
    /// ```
    /// assert!(!net_runner::Pty::new(24, 80).is_raw());
    /// ```
    pub fn is_raw(&self) -> bool {
        self.raw
    }

    /// The size, checked.
    pub(crate) fn checked_size(&self) -> Result<net_runner_proto::WindowSize, Error> {
        check_size(self.rows, self.cols)
    }
}

/// Rows and columns must be 1 to [`Pty::MAX_SIZE`].
pub(crate) fn check_size(rows: u16, cols: u16) -> Result<net_runner_proto::WindowSize, Error> {
    for (what, n) in [("rows", rows), ("columns", cols)] {
        if n == 0 || n > Pty::MAX_SIZE {
            return Err(Error::InvalidOption {
                option: "pty",
                reason: format!(
                    "{rows}x{cols}: {what} must be 1 to {} (got {n})",
                    Pty::MAX_SIZE
                ),
            });
        }
    }
    Ok(net_runner_proto::WindowSize { rows, cols })
}

/// Sets the terminal's size through the master; the kernel sends SIGWINCH
/// to the terminal's foreground process group.
pub(crate) fn set_size(master: impl AsFd, rows: u16, cols: u16) -> Result<(), Error> {
    let size = check_size(rows, cols)?;
    rustix::termios::tcsetwinsize(
        master,
        Winsize {
            ws_row: size.rows,
            ws_col: size.cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )
    .map_err(|e| Error::Io(e.into()))
}

/// What the stdin writer of a PTY knows of the line discipline: whether
/// the last byte it wrote ended a line. The kernel does not say whether a
/// partial line is pending; this is the writer's own view (bytes written
/// straight to the master by others are not seen).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LineState {
    pub(crate) at_line_start: bool,
}

impl Default for LineState {
    fn default() -> Self {
        LineState {
            at_line_start: true,
        }
    }
}

impl LineState {
    /// Notes bytes written to the terminal.
    pub(crate) fn wrote(&mut self, data: &[u8]) {
        if let Some(&last) = data.last() {
            self.at_line_start = last == b'\n' || last == b'\r';
        }
    }

    /// The bytes that deliver end of file through the line discipline as
    /// the terminal is set now: its VEOF character at the start of a line,
    /// twice after a partial line (the first one only ends the line). In
    /// non-canonical (raw) mode the kernel gives no end of file at all: one
    /// VEOF, what a user would type, which readline-style programs take as
    /// end of input on an empty line. Empty when VEOF is disabled.
    pub(crate) fn eof_bytes(&self, master: impl AsFd) -> io::Result<Vec<u8>> {
        let modes = rustix::termios::tcgetattr(master)?;
        let eof = modes.special_codes[SpecialCodeIndex::VEOF];
        if eof == 0 {
            // _POSIX_VDISABLE on Linux.
            return Ok(Vec::new());
        }
        let canonical = modes.local_modes.contains(LocalModes::ICANON);
        let n = if canonical && !self.at_line_start {
            2
        } else {
            1
        };
        Ok(vec![eof; n])
    }
}
