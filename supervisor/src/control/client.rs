//! The CLI side of the control socket.

use std::{path::Path, time::Duration};

use nix::{
    errno::Errno,
    sys::{
        socket::{
            AddressFamily, SockFlag, SockType, UnixAddr, connect, setsockopt, socket,
            sockopt::{ReceiveTimeout, SendTimeout},
        },
        time::TimeVal,
    },
};
use palisade_ipc::{
    MAX_FRAME, codec,
    messages::{ControlErrorKind, ControlRequest, ControlResponse},
};

use super::http;

/// How long the CLI waits for the daemon.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long it waits for a reload: every list is read and validated and the kernel maps are
/// written (seconds for a million prefixes or names, more on a busy appliance).
const RELOAD_TIMEOUT: Duration = Duration::from_secs(120);

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
    /// The daemon speaks another protocol version.
    #[error("talking to the daemon on {path}: {message}")]
    Protocol { path: String, message: String },
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
        SockType::Stream,
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

/// The largest answer the CLI reads: a bincode frame and a generous head.
const MAX_ANSWER: usize = MAX_FRAME + 16 * 1024;

/// Sends one request over the HTTP API (the route [`http::target`] gives it; the answer in
/// the versioned bincode encoding) and returns the daemon's answer (errors mapped).
pub fn request(path: &Path, req: &ControlRequest) -> Result<ControlResponse, ClientError> {
    let p = path.display().to_string();
    let io = |message: String| ClientError::Io {
        path: p.clone(),
        message,
    };
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
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
    let timeout = match req {
        ControlRequest::Reload => RELOAD_TIMEOUT,
        _ => TIMEOUT,
    };
    let tv = TimeVal::new(timeout.as_secs() as i64, 0);
    setsockopt(&fd, ReceiveTimeout, &tv).map_err(|e| io(e.to_string()))?;
    setsockopt(&fd, SendTimeout, &tv).map_err(|e| io(e.to_string()))?;
    let (method, target, body) = http::target(req);
    let mut out = format!(
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nAccept: {}\r\nContent-Length: {}\r\n",
        http::bincode_media_type(),
        body.len()
    );
    if !body.is_empty() {
        out.push_str("Content-Type: application/json\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(&body);
    let mut sent = 0;
    while let Some(rest) = out.get(sent..).filter(|r| !r.is_empty()) {
        match nix::unistd::write(&fd, rest) {
            Ok(n) => sent += n,
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => return Err(io("timed out sending to the daemon".into())),
            Err(e) => return Err(io(format!("sending the request: {e}"))),
        }
    }
    let mut answer = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match nix::unistd::read(&fd, &mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(chunk.get(..n).unwrap_or_default());
                if answer.len() > MAX_ANSWER {
                    return Err(io(format!("the answer exceeds {MAX_ANSWER} bytes")));
                }
            }
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => return Err(io("timed out waiting for the daemon".into())),
            Err(e) => return Err(io(e.to_string())),
        }
    }
    if answer.is_empty() {
        return Err(io("the daemon closed the connection".into()));
    }
    let (status, content_type, body) =
        split_answer(&answer).ok_or_else(|| io("malformed answer from the daemon".into()))?;
    if content_type == http::bincode_media_type() {
        return match codec::decode::<ControlResponse>(body).map_err(|e| io(e.to_string()))? {
            ControlResponse::Error {
                kind: ControlErrorKind::PermissionDenied,
                message,
            } => Err(ClientError::Refused(message)),
            ControlResponse::Error {
                kind: ControlErrorKind::Failed,
                message,
            } => Err(ClientError::Failed(message)),
            ok => Ok(ok),
        };
    }
    // A JSON error: the request did not get as far as the daemon's handler.
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.pointer("/error/message")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("HTTP status {status}"));
    Err(match status {
        403 => ClientError::Refused(message),
        406 => ClientError::Protocol { path: p, message },
        _ => ClientError::Failed(message),
    })
}

/// Status, `Content-Type` and body of an HTTP answer (the daemon always closes after it).
fn split_answer(answer: &[u8]) -> Option<(u16, String, &[u8])> {
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(answer.get(..end)?).ok()?;
    let body = answer.get(end + 4..)?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let mut content_type = String::new();
    for line in lines {
        let (name, value) = line.split_once(':')?;
        if name.eq_ignore_ascii_case("content-type") {
            value.trim().clone_into(&mut content_type);
        } else if name.eq_ignore_ascii_case("content-length")
            && value.trim().parse::<usize>().ok()? != body.len()
        {
            return None;
        }
    }
    Some((status, content_type, body))
}
