//! The `Command` builder: what to run and how.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::future::Future;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_core::Stream;
use net_runner_proto::{SpawnRequest, StdioMode};
use tokio::io::AsyncRead;

use crate::input::Input;
use crate::pump::{Pump, PumpLimits};
use crate::stdio::{self, Kind, Stdio};
use crate::stop::StopSequence;
use crate::terminal::Terminal;
use crate::{
    launch, Chunk, Error, ExitStatus, Output, Process, ProcessStream, Pty, Resource, TaggedStream,
};

/// Where the child's stderr goes.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), net_runner::Error> {
/// use net_runner::{Command, Stderr};
/// let out = Command::new("sh").args(["-c", "echo err >&2"]).stderr(Stderr::Discard).run().await?;
/// assert!(out.stderr.is_empty() && out.stdout.is_empty());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Stderr {
    /// Read separately: [`Output::stderr`], [`Process::read_stderr`], tagged
    /// stream chunks.
    #[default]
    Consume,
    /// Into the stdout pipe, like `2>&1`.
    Redirect,
    /// To `/dev/null`.
    Discard,
    /// The owner's own stderr.
    Inherit,
}

/// Describes a process to run, like [`std::process::Command`]: the builder
/// methods take `&mut self` and return `&mut Self`, so both chaining on a
/// temporary and step-by-step use work, and the run methods take `&self`, so
/// one `Command` can run any number of times.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), net_runner::Error> {
/// use std::time::Duration;
/// use net_runner::Command;
///
/// // Chained, on a temporary.
/// let out = Command::new("sort")
///     .input("b\na\n")
///     .timeout(Duration::from_secs(5))
///     .output()
///     .await?;
/// assert_eq!(out.stdout, b"a\nb\n");
///
/// // Step by step, in a loop.
/// let mut echo = Command::new("echo");
/// for word in ["a", "b", "c"] {
///     echo.arg(word);
/// }
/// assert_eq!(echo.output().await?.stdout, b"a b c\n");
///
/// // As a template: clone, then override at the call site.
/// let mut printenv = Command::new("printenv");
/// printenv.env("WHO", "template").arg("WHO");
/// let mine = printenv.clone().env("WHO", "me").output().await?;
/// assert_eq!(mine.stdout, b"me\n");
/// assert_eq!(printenv.output().await?.stdout, b"template\n");
/// # Ok(()) }
/// ```
///
/// # Cloning and one-shot inputs
///
/// A clone is a full copy, except that a one-shot input
/// ([`input_stream`](Self::input_stream), [`input_reader`](Self::input_reader))
/// is *shared*: the first run of the command or of any of its clones takes it,
/// and every later run fails with [`Error::InputConsumed`] before anything
/// starts, instead of silently running with an empty stdin. Bytes given to
/// [`input`](Self::input) are cheap to clone and feed every run. Setting a new
/// input on a clone replaces its copy only.
///
/// # Dropping
///
/// Whatever runs is always killed with its whole process tree when you let
/// go of it: dropping a [`Process`], a stream, or an unfinished
/// `output`/`run` future sends SIGTERM to the tree, SIGKILL after the
/// [`kill_timeout`](Self::kill_timeout). This is tokio's
/// `kill_on_drop(true)`, always on and extended to descendants; there is no
/// way to leave a child running unwatched (see `docs/migrating.md`).
#[derive(Debug, Clone)]
pub struct Command {
    program: OsString,
    args: Vec<OsString>,
    arg0: Option<OsString>,
    env_clear: bool,
    env: Vec<(OsString, Option<OsString>)>,
    cwd: Option<PathBuf>,
    input: Option<InputSlot>,
    stderr: Stderr,
    kill_timeout: Duration,
    timeout: Option<Duration>,
    max_output: Option<u64>,
    kill_leftovers: bool,
    uid: Option<u32>,
    gid: Option<u32>,
    groups: Option<Vec<u32>>,
    umask: Option<u32>,
    rlimits: Vec<(Resource, u64, u64)>,
    no_new_privs: bool,
    nice: Option<i32>,
    limits: Limits,
    cgroup: crate::cgroup::Config,
    /// PTY mode (issue 12).
    pty: Option<Pty>,
    io: Io,
}

/// Inherited and given stdio, and job control (issue 11), kept together.
#[derive(Debug, Clone, Default)]
struct Io {
    stdin: Option<Stdio>,
    stdout: Option<Stdio>,
    foreground: bool,
}

/// The stopping settings (stop sequence, idle timeout, leftover bound),
/// kept together.
#[derive(Debug, Clone, Default)]
struct Limits {
    stop_sequence: Option<StopSequence>,
    idle_timeout: Option<Duration>,
    leftover_wait: Option<Duration>,
}

/// How long `run` and the streams wait, after the child exited, for
/// processes it left behind to close its output (see
/// [`Command::leftover_wait`]).
pub const DEFAULT_LEFTOVER_WAIT: Duration = Duration::from_secs(2);

/// The input as the command keeps it: bytes are copied into every run; a
/// stream or reader can feed one run only, so clones share one slot and the
/// first run takes it.
#[derive(Clone)]
enum InputSlot {
    Bytes(Bytes),
    OneShot(Arc<Mutex<Option<Input>>>),
}

impl fmt::Debug for InputSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputSlot::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            InputSlot::OneShot(slot) => {
                let taken = slot.lock().map_or(true, |s| s.is_none());
                f.write_str(if taken { "OneShot(taken)" } else { "OneShot" })
            }
        }
    }
}

/// The default grace period between SIGTERM and SIGKILL.
///
/// ```
/// assert_eq!(net_runner::DEFAULT_KILL_TIMEOUT, std::time::Duration::from_secs(5));
/// ```
pub const DEFAULT_KILL_TIMEOUT: Duration = Duration::from_secs(5);

