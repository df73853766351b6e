//! netrunner as a job of its shell: stopping itself after its program
//! stopped, and dying of the signal its program died of.

/// Stops netrunner as the terminal would have if its group had the
/// terminal: `SIGTSTP` (the signal `stop` says, for `SIGTTIN`/`SIGTTOU`) to
/// its own process group, with the default action meanwhile (tokio's
/// handler is set aside and put back). Returns once continued, or at once
/// in an orphaned process group, where the kernel discards it (nobody could
/// continue us there).
pub(crate) fn stop_self(stop: i32) {
    let sig = match stop {
        libc::SIGTTIN | libc::SIGTTOU => stop,
        _ => libc::SIGTSTP,
    };
    // SAFETY: sigaction with a zeroed struct plus SIG_DFL and an empty
    // mask is a valid request; `old` is written by the kernel in full and
    // only passed back to it. kill touches no memory of ours.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut dfl.sa_mask);
        let mut old: libc::sigaction = std::mem::zeroed();
        let swapped = libc::sigaction(sig, &dfl, &mut old) == 0;
        // The calling (main) thread takes a signal sent to its own process
        // when it does not block it, so it stops on the way out of `kill`
        // and resumes here after SIGCONT.
        libc::kill(0, sig);
        if swapped {
            libc::sigaction(sig, &old, std::ptr::null_mut());
        }
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
    // SAFETY: plain system calls on our own process; the sigset is
    // initialised by sigemptyset/sigaddset before use.
    unsafe {
        // Not dumpable: SIGQUIT's core would be netrunner's, not the
        // program's (timeout(1) does the same).
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        libc::signal(signal, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        // Our own shepherd ignores SIGINT and SIGQUIT; we are in the group.
        libc::kill(if whole_group { 0 } else { libc::getpid() }, signal);
    }
    std::process::exit(128 + signal)
}

/// Whether netrunner can hand the terminal to its program: its stdin is a
/// terminal and its process group is that terminal's foreground group.
pub(crate) fn in_terminal_foreground() -> bool {
    // SAFETY: isatty/tcgetpgrp/getpgrp only look at descriptor 0 and our
    // own process.
    unsafe {
        libc::isatty(libc::STDIN_FILENO) == 1
            && libc::tcgetpgrp(libc::STDIN_FILENO) == libc::getpgrp()
    }
}
