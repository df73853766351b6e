//! `netrunner run --pty`: non-interactive runs, and the interactive mode
//! driven from a real terminal emulator (tmux, on a private server socket).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{run, run_with_stdin};

#[test]
fn the_program_runs_on_a_terminal_of_the_given_size() {
    let r = run(&[
        "run",
        "--pty",
        "--pty-size",
        "33x101",
        "--",
        "sh",
        "-c",
        "test -t 0 && test -t 1 && test -t 2 && stty size",
    ]);
    assert_eq!(
        (r.code(), r.out()),
        (0, "33 101\r\n".to_owned()),
        "{}",
        r.err()
    );
    // Not a terminal and no --pty-size: 24x80.
    let r = run(&["run", "--pty", "--", "stty", "size"]);
    assert_eq!(r.out(), "24 80\r\n");
}

#[test]
fn end_of_input_is_end_of_file_through_the_terminal() {
    let r = run_with_stdin(&["run", "--pty", "--input", "-", "--", "wc", "-c"], b"abc");
    assert_eq!(r.code(), 0, "{}", r.err());
    // The terminal echoes the input; wc counted 3 bytes.
    assert_eq!(r.out(), "abc3\r\n");
    let dir = common::temp_dir();
    let file = dir.path().join("in");
    std::fs::write(&file, "b\na\n").unwrap();
    let r = run(&[
        "run",
        "--pty",
        "--input",
        file.to_str().unwrap(),
        "--",
        "sort",
    ]);
    assert_eq!(r.code(), 0, "{}", r.err());
    assert!(r.out().ends_with("a\r\nb\r\n"), "{:?}", r.out());
}

#[test]
fn exit_codes_and_bad_sizes_as_for_pipes() {
    assert_eq!(run(&["run", "--pty", "--", "sh", "-c", "exit 3"]).code(), 3);
    assert_eq!(
        run(&["run", "--pty", "--", "no-such-program-xyz"]).code(),
        127
    );
    let r = run(&["run", "--pty", "--timeout", "200ms", "--", "sleep", "10"]);
    assert_eq!(r.code(), 124);
    for bad in ["0x80", "24x0", "10001x80", "24", "big"] {
        let r = run(&["run", "--pty", "--pty-size", bad, "--", "true"]);
        assert_eq!(r.code(), 125, "{bad}");
        assert!(r.message().contains("--pty-size"), "{bad}: {}", r.message());
    }
    let r = run(&["run", "--pty-size", "24x80", "--", "true"]);
    assert_eq!(r.code(), 125);
    assert!(r.message().contains("--pty"), "{}", r.message());
}

// ---------------------------------------------------------------------------
// Interactive, in tmux.

/// A tmux server of our own (`-L`), one session; killed by name on drop.
struct Tmux {
    socket: String,
    session: String,
}

impl Tmux {
    fn available() -> bool {
        Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// A detached session running `sh` in a 100x30 window.
    fn start() -> Tmux {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let unique = format!("nrpty-{}-{nanos}", std::process::id());
        let t = Tmux {
            socket: unique.clone(),
            session: unique,
        };
        let ok = t
            .cmd(&[
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                &t.session,
                "-x",
                "100",
                "-y",
                "30",
            ])
            .env("PS1", "$ ")
            .env("ENV", "/dev/null")
            .arg("sh")
            .status()
            .unwrap()
            .success();
        assert!(ok, "tmux new-session failed");
        t.tmux(&["set-option", "-t", &t.session, "status", "off"]);
        t.tmux(&["set-option", "-t", &t.session, "window-size", "manual"]);
        t
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-L").arg(&self.socket).args(args);
        c
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().unwrap();
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.session];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    fn screen(&self) -> String {
        self.tmux(&[
            "capture-pane",
            "-p",
            "-J",
            "-S",
            "-200",
            "-t",
            &self.session,
        ])
    }

    /// `(rows, cols)` of the pane.
    fn size(&self) -> (u16, u16) {
        let s = self.tmux(&[
            "display-message",
            "-p",
            "-t",
            &self.session,
            "#{pane_height} #{pane_width}",
        ]);
        let mut it = s.split_whitespace().map(|n| n.parse().unwrap());
        (it.next().unwrap(), it.next().unwrap())
    }

    /// Waits until the screen contains `text`.
    fn wait_for(&self, text: &str) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            if start.elapsed() > common::GUARD {
                panic!("no {text:?} on the screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-session", "-t", &self.session]).output();
    }
}

#[test]
fn interactive_mode_in_a_real_terminal() {
    if !Tmux::available() {
        // .ci/run installs tmux; a developer machine may lack it.
        eprintln!("tmux not installed: skipped");
        return;
    }
    let dir = common::temp_dir();
    let script = dir.path().join("prog.sh");
    std::fs::write(
        &script,
        r#"trap 'echo "WINCH $(stty size)"' WINCH
echo "START $(stty size)"
until read -r go; do :; done
# Raw for one key: ^C must arrive as a byte, not as a signal to anyone.
stty -isig -icanon min 1
echo RAWREADY
until key=$(dd bs=1 count=1 2>/dev/null | od -An -tx1); do :; done
stty sane
echo "KEY$key"
exit 7
"#,
    )
    .unwrap();
    let t = Tmux::start();
    let before = t.tmux(&["display-message", "-p", "-t", &t.session, "#{pane_tty}"]);
    let stty = |what: &str| format!("stty -a < {} | tr '\\n' ' ' > {what}", before.trim());
    let modes_before = dir.path().join("before");
    let modes_after = dir.path().join("after");
    let line = format!(
        "{}; {} run --pty --input - -- sh {}; echo EXIT=$?; {}",
        stty(modes_before.to_str().unwrap()),
        common::bin(),
        script.display(),
        stty(modes_after.to_str().unwrap()),
    );
    t.keys(&["-l", &line]);
    t.keys(&["Enter"]);

    // Size at start: the pane's.
    let (rows, cols) = t.size();
    t.wait_for(&format!("START {rows} {cols}"));
    // Resized: the program gets SIGWINCH and the new size.
    t.tmux(&["resize-window", "-t", &t.session, "-x", "120", "-y", "40"]);
    let (rows2, cols2) = t.size();
    assert_ne!((rows, cols), (rows2, cols2));
    t.wait_for(&format!("WINCH {rows2} {cols2}"));
    t.keys(&["-l", "go"]);
    t.keys(&["Enter"]);
    t.wait_for("RAWREADY");
    // Ctrl-C: delivered to the program as the character 0x03 (netrunner's
    // terminal is raw, so tmux's ^C signals nobody).
    t.keys(&["C-c"]);
    t.wait_for("KEY 03");
    let screen = t.wait_for("EXIT=7");
    assert!(wait_file(&modes_after), "{screen}");
    let (before, after) = (
        std::fs::read_to_string(&modes_before).unwrap(),
        std::fs::read_to_string(&modes_after).unwrap(),
    );
    // The terminal's modes are restored after exit (sizes differ: resized).
    let modes = |s: &str| {
        s.split(';')
            .filter(|item| !item.contains("rows") && !item.contains("columns"))
            .collect::<Vec<_>>()
            .join(";")
    };
    assert_eq!(modes(&before), modes(&after), "modes changed");
    assert!(
        before.contains(" icanon") && before.contains(" echo "),
        "{before}"
    );
}

fn wait_file(path: &Path) -> bool {
    let start = Instant::now();
    while start.elapsed() < common::GUARD {
        if path.exists() && std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