impl Command {
    /// A command running `program` (searched in the child's `PATH` when it
    /// has no `/`).
    ///
    /// ```
    /// let cmd = net_runner::Command::new("ls");
    /// assert_eq!(cmd.get_program(), "ls");
    /// ```
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Command {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            arg0: None,
            env_clear: false,
            env: Vec::new(),
            cwd: None,
            input: None,
            stderr: Stderr::Consume,
            kill_timeout: DEFAULT_KILL_TIMEOUT,
            timeout: None,
            max_output: None,
            kill_leftovers: true,
            uid: None,
            gid: None,
            groups: None,
            umask: None,
            rlimits: Vec::new(),
            no_new_privs: false,
            nice: None,
            limits: Limits::default(),
            cgroup: crate::cgroup::Config::default(),
            pty: None,
            io: Io::default(),
        }
    }

    /// Adds one argument (any bytes but NUL; no shell quoting happens).
    ///
    /// ```
    /// let out = net_runner::Command::new("echo").arg("a b").run_blocking()?;
    /// assert_eq!(out.stdout, b"a b\n");
    /// # Ok::<(), net_runner::Error>(())
    /// ```
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    ///
    /// ```
    /// let out = net_runner::Command::new("printf").args(["%s-%s", "a", "b"]).run_blocking()?;
    /// assert_eq!(out.stdout, b"a-b");
    /// # Ok::<(), net_runner::Error>(())
    /// ```
    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets `argv[0]`, the name the program sees itself called by; the
    /// program run is still [`get_program`](Self::get_program) (std's
    /// `CommandExt::arg0`).
    ///
    /// ```
    /// let out = net_runner::Command::new("sh").arg0("renamed").args(["-c", "echo $0"]).run_blocking()?;
    /// assert_eq!(out.stdout, b"renamed\n");
    /// # Ok::<(), net_runner::Error>(())
    /// ```
    pub fn arg0(&mut self, arg0: impl AsRef<OsStr>) -> &mut Self {
        self.arg0 = Some(arg0.as_ref().to_owned());
        self
    }

    /// Sets an environment variable for the child.
    ///
    /// ```
    /// let out = net_runner::Command::new("printenv").arg("K").env("K", "v").run_blocking()?;
    /// assert_eq!(out.stdout, b"v\n");
    /// # Ok::<(), net_runner::Error>(())
    /// ```
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Sets several environment variables.
    ///
    /// ```
    /// let out = net_runner::Command::new("sh")
    ///     .args(["-c", "echo $A$B"])
    ///     .envs([("A", "1"), ("B", "2")])
    ///     .run_blocking()?;
    /// assert_eq!(out.stdout, b"12\n");
    /// # Ok::<(), net_runner::Error>(())
    /// ```
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self.env(k, v);
        }
        self
    }

    /// Removes an environment variable from the child's environment.
    ///
    /// ```
    /// let out = net_runner::Command::new("printenv").arg("HOME").env_remove("HOME").run_blocking()?;
    /// assert!(!out.status.success());
    /// # Ok::<(), net_runner::Error>(())
    /// ```
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Self {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// Starts the child with an empty environment (plus what `env` sets after).
    ///
    /// ```
    /// let out = net_runner::Command::new("/usr/bin/env").env_clear().env("ONLY", "1").run_blocking()?;
    /// assert_eq!(out.stdout, b"ONLY=1\n");
    /// # Ok::<(), net_runner::Error>(())
    /// ```
    pub fn env_clear(&mut self) -> &mut Self {
        self.env_clear = true;
        self.env.clear();
        self
    }

    /// The child's working directory; a relative path is resolved against
    /// the current directory when the command runs, as std does.
    ///
    /// ```
    /// let out = net_runner::Command::new("pwd").current_dir("/").run_blocking()?;
    /// assert_eq!(out.stdout, b"/\n");
    /// # Ok::<(), net_runner::Error>(())
    /// ```
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Self {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// The old name of [`current_dir`](Self::current_dir).
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// let out = net_runner::Command::new("pwd").cwd("/").run_blocking()?;
    /// assert_eq!(out.stdout, b"/\n");
    /// # Ok::<(), net_runner::Error>(())
    /// ```
    #[deprecated(since = "0.2.0", note = "use `current_dir`, as in std")]
    pub fn cwd(&mut self, dir: impl AsRef<Path>) -> &mut Self {
        self.current_dir(dir)
    }

    /// Bytes to feed to stdin (then stdin is closed). Cheap to clone
    /// ([`Bytes`]): every run of the command, and of its clones, gets them.
    ///
    /// ```
    /// let out = net_runner::Command::new("wc").arg("-c").input("four").run_blocking()?;
    /// assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "4");
    /// # Ok::<(), net_runner::Error>(())
    /// ```
    pub fn input(&mut self, data: impl Into<Bytes>) -> &mut Self {
        self.input = Some(InputSlot::Bytes(data.into()));
        self
    }

    /// A stream of buffers to feed to stdin. One-shot: the first run takes
    /// it; a later run of this command or a clone fails with
    /// [`Error::InputConsumed`] (see [Cloning](Self#cloning-and-one-shot-inputs)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// use bytes::Bytes;
    /// let parts = futures_util::stream::iter([Ok(Bytes::from("a")), Ok(Bytes::from("b"))]);
    /// let mut cat = net_runner::Command::new("cat");
    /// cat.input_stream(parts);
    /// assert_eq!(cat.output().await?.stdout, b"ab");
    /// assert!(matches!(cat.output().await, Err(net_runner::Error::InputConsumed)));
    /// # Ok(()) }
    /// ```
    pub fn input_stream(
        &mut self,
        stream: impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    ) -> &mut Self {
        self.one_shot(Input::Stream(Box::pin(stream)))
    }

    /// A reader whose bytes feed stdin. One-shot, like
    /// [`input_stream`](Self::input_stream).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let file = tokio::fs::File::open("/etc/hostname").await?;
    /// let out = net_runner::Command::new("cat").input_reader(file).output().await?;
    /// assert_eq!(out.stdout, std::fs::read("/etc/hostname")?);
    /// # Ok(()) }
    /// ```
    pub fn input_reader(&mut self, reader: impl AsyncRead + Send + 'static) -> &mut Self {
        self.one_shot(Input::Reader(Box::pin(reader)))
    }

    fn one_shot(&mut self, input: Input) -> &mut Self {
        self.input = Some(InputSlot::OneShot(Arc::new(Mutex::new(Some(input)))));
        self
    }

    /// Where stderr goes (default: [`Stderr::Consume`]).
    ///
    /// ```
    /// use net_runner::{Command, Stderr};
    /// let out = Command::new("sh").args(["-c", "echo e >&2"]).stderr(Stderr::Redirect).run_blocking()?;
    /// assert_eq!(out.stdout, b"e\n");
    /// # Ok::<(), net_runner::Error>(())
    /// ```
    pub fn stderr(&mut self, mode: Stderr) -> &mut Self {
        self.stderr = mode;
        self
    }

    /// Grace period between SIGTERM and SIGKILL (default 5 s), used on
    /// timeout, `max_output`, graceful shutdown and when the owner goes away.
    ///
    /// ```
    /// use std::time::Duration;
    /// let out = net_runner::Command::new("true").kill_timeout(Duration::from_millis(200)).run_blocking()?;
    /// assert!(out.status.success());
    /// # Ok::<(), net_runner::Error>(())
    /// ```
    pub fn kill_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.kill_timeout = timeout;
        self
    }

    /// Overall time limit, enforced by the shepherd for every way of
    /// running ([`run`](Self::run), the streams, [`spawn`](Self::spawn)),
    /// even while the owner is stalled. On expiry the shepherd runs the
    /// [stop sequence](Self::stop_sequence); the output pipes stay open and
    /// are read until the process is gone, so what it writes while it shuts
    /// down is kept. Then [`Error::Timeout`] carries all output and the real
    /// exit status (`run`, streams, and [`Process::wait`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use net_runner::{Command, Error};
    /// let err = Command::new("sleep").arg("10").timeout(Duration::from_millis(100)).run_blocking();
    /// assert!(matches!(err, Err(Error::Timeout { .. })));
    /// ```
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = Some(timeout);
        self
    }

    /// Limit on the bytes read from stdout and from stderr (each), for
    /// every way of reading. When exceeded, the stop sequence starts and the
    /// rest of that stream is drained and discarded (never closed under the
    /// program) until the process is gone. `run` and the streams then fail
    /// with [`Error::MaxOutputExceeded`] carrying exactly the first `limit`
    /// bytes; under [`spawn`](Self::spawn), the read after the first
    /// `limit` bytes fails with [`Error::OutputLimit`].
    ///
    /// ```
    /// use net_runner::{Command, Error};
    /// match Command::new("yes").max_output(5).run_blocking() {
    ///     Err(Error::MaxOutputExceeded { output, .. }) => assert_eq!(output.stdout, b"y\ny\ny"),
    ///     other => panic!("{other:?}"),
    /// }
    /// ```
    pub fn max_output(&mut self, limit: u64) -> &mut Self {
        self.max_output = Some(limit);
        self
    }

    /// Whether processes left in the child's group (or escaped from it)
    /// after the child exits are killed too (default: yes).
    ///
    /// ```
    /// let out = net_runner::Command::new("sh").args(["-c", "sleep 0.1 &"]).kill_leftovers(false).run_blocking()?;
    /// assert!(out.status.success());
    /// # Ok::<(), net_runner::Error>(())
    /// ```
    pub fn kill_leftovers(&mut self, kill: bool) -> &mut Self {
        self.kill_leftovers = kill;
        self
    }

    /// How the process is stopped on timeout, `max_output`, idle timeout,
    /// [`Process::shutdown`], drop, or when the owner dies. The shepherd
    /// runs it, so it completes even if the owner dies midway. Default:
    /// SIGTERM, [`kill_timeout`](Self::kill_timeout), SIGKILL.
    ///
    /// ```
    /// use std::time::Duration;
    /// use net_runner::{Command, Signal, StopSequence};
    /// let stop = StopSequence::new()
    ///     .close_stdin(Duration::ZERO)
    ///     .signal(Signal::Int, Duration::from_secs(2))
    ///     .signal(Signal::Term, Duration::from_secs(5));
    /// let mut cmd = Command::new("server");
    /// cmd.stop_sequence(stop); // then SIGKILL
    /// ```
    pub fn stop_sequence(&mut self, sequence: StopSequence) -> &mut Self {
        self.limits.stop_sequence = Some(sequence);
        self
    }

    /// Stops the program (as on a timeout) when it produced no output for
    /// `d`: [`Error::IdleTimeout`]. Applies to [`run`](Self::run) and the
    /// streams. Measured by the library between chunks *read*: a consumer
    /// that stops polling a stream for `d` looks idle too (see the README).
    ///
    /// ```
    /// use std::time::Duration;
    /// use net_runner::{Command, Error};
    /// let err = Command::new("sleep").arg("10").idle_timeout(Duration::from_millis(200)).run_blocking();
    /// assert!(matches!(err, Err(Error::IdleTimeout { .. })));
    /// ```
    pub fn idle_timeout(&mut self, d: Duration) -> &mut Self {
        self.limits.idle_timeout = Some(d);
        self
    }

    /// With [`kill_leftovers(false)`](Self::kill_leftovers): once the
    /// child exited, how long `run` and the streams keep reading for
    /// processes it left behind to close its output (default 2 s), before
    /// they give up with [`Error::LeftoverHolders`] naming them.
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut cmd = net_runner::Command::new("true");
    /// cmd.kill_leftovers(false).leftover_wait(Duration::from_millis(500));
    /// assert!(cmd.run_blocking()?.status.success());
    /// # Ok::<(), net_runner::Error>(())
    /// ```
    pub fn leftover_wait(&mut self, d: Duration) -> &mut Self {
        self.limits.leftover_wait = Some(d);
        self
    }

    /// Runs the child as this user (`setuid` in the shepherd, before exec;
    /// std's `CommandExt::uid`). Needs the privilege to do so: without it
    /// the run fails with [`Error::Spawn`] at
    /// [`SpawnStage::SetUid`](crate::SpawnStage::SetUid) and the program
    /// never starts, never runs as the owner instead. Without
    /// [`groups`](Self::groups), the supplementary groups are dropped when
    /// permitted, as std does. Set [`gid`](Self::gid) too: the group is
    /// not derived from the user.
    ///
    /// ```
    /// use std::os::unix::fs::MetadataExt;
    /// use net_runner::{Command, Error, SpawnStage};
    /// let me = std::fs::metadata("/proc/self")?.uid();
    /// let out = Command::new("id").arg("-u").uid(me).run_blocking()?;
    /// assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), me.to_string());
    /// if me != 0 {
    ///     let err = Command::new("id").uid(0).run_blocking().unwrap_err();
    ///     assert!(matches!(err, Error::Spawn { stage: SpawnStage::SetUid(0), .. }));
    /// }
    /// # Ok::<(), net_runner::Error>(())
    /// ```
    pub fn uid(&mut self, uid: u32) -> &mut Self {
        self.uid = Some(uid);
        self
    }

    /// Runs the child with this group (`setgid`; std's `CommandExt::gid`).
    /// Fails at [`SpawnStage::SetGid`](crate::SpawnStage::SetGid) without
    /// the privilege.
    ///
    /// ```
    /// use std::os::unix::fs::MetadataExt;
    /// let me = std::fs::metadata("/proc/self")?.gid();
    /// let out = net_runner::Command::new("id").arg("-g").gid(me).run_blocking()?;
    /// assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), me.to_string());
    /// # Ok::<(), net_runner::Error>(())
    /// ```
    pub fn gid(&mut self, gid: u32) -> &mut Self {
        self.gid = Some(gid);
        self
    }

    /// The child's supplementary groups (`setgroups`; std's unstable
    /// `CommandExt::groups`); empty drops them all. Needs `CAP_SETGID`:
    /// without it the run fails at
    /// [`SpawnStage::SetGroups`](crate::SpawnStage::SetGroups).
    ///
    /// ```
    /// use std::os::unix::fs::MetadataExt;
    /// use net_runner::{Command, Error, SpawnStage};
    /// let me = std::fs::metadata("/proc/self")?;
    /// let result = Command::new("id").arg("-G").groups([]).run_blocking();
    /// if me.uid() == 0 {
    ///     // Only the primary group is left.
    ///     assert_eq!(String::from_utf8_lossy(&result?.stdout).trim(), me.gid().to_string());
    /// } else {
    ///     assert!(matches!(result, Err(Error::Spawn { stage: SpawnStage::SetGroups, .. })));
    /// }
    /// # Ok::<(), net_runner::Error>(())
    /// ```
    pub fn groups(&mut self, groups: impl IntoIterator<Item = u32>) -> &mut Self {
        self.groups = Some(groups.into_iter().collect());
        self
    }

    /// The child's file mode creation mask, `0` to `0o777`.
    ///
    /// ```
    /// let out = net_runner::Command::new("sh").args(["-c", "umask"]).umask(0o027).run_blocking()?;
    /// assert_eq!(out.stdout, b"0027\n");
    /// # Ok::<(), net_runner::Error>(())
    /// ```
    pub fn umask(&mut self, mask: u32) -> &mut Self {
        self.umask = Some(mask);
        self
    }

    /// Sets a resource limit for the child (`setrlimit`): `soft` is enforced,
    /// `hard` is the ceiling the child may raise `soft` to. [`RLIM_INFINITY`](crate::RLIM_INFINITY)
    /// is "unlimited". Raising a hard limit needs `CAP_SYS_RESOURCE`: without
    /// it the run fails at [`SpawnStage::Rlimit`](crate::SpawnStage::Rlimit).
    /// Repeatable; the last one for a resource wins.
    ///
    /// ```
    /// use net_runner::{Command, Resource};
    /// let out = Command::new("sh")
    ///     .args(["-c", "ulimit -n; ulimit -c"])
    ///     .rlimit(Resource::Nofile, 64, 64)
    ///     .rlimit(Resource::Core, 0, 0)
    ///     .run_blocking()?;
    /// assert_eq!(out.stdout, b"64\n0\n");
    /// # Ok::<(), net_runner::Error>(())
    /// ```
    pub fn rlimit(&mut self, resource: Resource, soft: u64, hard: u64) -> &mut Self {
        self.rlimits.retain(|(r, _, _)| *r != resource);
        self.rlimits.push((resource, soft, hard));
        self
    }

    /// Sets `PR_SET_NO_NEW_PRIVS` for the child: no exec in its tree can
    /// gain privileges (setuid bits, file capabilities are ignored).
    ///
    /// ```
    /// let out = net_runner::Command::new("grep").args(["NoNewPrivs", "/proc/self/status"]).no_new_privs(true).run_blocking()?;
    /// assert!(String::from_utf8_lossy(&out.stdout).ends_with("1\n"));
    /// # Ok::<(), net_runner::Error>(())
    /// ```
    pub fn no_new_privs(&mut self, on: bool) -> &mut Self {
        self.no_new_privs = on;
        self
    }

    /// The child's nice value, -20 (most favoured) to 19, set absolutely
    /// (`setpriority`), not added to the owner's. Going below the owner's
    /// value needs `CAP_SYS_NICE` (or `RLIMIT_NICE`): without it the run
    /// fails at [`SpawnStage::Nice`](crate::SpawnStage::Nice).
    ///
    /// ```
    /// let out = net_runner::Command::new("sh").args(["-c", "ps -o ni= -p $$"]).nice(19).run_blocking()?;
    /// assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "19");
    /// # Ok::<(), net_runner::Error>(())
    /// ```
    pub fn nice(&mut self, nice: i32) -> &mut Self {
        self.nice = Some(nice);
        self
    }

    // --- cgroups (issue 13) -------------------------------------------

    /// Runs the child in its own cgroup, `path` relative to the base (by
    /// default the caller's own cgroup; see [`cgroup_base`](Self::cgroup_base)).
    /// The hierarchies are found in `/proc/self/mountinfo`: the cgroup2
    /// directory, plus, on hybrid hosts, a directory of the same path in
    /// each cgroup v1 hierarchy that carries a limit. The child is in all of
    /// them before it execs, so everything it starts is too (a `setsid`
    /// daemon included); when the command ends, all of them are killed and
    /// the directories removed (also when the owner or the shepherd is
    /// SIGKILLed). The directory must not exist: another command uses it.
    ///
    /// `path` must be relative, without `.`, `..` or empty components, NUL
    /// or newline, at most 1024 bytes: anything else is
    /// [`Error::Cgroup`] with [`CgroupError::InvalidPath`](crate::CgroupError::InvalidPath)
    /// before anything starts. Needs write access to the hierarchy (root,
    /// or a delegated subtree as base). Cannot be combined with
    /// [`kill_leftovers(false)`](Self::kill_leftovers).
    ///
    /// ```
    /// # fn main() -> Result<(), net_runner::Error> {
    /// # if std::fs::metadata("/sys/fs/cgroup").is_err() || not_root() { return Ok(()); }
    /// let name = format!("doc-cgroup-{}", std::process::id());
    /// let out = net_runner::Command::new("cat").arg("/proc/self/cgroup").cgroup(&name).run_blocking()?;
    /// assert!(String::from_utf8_lossy(&out.stdout).contains(&name));
    /// # Ok(()) }
    /// # fn not_root() -> bool { !std::fs::read_to_string("/proc/self/status").unwrap().lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")) }
    /// ```
    pub fn cgroup(&mut self, path: impl AsRef<Path>) -> &mut Self {
        self.cgroup.path = Some(path.as_ref().to_owned());
        self
    }

    /// The base under which [`cgroup`](Self::cgroup) paths are created: a
    /// cgroup path as `/proc/self/cgroup` shows them (`/netrunner`, `/`),
    /// the same in every hierarchy; it must exist. Default: the
    /// [`NETRUNNER_CGROUP_BASE`](crate::CGROUP_BASE_ENV) variable, else the
    /// caller's own cgroup. On cgroup2, limits need a base whose cgroup has
    /// no processes of its own (the kernel enables controllers only there).
    ///
    /// ```
    /// use net_runner::{CgroupError, Command, Error};
    /// let err = Command::new("true").cgroup("x").cgroup_base("relative").run_blocking().unwrap_err();
    /// assert!(matches!(err, Error::Cgroup(CgroupError::InvalidPath { what: "base", .. })));
    /// ```
    pub fn cgroup_base(&mut self, base: impl AsRef<Path>) -> &mut Self {
        self.cgroup.base = Some(base.as_ref().to_owned());
        self
    }

    /// Limits the memory of the child's cgroup to `bytes` (swap included
    /// where swap is accounted): past it, the kernel's OOM killer kills a
    /// process of the cgroup, and [`Stats::end`](crate::Stats::end) says
    /// [`End::OomKilled`](crate::End::OomKilled) when that was the child.
    /// `memory.max` on cgroup2 when its memory controller is available to
    /// the base, else `memory.limit_in_bytes` in the v1 memory hierarchy;
    /// neither is [`CgroupError::ControllerUnavailable`](crate::CgroupError::ControllerUnavailable)
    /// before anything runs. Without [`cgroup`](Self::cgroup), a cgroup
    /// named `netrunner-<pid>-<n>` is made for the run.
    ///
    /// ```
    /// # fn main() -> Result<(), net_runner::Error> {
    /// # if std::fs::metadata("/sys/fs/cgroup").is_err() || not_root() { return Ok(()); }
    /// use net_runner::{Command, End};
    /// // Allocates 200 MiB in a 50 MiB cgroup.
    /// let out = Command::new("python3").args(["-c", "b = bytearray(200 << 20)"])
    ///     .memory_max(50 << 20)
    ///     .run_blocking()?;
    /// assert_eq!(out.stats.end, Some(End::OomKilled));
    /// # Ok(()) }
    /// # fn not_root() -> bool { !std::fs::read_to_string("/proc/self/status").unwrap().lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")) || std::process::Command::new("python3").arg("-V").output().is_err() }
    /// ```
    pub fn memory_max(&mut self, bytes: u64) -> &mut Self {
        self.cgroup.memory_max = Some(bytes);
        self
    }

    /// Limits the number of processes (and threads) in the child's cgroup:
    /// `fork` past it fails with `EAGAIN`. `pids.max` on cgroup2 or in the
    /// v1 pids hierarchy, as for [`memory_max`](Self::memory_max).
    ///
    /// ```
    /// # fn main() -> Result<(), net_runner::Error> {
    /// # if std::fs::metadata("/sys/fs/cgroup").is_err() || not_root() { return Ok(()); }
    /// let out = net_runner::Command::new("sh")
    ///     .args(["-c", "sleep 1 & sleep 1 & sleep 1 & wait"])
    ///     .pids_max(2)
    ///     .run_blocking()?;
    /// assert!(String::from_utf8_lossy(&out.stderr).contains("fork"));
    /// # Ok(()) }
    /// # fn not_root() -> bool { !std::fs::read_to_string("/proc/self/status").unwrap().lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")) }
    /// ```
    pub fn pids_max(&mut self, max: u64) -> &mut Self {
        self.cgroup.pids_max = Some(max);
        self
    }

    /// Limits the CPU time of the child's cgroup to `quota` per `period`
    /// (`cpu.max`, or `cpu.cfs_quota_us`/`cpu.cfs_period_us` in the v1 cpu
    /// hierarchy): `10ms` per `100ms` is a tenth of one CPU; a quota above
    /// the period allows several CPUs. The period is 1 ms to 1 s, the
    /// quota at least 1 ms ([`Error::InvalidOption`] otherwise).
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut cmd = net_runner::Command::new("make");
    /// cmd.cpu_max(Duration::from_millis(50), Duration::from_millis(100)); // half a CPU
    /// ```
    pub fn cpu_max(&mut self, quota: Duration, period: Duration) -> &mut Self {
        self.cgroup.cpu_max = Some((quota, period));
        self
    }

    /// Where the child's stdin comes from when no [`input`](Self::input)
    /// is set: [`Stdio::inherit`] (this program's stdin, a terminal
    /// included), [`Stdio::null`], a file or descriptor
    /// ([`Stdio::from`]), or [`Stdio::piped`]. Default: a pipe for
    /// [`spawn`](Self::spawn) (written with [`Process::write`]), `/dev/null`
    /// for [`run`](Self::run) and the streams (where `piped` means the same).
    ///
    /// ```
    /// use net_runner::{Command, Stdio};
    /// let file = std::fs::File::open("/etc/hostname")?;
    /// let out = Command::new("cat").stdin(Stdio::from(file)).run_blocking()?;
    /// assert_eq!(out.stdout, std::fs::read("/etc/hostname")?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stdin(&mut self, stdin: Stdio) -> &mut Self {
        self.io.stdin = Some(stdin);
        self
    }

    /// Where the child's stdout goes, for [`spawn`](Self::spawn) (default:
    /// a pipe read with [`Process::read`]). [`run`](Self::run),
    /// [`output`](Self::output), [`status`](Self::status) and the streams
    /// always read stdout through a pipe: that is what they are for.
    /// With [`Stdio::inherit`] the child writes to this program's stdout
    /// directly, a terminal included (colours, `isatty`), and the order of
    /// its stdout and stderr lines is the order it wrote them.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// use net_runner::{Command, Stderr, Stdio};
    /// let mut p = Command::new("echo")
    ///     .arg("straight to our stdout")
    ///     .stdin(Stdio::null())
    ///     .stdout(Stdio::inherit())
    ///     .stderr(Stderr::Inherit)
    ///     .spawn()
    ///     .await?;
    /// assert_eq!(p.read().await?, None); // nothing comes through us
    /// assert!(p.wait().await?.success());
    /// # Ok(()) }
    /// ```
    pub fn stdout(&mut self, stdout: Stdio) -> &mut Self {
        self.io.stdout = Some(stdout);
        self
    }

    /// Job control, as a shell runs a foreground job: when this program's
    /// process group is the foreground group of its controlling terminal,
    /// the child's group becomes it (set by the child before exec), so the
    /// child can read the terminal and Ctrl-C, Ctrl-\ and Ctrl-Z reach it
    /// directly. This program takes the terminal back when the child stops
    /// or exits, or when the [`Process`] is dropped; see
    /// [`Process::wait_event`] and [`Process::resume`] for Ctrl-Z and `fg`.
    /// Without a terminal, or from a background job, it does nothing.
    ///
    /// ```
    /// let out = net_runner::Command::new("true").foreground(true).run_blocking()?;
    /// assert!(out.status.success());
    /// # Ok::<(), net_runner::Error>(())
    /// ```
    pub fn foreground(&mut self, on: bool) -> &mut Self {
        self.io.foreground = on;
        self
    }

    /// The program, as given to [`new`](Self::new).
    ///
    /// ```
    /// assert_eq!(net_runner::Command::new("ls").get_program(), "ls");
    /// ```
    pub fn get_program(&self) -> &OsStr {
        &self.program
    }

    /// The arguments, without the program or `arg0`.
    ///
    /// ```
    /// use std::ffi::OsStr;
    /// let mut cmd = net_runner::Command::new("ls");
    /// cmd.args(["-l", "/"]);
    /// assert_eq!(cmd.get_args().collect::<Vec<_>>(), [OsStr::new("-l"), OsStr::new("/")]);
    /// ```
    pub fn get_args(&self) -> impl ExactSizeIterator<Item = &OsStr> {
        self.args.iter().map(OsString::as_os_str)
    }

    /// The environment changes set on this command, in order: `Some` value
    /// for [`env`](Self::env), `None` for [`env_remove`](Self::env_remove)
    /// (as std's `get_envs`; [`env_clear`](Self::env_clear) forgets earlier
    /// ones).
    ///
    /// ```
    /// use std::ffi::OsStr;
    /// let mut cmd = net_runner::Command::new("ls");
    /// cmd.env("A", "1").env_remove("B");
    /// let envs: Vec<_> = cmd.get_envs().collect();
    /// assert_eq!(envs, [(OsStr::new("A"), Some(OsStr::new("1"))), (OsStr::new("B"), None)]);
    /// ```
    pub fn get_envs(&self) -> impl ExactSizeIterator<Item = (&OsStr, Option<&OsStr>)> {
        self.env.iter().map(|(k, v)| (k.as_os_str(), v.as_deref()))
    }

    /// The working directory set with [`current_dir`](Self::current_dir).
    ///
    /// ```
    /// use std::path::Path;
    /// let mut cmd = net_runner::Command::new("ls");
    /// assert_eq!(cmd.get_current_dir(), None);
    /// cmd.current_dir("/tmp");
    /// assert_eq!(cmd.get_current_dir(), Some(Path::new("/tmp")));
    /// ```
    pub fn get_current_dir(&self) -> Option<&Path> {
        self.cwd.as_deref()
    }

    /// Runs to completion and collects stdout, stderr, status and stats.
    /// Input is written while output is read, so any size works. A
    /// non-zero exit is not an error: look at [`Output::status`].
    ///
    /// The returned future owns what it needs (`'static`, `Send`): the
    /// command can be changed or dropped meanwhile, and the future spawned
    /// as a task. Dropping it before it completes kills the process tree.
    ///
    /// Needs a tokio runtime with I/O and time enabled (`#[tokio::main]`
    /// has both); polled outside any tokio runtime it fails with
    /// [`Error::NoRuntime`]. Without tokio, use
    /// [`run_blocking`](Self::run_blocking).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let out = net_runner::Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]).run().await?;
    /// assert_eq!((out.stdout, out.stderr, out.status.code()), (b"out\n".to_vec(), b"err\n".to_vec(), Some(3)));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// Bad input is reported before anything starts: [`Error::EmptyProgram`],
    /// [`Error::NulByte`], [`Error::InvalidEnvName`], [`Error::InvalidOption`],
    /// [`Error::InputConsumed`]. Starting can fail with
    /// [`Error::NotFound`], [`Error::PermissionDenied`],
    /// [`Error::CwdNotFound`], [`Error::Cwd`], [`Error::Spawn`] (with the
    /// [`SpawnStage`](crate::SpawnStage) that failed: E2BIG, EMFILE, setuid, ...),
    /// [`Error::Shepherd`], or [`Error::NoRuntime`] outside tokio.
    /// Then [`Error::Timeout`], [`Error::IdleTimeout`] and
    /// [`Error::MaxOutputExceeded`] (with all output read, the exit status
    /// and the stats), [`Error::LeftoverHolders`], and [`Error::Io`] for a
    /// failed read or input stream.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops the run: the process tree is stopped by
    /// its shepherd (the stop sequence), and the output read so far is lost.
    pub fn run(&self) -> impl Future<Output = Result<Output, Error>> + Send + 'static {
        let pump = self.pump();
        async move { pump.await?.collect().await }
    }

    /// The std and tokio name of [`run`](Self::run): the same thing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let out = net_runner::Command::new("echo").arg("hi").output().await?;
    /// assert_eq!(out.stdout, b"hi\n");
    /// # Ok(()) }
    /// ```
    pub fn output(&self) -> impl Future<Output = Result<Output, Error>> + Send + 'static {
        self.run()
    }

    /// Runs to completion and returns only the exit status, like std's and
    /// tokio's `status()`. The child's stdout and stderr are copied to this
    /// program's stdout and stderr as they arrive (with [`Stderr::Consume`];
    /// other [`stderr`](Self::stderr) modes apply as set). Unlike std they
    /// are pipes, not the inherited descriptors: a child that asks whether
    /// its stdout is a terminal hears no.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let status = net_runner::Command::new("sh").args(["-c", "echo shown; exit 4"]).status().await?;
    /// assert_eq!(status.code(), Some(4));
    /// # Ok(()) }
    /// ```
    pub fn status(&self) -> impl Future<Output = Result<ExitStatus, Error>> + Send + 'static {
        let pump = self.pump();
        async move {
            use tokio::io::AsyncWriteExt;
            let mut pump = pump.await?;
            let (mut out, mut err) = (tokio::io::stdout(), tokio::io::stderr());
            while let Some(step) = pump.next().await {
                match step {
                    // A closed stdout of ours is no reason to stop the child.
                    Ok(Chunk::Stdout(b)) => {
                        let _ = out.write_all(&b).await;
                        let _ = out.flush().await;
                    }
                    Ok(Chunk::Stderr(b)) => {
                        let _ = err.write_all(&b).await;
                    }
                    Err(e) => return Err(pump.error_with_output(e, Vec::new(), Vec::new())),
                }
            }
            pump.status()
                .ok_or(Error::Shepherd(crate::ShepherdError::Lost))
        }
    }

    /// Runs to completion on a private runtime, for callers without tokio.
    ///
    /// ```
    /// let out = net_runner::Command::new("echo").arg("hi").run_blocking()?;
    /// assert_eq!(out.stdout, b"hi\n");
    /// # Ok::<(), net_runner::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run), but never [`Error::NoRuntime`]: it brings its
    /// own runtime (on a fresh thread if called inside one).
    pub fn run_blocking(&self) -> Result<Output, Error> {
        crate::blocking::block_on(self.run())
    }

    /// Starts the child and returns a handle for interactive use. Without an
    /// [`input`](Self::input), stdin is a pipe the caller writes with
    /// [`Process::write`]; with one, stdin is fed from it in a background
    /// task. Nothing is read until asked: see [`Process::read`].
    ///
    /// Needs a tokio runtime with I/O and time enabled (`#[tokio::main]`
    /// has both); polled outside any tokio runtime it fails with
    /// [`Error::NoRuntime`]. Without tokio, use
    /// [`run_blocking`](Self::run_blocking).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let mut p = net_runner::Command::new("cat").spawn().await?;
    /// p.write(b"hi").await?;
    /// p.close_stdin();
    /// assert_eq!(p.read().await?.as_deref(), Some(&b"hi"[..]));
    /// assert!(p.wait().await?.success());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// Bad input is reported before anything starts: [`Error::EmptyProgram`],
    /// [`Error::NulByte`], [`Error::InvalidEnvName`], [`Error::InvalidOption`],
    /// [`Error::InputConsumed`]. Starting can fail with
    /// [`Error::NotFound`], [`Error::PermissionDenied`],
    /// [`Error::CwdNotFound`], [`Error::Cwd`], [`Error::Spawn`] (with the
    /// [`SpawnStage`](crate::SpawnStage) that failed: E2BIG, EMFILE, setuid, ...),
    /// [`Error::Shepherd`], or [`Error::NoRuntime`] outside tokio.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes leaves nothing running: a
    /// child already started is stopped with its tree, and its shepherd is
    /// reaped.
    pub fn spawn(&self) -> impl Future<Output = Result<Process, Error>> + Send + 'static {
        let input = self.take_input();
        let stdin = match (&input, &self.io.stdin) {
            (Ok(None), Some(stdin)) => stdin.0.clone(),
            _ => Kind::Piped,
        };
        let stdout = self.io.stdout.as_ref().map_or(Kind::Piped, |s| s.0.clone());
        let launch = self.launch(stdin, stdout, self.max_output);
        async move {
            let input = input?;
            let mut process = launch.await?;
            if let Some(input) = input {
                if let Some(stdin) = process.take_stdin() {
                    tokio::spawn(crate::input::feed(stdin, input));
                }
            }
            Ok(process)
        }
    }

    /// Starts the child and returns its stdout as a lazy stream of chunks:
    /// nothing is read until polled, so a slow consumer slows the child.
    /// Dropping the stream kills the process tree. Read it with
    /// [`ProcessStream::next_chunk`] or [`ProcessStream::lines`] (no extra
    /// crate), as a `futures` `Stream`, or as a tokio `AsyncRead`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// let mut s = net_runner::Command::new("seq").args(["1", "3"]).stream().await?;
    /// let mut all = Vec::new();
    /// while let Some(chunk) = s.next_chunk().await? {
    ///     all.extend_from_slice(&chunk);
    /// }
    /// assert_eq!(all, b"1\n2\n3\n");
    /// assert!(s.status().unwrap().success());
    /// # Ok(()) }
    /// ```
    ///
    /// Needs a tokio runtime with I/O and time enabled (`#[tokio::main]`
    /// has both); polled outside any tokio runtime it fails with
    /// [`Error::NoRuntime`]. Without tokio, use
    /// [`run_blocking`](Self::run_blocking).
    ///
    /// # Errors
    ///
    /// Bad input is reported before anything starts: [`Error::EmptyProgram`],
    /// [`Error::NulByte`], [`Error::InvalidEnvName`], [`Error::InvalidOption`],
    /// [`Error::InputConsumed`]. Starting can fail with
    /// [`Error::NotFound`], [`Error::PermissionDenied`],
    /// [`Error::CwdNotFound`], [`Error::Cwd`], [`Error::Spawn`] (with the
    /// [`SpawnStage`](crate::SpawnStage) that failed: E2BIG, EMFILE, setuid, ...),
    /// [`Error::Shepherd`], or [`Error::NoRuntime`] outside tokio.
    /// Later failures (timeout, `max_output`, I/O) arrive as the stream's
    /// `Err` items; [`Error::from_io`] recovers the typed error.
    ///
    /// # Cancel safety
    ///
    /// As for [`spawn`](Self::spawn): nothing is left running.
    pub fn stream(&self) -> impl Future<Output = Result<ProcessStream, Error>> + Send + 'static {
        let pump = self.pump();
        async move { Ok(ProcessStream::new(pump.await?)) }
    }

    /// Like [`stream`](Self::stream), but yields stdout and stderr chunks
    /// tagged with their origin.
    ///
    /// Needs a tokio runtime with I/O and time enabled (`#[tokio::main]`
    /// has both); polled outside any tokio runtime it fails with
    /// [`Error::NoRuntime`]. Without tokio, use
    /// [`run_blocking`](Self::run_blocking).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// use net_runner::{Chunk, Command};
    /// let mut s = Command::new("sh").args(["-c", "echo o; echo e >&2"]).stream_tagged().await?;
    /// let mut seen = Vec::new();
    /// while let Some(chunk) = s.next_chunk().await? {
    ///     seen.push(chunk);
    /// }
    /// assert!(seen.contains(&Chunk::Stderr("e\n".into())));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// Bad input is reported before anything starts: [`Error::EmptyProgram`],
    /// [`Error::NulByte`], [`Error::InvalidEnvName`], [`Error::InvalidOption`],
    /// [`Error::InputConsumed`]. Starting can fail with
    /// [`Error::NotFound`], [`Error::PermissionDenied`],
    /// [`Error::CwdNotFound`], [`Error::Cwd`], [`Error::Spawn`] (with the
    /// [`SpawnStage`](crate::SpawnStage) that failed: E2BIG, EMFILE, setuid, ...),
    /// [`Error::Shepherd`], or [`Error::NoRuntime`] outside tokio.
    ///
    /// # Cancel safety
    ///
    /// As for [`spawn`](Self::spawn): nothing is left running.
    pub fn stream_tagged(
        &self,
    ) -> impl Future<Output = Result<TaggedStream, Error>> + Send + 'static {
        let pump = self.pump();
        async move { Ok(TaggedStream::new(pump.await?)) }
    }

    /// Takes what feeds stdin for one run (see [`InputSlot`]).
    fn take_input(&self) -> Result<Option<Input>, Error> {
        match &self.input {
            None => Ok(None),
            Some(InputSlot::Bytes(b)) => Ok(Some(Input::Bytes(b.clone()))),
            Some(InputSlot::OneShot(slot)) => {
                let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
                slot.take().map(Some).ok_or(Error::InputConsumed)
            }
        }
    }

    fn pump(&self) -> impl Future<Output = Result<Pump, Error>> + Send + 'static {
        let input = self.take_input();
        let stdin = match (&input, &self.io.stdin) {
            (Ok(Some(_)), _) => Kind::Piped,
            (_, Some(Stdio(Kind::Piped))) | (_, None) => Kind::Null,
            (_, Some(stdin)) => stdin.0.clone(),
        };
        let leftover_wait = (!self.kill_leftovers)
            .then(|| self.limits.leftover_wait.unwrap_or(DEFAULT_LEFTOVER_WAIT));
        let limits = PumpLimits {
            max_output: self.max_output,
            idle: self.limits.idle_timeout,
            leftover_wait,
            keep_stdin: false,
        };
        // The pump applies `max_output` itself, not the readers.
        let launch = self.launch(stdin, Kind::Piped, None);
        async move {
            let input = input?;
            let process = launch.await?;
            Ok(Pump::new(process, input, limits))
        }
    }

    /// Validates, starts a shepherd and the child. The future owns what it
    /// needs, so it is `Send` whatever the input is. `limit`: the readers'
    /// own `max_output` (for `spawn`; the pump applies its own).
    fn launch(
        &self,
        stdin: Kind,
        stdout: Kind,
        limit: Option<u64>,
    ) -> impl Future<Output = Result<Process, Error>> + Send + 'static {
        let started = Instant::now();
        let timeout = self.timeout;
        let prepared = self.launch_parts(stdin, stdout).and_then(
            |(mut req, mut passed, plan, program, cwd)| {
                let terminal = if self.io.foreground {
                    Terminal::if_foreground()
                } else {
                    None
                };
                if let Some(t) = &terminal {
                    passed.push(t.dup()?);
                    req.foreground = true;
                }
                let modes = [req.stdin, req.stdout, req.stderr];
                let pty = req.pty.is_some();
                let request = launch::Request::new(req, &program)?;
                // With a forked shepherd waiting (`prefork_shepherd`), the
                // program starts now, not when this future is first polled.
                let early = launch::send_early(&request, &passed);
                Ok((
                    request, early, passed, plan, terminal, program, cwd, modes, pty,
                ))
            },
        );
        async move {
            if tokio::runtime::Handle::try_current().is_err() {
                return Err(Error::NoRuntime);
            }
            let (request, early, passed, plan, terminal, program, cwd, modes, pty) = prepared?;
            let launched = launch::launch(request, early, program, cwd, passed, plan).await?;
            Process::from_launched(launched, modes, pty, started, limit, timeout, terminal)
        }
    }

    /// One stream's mode, and the descriptor to pass for it (our own `fd`
    /// for inherit: a closed one gives the child `/dev/null`).
    fn stdio_mode(
        kind: &Kind,
        ours: i32,
    ) -> Result<(StdioMode, Option<std::os::fd::OwnedFd>), Error> {
        Ok(match kind {
            Kind::Piped => (StdioMode::Pipe, None),
            Kind::Null => (StdioMode::Null, None),
            Kind::Inherit => match crate::sys::dup_raw(ours) {
                Some(fd) => (StdioMode::Inherit, Some(fd)),
                None => (StdioMode::Null, None),
            },
            Kind::Fd(fd) => (StdioMode::Inherit, Some(stdio::dup(&**fd)?)),
        })
    }

    /// Builds the wire request, checking every input first, and the
    /// descriptors to pass with it.
    fn spawn_request(
        &self,
        stdin: Kind,
        stdout: Kind,
    ) -> Result<(SpawnRequest, Vec<std::os::fd::OwnedFd>), Error> {
        if self.program.is_empty() {
            return Err(Error::EmptyProgram);
        }
        let no_nul = |bytes: &[u8], what: &'static str| {
            if bytes.contains(&0) {
                Err(Error::NulByte { what })
            } else {
                Ok(bytes.to_vec())
            }
        };
        let mut req = SpawnRequest::new(no_nul(self.program.as_bytes(), "program")?);
        req.arg0 = match &self.arg0 {
            Some(a) => Some(no_nul(a.as_bytes(), "arg0")?),
            None => None,
        };
        req.args = self
            .args
            .iter()
            .map(|a| no_nul(a.as_bytes(), "argument"))
            .collect::<Result<_, _>>()?;
        // Always an absolute path, resolved now as std does: a pre-started
        // shepherd was started in whatever directory we had then.
        req.cwd = match &self.cwd {
            Some(c) if c.is_absolute() => Some(no_nul(c.as_os_str().as_bytes(), "cwd")?),
            Some(c) => {
                no_nul(c.as_os_str().as_bytes(), "cwd")?;
                let here = std::env::current_dir().map_err(|source| Error::Cwd {
                    path: c.clone(),
                    source,
                })?;
                Some(here.join(c).into_os_string().into_vec())
            }
            None => std::env::current_dir()
                .ok()
                .map(|c| c.into_os_string().into_vec()),
        };
        req.env = self.resolved_env()?;
        let mut passed = Vec::new();
        let (mode, fd) = Self::stdio_mode(&stdin, 0)?;
        req.stdin = mode;
        if let Some(fd) = fd {
            passed.push(fd);
            req.passed_stdio |= net_runner_proto::PASS_STDIN;
        }
        let (mode, fd) = Self::stdio_mode(&stdout, 1)?;
        req.stdout = mode;
        if let Some(fd) = fd {
            passed.push(fd);
            req.passed_stdio |= net_runner_proto::PASS_STDOUT;
        }
        req.stderr = match self.stderr {
            Stderr::Consume => StdioMode::Pipe,
            Stderr::Redirect => StdioMode::ToStdout,
            Stderr::Discard => StdioMode::Null,
            Stderr::Inherit => {
                // Our stderr now, not the one a pre-started shepherd got.
                if let Some(fd) = crate::sys::dup_raw(2) {
                    passed.push(fd);
                    req.passed_stdio |= net_runner_proto::PASS_STDERR;
                }
                StdioMode::Inherit
            }
        };
        req.kill_timeout_ms = self.kill_timeout.as_millis().min(u64::MAX as u128) as u64;
        req.kill_leftovers = self.kill_leftovers;
        req.timeout_ms = self
            .timeout
            .map(|t| t.as_millis().clamp(1, u64::MAX as u128) as u64);
        if let Some(stop) = &self.limits.stop_sequence {
            req.stop_sequence = stop.to_wire(self.kill_timeout);
        }
        self.hardening(&mut req)?;
        if let Some(pty) = &self.pty {
            req.pty = Some(pty.checked_size()?);
            req.pty_raw = pty.is_raw();
            // The slave is all three; the modes say what the library gets.
            (req.stdin, req.stdout, req.stderr) =
                (StdioMode::Pipe, StdioMode::Pipe, StdioMode::ToStdout);
            passed.clear();
            req.passed_stdio = 0;
        }
        Ok((req, passed))
    }

    /// Resolves the cgroup settings on this host (see `cgroup.rs`).
    fn cgroup_plan(
        &self,
        req: &mut SpawnRequest,
    ) -> Result<Option<Arc<crate::cgroup::Plan>>, Error> {
        if !self.cgroup.wanted() {
            return Ok(None);
        }
        let plan = crate::cgroup::plan(&self.cgroup, self.kill_leftovers)?;
        req.cgroup = Some(plan.spec.clone());
        Ok(Some(Arc::new(plan)))
    }

    /// Checks and copies the identity and limits; the shepherd applies them.
    fn hardening(&self, req: &mut SpawnRequest) -> Result<(), Error> {
        let invalid =
            |option: &'static str, reason: String| Error::InvalidOption { option, reason };
        // -1 is "leave unchanged" to the kernel: refused, never a no-op.
        let id = |option, v: u32| {
            if v == u32::MAX {
                Err(invalid(option, "-1 (4294967295) is not an id".into()))
            } else {
                Ok(v)
            }
        };
        req.uid = self.uid.map(|u| id("uid", u)).transpose()?;
        req.gid = self.gid.map(|g| id("gid", g)).transpose()?;
        req.groups = match &self.groups {
            Some(groups) => {
                if groups.len() > 65536 {
                    return Err(invalid(
                        "groups",
                        format!("{} groups, the kernel takes at most 65536", groups.len()),
                    ));
                }
                Some(
                    groups
                        .iter()
                        .map(|&g| id("groups", g))
                        .collect::<Result<_, _>>()?,
                )
            }
            None => None,
        };
        if let Some(mask) = self.umask {
            if mask > 0o777 {
                return Err(invalid("umask", format!("{mask:#o} is above 0o777")));
            }
        }
        req.umask = self.umask;
        if let Some(nice) = self.nice {
            if !(-20..=19).contains(&nice) {
                return Err(invalid("nice", format!("{nice} is outside -20..=19")));
            }
        }
        req.nice = self.nice;
        req.rlimits = self
            .rlimits
            .iter()
            .map(|&(resource, soft, hard)| {
                if soft > hard {
                    Err(invalid(
                        "rlimit",
                        format!("{resource}: soft limit {soft} is above the hard limit {hard}"),
                    ))
                } else {
                    Ok(net_runner_proto::Rlimit {
                        resource: resource.to_wire(),
                        soft,
                        hard,
                    })
                }
            })
            .collect::<Result<_, _>>()?;
        req.no_new_privs = self.no_new_privs;
        Ok(())
    }

    /// What [`launch::launch`] takes, for [`Self::launch`] and
    /// [`crate::raw::spawn`] alike: the checked request, the cgroup plan,
    /// the program and the cwd as given.
    #[allow(clippy::type_complexity)]
    pub(crate) fn launch_parts(
        &self,
        stdin: Kind,
        stdout: Kind,
    ) -> Result<
        (
            SpawnRequest,
            Vec<std::os::fd::OwnedFd>,
            Option<std::sync::Arc<crate::cgroup::Plan>>,
            OsString,
            Option<PathBuf>,
        ),
        Error,
    > {
        crate::sys::reserve_stdio();
        let (mut req, passed) = self.spawn_request(stdin, stdout)?;
        let plan = self.cgroup_plan(&mut req)?;
        Ok((req, passed, plan, self.program.clone(), self.cwd.clone()))
    }

    /// The child's complete environment as `KEY=VALUE` entries.
    fn resolved_env(&self) -> Result<Vec<Vec<u8>>, Error> {
        let mut vars: Vec<(OsString, OsString)> = if self.env_clear {
            Vec::new()
        } else {
            std::env::vars_os().collect()
        };
        for (key, value) in &self.env {
            let k = key.as_bytes();
            if k.is_empty() || k.contains(&b'=') {
                return Err(Error::InvalidEnvName(key.clone()));
            }
            if k.contains(&0) {
                return Err(Error::NulByte {
                    what: "environment",
                });
            }
            vars.retain(|(existing, _)| existing != key);
            if let Some(v) = value {
                if v.as_bytes().contains(&0) {
                    return Err(Error::NulByte {
                        what: "environment",
                    });
                }
                vars.push((key.clone(), v.clone()));
            }
        }
        Ok(vars
            .into_iter()
            .map(|(k, v)| {
                let mut entry = k.into_vec();
                entry.push(b'=');
                entry.extend_from_slice(v.as_bytes());
                entry
            })
            .collect())
    }
}

