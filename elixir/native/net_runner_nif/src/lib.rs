//! The NIF behind `NetRunner.Process.Nif`.
//!
//! Commands start through [`net_runner::raw::spawn`], the Rust library's
//! own launch path (validation, spawn request, pre-started shepherd pool,
//! handshake), on a small tokio runtime owned by this library: `nif_spawn`
//! returns at once and the result arrives as a message, so no scheduler
//! waits for the handshake.
//!
//! Every descriptor then lives in an `fd` resource and is driven by the
//! BEAM's own poller: a read or write that would block arms `enif_select`
//! for the calling process and returns `eagain`; the caller (the
//! `NetRunner.Process` GenServer) parks the operation and retries on the
//! `{select, Res, undefined, ready_input | ready_output}` message. Every
//! call does at most a few non-blocking system calls.
//!
//! PTY mode: stdout is the master (`EIO` reads as end of file), stdin a
//! duplicate that remembers whether the last byte written ended a line, so
//! that `nif_pty_eof` gives the VEOF bytes that end the program's input;
//! `nif_set_window_size` resizes through the master.
//!
//! Closing goes through `ERL_NIF_SELECT_STOP`: the descriptor is closed by
//! the resource type's `stop` callback, once the poller has let go of it.
//! Closing the control socket (or the resource being garbage collected, or
//! the whole BEAM dying) makes the shepherd terminate the child's tree.

use std::ffi::{c_int, c_void, CString, OsString};
use std::mem::size_of;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, RwLock};
use std::time::Duration;

use net_runner::raw::{self, ControlDecoder, Message, Shepherd, Termination};
use net_runner::{CgroupError, Command, Error, Pty, Stderr};
use rustler::sys::{
    enif_alloc_resource, enif_get_resource, enif_make_resource, enif_open_resource_type_x,
    enif_release_resource, enif_select, ErlNifEnv, ErlNifEvent, ErlNifResourceDtor,
    ErlNifResourceFlags, ErlNifResourceStop, ErlNifResourceType, ErlNifResourceTypeInit,
    ERL_NIF_SELECT_READ, ERL_NIF_SELECT_STOP, ERL_NIF_SELECT_WRITE,
};
use rustler::types::LocalPid;
use rustler::{Atom, Binary, Encoder, Env, NifResult, OwnedBinary, OwnedEnv, Term};

mod atoms {
    rustler::atoms! {
        ok, error, eof, eagain, closed, undefined, unknown_signal, nil,
        read, write, control, exited, signaled, shepherd_error, open,
        exec, invalid, shepherd, start_shepherd, stdio, fork, chdir, setup,
        consume, redirect, disabled, discard, inherit,
        net_runner_spawned, not_a_pty, invalid_size, epipe,
        invalid_cgroup_path, invalid_option, cgroup, cgroup_stats,
        deadline, requested, owner_gone, signalled,
        memory_peak_bytes, oom_kills, cpu_usage_us, cpu_throttled_periods,
        cpu_throttled_us, pids_peak,
    }
}

// ---------------------------------------------------------------------------
// The fd resource.

/// What a descriptor is, and what goes with it.
enum Kind {
    Read,
    Write,
    /// A PTY master, read: `EIO` is the end of file.
    PtyRead,
    /// A duplicate of a PTY master, written: whether the last byte written
    /// ended a line (for the VEOF count).
    PtyWrite {
        at_line_start: AtomicBool,
    },
    /// The control socket: its decoder, and the shepherd to reap once the
    /// socket is closed.
    Control {
        decoder: Mutex<ControlDecoder>,
        shepherd: Mutex<Option<Shepherd>>,
    },
}

/// One descriptor. `fd` is -1 once closing started; readers and writers
/// hold the read lock during their system call, so the number is never
/// closed (and possibly reused) under them.
struct FdObj {
    fd: RwLock<RawFd>,
    kind: Kind,
}

struct TypePtr(*const ErlNifResourceType);
// SAFETY: the resource type handle is an immutable token of the emulator,
// usable from any thread once created in `load`.
unsafe impl Send for TypePtr {}
// SAFETY: as above.
unsafe impl Sync for TypePtr {}

static FD_TYPE: OnceLock<TypePtr> = OnceLock::new();

fn fd_type() -> *const ErlNifResourceType {
    FD_TYPE.get().map_or(ptr::null(), |t| t.0)
}

unsafe extern "C" fn fd_dtor(_env: *mut ErlNifEnv, obj: *mut c_void) {
    let obj = obj as *mut FdObj;
    // Never closed through `nif_close`: nothing selects it any more (the
    // poller keeps the resource alive while it does), so close it here.
    let fd = *(*obj).fd.read().unwrap_or_else(|e| e.into_inner());
    if fd >= 0 {
        libc::close(fd);
    }
    ptr::drop_in_place(obj);
}

