//! netrunner at a real terminal: an interactive bash in a private tmux
//! server (`tmux -L <unique>`), driven with `send-keys` and read with
//! `capture-pane`. tmux is a Debian package; `.ci/run` installs it.
//!
//! Two markers: the session's (bash, netrunner and its shepherd carry it)
//! and the program's (`--env`), so that "the program is gone" and
//! "nothing of the session is left" are checked separately. Cleanup kills
//! the session and its private server by their unique names, never by a
//! process name.

mod common;

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::{bin, Marker, GUARD};

/// One interactive bash in its own tmux server.
struct Term {
    socket: String,
    session: String,
    /// Carried by everything the session runs (bash, netrunner, shepherd).
    marker: Marker,
}

impl Term {
    fn new() -> Term {
        let marker = Marker::new();
        let name = marker.value.clone();
        let t = Term {
            socket: format!("{name}-sock"),
            session: name,
            marker,
        };
        let status = t
            .tmux()
            .args([
                "new-session",
                "-d",
                "-x",
                "120",
                "-y",
                "40",
                "-s",
                &t.session,
            ])
            .args([
                "env",
                &t.marker.env(),
                "PS1=NRPROMPT:",
                "TERM=xterm-256color",
            ])
            .args(["bash", "--norc", "--noprofile", "-i"])
            .status()
            .expect("tmux is needed for these tests (apt-get install tmux)");
        assert!(status.success(), "tmux new-session failed");
        t.wait_for("NRPROMPT:");
        t
    }

    fn tmux(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket, "-f", "/dev/null"]);
        c
    }

    /// Types `keys` (tmux key names, e.g. `C-c`, `Enter`).
    fn keys(&self, keys: &[&str]) {
        let status = self
            .tmux()
            .args(["send-keys", "-t", &self.session])
            .args(keys)
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Types a line of text literally, then Enter.
    fn line(&self, text: &str) {
        let status = self
            .tmux()
            .args(["send-keys", "-t", &self.session, "-l", text])
            .status()
            .unwrap();
        assert!(status.success());
        self.keys(&["Enter"]);
    }

    /// The pane's text (`escapes`: with colour escape sequences).
    fn screen(&self, escapes: bool) -> String {
        let mut c = self.tmux();
        c.args(["capture-pane", "-p", "-t", &self.session]);
        if escapes {
            c.arg("-e");
        }
        String::from_utf8_lossy(&c.output().unwrap().stdout).into_owned()
    }

    /// Waits until the screen contains `text`; returns the screen.
    fn wait_for(&self, text: &str) -> String {
        self.wait_until(|s| s.contains(text), text)
    }

    fn wait_until(&self, ok: impl Fn(&str) -> bool, what: &str) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen(false);
            if ok(&screen) {
                return screen;
            }
            assert!(
                start.elapsed() < GUARD,
                "waited {GUARD:?} for {what:?}; screen:\n{screen}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `netrunner ARGS` at the prompt (arguments quoted for bash).
    fn netrunner(&self, program: &Marker, args: &str) {
        self.line(&format!("{} run --env {} {args}", bin(), program.env()));
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        // By their unique names only.
        let _ = self
            .tmux()
            .args(["kill-session", "-t", &self.session])
            .status();
        let _ = self.tmux().arg("kill-server").status();
    }
}

/// The fields of `/proc/PID/stat` after the command name: state, ppid,
/// pgrp, session, tty_nr, tpgid, ...
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(
        stat[stat.rfind(')')? + 2..]
            .split(' ')
            .map(str::to_owned)
            .collect(),
    )
}

/// The state letter of a process (`S`, `T`, ...) from /proc.
fn state(pid: i32) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}

/// The foreground process group of the process's controlling terminal.
fn terminal_foreground(pid: i32) -> Option<i32> {
    stat_fields(pid)?.get(5)?.parse().ok()
}

/// Pipe mode (`--max-output`, which leaves the program netrunner's stdin)
/// for the job-control tests that run in both modes.
const PIPED: &str = "--max-output 1M";