/// PTY mode.
impl Command {
    /// Runs the program on a pseudo-terminal of `rows` × `cols` (cooked, as a
    /// shell's): the program gets a new session with the terminal as its
    /// controlling terminal and as stdin, stdout and stderr, so `isatty` is
    /// true, it sees a size, and ^C typed into it is SIGINT.
    ///
    /// Reads, streams and `run` return what the terminal shows (stdout and
    /// stderr together, `\n` as `\r\n`, the input echoed); a
    /// [`Stderr`] mode does not apply. Writes are keystrokes; closing stdin
    /// sends end of file through the line discipline (see
    /// [`Process::close_stdin`]); without [`input`](Self::input), `run` and
    /// the streams close it at once. Nothing the program writes is lost, even
    /// when it exits at once and the caller reads late. Resize a running one
    /// with [`Process::set_window_size`]. Signals, timeouts, stop
    /// sequences, `max_output`, stats, owner death and drop work as with
    /// pipes: the whole session is stopped.
    ///
    /// A size of 0 or more than [`Pty::MAX_SIZE`] rows or columns is
    /// [`Error::InvalidOption`] when the command runs.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// use net_runner::Command;
    /// let out = Command::new("sh")
    ///     .args(["-c", "test -t 0 && test -t 1 && stty size"])
    ///     .pty(24, 80)
    ///     .run()
    ///     .await?;
    /// assert_eq!(out.stdout, b"24 80\r\n");
    ///
    /// let out = Command::new("wc").arg("-c").pty(24, 80).input("abc").run().await?;
    /// assert!(out.stdout.ends_with(b"3\r\n")); // after the echoed "abc"
    /// # Ok(()) }
    /// ```
    pub fn pty(&mut self, rows: u16, cols: u16) -> &mut Self {
        self.pty_with(Pty::new(rows, cols))
    }

