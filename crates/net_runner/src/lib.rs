//! Safe execution of OS processes.
//!
//! Every command runs under its own small **shepherd** process. The shepherd
//! starts the child in a new process group, hands its pipes to this library,
//! reports its exit with CPU time and peak memory, and — when this program
//! goes away, however it dies, even by SIGKILL — sends SIGTERM to the whole
//! tree, SIGKILL after the kill timeout, and reaps everything. No orphans, no
//! zombies.
//!
//! Output is read only when asked for ([backpressure](Command::stream)),
//! stdin is written concurrently with reading (no deadlock at any size), and
//! signals go to the whole process group.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), net_runner::Error> {
//! use std::time::Duration;
//! use net_runner::{Command, Signal};
//!
//! // Collect everything.
//! let out = Command::new("sort").input("b\na\n").timeout(Duration::from_secs(5)).run().await?;
//! assert_eq!(out.stdout, b"a\nb\n");
//!
//! // Interactive.
//! let mut p = Command::new("cat").spawn().await?;
//! p.write(b"hi").await?;
//! p.close_stdin();
//! assert_eq!(p.read().await?.as_deref(), Some(&b"hi"[..]));
//! assert!(p.wait().await?.success());
//!
//! // Signals reach the whole group.
//! let mut p = Command::new("sleep").arg("60").spawn().await?;
//! p.kill(Signal::Term)?;
//! assert_eq!(p.wait().await?.shell_code(), 143);
//! # Ok(()) }
//! ```
//!
//! Without a runtime, use [`Command::run_blocking`].
//!
//! The shepherd binary is built and embedded by this crate's build script;
//! set `NETRUNNER_SHEPHERD` to use another one.
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "net_runner supports Linux only: the shepherd relies on pidfds, signalfd, clone and subreapers"
);

mod blocking;
mod cgroup;
mod command;
mod control;
#[cfg(feature = "daemon")]
pub mod daemon;
mod error;
mod inherited;
mod input;
mod launch;
mod output;
mod pipe;
mod pool;
mod process;
mod pty;
mod pump;
pub mod raw;
mod reaper;
mod resource;
mod shepherd_exe;
mod signal;
mod stats;
mod status;
mod stdio;
mod stop;
mod stream;
mod sys;
mod terminal;

pub use cgroup::{CgroupError, CgroupStats, CGROUP_BASE_ENV};
pub use command::{Command, Stderr, DEFAULT_KILL_TIMEOUT, DEFAULT_LEFTOVER_WAIT};
pub use error::{Error, Result, ShepherdError, SpawnStage};
pub use input::Input;
pub use output::Output;
pub use pipe::{ChildStderr, ChildStdin, ChildStdout};
pub use pool::{prefork_shepherd, prestarted_idle, set_prestarted_shepherds, PRESTART_ENV};
pub use process::{Process, ProcessEvent, ProcessHandle};
pub use pty::Pty;
pub use pump::Chunk;
pub use reaper::pending_reaps;
pub use resource::{Resource, UnknownResource, RLIM_INFINITY};
pub use shepherd_exe::{set_shepherd_file_cache, SHEPHERD_ENV};
pub use signal::Signal;
pub use stats::{End, Stats};
pub use status::ExitStatus;
pub use stdio::Stdio;
pub use stop::StopSequence;
pub use stream::{
    ByteLines, Lines, ProcessStream, StreamEvent, TaggedStream, DEFAULT_MAX_LINE_LENGTH,
};

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
