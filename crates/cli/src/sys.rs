//! The system calls rustix does not cover safely, each wrapped in a safe
//! function of rustix's shape (`io::Result` out). This is the only module
//! of the crate allowed `unsafe`; every block says why it is sound.
//!
//! Left here: signal dispositions (`sigaction`, `signal`), the calling
//! thread's signal mask (blocking and unblocking), and turning a raw signal number that rustix does
//! not name (a real-time signal) into a [`Signal`].

use std::io;

use rustix::process::Signal;

/// A signal's action as it was before [`set_default_action`] replaced it;
/// [`SavedAction::restore`] puts it back.
pub(crate) struct SavedAction {
    signal: i32,
    old: libc::sigaction,
}

/// Sets the action of `signal` to its default (`SIG_DFL`, empty mask, no
/// flags) and returns the action it had.
pub(crate) fn set_default_action(signal: i32) -> io::Result<SavedAction> {
    // SAFETY: an all-zero `sigaction` is a valid value of the plain C
    // struct (null handler, no flags); the kernel overwrites `old` in full
    // on success, and we only return it on success.
    let (mut dfl, mut old): (libc::sigaction, libc::sigaction) =
        unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
    dfl.sa_sigaction = libc::SIG_DFL;
    // SAFETY: `dfl.sa_mask` is a valid, writable `sigset_t` that
    // sigemptyset initialises.
    unsafe { libc::sigemptyset(&mut dfl.sa_mask) };
    // SAFETY: `dfl` is a fully initialised request for the default action,
    // which runs no code of ours; `old` is valid for the kernel to write.
    if unsafe { libc::sigaction(signal, &dfl, &mut old) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(SavedAction { signal, old })
}

impl SavedAction {
    /// Puts back the action [`set_default_action`] replaced.
    pub(crate) fn restore(self) -> io::Result<()> {
        // SAFETY: `self.old` is the action the kernel reported for this
        // very signal, so its handler (if any) is one that was installed
        // for it and is still in place in our code (handlers are functions
        // of the program, never unloaded); a null old-action pointer is
        // allowed.
        if unsafe { libc::sigaction(self.signal, &self.old, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// `signal(signal, SIG_DFL)`: the default action for `signal`, the way
/// libc's `signal` sets it (`SA_RESTART`).
pub(crate) fn reset_to_default(signal: i32) -> io::Result<()> {
    // SAFETY: `SIG_DFL` installs no handler, so no code of ours can run
    // in signal context because of it.
    if unsafe { libc::signal(signal, libc::SIG_DFL) } == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `signal(signal, SIG_IGN)`: ignore `signal` from now on (threads
/// included; a program started later gets it back at default from the
/// shepherd, which resets every disposition).
pub(crate) fn ignore(signal: i32) -> io::Result<()> {
    // SAFETY: `SIG_IGN` installs no handler, so no code of ours can run
    // in signal context because of it.
    if unsafe { libc::signal(signal, libc::SIG_IGN) } == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Blocks `signals` for the calling thread (they stay pending until
/// unblocked).
pub(crate) fn block_for_thread(signals: &[i32]) -> io::Result<()> {
    change_thread_mask(libc::SIG_BLOCK, signals)
}

/// Unblocks `signals` for the calling thread.
pub(crate) fn unblock_for_thread(signals: &[i32]) -> io::Result<()> {
    change_thread_mask(libc::SIG_UNBLOCK, signals)
}

fn change_thread_mask(how: i32, signals: &[i32]) -> io::Result<()> {
    // SAFETY: an all-zero `sigset_t` is a valid value of the plain C type;
    // sigemptyset initialises it properly next.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable `sigset_t` for every call.
    let added = unsafe {
        libc::sigemptyset(&mut set) == 0
            && signals.iter().all(|&s| libc::sigaddset(&mut set, s) == 0)
    };
    if !added {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `set` is an initialised `sigset_t` that pthread_sigmask only
    // reads; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(how, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// The [`Signal`] numbered `signal`: a named one, or a real-time signal
/// libc leaves to applications (`SIGRTMIN()..=SIGRTMAX()`). `None` for
/// anything else, including the real-time signals libc keeps for itself.
pub(crate) fn signal_from_raw(signal: i32) -> Option<Signal> {
    if let Some(named) = Signal::from_named_raw(signal) {
        return Some(named);
    }
    if (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&signal) {
        // SAFETY: `signal` is a valid signal number in libc's own range of
        // real-time signals free for applications, so none libc reserves.
        return Some(unsafe { Signal::from_raw_unchecked(signal) });
    }
    None
}

/// `kill(pid, signal)` for a signal number rustix will not name (one libc
/// reserves); use [`rustix::process::kill_process`] for all others.
pub(crate) fn kill_raw(pid: i32, signal: i32) -> io::Result<()> {
    // SAFETY: kill reads and writes no memory of ours.
    if unsafe { libc::kill(pid, signal) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