unsafe extern "C" fn fd_stop(
    _env: *mut ErlNifEnv,
    obj: *mut c_void,
    event: ErlNifEvent,
    _is_direct_call: c_int,
) {
    libc::close(event);
    release_shepherd(&*(obj as *const FdObj));
}

/// After the control socket is closed, the shepherd terminates the tree and
/// exits: hand it to the library's reaper.
fn release_shepherd(obj: &FdObj) {
    if let Kind::Control { shepherd, .. } = &obj.kind {
        drop(shepherd.lock().unwrap_or_else(|e| e.into_inner()).take());
    }
}

fn make_fd<'a>(env: Env<'a>, fd: OwnedFd, kind: Kind) -> Term<'a> {
    let obj = FdObj {
        fd: RwLock::new(fd.into_raw_fd()),
        kind,
    };
    // SAFETY: the type was created in `load` for objects of this size; the
    // memory is written before the term exists, and the term keeps its own
    // reference (ours is released right away).
    unsafe {
        let mem = enif_alloc_resource(fd_type(), size_of::<FdObj>()) as *mut FdObj;
        ptr::write(mem, obj);
        let term = enif_make_resource(env.as_c_arg(), mem as *mut c_void);
        enif_release_resource(mem as *mut c_void);
        Term::new(env, term)
    }
}

/// The object behind a resource term of our type.
fn resource_ptr(term: Term) -> Option<*mut c_void> {
    let mut obj: *const c_void = ptr::null();
    // SAFETY: `enif_get_resource` checks the type.
    let found = unsafe {
        enif_get_resource(
            term.get_env().as_c_arg(),
            term.as_c_arg(),
            fd_type() as *mut ErlNifResourceType,
            &mut obj,
        )
    };
    (found != 0).then_some(obj as *mut c_void)
}

fn get_fd<'a>(term: Term<'a>) -> NifResult<&'a FdObj> {
    let obj = resource_ptr(term).ok_or(rustler::Error::BadArg)?;
    // SAFETY: a live object of our type; it lives at least as long as the
    // term that references it.
    Ok(unsafe { &*(obj as *const FdObj) })
}