    /// PTY mode with options ([`Pty`]: size, raw mode); see [`pty`](Self::pty).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), net_runner::Error> {
    /// use net_runner::{Command, Pty};
    /// let out = Command::new("stty").arg("-a").pty_with(Pty::new(24, 80).raw(true)).run().await?;
    /// let modes = String::from_utf8_lossy(&out.stdout);
    /// assert!(modes.contains("-icanon") && modes.contains("-echo "));
    /// # Ok(()) }
    /// ```
    pub fn pty_with(&mut self, pty: Pty) -> &mut Self {
        self.pty = Some(pty);
        self
    }

    /// The PTY options, if [`pty`](Self::pty) was set.
    ///
    /// ```
    /// let mut cmd = net_runner::Command::new("sh");
    /// assert_eq!(cmd.get_pty(), None);
    /// cmd.pty(24, 80);
    /// assert_eq!(cmd.get_pty().map(|p| p.size()), Some((24, 80)));
    /// ```
    pub fn get_pty(&self) -> Option<Pty> {
        self.pty
    }
}

// Daemon support (issue 15): one run of a daemon's program.
#[cfg(feature = "daemon")]
impl Command {
    /// Starts one run for a [`Daemon`](crate::daemon::Daemon): stdin is a
    /// pipe (fed from `input` bytes when set, else left to
    /// `Daemon::write`), the pump drains stdout and stderr and applies the
    /// idle timeout; `max_output` does not apply.
    pub(crate) fn daemon_run(&self) -> impl Future<Output = Result<Pump, Error>> + Send + 'static {
        let input = self.take_input();
        let leftover_wait = (!self.kill_leftovers)
            .then(|| self.limits.leftover_wait.unwrap_or(DEFAULT_LEFTOVER_WAIT));
        let limits = PumpLimits {
            max_output: None,
            idle: self.limits.idle_timeout,
            leftover_wait,
            keep_stdin: true,
        };
        let launch = self.launch(Kind::Piped, Kind::Piped, None);
        async move {
            let input = input?;
            let process = launch.await?;
            Ok(Pump::new(process, input, limits))
        }
    }

    /// The input is a stream or reader: it can feed one run only.
    pub(crate) fn has_one_shot_input(&self) -> bool {
        matches!(self.input, Some(InputSlot::OneShot(_)))
    }
}
