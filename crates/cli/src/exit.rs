//! netrunner's exit statuses and how library errors map onto them.

use net_runner::{Error, ExitStatus, SpawnStage};

/// `--timeout` or `--idle-timeout` fired and the program was stopped.
pub(crate) const TIMEOUT: i32 = 124;
/// The timeout fired and SIGKILL was needed (128 + 9), as timeout(1) says.
pub(crate) const TIMEOUT_KILLED: i32 = 128 + libc::SIGKILL;
/// netrunner itself failed (bad usage, I/O error, ...), or `--max-output`
/// was exceeded.
pub(crate) const FAILURE: i32 = 125;
/// The program exists but cannot be executed.
pub(crate) const NOT_EXECUTABLE: i32 = 126;
/// The program was not found.
pub(crate) const NOT_FOUND: i32 = 127;
/// netrunner's stdout was closed by its reader: 128 + SIGPIPE.
pub(crate) const BROKEN_PIPE: i32 = 128 + libc::SIGPIPE;

/// How netrunner ends: its exit status and, for failures, the one-line
/// message printed on stderr (after `netrunner: `).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Exit {
    /// The process exit status.
    pub code: i32,
    /// What went wrong, if anything did.
    pub message: Option<String>,
    /// Die of this signal instead of exiting (the program died of a
    /// signal netrunner forwarded), and whether to send it to netrunner's
    /// whole process group first (the terminal sent it to the program).
    pub raise: Option<(i32, bool)>,
}

/// The status after a timeout: 124, or 137 when the program needed
/// SIGKILL (or the stop signal was KILL), as timeout(1); the program's own
/// status with `--preserve-status`.
pub(crate) fn timed_out(status: ExitStatus, preserve_status: bool) -> i32 {
    if preserve_status {
        status.shell_code()
    } else if status.signal() == Some(libc::SIGKILL) {
        TIMEOUT_KILLED
    } else {
        TIMEOUT
    }
}

impl Exit {
    /// A quiet exit with `code`.
    pub(crate) fn code(code: i32) -> Self {
        Exit {
            code,
            message: None,
            raise: None,
        }
    }

    /// Dies of `signal` (128 + `signal` should that fail); with
    /// `whole_group`, sends it to netrunner's process group.
    pub(crate) fn raise(signal: i32, whole_group: bool) -> Self {
        Exit {
            code: 128 + signal,
            message: None,
            raise: Some((signal, whole_group)),
        }
    }

    /// An exit with `code` and a message.
    pub(crate) fn failure(code: i32, message: impl Into<String>) -> Self {
        Exit {
            code,
            message: Some(message.into()),
            raise: None,
        }
    }

    /// The program's own status, as a shell reports it: its exit code, or
    /// 128 + N when signal N killed it.
    pub(crate) fn from_status(status: ExitStatus) -> Self {
        Exit::code(status.shell_code())
    }

    /// The exit for a library error: 124 for a timeout, 126 when the program
    /// cannot be executed, 127 when it is not found, 125 for the rest
    /// (including `--max-output`).
    pub(crate) fn from_error(err: &Error) -> Self {
        Self::from_error_with(err, false)
    }

    /// As [`from_error`](Self::from_error); after a timeout, the program's
    /// status when `preserve_status`, and 137 when it needed SIGKILL.
    pub(crate) fn from_error_with(err: &Error, preserve_status: bool) -> Self {
        let code = match err {
            Error::Timeout { output, .. } | Error::IdleTimeout { output, .. } => {
                timed_out(output.status, preserve_status)
            }
            // As timeout(1) and a shell say for a missing #! interpreter.
            Error::InterpreterNotFound { .. } => NOT_FOUND,
            // The program exited; what it left behind held the output.
            Error::LeftoverHolders { output, .. } => output.status.shell_code(),
            Error::NotFound { .. } => NOT_FOUND,
            Error::PermissionDenied { .. } => NOT_EXECUTABLE,
            // ENOEXEC (no shebang, wrong architecture), ETXTBSY, ...: found
            // but not executable, as a shell would say.
            Error::Spawn {
                stage: SpawnStage::Exec,
                ..
            } => NOT_EXECUTABLE,
            _ => FAILURE,
        };
        Exit::failure(code, err.to_string())
    }

    /// The exit for an error that came out of a stream as an `io::Error`.
    pub(crate) fn from_io(err: &std::io::Error, preserve_status: bool) -> Self {
        match Error::from_io(err) {
            Some(e) => Exit::from_error_with(e, preserve_status),
            None => Exit::failure(FAILURE, err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::io;
    use std::time::Duration;

    use super::*;

    fn status(script: &str) -> ExitStatus {
        net_runner::Command::new("sh")
            .args(["-c", script])
            .run_blocking()
            .unwrap()
            .status
    }

    #[test]
    fn program_status_is_passed_through() {
        assert_eq!(Exit::from_status(status("exit 0")), Exit::code(0));
        assert_eq!(Exit::from_status(status("exit 3")), Exit::code(3));
        assert_eq!(Exit::from_status(status("exit 255")), Exit::code(255));
        assert_eq!(Exit::from_status(status("kill -USR1 $$")), Exit::code(138));
    }

    #[test]
    fn library_errors() {
        let prog = || OsString::from("p");
        let cases: Vec<(Error, i32)> = vec![
            (Error::NotFound { program: prog() }, NOT_FOUND),
            (Error::PermissionDenied { program: prog() }, NOT_EXECUTABLE),
            (
                Error::Spawn {
                    program: prog(),
                    stage: SpawnStage::Exec,
                    source: io::Error::from_raw_os_error(libc::ENOEXEC),
                },
                NOT_EXECUTABLE,
            ),
            (
                Error::Spawn {
                    program: prog(),
                    stage: SpawnStage::Fork,
                    source: io::Error::from_raw_os_error(libc::EAGAIN),
                },
                FAILURE,
            ),
            (
                Error::CwdNotFound {
                    path: "/nope".into(),
                },
                FAILURE,
            ),
            (Error::Shepherd(net_runner::ShepherdError::Lost), FAILURE),
            (Error::EmptyProgram, FAILURE),
        ];
        for (err, code) in cases {
            let exit = Exit::from_error(&err);
            assert_eq!(exit.code, code, "{err}");
            assert_eq!(exit.message.as_deref(), Some(err.to_string().as_str()));
        }
    }

    #[test]
    fn timeout_and_max_output_come_from_the_library() {
        let err = net_runner::Command::new("sleep")
            .arg("30")
            .timeout(Duration::from_millis(50))
            .run_blocking()
            .unwrap_err();
        assert_eq!(Exit::from_error(&err).code, TIMEOUT);
        let err = net_runner::Command::new("yes")
            .max_output(10)
            .run_blocking()
            .unwrap_err();
        let exit = Exit::from_error(&err);
        assert_eq!(exit.code, FAILURE);
        assert!(exit.message.unwrap().contains("10-byte"));
    }

    #[test]
    fn plain_io_errors_are_failures() {
        let e = io::Error::other("boom");
        assert_eq!(Exit::from_io(&e, false), Exit::failure(FAILURE, "boom"));
    }

    #[test]
    fn broken_pipe_is_141() {
        assert_eq!(BROKEN_PIPE, 141);
    }
}