/// Arms the poller: the calling process gets `{select, Res, undefined,
/// ready_input | ready_output}` once `fd` is ready.
fn select(env: Env, res: Term, fd: RawFd, mode: rustler::sys::ErlNifSelectFlags) -> bool {
    let Some(obj) = resource_ptr(res) else {
        return false;
    };
    // SAFETY: `obj` is our resource; a null pid means the calling process.
    unsafe {
        enif_select(
            env.as_c_arg(),
            fd,
            mode,
            obj,
            ptr::null(),
            atoms::undefined().to_term(env).as_c_arg(),
        ) >= 0
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn errno_atom(env: Env<'_>, errno: i32) -> Atom {
    let name = match errno {
        libc::EPERM => "eperm",
        libc::ENOENT => "enoent",
        libc::EIO => "eio",
        libc::E2BIG => "e2big",
        libc::ENOEXEC => "enoexec",
        libc::EBADF => "ebadf",
        libc::EAGAIN => "eagain",
        libc::ENOMEM => "enomem",
        libc::EACCES => "eacces",
        libc::ENOTDIR => "enotdir",
        libc::EISDIR => "eisdir",
        libc::EINVAL => "einval",
        libc::ENFILE => "enfile",
        libc::EMFILE => "emfile",
        libc::ETXTBSY => "etxtbsy",
        libc::EPIPE => "epipe",
        libc::ELOOP => "eloop",
        libc::ENAMETOOLONG => "enametoolong",
        libc::ECONNRESET => "econnreset",
        libc::ELIBBAD => "elibbad",
        _ => return Atom::from_str(env, &format!("errno_{errno}")).unwrap_or(atoms::error()),
    };
    Atom::from_str(env, name).unwrap_or(atoms::error())
}

// ---------------------------------------------------------------------------
// Pipes.

/// `{ok, Binary}` · `eof` · `{error, eagain}` (the caller is selected for
/// input) · `{error, closed}` · `{error, Errno}`.
#[rustler::nif]
fn nif_read<'a>(env: Env<'a>, res: Term<'a>, max: usize) -> NifResult<Term<'a>> {
    let obj = get_fd(res)?;
    let guard = obj.fd.read().unwrap_or_else(|e| e.into_inner());
    let fd = *guard;
    if fd < 0 {
        return Ok((atoms::error(), atoms::closed()).encode(env));
    }
    let max = max.clamp(1, 1 << 20);
    let mut bin = OwnedBinary::new(max).ok_or(rustler::Error::RaiseAtom("enomem"))?;
    loop {
        // SAFETY: `fd` is open (read lock held) and `bin` has `max` bytes.
        let n = unsafe { libc::read(fd, bin.as_mut_slice().as_mut_ptr() as *mut c_void, max) };
        if n > 0 {
            let n = n as usize;
            if n < max {
                bin.realloc_or_copy(n);
            }
            return Ok((atoms::ok(), Binary::from_owned(bin, env)).encode(env));
        }
        if n == 0 {
            return Ok(atoms::eof().encode(env));
        }
        match errno() {
            libc::EINTR => continue,
            libc::EAGAIN => {
                select(env, res, fd, ERL_NIF_SELECT_READ);
                return Ok((atoms::error(), atoms::eagain()).encode(env));
            }
            // The terminal's end of file: the program and its children
            // closed the slave and everything it showed was read.
            libc::EIO if matches!(obj.kind, Kind::PtyRead) => return Ok(atoms::eof().encode(env)),
            e => return Ok((atoms::error(), errno_atom(env, e)).encode(env)),
        }
    }
}

/// Writes as much of `data` as the pipe takes: `{ok, N}`; when `N` is less
/// than the size the pipe is full and the caller is selected for output.
/// `{error, closed}` · `{error, epipe}` (the reader is gone; for a PTY,
/// the terminal was closed) · `{error, Errno}`.
#[rustler::nif]
fn nif_write<'a>(env: Env<'a>, res: Term<'a>, data: Binary<'a>) -> NifResult<Term<'a>> {
    let obj = get_fd(res)?;
    let guard = obj.fd.read().unwrap_or_else(|e| e.into_inner());
    let fd = *guard;
    if fd < 0 {
        return Ok((atoms::error(), atoms::closed()).encode(env));
    }
    let bytes = data.as_slice();
    let mut done = 0;
    while done < bytes.len() {
        // SAFETY: `fd` is open (read lock held); the slice is valid.
        let n = unsafe {
            libc::write(
                fd,
                bytes[done..].as_ptr() as *const c_void,
                bytes.len() - done,
            )
        };
        if n >= 0 {
            done += n as usize;
            continue;
        }
        match errno() {
            libc::EINTR => {}
            libc::EAGAIN => {
                select(env, res, fd, ERL_NIF_SELECT_WRITE);
                break;
            }
            libc::EIO if done == 0 && matches!(obj.kind, Kind::PtyWrite { .. }) => {
                return Ok((atoms::error(), atoms::epipe()).encode(env))
            }
            e if done == 0 => return Ok((atoms::error(), errno_atom(env, e)).encode(env)),
            _ => break,
        }
    }
    if let (Kind::PtyWrite { at_line_start }, Some(&last)) = (&obj.kind, bytes[..done].last()) {
        at_line_start.store(last == b'\n' || last == b'\r', Ordering::Relaxed);
    }
    Ok((atoms::ok(), done).encode(env))
}

/// Closes the descriptor (idempotent): a parked select is cancelled and the
/// descriptor is closed by the `stop` callback once the poller let go.
#[rustler::nif]
fn nif_close<'a>(env: Env<'a>, res: Term<'a>) -> NifResult<Atom> {
    let obj = get_fd(res)?;
    let fd = {
        let mut guard = obj.fd.write().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *guard, -1)
    };
    if fd >= 0 {
        let ptr_obj = resource_ptr(res).ok_or(rustler::Error::BadArg)?;
        // SAFETY: our resource (decoded above); `fd` is no longer visible to
        // any reader, so the stop callback may close it.
        let rc = unsafe {
            enif_select(
                env.as_c_arg(),
                fd,
                ERL_NIF_SELECT_STOP,
                ptr_obj,
                ptr::null(),
                atoms::undefined().to_term(env).as_c_arg(),
            )
        };
        if rc < 0 {
            // Not accepted by the poller: nothing else holds the number.
            // SAFETY: `fd` is ours and unused.
            unsafe { libc::close(fd) };
            release_shepherd(obj);
        }
    }
    Ok(atoms::ok())
}

