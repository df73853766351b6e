//! Job control: a child made the foreground process group of the owner's
//! controlling terminal, and the terminal taken back afterwards.
//!
//! The child's side is done by the shepherd's vfork child before exec
//! (spawn field `foreground`, with the terminal passed along), so the
//! program never runs a moment in the background. Taking it back is ours:
//! when the child stops (as a shell does when its job stops), when it
//! exits, and when the `Process` is dropped.

use std::os::fd::OwnedFd;

use crate::sys;

/// The owner's controlling terminal, while it hands it to a child.
#[derive(Debug)]
pub(crate) struct Terminal {
    tty: OwnedFd,
    /// Our process group, which had the terminal.
    owner: libc::pid_t,
    /// The child's group, once known.
    child: Option<libc::pid_t>,
}

impl Terminal {
    /// The controlling terminal, if there is one and our process group is
    /// its foreground group: otherwise we are a background job, and so is
    /// the child.
    pub(crate) fn if_foreground() -> Option<Terminal> {
        let tty = rustix::fs::open(
            c"/dev/tty",
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC | rustix::fs::OFlags::NOCTTY,
            rustix::fs::Mode::empty(),
        )
        .ok()?;
        let tty = sys::at_least(tty, sys::FIRST_FREE_FD).ok()?;
        let owner = sys::getpgrp();
        (sys::tcgetpgrp(&tty).ok()? == owner).then_some(Terminal {
            tty,
            owner,
            child: None,
        })
    }

    /// A copy to pass to the shepherd.
    pub(crate) fn dup(&self) -> std::io::Result<OwnedFd> {
        Ok(rustix::io::fcntl_dupfd_cloexec(
            &self.tty,
            sys::FIRST_FREE_FD,
        )?)
    }

    pub(crate) fn set_child(&mut self, pgid: libc::pid_t) {
        self.child = Some(pgid);
    }

    /// Gives the terminal back to our group, if the child's group still
    /// has it (a shell that took it meanwhile keeps it).
    pub(crate) fn take_back(&self) {
        if let Some(child) = self.child {
            if sys::tcgetpgrp(&self.tty).ok() == Some(child) {
                let _ = sys::tcsetpgrp(&self.tty, self.owner);
            }
        }
    }

    /// Hands the terminal to the child's group again, if our group has it
    /// (`fg`, not `bg`). Whether it did.
    pub(crate) fn give_to_child(&self) -> bool {
        match self.child {
            Some(child) if sys::tcgetpgrp(&self.tty).ok() == Some(self.owner) => {
                sys::tcsetpgrp(&self.tty, child).is_ok()
            }
            _ => false,
        }
    }
}
