//! PTY mode: the pseudo-terminal pair, opened before the clone.
//!
//! The master goes to the library by `SCM_RIGHTS`; the slave becomes the
//! child's fds 0-2 and its controlling terminal (`setsid` + `TIOCSCTTY` in
//! the vfork child, see `sys::child_stdio`). The shepherd closes its slave
//! right after the exec and its master right after sending it, so the
//! library's master is the only one and reads end of output (`EIO`) as soon
//! as the last process holding the slave is gone. Nothing written before
//! is lost: the master's read drains the terminal's buffers before it
//! reports `EIO` (docs/architecture.md, "PTY mode").

use std::os::fd::OwnedFd;

use net_runner_proto::WindowSize;
use rustix::io::Errno;
use rustix::pty::OpenptFlags;
use rustix::termios::{OptionalActions, Winsize};

/// Refuses a size no terminal can have (the library checks the upper
/// bound; the kernel takes any `u16`).
pub(crate) fn check_size(size: WindowSize) -> Result<(), String> {
    if size.rows == 0 || size.cols == 0 {
        return Err(format!(
            "PTY size {}x{}: rows and columns must be at least 1",
            size.rows, size.cols
        ));
    }
    Ok(())
}

/// Opens a PTY pair of `size` (raw mode when `raw`): `(master, slave)`,
/// both close-on-exec and neither our controlling terminal.
pub(crate) fn open(size: WindowSize, raw: bool) -> Result<(OwnedFd, OwnedFd), Errno> {
    let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
    let master = rustix::pty::openpt(flags)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    // Size and modes are the slave's; set through the master before the
    // child exists, so its first `TIOCGWINSZ` already sees them.
    rustix::termios::tcsetwinsize(
        &master,
        Winsize {
            ws_row: size.rows,
            ws_col: size.cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )?;
    if raw {
        let mut modes = rustix::termios::tcgetattr(&master)?;
        modes.make_raw();
        rustix::termios::tcsetattr(&master, OptionalActions::Now, &modes)?;
    }
    // TIOCGPTPEER (Linux 4.13) opens this master's own slave, without a
    // path lookup that a remounted /dev/pts could redirect.
    let slave = match rustix::pty::ioctl_tiocgptpeer(&master, flags) {
        Ok(slave) => slave,
        Err(_) => {
            let name = rustix::pty::ptsname(&master, Vec::new())?;
            rustix::fs::open(
                name.as_c_str(),
                rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )?
        }
    };
    Ok((master, slave))
}
