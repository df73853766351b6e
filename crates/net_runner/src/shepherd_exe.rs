//! Finding the shepherd executable.
//!
//! By default the shepherd is embedded in the library (built by `build.rs`)
//! and exposed as a sealed in-memory file (`memfd`), executed through
//! `/proc/self/fd/N`: nothing is written to disk and nothing can swap the
//! binary under us. `NETRUNNER_SHEPHERD=/path` overrides it. Where the kernel
//! forbids executing memfds (`vm.memfd_noexec`), the embedded binary is
//! written once to a private, owner-only directory instead.

use std::ffi::{CString, OsString};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

/// Environment variable naming a shepherd binary to use instead of the
/// embedded one.
///
/// ```
/// // NETRUNNER_SHEPHERD=/path/to/netrunner-shepherd uses that binary.
/// assert_eq!(net_runner::SHEPHERD_ENV, "NETRUNNER_SHEPHERD");
/// ```
pub const SHEPHERD_ENV: &str = "NETRUNNER_SHEPHERD";

pub(crate) struct ShepherdExe {
    pub(crate) path: CString,
    /// Keeps the memfd (and so the `/proc/self/fd/N` path) alive.
    _memfd: Option<OwnedFd>,
}

static EXE: OnceLock<ShepherdExe> = OnceLock::new();

/// Run the embedded shepherd from a cached file rather than a memfd.
static PREFER_FILE: AtomicBool = AtomicBool::new(false);

/// Runs the embedded shepherd from a file installed once per user and
/// build (in `$XDG_RUNTIME_DIR/netrunner-UID`, or the temp dir, mode 0700)
/// instead of a private in-memory copy (memfd) made by every process.
/// The memfd costs a copy of the shepherd (about 1 MB) per process: nothing
/// for a long-running program, most of the cost of a short one that runs
/// one command (the `netrunner` CLI turns this on). Takes effect if called
/// before the first command runs; `NETRUNNER_SHEPHERD` still wins.
///
/// ```
/// net_runner::set_shepherd_file_cache(true);
/// let out = net_runner::Command::new("true").run_blocking()?;
/// assert!(out.status.success());
/// # Ok::<(), net_runner::Error>(())
/// ```
pub fn set_shepherd_file_cache(on: bool) {
    PREFER_FILE.store(on, Ordering::Relaxed);
}

/// The shepherd to start, located once per process.
///
/// Only success is remembered: installing the embedded binary can fail for
/// passing reasons (out of descriptors, say), and the next spawn tries
/// again. The error keeps its OS error code.
pub(crate) fn get() -> io::Result<&'static ShepherdExe> {
    static INIT: Mutex<()> = Mutex::new(());
    if let Some(exe) = EXE.get() {
        return Ok(exe);
    }
    let _one_at_a_time = INIT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(exe) = EXE.get() {
        return Ok(exe);
    }
    let exe = locate()?;
    Ok(EXE.get_or_init(|| exe))
}

fn locate() -> io::Result<ShepherdExe> {
    if let Some(path) = std::env::var_os(SHEPHERD_ENV) {
        let bad = |kind: io::ErrorKind, why: &dyn std::fmt::Display| {
            io::Error::new(
                kind,
                format!("{SHEPHERD_ENV}={:?}: {why}", path.to_string_lossy()),
            )
        };
        if path.is_empty() {
            return Err(bad(io::ErrorKind::InvalidInput, &"empty path"));
        }
        // Checked here, so that the error names the variable and the path
        // rather than a bare "No such file" from posix_spawn.
        let meta = std::fs::metadata(&path).map_err(|e| bad(e.kind(), &e))?;
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            return Err(bad(
                io::ErrorKind::PermissionDenied,
                &"not an executable file",
            ));
        }
        return Ok(ShepherdExe {
            path: CString::new(path.clone().into_vec())
                .map_err(|_| bad(io::ErrorKind::InvalidInput, &"contains a NUL byte"))?,
            _memfd: None,
        });
    }
    let bytes = embedded().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("this build of net_runner has no embedded shepherd; set {SHEPHERD_ENV}"),
        )
    })?;
    if PREFER_FILE.load(Ordering::Relaxed) {
        if let Ok(exe) = private_file(bytes) {
            return Ok(exe);
        }
    }
    if memfd_exec_allowed() {
        if let Ok(exe) = memfd(bytes) {
            return Ok(exe);
        }
    }
    private_file(bytes)
}

#[cfg(not(netrunner_no_embed))]
fn embedded() -> Option<&'static [u8]> {
    Some(include_bytes!(env!("NETRUNNER_EMBEDDED_SHEPHERD")))
}

#[cfg(netrunner_no_embed)]
fn embedded() -> Option<&'static [u8]> {
    None
}

/// The embedded binary's FNV-1a hash, computed by `build.rs`.
#[cfg(not(netrunner_no_embed))]
const EMBEDDED_HASH: &str = env!("NETRUNNER_EMBEDDED_SHEPHERD_HASH");
#[cfg(netrunner_no_embed)]
const EMBEDDED_HASH: &str = "none";

fn memfd_exec_allowed() -> bool {
    match std::fs::read_to_string("/proc/sys/vm/memfd_noexec") {
        Ok(v) => v.trim() == "0",
        // Older kernels have no such knob and always allow it.
        Err(_) => std::path::Path::new("/proc/self/fd").exists(),
    }
}

fn memfd(bytes: &[u8]) -> io::Result<ShepherdExe> {
    use rustix::fs::{MemfdFlags, SealFlags};
    let fd = rustix::fs::memfd_create(
        "netrunner-shepherd",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?;
    // Above fd 3: the shepherd's stdio and control socket are set up on
    // fds 0 to 3 before it is exec'd through this descriptor's path.
    let fd = crate::sys::at_least(fd, net_runner_proto::CONTROL_FD + 1)?;
    let mut file = std::fs::File::from(fd.try_clone()?);
    file.write_all(bytes)?;
    let seals = SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL;
    rustix::fs::fcntl_add_seals(&fd, seals)?;
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    Ok(ShepherdExe {
        path: CString::new(path).expect("no NUL in a formatted path"),
        _memfd: Some(fd),
    })
}

/// Writes the binary to `$XDG_RUNTIME_DIR` (or the temp dir) under a
/// per-user, mode-0700 directory, named by size and checksum.
fn private_file(bytes: &[u8]) -> io::Result<ShepherdExe> {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let uid = rustix::process::getuid().as_raw();
    let dir = base.join(format!("netrunner-{uid}"));
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(&dir)?;
    use std::os::unix::fs::MetadataExt;
    if !meta.is_dir() || meta.uid() != uid || meta.permissions().mode() & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} is not a private directory", dir.display()),
        ));
    }
    let path = dir.join(format!("shepherd-{}-{EMBEDDED_HASH}", bytes.len()));
    // Ours, whole (written under another name, then renamed) and executable.
    let usable = std::fs::symlink_metadata(&path).is_ok_and(|m| {
        m.is_file() && m.uid() == uid && m.len() == bytes.len() as u64 && m.mode() & 0o100 != 0
    });
    if !usable {
        let tmp = dir.join(format!("shepherd.tmp.{}", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o700)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(ShepherdExe {
        path: CString::new(OsString::from(path).into_vec())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in temp path"))?,
        _memfd: None,
    })
}
