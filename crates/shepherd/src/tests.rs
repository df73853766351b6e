//! Unit tests of the seams between the modules: the vfork spawn and its
//! child side, `wait4`, signal dispositions, and the control socket's fd
//! passing. Each runs real processes; each reaps its own children by pid.

use std::io::{Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;

use net_runner_proto::{FromShepherd, SpawnRequest, SpawnStage, StdioMode, Termination};
use rustix::io::retry_on_intr;
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use rustix::process::{Pid, WaitOptions};

use crate::child::{self, Started};
use crate::control::Control;
use crate::sys::{self, Disposition};

fn request(program: &str, args: &[&str]) -> SpawnRequest {
    let mut req = SpawnRequest::new(program.into());
    req.args = args.iter().map(|a| a.as_bytes().to_vec()).collect();
    req.env = vec![b"PATH=/usr/bin:/bin".to_vec()];
    req
}

/// Waits for `pid` and returns its exit report.
fn reap(pid: Pid) -> net_runner_proto::ExitReport {
    let (reaped, status, usage) = retry_on_intr(|| sys::wait4(Some(pid), WaitOptions::empty()))
        .unwrap()
        .expect("blocking wait4 returns a child");
    assert_eq!(reaped, pid);
    crate::tree::report(status, &usage)
}

/// A mask line of /proc/PID/status (`SigIgn`, `SigBlk`, ...).
fn signal_mask(pid: Pid, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.as_raw_pid())).unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} in {status}"));
    u64::from_str_radix(line.trim(), 16).unwrap()
}

fn bit(signal: libc::c_int) -> u64 {
    1 << (signal - 1)
}

#[test]
fn path_search_and_exit_status() {
    let mut req = request("sh", &["-c", "read line; echo \"$line\"; exit 3"]);
    req.stderr = StdioMode::ToStdout;
    let Started { pid, library_fds } = child::start(&req, &child::Passed::default(), &[]).unwrap();
    // The child has its own group from the start.
    assert_eq!(rustix::process::getpgid(Some(pid)).unwrap(), pid);
    let mut fds = library_fds.into_iter();
    let (stdin, stdout) = (fds.next().unwrap(), fds.next().unwrap());
    assert!(fds.next().is_none(), "stderr goes to the stdout pipe");
    std::fs::File::from(stdin).write_all(b"hello\n").unwrap();
    let mut out = String::new();
    std::fs::File::from(stdout)
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, "hello\n");
    assert_eq!(reap(pid).termination, Termination::Exited(3));
}

#[test]
fn failures_name_their_stage() {
    let start = |req: SpawnRequest| match child::start(&req, &child::Passed::default(), &[])
        .map(|s| s.pid)
    {
        Err(child::StartFailure::Stage(e)) => e,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        start(request("no-such-program-here", &[])),
        (SpawnStage::Exec, libc::ENOENT)
    );
    // Not executable, even for root.
    assert_eq!(
        start(request("/etc/passwd", &[])),
        (SpawnStage::Exec, libc::EACCES)
    );
    let mut req = request("true", &[]);
    req.cwd = Some(b"/no/such/dir".to_vec());
    assert_eq!(start(req), (SpawnStage::Chdir, libc::ENOENT));
    assert_eq!(start(request("", &[])), (SpawnStage::Exec, libc::ENOENT));
}

#[test]
fn child_starts_with_clean_signals() {
    // What the shepherd ignores itself is restored; what it inherited
    // ignored stays so unless reset at start (as main does for all).
    sys::set_disposition(libc::SIGINT, Disposition::Ignore).unwrap();
    sys::set_disposition(libc::SIGUSR2, Disposition::Ignore).unwrap();
    let mut req = request("cat", &[]);
    req.stdout = StdioMode::Null;
    req.stderr = StdioMode::Null;

    let first = child::start(&req, &child::Passed::default(), &[]).unwrap();
    let ignored = signal_mask(first.pid, "SigIgn");
    // Blocked in the parent across the clone, unblocked in the child.
    let blocked = signal_mask(first.pid, "SigBlk");
    drop(first.library_fds);
    assert_eq!(reap(first.pid).termination, Termination::Exited(0));
    assert_eq!(ignored & bit(libc::SIGINT), 0);
    assert_ne!(ignored & bit(libc::SIGUSR2), 0);
    assert_eq!(blocked, 0);

    sys::reset_signal_raw(libc::SIGUSR2).unwrap();
    let second = child::start(&req, &child::Passed::default(), &[]).unwrap();
    let ignored = signal_mask(second.pid, "SigIgn");
    drop(second.library_fds);
    assert_eq!(reap(second.pid).termination, Termination::Exited(0));
    assert_eq!(ignored & bit(libc::SIGUSR2), 0);
}

#[test]
fn flush_passes_descriptors_with_the_first_byte() {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let mut control = Control::new(OwnedFd::from(ours)).unwrap();
    let (r, _w) = rustix::pipe::pipe().unwrap();
    control.queue(&FromShepherd::hello());
    control.flush(&[r.as_fd(), r.as_fd()]).unwrap();

    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut ancillary = RecvAncillaryBuffer::new(&mut space);
    let mut buf = [0u8; 256];
    let got = rustix::net::recvmsg(
        &theirs,
        &mut [std::io::IoSliceMut::new(&mut buf)],
        &mut ancillary,
        RecvFlags::CMSG_CLOEXEC,
    )
    .unwrap();
    assert!(got.bytes > 0);
    let mut received = Vec::new();
    for msg in ancillary.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = msg {
            received.extend(fds);
        }
    }
    assert_eq!(received.len(), 2);
    drop(ancillary);

    // Without descriptors: plain bytes, no ancillary data.
    control.queue(&FromShepherd::hello());
    control.flush(&[]).unwrap();
    let mut ancillary = RecvAncillaryBuffer::new(&mut space);
    let got = rustix::net::recvmsg(
        &theirs,
        &mut [std::io::IoSliceMut::new(&mut buf)],
        &mut ancillary,
        RecvFlags::CMSG_CLOEXEC,
    )
    .unwrap();
    assert!(got.bytes > 0);
    assert_eq!(ancillary.drain().count(), 0);
}