/// Wraps a descriptor number the caller owns: `{ok, Res}`. `Mode` is `read`
/// or `write`; the descriptor is made non-blocking.
#[rustler::nif]
fn nif_create_fd<'a>(env: Env<'a>, fd: i32, mode: Atom) -> NifResult<Term<'a>> {
    if fd < 0 {
        return Err(rustler::Error::BadArg);
    }
    let kind = if mode == atoms::write() {
        Kind::Write
    } else if mode == atoms::read() {
        Kind::Read
    } else {
        return Err(rustler::Error::BadArg);
    };
    // SAFETY: the caller hands over a descriptor it owns.
    let owned = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    set_nonblocking(&owned);
    Ok((atoms::ok(), make_fd(env, owned, kind)).encode(env))
}

/// A second resource on a duplicate of the descriptor (close-on-exec):
/// `{ok, Res}` · `{error, closed}` · `{error, Errno}`.
#[rustler::nif]
fn nif_dup_fd<'a>(env: Env<'a>, res: Term<'a>) -> NifResult<Term<'a>> {
    let obj = get_fd(res)?;
    let guard = obj.fd.read().unwrap_or_else(|e| e.into_inner());
    if *guard < 0 {
        return Ok((atoms::error(), atoms::closed()).encode(env));
    }
    // SAFETY: `*guard` is open while the lock is held.
    let new = unsafe { libc::fcntl(*guard, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Ok((atoms::error(), errno_atom(env, errno())).encode(env));
    }
    // SAFETY: a fresh descriptor we own.
    let owned = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(new) };
    let kind = match &obj.kind {
        Kind::Write => Kind::Write,
        Kind::PtyRead => Kind::PtyRead,
        Kind::PtyWrite { at_line_start } => Kind::PtyWrite {
            at_line_start: AtomicBool::new(at_line_start.load(Ordering::Relaxed)),
        },
        _ => Kind::Read,
    };
    Ok((atoms::ok(), make_fd(env, owned, kind)).encode(env))
}

fn set_nonblocking(fd: &OwnedFd) {
    // SAFETY: plain fcntl on an open descriptor.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
}

// ---------------------------------------------------------------------------
// The control channel.

/// Reads and decodes what the shepherd sent: `{Messages, open | eof}`,
/// where each message is `{exited, Code, UserUs, SysUs, RssKiB, Stopped}`,
/// `{signaled, Signal, UserUs, SysUs, RssKiB, Stopped}` (`Stopped`: `nil`,
/// or why the shepherd had started the stop sequence: `deadline`,
/// `requested`, `owner_gone`, `signalled`), `{cgroup_stats, Map}` (right
/// before the exit; each figure an integer or `nil`) or
/// `{shepherd_error, Text}`.
/// With `open` the caller is selected for input.
#[rustler::nif]
fn nif_control_read<'a>(env: Env<'a>, res: Term<'a>) -> NifResult<Term<'a>> {
    let obj = get_fd(res)?;
    let Kind::Control { decoder, .. } = &obj.kind else {
        return Err(rustler::Error::BadArg);
    };
    let guard = obj.fd.read().unwrap_or_else(|e| e.into_inner());
    let fd = *guard;
    let mut decoder = decoder.lock().unwrap_or_else(|e| e.into_inner());
    let mut messages: Vec<Term<'a>> = Vec::new();
    let mut state = atoms::open();
    let drain = |decoder: &mut ControlDecoder, messages: &mut Vec<Term<'a>>| loop {
        match decoder.next_message() {
            Ok(Some(msg)) => messages.push(encode_message(env, msg)),
            Ok(None) => return true,
            Err(e) => {
                messages.push((atoms::shepherd_error(), e.to_string()).encode(env));
                return false;
            }
        }
    };
    if !drain(&mut decoder, &mut messages) || fd < 0 {
        return Ok((messages, atoms::eof()).encode(env));
    }
    let mut buf = [0u8; 4096];
    let mut armed = false;
    // A few reads at most: the shepherd sends a handful of small frames.
    for _ in 0..16 {
        // SAFETY: `fd` is open (read lock held); `buf` is writable.
        let n = unsafe {
            libc::recv(
                fd,
                buf.as_mut_ptr() as *mut c_void,
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n > 0 {
            decoder.push(&buf[..n as usize]);
            if !drain(&mut decoder, &mut messages) {
                state = atoms::eof();
                break;
            }
            continue;
        }
        if n == 0 {
            state = atoms::eof();
            break;
        }
        match errno() {
            libc::EINTR => continue,
            libc::EAGAIN => {
                armed = select(env, res, fd, ERL_NIF_SELECT_READ);
                break;
            }
            _ => {
                state = atoms::eof();
                break;
            }
        }
    }
    if state == atoms::open() && !armed {
        // Stopped early (16 reads): come back for the rest.
        select(env, res, fd, ERL_NIF_SELECT_READ);
    }
    Ok((messages, state).encode(env))
}

fn encode_message<'a>(env: Env<'a>, msg: Message) -> Term<'a> {
    match msg {
        Message::Exited(report) => {
            let usage = (
                report.user_time_us,
                report.system_time_us,
                report.max_rss_kib,
            );
            let stopped = match report.stopped {
                None => atoms::nil(),
                Some(raw::StopCause::Deadline) => atoms::deadline(),
                Some(raw::StopCause::Requested) => atoms::requested(),
                Some(raw::StopCause::OwnerGone) => atoms::owner_gone(),
                Some(raw::StopCause::Signalled) => atoms::signalled(),
            };
            let (tag, n) = match report.termination {
                Termination::Exited(code) => (atoms::exited(), code),
                Termination::Signaled { signal, .. } => (atoms::signaled(), signal),
            };
            (tag, n, usage.0, usage.1, usage.2, stopped).encode(env)
        }
        Message::CgroupStats(r) => {
            let figures = [
                (atoms::memory_peak_bytes(), r.memory_peak),
                (atoms::oom_kills(), r.oom_kills),
                (atoms::cpu_usage_us(), r.cpu_usage_us),
                (atoms::cpu_throttled_periods(), r.cpu_throttled_periods),
                (atoms::cpu_throttled_us(), r.cpu_throttled_us),
                (atoms::pids_peak(), r.pids_peak),
            ];
            let map = figures.iter().fold(Term::map_new(env), |map, (k, v)| {
                map.map_put(k.encode(env), v.encode(env)).unwrap_or(map)
            });
            (atoms::cgroup_stats(), map).encode(env)
        }
        Message::Error { message } => (atoms::shepherd_error(), message).encode(env),
        other => (atoms::shepherd_error(), format!("unexpected {other:?}")).encode(env),
    }
}

