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
    Exec { path: PathBuf, #[source] source: std::io::Error },
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
    if let Some(sibling) = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|d| d.join(&file))) {
        if sibling.exists() {
            return sibling;
        }
    }
    Path::new(paths::LIBEXEC_DIR).join(file)
}

/// Forks and execs `binary` as `creds` with only the IPC socket at FD 3
/// (FDs 0-2 are /dev/null) and an empty environment.
pub fn spawn(binary: &Path, creds: Credentials) -> Result<Spawned, SpawnError> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
    )
    .map_err(SpawnError::Socketpair)?;
    // The worker's end is blocking (its startup is sequential).
    nix::fcntl::fcntl(&theirs, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty())).map_err(SpawnError::Socketpair)?;
    let last_cap = privdrop::last_cap();
    let parent = std::process::id() as libc::pid_t;
    let theirs_raw = theirs.as_raw_fd();
    let mut cmd = Command::new(binary);
    cmd.env_clear().stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).current_dir("/");
    // SAFETY: drop_in_child makes raw syscalls only, as pre_exec requires.
    unsafe {
        cmd.pre_exec(move || privdrop::drop_in_child(creds, theirs_raw, last_cap, parent));
    }
    let child = cmd.spawn().map_err(|source| SpawnError::Exec { path: binary.to_owned(), source })?;
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
    Ok(Spawned { pid, pidfd, sock: ours })
}