/// Waits until `program` has exactly one process, and returns its pid.
fn the_one(program: &Marker) -> i32 {
    let start = Instant::now();
    loop {
        let pids = program.pids();
        if pids.len() == 1 {
            return pids[0];
        }
        assert!(start.elapsed() < GUARD, "the program: {pids:?}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Ctrl-Z: the shell shows the job stopped, and `program` is stopped
/// too, not just netrunner.
fn stop_with_ctrl_z(t: &Term, program: i32) {
    t.keys(&["C-z"]);
    t.wait_for("Stopped");
    assert_eq!(state(program), Some('T'));
}

/// Ends a test: the session's processes (bash included, once the session
/// is killed) must all be gone.
fn finish(t: Term) {
    let marker = Marker {
        value: t.marker.value.clone(),
    };
    drop(t);
    marker.assert_gone();
}

#[test]
fn a_password_prompt_reads_the_terminal() {
    let t = Term::new();
    let p = Marker::new();
    // The prompt is spelt apart so that the command line does not show it.
    t.netrunner(
        &p,
        "-- python3 -c 'import getpass; print(\"got\", getpass.getpass(\"Pass\" \"-word:\"))'",
    );
    t.wait_for("Pass-word:");
    t.line("sekrit");
    let screen = t.wait_for("got sekrit");
    // Not echoed: only the program's own line shows it.
    assert_eq!(screen.matches("sekrit").count(), 1, "{screen}");
    p.assert_gone();
    t.line("echo rc=$?");
    t.wait_for("rc=0");
    finish(t);
}

#[test]
fn ctrl_c_ends_the_program_and_the_calling_script() {
    ctrl_c_ends_the_program_and_the_calling_script_in("");
}

#[test]
fn pipe_mode_ctrl_c_ends_the_program_and_the_calling_script() {
    ctrl_c_ends_the_program_and_the_calling_script_in(PIPED);
}

fn ctrl_c_ends_the_program_and_the_calling_script_in(mode: &str) {
    let t = Term::new();
    let p = Marker::new();
    t.line(&format!(
        "bash -c '{} run --env {} {mode} -- sleep 100; echo AFTER'",
        bin(),
        p.env()
    ));
    // The program runs, and has the terminal, before Ctrl-C is typed: the
    // terminal sends it to the program's group alone.
    let program = the_one(&p);
    t.wait_until(
        |_| terminal_foreground(program) == Some(program),
        "the program's group in the foreground",
    );
    t.keys(&["C-c"]);
    t.wait_until(|s| s.matches("NRPROMPT:").count() == 2, "the next prompt");
    t.line("echo rc=$?");
    let screen = t.wait_for("rc=130");
    // bash -c stopped too: its program died of SIGINT, and so did
    // netrunner, which passed the signal on to its own group (bash -c).
    assert!(!screen.lines().any(|l| l.trim() == "AFTER"), "{screen}");
    p.assert_gone();
    finish(t);
}

#[test]
fn ctrl_z_stops_both_and_fg_resumes_both() {
    ctrl_z_stops_both_and_fg_resumes_both_in("");
}

#[test]
fn pipe_mode_ctrl_z_stops_both_and_fg_resumes_both() {
    ctrl_z_stops_both_and_fg_resumes_both_in(PIPED);
}

fn ctrl_z_stops_both_and_fg_resumes_both_in(mode: &str) {
    let t = Term::new();
    let p = Marker::new();
    t.netrunner(
        &p,
        &format!("{mode} -- sh -c 'echo waiting; read x; echo got $x'"),
    );
    // A line of its own: the command line shows the word too.
    t.wait_until(|s| s.lines().any(|l| l.trim() == "waiting"), "waiting");
    let program = the_one(&p);
    stop_with_ctrl_z(&t, program);
    t.line("fg");
    // Continued, and the terminal is the program's again: it reads it.
    t.wait_until(|_| state(program) != Some('T'), "the program continued");
    t.wait_until(
        |_| terminal_foreground(program) == Some(program),
        "the program's group in the foreground again",
    );
    t.line("typed");
    t.wait_until(|s| s.lines().any(|l| l.trim() == "got typed"), "got typed");
    p.assert_gone();
    t.line("echo rc=$?");
    t.wait_for("rc=0");
    finish(t);
}

#[test]
fn ctrl_z_then_bg_runs_both_in_the_background() {
    let t = Term::new();
    let p = Marker::new();
    t.netrunner(&p, "-- sh -c 'echo waiting; sleep 1; echo fin''ished'");
    t.wait_until(|s| s.lines().any(|l| l.trim() == "waiting"), "waiting");
    let program = p.pids();
    assert!(!program.is_empty(), "{program:?}");
    stop_with_ctrl_z(&t, program[0]);
    t.line("bg");
    // Continued in the background: the shell has the terminal meanwhile,
    // and the program runs to its end.
    t.wait_until(|_| state(program[0]) != Some('T'), "the program continued");
    t.line("echo typed-meanwhile");
    t.wait_until(
        |s| s.lines().any(|l| l.trim() == "typed-meanwhile"),
        "the shell's own output",
    );
    t.wait_until(|s| s.lines().any(|l| l.contains("finished")), "finished");
    t.line("wait; echo rc=$?");
    t.wait_for("rc=0");
    p.assert_gone();
    finish(t);
}

#[test]
fn the_program_sees_a_terminal_and_keeps_the_order_of_its_lines() {
    let t = Term::new();
    let p = Marker::new();
    t.netrunner(
        &p,
        "-- sh -c 'test -t 0 && test -t 1 && test -t 2 && echo ALL-TTY; echo 1; echo 2 >&2; echo 3'",
    );
    t.wait_until(|s| s.lines().any(|l| l.trim() == "ALL-TTY"), "ALL-TTY");
    let screen = t.wait_until(|s| s.contains("\n3"), "line 3");
    let lines: Vec<&str> = screen
        .lines()
        .filter(|l| ["1", "2", "3"].contains(&l.trim()))
        .collect();
    assert_eq!(lines, ["1", "2", "3"], "{screen}");
    // Colours: ls sees a terminal.
    t.netrunner(&p, "-- ls --color=auto -d /");
    t.wait_until(|_| t.screen(true).contains("\u{1b}["), "a colour escape");
    p.assert_gone();
    finish(t);
}

/// With `stty tostop`, a background process that writes to the terminal
/// is stopped (SIGTTOU). netrunner's own lines, written while the program
/// holds the terminal for it, must get through.
#[test]
fn verbose_lines_get_through_a_tostop_terminal() {
    let t = Term::new();
    let p = Marker::new();
    t.line("stty tostop");
    t.netrunner(&p, "--verbose --timeout 0.3s -- sleep 30; echo rc=$?");
    t.wait_for("rc=124");
    let screen = t.screen(false);
    assert!(
        screen.contains("netrunner: sending signal TERM"),
        "{screen}"
    );
    assert!(!screen.contains("Stopped"), "{screen}");
    p.assert_gone();
    t.line("stty -tostop");
    finish(t);
}

/// Pipe mode keeps the terminal on the program's stdin, and hands it the
/// terminal's foreground: it reads a line there (no SIGTTIN) while its
/// output goes through netrunner's pipes.
#[test]
fn pipe_mode_a_program_reads_the_terminal() {
    let t = Term::new();
    let p = Marker::new();
    t.netrunner(
        &p,
        &format!("{PIPED} -- sh -c 'test -t 1 || echo pi''ped; echo waiting; read x; echo got $x'"),
    );
    t.wait_until(|s| s.lines().any(|l| l.trim() == "waiting"), "waiting");
    let program = the_one(&p);
    assert_eq!(terminal_foreground(program), Some(program));
    t.line("typed");
    let screen = t.wait_until(|s| s.lines().any(|l| l.trim() == "got typed"), "got typed");
    assert!(screen.lines().any(|l| l.trim() == "piped"), "{screen}");
    p.assert_gone();
    t.line("echo rc=$?");
    t.wait_for("rc=0");
    finish(t);
}

/// In a pipeline at a terminal (netrunner's stdout a pipe), the program
/// leaves the terminal to the pipeline's other commands: a pager after
/// it works. `--foreground` hands it to the program all the same.
#[test]
fn in_a_pipeline_the_pager_keeps_the_terminal_unless_foreground() {
    let t = Term::new();
    let p = Marker::new();
    t.line(&format!(
        "{} run --env {} -- seq 1000 | less; echo rc=$?",
        bin(),
        p.env()
    ));
    // less shows the first screen and its prompt: it has the terminal.
    t.wait_until(
        |s| s.lines().next().is_some_and(|l| l.trim() == "1") && s.contains("\n:"),
        "less's first screen",
    );
    t.keys(&["q"]);
    let screen = t.wait_for("rc=0");
    assert!(!screen.contains("Stopped"), "{screen}");
    t.line(&format!(
        "{} run --foreground --env {} -- sh -c 'echo waiting; read x; echo got $x' | cat",
        bin(),
        p.env()
    ));
    t.wait_until(|s| s.lines().any(|l| l.trim() == "waiting"), "waiting");
    t.line("typed");
    t.wait_until(|s| s.lines().any(|l| l.trim() == "got typed"), "got typed");
    p.assert_gone();
    finish(t);
}