fn send_frame<'a>(env: Env<'a>, res: Term<'a>, frame: &[u8]) -> NifResult<Term<'a>> {
    let obj = get_fd(res)?;
    if !matches!(obj.kind, Kind::Control { .. }) {
        return Err(rustler::Error::BadArg);
    }
    let guard = obj.fd.read().unwrap_or_else(|e| e.into_inner());
    if *guard < 0 {
        return Ok((atoms::error(), atoms::closed()).encode(env));
    }
    loop {
        // SAFETY: open descriptor (read lock held), valid slice.
        let n = unsafe {
            libc::send(
                *guard,
                frame.as_ptr() as *const c_void,
                frame.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n == frame.len() as isize {
            return Ok(atoms::ok().encode(env));
        }
        if n >= 0 {
            return Ok((atoms::error(), atoms::eagain()).encode(env));
        }
        match errno() {
            libc::EINTR => continue,
            // The shepherd is gone: nothing left to signal.
            libc::EPIPE | libc::ECONNRESET => {
                return Ok((atoms::error(), atoms::closed()).encode(env))
            }
            e => return Ok((atoms::error(), errno_atom(env, e)).encode(env)),
        }
    }
}

/// Asks the shepherd to send `Signal` (a number) to the child's process
/// group: `ok` · `{error, closed}` once the shepherd is gone.
#[rustler::nif]
fn nif_kill<'a>(env: Env<'a>, control: Term<'a>, signal: i32) -> NifResult<Term<'a>> {
    send_frame(env, control, &raw::signal_frame(signal))
}

/// Graceful stop of the tree: SIGTERM, the kill timeout, SIGKILL.
#[rustler::nif]
fn nif_shutdown<'a>(env: Env<'a>, control: Term<'a>) -> NifResult<Term<'a>> {
    send_frame(env, control, &raw::shutdown_frame())
}

/// Sets the terminal size through the PTY master (the kernel sends
/// SIGWINCH to the terminal's foreground group): `ok` ·
/// `{error, not_a_pty}` · `{error, invalid_size}` (not 1 to 10000) ·
/// `{error, closed}` · `{error, Errno}`.
#[rustler::nif]
fn nif_set_window_size<'a>(
    env: Env<'a>,
    master: Term<'a>,
    rows: u32,
    cols: u32,
) -> NifResult<Term<'a>> {
    let obj = get_fd(master)?;
    if !matches!(obj.kind, Kind::PtyRead | Kind::PtyWrite { .. }) {
        return Ok((atoms::error(), atoms::not_a_pty()).encode(env));
    }
    let (Ok(rows), Ok(cols)) = (u16::try_from(rows), u16::try_from(cols)) else {
        return Ok((atoms::error(), atoms::invalid_size()).encode(env));
    };
    let guard = obj.fd.read().unwrap_or_else(|e| e.into_inner());
    if *guard < 0 {
        return Ok((atoms::error(), atoms::closed()).encode(env));
    }
    // SAFETY: open while the read lock is held.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(*guard) };
    match raw::set_window_size(fd, rows, cols) {
        Ok(()) => Ok(atoms::ok().encode(env)),
        Err(Error::InvalidOption { .. }) => Ok((atoms::error(), atoms::invalid_size()).encode(env)),
        Err(Error::Io(e)) => Ok((
            atoms::error(),
            errno_atom(env, e.raw_os_error().unwrap_or(libc::EIO)),
        )
            .encode(env)),
        Err(other) => Ok((atoms::error(), other.to_string()).encode(env)),
    }
}

