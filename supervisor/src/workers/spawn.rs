//! Starting one worker process: socketpair, fork, privilege drop, exec.

use std::{
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::process::CommandExt,
    },
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use palisade_ipc::messages::WorkerKind;

use super::privdrop::{self, Credentials};
use crate::paths;

/// Spawn errors.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// socketpair(2) failed.
    #[error("socketpair(AF_UNIX, SOCK_SEQPACKET)")]
    Socketpair(#[source] nix::errno::Errno),
    /// fork/exec failed (binary missing, not executable by the worker user,
    /// or the privilege drop failed).
    #[error("starting {path}")]
    Exec {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// pidfd_open(2) failed.
    #[error("pidfd_open")]
    Pidfd(#[source] std::io::Error),
}

/// A started process, before the handshake.
#[derive(Debug)]
pub struct Spawned {
    /// Process id.
    pub pid: u32,
    /// pidfd: readable when the process exits.
    pub pidfd: OwnedFd,
    /// Our end of the IPC socketpair (non-blocking, close-on-exec).
    pub sock: OwnedFd,
}

/// Binary of a worker: configured path, else next to the running `palisade`
/// binary, else the packaged location.
pub fn worker_binary(kind: WorkerKind, configured: Option<&Path>) -> PathBuf {
    if let Some(p) = configured {
        return p.to_owned();
    }
    let file = format!("palisade-worker-{}", kind.name());
    if let Some(sibling) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(&file)))
        && sibling.exists()
    {
        return sibling;
    }
    Path::new(paths::LIBEXEC_DIR).join(file)
}

/// argv for `execveat`, built before fork (no allocation in the child).
struct ExecArgs {
    /// The binary, opened by the supervisor (root) so the worker user needs
    /// no search permission on its directories and a path swap after the
    /// open cannot change what runs.
    fd: OwnedFd,
    _argv0: std::ffi::CString,
    argv: [*const libc::c_char; 2],
    envp: [*const libc::c_char; 1],
}

// SAFETY: the pointers point into `_argv0`, owned by the same struct and
// never mutated; the child only reads them.
unsafe impl Send for ExecArgs {}
// SAFETY: as above.
unsafe impl Sync for ExecArgs {}

impl ExecArgs {
    fn new(binary: &Path) -> std::io::Result<Self> {
        use std::os::unix::ffi::OsStrExt;
        let file = std::fs::File::open(binary)?;
        // Keep it clear of FD 3, which the child overwrites with the socket.
        let fd = nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(10))
            .map_err(std::io::Error::from)?;
        // SAFETY: F_DUPFD_CLOEXEC returned a new FD we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let argv0 =
            std::ffi::CString::new(binary.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
        let argv = [argv0.as_ptr(), std::ptr::null()];
        Ok(Self {
            fd,
            _argv0: argv0,
            argv,
            envp: [std::ptr::null()],
        })
    }

    /// execveat(fd, "", argv, {}, AT_EMPTY_PATH); returns only on failure.
    ///
    /// # Safety
    /// Between fork and exec only.
    unsafe fn exec(&self) -> std::io::Error {
        // SAFETY: valid FD, NUL-terminated argv/envp arrays that outlive the call.
        unsafe {
            libc::syscall(
                libc::SYS_execveat,
                self.fd.as_raw_fd(),
                c"".as_ptr(),
                self.argv.as_ptr(),
                self.envp.as_ptr(),
                libc::AT_EMPTY_PATH,
            );
        }
        std::io::Error::last_os_error()
    }
}

/// Forks and execs `binary` as `creds` with only the IPC socket at FD 3
/// (FDs 0-2 are /dev/null) and an empty environment.
pub fn spawn(binary: &Path, creds: Credentials) -> Result<Spawned, SpawnError> {
    let exec = ExecArgs::new(binary).map_err(|source| SpawnError::Exec {
        path: binary.to_owned(),
        source,
    })?;
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
    )
    .map_err(SpawnError::Socketpair)?;
    // The worker's end is blocking (its startup is sequential).
    nix::fcntl::fcntl(
        &theirs,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
    )
    .map_err(SpawnError::Socketpair)?;
    let last_cap = privdrop::last_cap();
    let parent = std::process::id() as libc::pid_t;
    let theirs_raw = theirs.as_raw_fd();
    let mut cmd = Command::new(binary);
    cmd.env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .current_dir("/");
    // SAFETY: drop_in_child and exec make raw syscalls only, as pre_exec
    // requires. The exec happens here (execveat on the FD opened above), so
    // std's own execvp never runs; std still reports our error if it fails.
    unsafe {
        cmd.pre_exec(move || {
            privdrop::drop_in_child(creds, theirs_raw, last_cap, parent)?;
            privdrop::reset_signals();
            Err(exec.exec())
        });
    }
    let child = cmd.spawn().map_err(|source| SpawnError::Exec {
        path: binary.to_owned(),
        source,
    })?;
    drop(theirs);
    let pid = child.id();
    // We reap through the pidfd + waitpid; std's Child is not needed.
    drop(child);
    // SAFETY: pidfd_open with a pid we just created and have not reaped.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if raw < 0 {
        return Err(SpawnError::Pidfd(std::io::Error::last_os_error()));
    }
    // SAFETY: the kernel returned a new FD that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
    Ok(Spawned {
        pid,
        pidfd,
        sock: ours,
    })
}
