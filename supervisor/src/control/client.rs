//! The CLI side of the control socket.

use std::{os::fd::AsFd, path::Path, time::Duration};

use nix::{
    errno::Errno,
    sys::{
        socket::{
            AddressFamily, SockFlag, SockType, UnixAddr, connect, setsockopt, socket,
            sockopt::ReceiveTimeout,
        },
        time::TimeVal,
    },
};
use palisade_ipc::{
    MAX_FRAME, codec,
    handshake::{Hello, Role},
    messages::{ControlErrorKind, ControlRequest, ControlResponse},
    transport::{self, Received},
};

/// How long the CLI waits for the daemon.
const TIMEOUT: Duration = Duration::from_secs(10);

/// CLI exit statuses (documented in palisade(8)).
pub mod exit {
    /// The daemon refused or failed the request.
    pub const FAILED: u8 = 1;
    /// A malformed command line (clap's own exit status for usage errors).
    pub const USAGE: u8 = 2;
    /// The daemon is not running.
    pub const NOT_RUNNING: u8 = 3;
    /// The caller lacks permission.
    pub const PERMISSION: u8 = 4;
    /// The daemon speaks another protocol version.
    pub const PROTOCOL: u8 = 5;
}

/// Client errors, each with its exit status.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket.
    #[error("palisade is not running (no daemon on {path}: {errno})")]
    NotRunning { path: String, errno: Errno },
    /// The socket exists but we may not connect.
    #[error("permission denied on {path}: run as root or as a member of the control group")]
    Permission { path: String },
    /// The daemon refused the request for lack of privilege.
    #[error("permission denied: {0}")]
    Refused(String),
    /// The daemon failed the request.
    #[error("{0}")]
    Failed(String),
    /// Handshake failure (version mismatch).
    #[error("talking to the daemon on {path}: {source}")]
    Protocol {
        path: String,
        #[source]
        source: palisade_ipc::handshake::HandshakeError,
    },
    /// Anything else on the socket.
    #[error("talking to the daemon on {path}: {message}")]
    Io { path: String, message: String },
}

impl ClientError {
    /// Exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::NotRunning { .. } => exit::NOT_RUNNING,
            Self::Permission { .. } | Self::Refused(_) => exit::PERMISSION,
            Self::Protocol { .. } => exit::PROTOCOL,
            Self::Failed(_) | Self::Io { .. } => exit::FAILED,
        }
    }
}

/// What is behind a control socket path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// A daemon accepts connections.
    Live,
    /// Nothing listens (no socket file, or a stale one).
    Absent,
    /// The caller may not connect (EACCES/EPERM): it cannot tell whether a daemon runs.
    Denied,
}

/// Connects to `path` (and hangs up) to see whether a daemon listens there.
pub fn probe(path: &Path) -> Probe {
    let Ok(fd) = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    ) else {
        return Probe::Absent;
    };
    let Ok(addr) = UnixAddr::new(path) else {
        return Probe::Absent;
    };
    match connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr) {
        Ok(()) => Probe::Live,
        Err(Errno::EACCES | Errno::EPERM) => Probe::Denied,
        Err(_) => Probe::Absent,
    }
}

/// True when a daemon answers on `path`.
pub fn is_live(path: &Path) -> bool {
    probe(path) == Probe::Live
}

/// Sends one request and returns the daemon's answer (errors mapped).
pub fn request(path: &Path, req: &ControlRequest) -> Result<ControlResponse, ClientError> {
    let p = path.display().to_string();
    let io = |message: String| ClientError::Io {
        path: p.clone(),
        message,
    };
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| io(e.to_string()))?;
    let addr = UnixAddr::new(path).map_err(|e| io(e.to_string()))?;
    match connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr) {
        Ok(()) => {}
        Err(Errno::EACCES | Errno::EPERM) => return Err(ClientError::Permission { path: p }),
        Err(errno @ (Errno::ENOENT | Errno::ECONNREFUSED | Errno::ENOTDIR)) => {
            return Err(ClientError::NotRunning { path: p, errno });
        }
        Err(e) => return Err(io(format!("connect: {e}"))),
    }
    let tv = TimeVal::new(TIMEOUT.as_secs() as i64, 0);
    setsockopt(&fd, ReceiveTimeout, &tv).map_err(|e| io(e.to_string()))?;
    let mut buf = vec![0u8; MAX_FRAME];
    let recv = |buf: &mut Vec<u8>| match transport::recv_frame(fd.as_fd(), buf) {
        Ok(Received::Frame { len, .. }) => Ok(buf.get(..len).unwrap_or_default().to_vec()),
        Ok(Received::Closed) => Err(io("the daemon closed the connection".into())),
        Ok(Received::WouldBlock) => Err(io("timed out waiting for the daemon".into())),
        Err(e) => Err(io(e.to_string())),
    };
    transport::send_frame(fd.as_fd(), &Hello::ours(Role::Cli).encode(), &[])
        .map_err(|e| io(e.to_string()))?;
    let hello = recv(&mut buf)?;
    Hello::decode(&hello).map_err(|source| ClientError::Protocol {
        path: p.clone(),
        source,
    })?;
    let frame = codec::encode(req).map_err(|e| io(e.to_string()))?;
    transport::send_frame(fd.as_fd(), &frame, &[]).map_err(|e| io(e.to_string()))?;
    let answer = recv(&mut buf)?;
    match codec::decode::<ControlResponse>(&answer).map_err(|e| io(e.to_string()))? {
        ControlResponse::Error {
            kind: ControlErrorKind::PermissionDenied,
            message,
        } => Err(ClientError::Refused(message)),
        ControlResponse::Error {
            kind: ControlErrorKind::Failed,
            message,
        } => Err(ClientError::Failed(message)),
        ok => Ok(ok),
    }
}