/// The bytes that end the program's input through the terminal, to write
/// before closing the PTY stdin: the VEOF character once at the start of a
/// line, twice after a partial line (once in raw mode; none if disabled).
/// `{ok, Bytes}` · `{error, not_a_pty}` · `{error, closed}` · `{error, Errno}`.
#[rustler::nif]
fn nif_pty_eof<'a>(env: Env<'a>, stdin: Term<'a>) -> NifResult<Term<'a>> {
    let obj = get_fd(stdin)?;
    let Kind::PtyWrite { at_line_start } = &obj.kind else {
        return Ok((atoms::error(), atoms::not_a_pty()).encode(env));
    };
    let guard = obj.fd.read().unwrap_or_else(|e| e.into_inner());
    if *guard < 0 {
        return Ok((atoms::error(), atoms::closed()).encode(env));
    }
    // SAFETY: open while the read lock is held.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(*guard) };
    match raw::pty_eof_bytes(fd, at_line_start.load(Ordering::Relaxed)) {
        Ok(bytes) => {
            let mut bin =
                OwnedBinary::new(bytes.len()).ok_or(rustler::Error::RaiseAtom("enomem"))?;
            bin.as_mut_slice().copy_from_slice(&bytes);
            Ok((atoms::ok(), Binary::from_owned(bin, env)).encode(env))
        }
        Err(e) => Ok((
            atoms::error(),
            errno_atom(env, e.raw_os_error().unwrap_or(libc::EIO)),
        )
            .encode(env)),
    }
}

/// Whether a process with this pid exists (a zombie counts).
#[rustler::nif]
fn nif_is_os_pid_alive(os_pid: i32) -> bool {
    if os_pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks existence.
    unsafe { libc::kill(os_pid, 0) == 0 || errno() == libc::EPERM }
}

/// The platform's number for a lower-case signal name (`sigterm`):
/// `{ok, N}` · `{error, unknown_signal}`.
#[rustler::nif]
fn nif_signal_number<'a>(env: Env<'a>, name: Term<'a>) -> Term<'a> {
    let number = name.atom_to_string().ok().and_then(|n| {
        Some(match n.as_str() {
            "sighup" => libc::SIGHUP,
            "sigint" => libc::SIGINT,
            "sigquit" => libc::SIGQUIT,
            "sigill" => libc::SIGILL,
            "sigtrap" => libc::SIGTRAP,
            "sigabrt" => libc::SIGABRT,
            "sigiot" => libc::SIGIOT,
            "sigbus" => libc::SIGBUS,
            "sigfpe" => libc::SIGFPE,
            "sigkill" => libc::SIGKILL,
            "sigusr1" => libc::SIGUSR1,
            "sigsegv" => libc::SIGSEGV,
            "sigusr2" => libc::SIGUSR2,
            "sigpipe" => libc::SIGPIPE,
            "sigalrm" => libc::SIGALRM,
            "sigterm" => libc::SIGTERM,
            "sigstkflt" => libc::SIGSTKFLT,
            "sigchld" => libc::SIGCHLD,
            "sigcont" => libc::SIGCONT,
            "sigstop" => libc::SIGSTOP,
            "sigtstp" => libc::SIGTSTP,
            "sigttin" => libc::SIGTTIN,
            "sigttou" => libc::SIGTTOU,
            "sigurg" => libc::SIGURG,
            "sigxcpu" => libc::SIGXCPU,
            "sigxfsz" => libc::SIGXFSZ,
            "sigvtalrm" => libc::SIGVTALRM,
            "sigprof" => libc::SIGPROF,
            "sigwinch" => libc::SIGWINCH,
            "sigio" => libc::SIGIO,
            "sigpoll" => libc::SIGPOLL,
            "sigpwr" => libc::SIGPWR,
            "sigsys" => libc::SIGSYS,
            _ => return None,
        })
    });
    match number {
        Some(n) => (atoms::ok(), n).encode(env),
        None => (atoms::error(), atoms::unknown_signal()).encode(env),
    }
}