#[test]
fn control_refuses_what_is_not_a_socket() {
    let (r, _w) = rustix::pipe::pipe().unwrap();
    assert!(Control::new(r).is_err());
}

#[test]
fn pty_child_leads_a_session_on_the_slave_and_nothing_is_lost() {
    let mut req = request(
        "sh",
        &[
            "-c",
            "test -t 0 && test -t 1 && test -t 2 && stty size && echo done",
        ],
    );
    req.pty = Some(net_runner_proto::WindowSize {
        rows: 33,
        cols: 101,
    });
    let Started { pid, library_fds } = child::start(&req, &child::Passed::default(), &[]).unwrap();
    assert_eq!(library_fds.len(), 1, "the master alone");
    // A session (and group) of its own.
    assert_eq!(rustix::process::getsid(Some(pid)).unwrap(), pid);
    assert_eq!(rustix::process::getpgid(Some(pid)).unwrap(), pid);
    // Read only after the child is gone and reaped: the output waits in
    // the master, then end of output is EIO.
    let report = reap(pid);
    assert_eq!(report.termination, Termination::Exited(0));
    let mut master = std::fs::File::from(library_fds.into_iter().next().unwrap());
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        match master.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => break e.raw_os_error(),
        }
    };
    assert_eq!(String::from_utf8_lossy(&out), "33 101\r\ndone\r\n");
    assert_eq!(end, Some(libc::EIO));
}

/// A directory removed on drop.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A temporary executable file with `content`.
fn script(content: &str) -> (TempDir, String) {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "nr-shepherd-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let dir = TempDir(dir);
    let path = dir.0.join("script");
    std::fs::write(&path, content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = path.to_str().unwrap().to_owned();
    (dir, path)
}

fn output_of(req: &SpawnRequest) -> (String, Termination) {
    let Started { pid, library_fds } = child::start(req, &child::Passed::default(), &[]).unwrap();
    let mut out = String::new();
    let stdout = library_fds.into_iter().next().unwrap();
    std::fs::File::from(stdout)
        .read_to_string(&mut out)
        .unwrap();
    (out, reap(pid).termination)
}

#[test]
fn a_file_without_shebang_runs_under_sh_like_execvp() {
    let (_dir, path) = script("echo \"sh ran $0 with $1\"\nexit 7\n");
    let mut req = request(&path, &["arg"]);
    req.stdin = StdioMode::Null;
    req.stderr = StdioMode::Null;
    let (out, status) = output_of(&req);
    assert_eq!(out, format!("sh ran {path} with arg\n"));
    assert_eq!(status, Termination::Exited(7));
}

#[test]
fn a_missing_interpreter_is_named() {
    let (_dir, path) = script("#!/no/such/python9 -u\nprint(1)\n");
    let req = request(&path, &[]);
    match child::start(&req, &child::Passed::default(), &[]).map(|s| s.pid) {
        Err(child::StartFailure::Interpreter {
            program,
            interpreter,
        }) => {
            assert_eq!(program, path.as_bytes());
            assert_eq!(interpreter, b"/no/such/python9");
        }
        other => panic!("{other:?}"),
    }
    // Found through PATH too, named by the path that was exec'd.
    let dir = std::path::Path::new(&path).parent().unwrap();
    let mut req = request("script", &[]);
    req.env = vec![format!("PATH=/nonexistent:{}", dir.display()).into_bytes()];
    assert!(matches!(
        child::start(&req, &child::Passed::default(), &[]).map(|s| s.pid),
        Err(child::StartFailure::Interpreter { program, .. }) if program == path.as_bytes()
    ));
}

#[test]
fn passed_descriptors_become_the_childs_stdio() {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let mut req = request("sh", &["-c", "echo to-passed; echo err-too >&2"]);
    req.stdin = StdioMode::Null;
    req.stdout = StdioMode::Inherit;
    req.stderr = StdioMode::Inherit;
    req.passed_stdio = net_runner_proto::PASS_STDOUT | net_runner_proto::PASS_STDERR;
    let fds = vec![w.try_clone().unwrap(), w];
    let passed = child::Passed::new(&req, fds);
    let Started { pid, library_fds } = child::start(&req, &passed, &[]).unwrap();
    assert!(library_fds.is_empty());
    drop(passed);
    let mut out = String::new();
    std::fs::File::from(r).read_to_string(&mut out).unwrap();
    assert_eq!(out, "to-passed\nerr-too\n");
    assert_eq!(reap(pid).termination, Termination::Exited(0));
}

#[test]
fn stat_fields_are_counted_past_the_last_parenthesis() {
    let stat = b"42 (a) b) (c) S 1 42 42 0 -1\n";
    assert_eq!(sys::stat_field(stat, 3), Some(&b"S"[..]));
    assert_eq!(sys::stat_field(stat, 4), Some(&b"1"[..]));
    assert_eq!(sys::stat_field(stat, 8), Some(&b"-1"[..]));
    assert_eq!(sys::stat_field(stat, 9), None);
    assert_eq!(sys::stat_field(stat, 2), None);
    assert_eq!(sys::stat_field(b"no name", 3), None);
    let own = std::fs::read("/proc/self/stat").unwrap();
    let ppid = std::str::from_utf8(sys::stat_field(&own, 4).unwrap()).unwrap();
    assert_eq!(ppid, std::os::unix::process::parent_id().to_string());
}