// ---------------------------------------------------------------------------
// Spawning.

/// What `NetRunner.Process.Exec` sends: `{Program, Args, Env, {EnvClear,
/// Cd, Stderr, KillTimeoutMs, StdinPipe}, {Pty, CgroupPath, CgroupBase,
/// MemoryMax, PidsMax, CpuMax, TimeoutMs}}`, where `Pty` is `nil` or
/// `{Rows, Cols, Raw}`, `CpuMax` `nil` or `{QuotaUs, PeriodUs}`, and every
/// other value of the second tuple a binary or integer, or `nil`.
type Spec<'a> = (
    Binary<'a>,
    Vec<Binary<'a>>,
    Vec<(Binary<'a>, Option<Binary<'a>>)>,
    (bool, Option<Binary<'a>>, Atom, u64, bool),
    Extra<'a>,
);

type Extra<'a> = (
    Option<(u16, u16, bool)>,
    Option<Binary<'a>>,
    Option<Binary<'a>>,
    Option<u64>,
    Option<u64>,
    Option<(u64, u64)>,
    Option<u64>,
);

fn os(bin: &Binary) -> OsString {
    OsString::from_vec(bin.as_slice().to_vec())
}

/// The one place that maps the Elixir options onto the library's builder
/// (adapt here when the builder's API changes).
fn build_command(spec: &Spec) -> Command {
    let (program, args, env, (env_clear, cd, stderr, kill_timeout_ms, _), extra) = spec;
    let (pty, cgroup_path, cgroup_base, memory_max, pids_max, cpu_max, timeout_ms) = extra;
    let mut cmd = Command::new(os(program));
    cmd.args(args.iter().map(os));
    if *env_clear {
        cmd.env_clear();
    }
    for (key, value) in env {
        match value {
            Some(v) => cmd.env(os(key), os(v)),
            None => cmd.env_remove(os(key)),
        };
    }
    if let Some(dir) = cd {
        cmd.current_dir(std::path::PathBuf::from(os(dir)));
    }
    let stderr = if *stderr == atoms::redirect() {
        Stderr::Redirect
    } else if *stderr == atoms::disabled() || *stderr == atoms::discard() {
        Stderr::Discard
    } else if *stderr == atoms::inherit() {
        Stderr::Inherit
    } else {
        Stderr::Consume
    };
    cmd.stderr(stderr)
        .kill_timeout(Duration::from_millis(*kill_timeout_ms));
    if let Some((rows, cols, raw_mode)) = pty {
        cmd.pty_with(Pty::new(*rows, *cols).raw(*raw_mode));
    }
    if let Some(path) = cgroup_path {
        cmd.cgroup(std::path::PathBuf::from(os(path)));
    }
    if let Some(base) = cgroup_base {
        cmd.cgroup_base(std::path::PathBuf::from(os(base)));
    }
    if let Some(bytes) = memory_max {
        cmd.memory_max(*bytes);
    }
    if let Some(n) = pids_max {
        cmd.pids_max(*n);
    }
    if let Some((quota_us, period_us)) = cpu_max {
        cmd.cpu_max(
            Duration::from_micros(*quota_us),
            Duration::from_micros(*period_us),
        );
    }
    // Enforced by the shepherd: the stop sequence at the deadline, even if
    // the BEAM is stalled; the exit report then says `deadline`.
    if let Some(ms) = timeout_ms {
        cmd.timeout(Duration::from_millis(*ms));
    }
    cmd
}

/// The runtime's handle: a current-thread runtime driven by a thread of
/// its own, which is what a one-worker multi-thread runtime is, without
/// the multi-thread scheduler's code (and its `libm` dependency, which
/// would reach the `netrunner` CLI through the workspace's shared tokio
/// features).
fn runtime() -> &'static tokio::runtime::Handle {
    static RT: OnceLock<tokio::runtime::Handle> = OnceLock::new();
    RT.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .expect("net_runner_nif: cannot start its tokio runtime");
        let handle = rt.handle().clone();
        std::thread::Builder::new()
            .name("netrunner-nif".into())
            .spawn(move || rt.block_on(std::future::pending::<()>()))
            .expect("net_runner_nif: cannot start its runtime thread");
        handle
    })
}

/// Starts a command; returns `{ok, Ref}` at once. The caller then receives
/// `{net_runner_spawned, Ref, Result}`, `Result` being
/// `{ok, Control, OsPid, Stdin | nil, Stdout, Stderr | nil}`,
/// `{error, {exec, Errno, Stage}}` (the program could not be started:
/// `enoent`, `eacces`, ...) or `{error, {invalid, Message}}` (bad input).
#[rustler::nif]
fn nif_spawn<'a>(env: Env<'a>, spec: Spec<'a>) -> NifResult<Term<'a>> {
    let cmd = build_command(&spec);
    let stdin_pipe = (spec.3).4;
    let caller: LocalPid = env.pid();
    let mut owned = OwnedEnv::new();
    let reference = env.make_ref();
    let saved_ref = owned.save(reference.encode(env));
    runtime().spawn(async move {
        let result = raw::spawn(&cmd, stdin_pipe).await;
        let _ = owned.send_and_clear(&caller, |env| {
            let reply = match result {
                Ok(child) => encode_child(env, child),
                Err(e) => encode_error(env, &e),
            };
            (atoms::net_runner_spawned(), saved_ref.load(env), reply).encode(env)
        });
    });
    Ok((atoms::ok(), reference).encode(env))
}

fn encode_child<'a>(env: Env<'a>, child: raw::RawChild) -> Term<'a> {
    let raw::RawChild {
        child_pid,
        shepherd,
        control,
        decoder,
        stdin,
        stdout,
        stderr,
        pty,
    } = child;
    let pipe = |fd: Option<OwnedFd>, kind: Kind| match fd {
        Some(fd) => make_fd(env, fd, kind),
        None => atoms::nil().encode(env),
    };
    let control = make_fd(
        env,
        control,
        Kind::Control {
            decoder: Mutex::new(decoder),
            shepherd: Mutex::new(Some(shepherd)),
        },
    );
    let (stdin, stdout) = if pty {
        let writer = Kind::PtyWrite {
            at_line_start: AtomicBool::new(true),
        };
        (pipe(stdin, writer), pipe(stdout, Kind::PtyRead))
    } else {
        (pipe(stdin, Kind::Write), pipe(stdout, Kind::Read))
    };
    let stderr = pipe(stderr, Kind::Read);
    (atoms::ok(), control, child_pid, stdin, stdout, stderr).encode(env)
}

fn encode_error<'a>(env: Env<'a>, e: &Error) -> Term<'a> {
    let exec = |errno: i32, stage: Atom| {
        (
            atoms::error(),
            (atoms::exec(), errno_atom(env, errno), stage),
        )
            .encode(env)
    };
    match e {
        Error::NotFound { .. } => exec(libc::ENOENT, atoms::exec()),
        Error::PermissionDenied { .. } => exec(libc::EACCES, atoms::exec()),
        Error::CwdNotFound { .. } => exec(libc::ENOENT, atoms::chdir()),
        Error::Cwd { source, .. } => exec(source.raw_os_error().unwrap_or(0), atoms::chdir()),
        Error::Spawn { source, .. } => match source.raw_os_error() {
            Some(errno) => exec(errno, atoms::exec()),
            None => (atoms::error(), (atoms::shepherd(), e.to_string())).encode(env),
        },
        Error::EmptyProgram | Error::NulByte { .. } | Error::InvalidEnvName(_) => {
            (atoms::error(), (atoms::invalid(), e.to_string())).encode(env)
        }
        Error::Cgroup(CgroupError::InvalidPath { .. }) => (
            atoms::error(),
            (atoms::invalid_cgroup_path(), e.to_string()),
        )
            .encode(env),
        Error::Cgroup(_) => (atoms::error(), (atoms::cgroup(), e.to_string())).encode(env),
        Error::InvalidOption { .. } => {
            (atoms::error(), (atoms::invalid_option(), e.to_string())).encode(env)
        }
        other => (atoms::error(), (atoms::shepherd(), other.to_string())).encode(env),
    }
}

fn load(env: Env, _info: Term) -> bool {
    let init = ErlNifResourceTypeInit {
        dtor: fd_dtor as *const ErlNifResourceDtor,
        stop: fd_stop as *const ErlNifResourceStop,
        down: ptr::null(),
    };
    let name = CString::new("net_runner_fd").unwrap();
    let mut tried = ErlNifResourceFlags::ERL_NIF_RT_CREATE;
    // SAFETY: called once from `load`, with a valid init struct.
    let ty = unsafe {
        enif_open_resource_type_x(
            env.as_c_arg(),
            name.as_ptr(),
            &init,
            ErlNifResourceFlags::ERL_NIF_RT_CREATE,
            &mut tried,
        )
    };
    if ty.is_null() {
        return false;
    }
    FD_TYPE.set(TypePtr(ty)).is_ok()
}

rustler::init!("Elixir.NetRunner.Process.Nif", load = load);
