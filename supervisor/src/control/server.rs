//! The daemon side of the control socket: the HTTP/1.1 API ([`super::http`]).
//!
//! Clients never block the event loop: every connection is non-blocking and registered with
//! the loop's poll; each time it is readable the bytes queued are appended to its buffer
//! (at most [`http::MAX_HEAD`] + [`http::MAX_BODY`]), and once they make a whole request it
//! is answered; the answer is written as far as the socket takes it, the rest when it is
//! writable again. A client gets [`CLIENT_TIMEOUT`] in all, from connect to the last byte of
//! the answer: past it, it gets a 408 (if nothing was answered yet) and is dropped. At most
//! [`MAX_CLIENTS`] are served at once; more are closed on accept (and logged), so idle or
//! slow clients cost a slot each, never time of the loop (the heartbeats of the workers are
//! read in between).

use std::{
    os::{
        fd::{AsFd, AsRawFd, OwnedFd},
        unix::fs::PermissionsExt,
    },
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use mio::{Interest, Registry, Token, unix::SourceFd};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, UnixAddr, accept4, bind, getsockopt, listen,
    socket, sockopt::PeerCredentials,
};
use palisade_ipc::{
    codec,
    messages::{ControlErrorKind, ControlRequest, ControlResponse},
};

use super::http::{self, HttpError, Parse, Routed};
use super::{Peer, authorize};
use crate::paths;

/// A client gets this long, from connect to answer, before it is dropped.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Clients served at once; more are closed on accept.
pub const MAX_CLIENTS: usize = 32;
/// Poll token of client slot 0; slot `i` is `CLIENT_TOKEN_BASE + i`.
const CLIENT_TOKEN_BASE: usize = 1000;

/// Control socket errors.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Another daemon answers on the socket.
    #[error("another palisade daemon is already listening on {path}")]
    InUse { path: PathBuf },
    /// socket/bind/listen failed.
    #[error("{op} {path}")]
    Socket {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: nix::errno::Errno,
    },
    /// Creating the directory or setting ownership failed.
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The listening socket and the clients being served.
#[derive(Debug)]
pub struct Server {
    listener: OwnedFd,
    path: PathBuf,
    control_gid: Option<u32>,
    clients: Vec<Option<Client>>,
    /// Connections closed on accept because every slot was taken.
    refused: u64,
}

/// One connection being served.
#[derive(Debug)]
struct Client {
    conn: OwnedFd,
    peer: Peer,
    /// The request's bytes so far.
    request: Vec<u8>,
    /// The answer, once there is one, and how much of it is written.
    answer: Option<(Vec<u8>, usize)>,
    /// Registered for writability (the answer did not fit in the socket at once).
    writing: bool,
    deadline: Instant,
}

impl Server {
    /// Binds the socket (removing a stale one), 0660 root:`group`.
    pub fn bind(path: &Path, group: &str) -> Result<Self, ServerError> {
        if path.exists() {
            if super::client::is_live(path) {
                return Err(ServerError::InUse {
                    path: path.to_owned(),
                });
            }
            let _ = std::fs::remove_file(path);
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| ServerError::Io {
                op: "mkdir",
                path: dir.to_owned(),
                source,
            })?;
        }
        let sock_err = |op| {
            move |source| ServerError::Socket {
                op,
                path: path.to_owned(),
                source,
            }
        };
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map_err(sock_err("socket"))?;
        let addr = UnixAddr::new(path).map_err(sock_err("address"))?;
        bind(fd.as_raw_fd(), &addr).map_err(sock_err("bind"))?;
        listen(&fd, Backlog::new(16).map_err(sock_err("listen"))?).map_err(sock_err("listen"))?;
        let control_gid = crate::users::group_id(group);
        if control_gid.is_none() {
            tracing::warn!(
                group,
                "control group does not exist: only root can use the control socket"
            );
        }
        let io_err = |op| {
            move |source| ServerError::Io {
                op,
                path: path.to_owned(),
                source,
            }
        };
        std::os::unix::fs::chown(path, Some(0), control_gid.or(Some(0)))
            .map_err(io_err("chown"))?;
        std::fs::set_permissions(
            path,
            std::fs::Permissions::from_mode(paths::CONTROL_SOCKET_MODE),
        )
        .map_err(io_err("chmod"))?;
        Ok(Self {
            listener: fd,
            path: path.to_owned(),
            control_gid,
            clients: (0..MAX_CLIENTS).map(|_| None).collect(),
            refused: 0,
        })
    }

    /// The listening FD, for polling.
    pub fn fd(&self) -> &OwnedFd {
        &self.listener
    }

    /// Whether `token` is one of a client's.
    pub fn owns(token: Token) -> bool {
        (CLIENT_TOKEN_BASE..CLIENT_TOKEN_BASE + MAX_CLIENTS).contains(&token.0)
    }

    /// Accepts every pending connection into a free slot and registers it with `registry`.
    pub fn accept_all(&mut self, registry: &Registry) {
        loop {
            let conn = match accept4(
                self.listener.as_raw_fd(),
                SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            ) {
                Ok(raw) => {
                    // SAFETY: accept4 returned a new FD we own.
                    unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) }
                }
                Err(nix::errno::Errno::EAGAIN) => return,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "accept on control socket");
                    return;
                }
            };
            let Some(index) = self.clients.iter().position(Option::is_none) else {
                self.refused += 1;
                if self.refused.is_power_of_two() {
                    tracing::warn!(
                        refused = self.refused,
                        "control socket: {MAX_CLIENTS} clients already connected; closing new ones"
                    );
                }
                continue;
            };
            let Ok(cred) = getsockopt(&conn, PeerCredentials) else {
                continue;
            };
            let peer = Peer {
                pid: cred.pid(),
                uid: cred.uid(),
                gid: cred.gid(),
            };
            let token = Token(CLIENT_TOKEN_BASE + index);
            if let Err(e) =
                registry.register(&mut SourceFd(&conn.as_raw_fd()), token, Interest::READABLE)
            {
                tracing::warn!(error = %e, "epoll_ctl for a control client");
                continue;
            }
            if let Some(slot) = self.clients.get_mut(index) {
                *slot = Some(Client {
                    conn,
                    peer,
                    request: Vec::new(),
                    answer: None,
                    writing: false,
                    deadline: Instant::now() + CLIENT_TIMEOUT,
                });
            }
        }
    }

    /// The client behind `token` is readable or writable: reads what it sent, answers a
    /// whole request with `handle`, writes what the socket takes of the answer.
    pub fn on_ready(
        &mut self,
        registry: &Registry,
        token: Token,
        mut handle: impl FnMut(&ControlRequest) -> ControlResponse,
    ) {
        let index = token.0.wrapping_sub(CLIENT_TOKEN_BASE);
        let done = match self.serve(registry, index, &mut handle) {
            Ok(done) => done,
            Err(e) => {
                tracing::debug!(error = %e, "control client dropped");
                true
            }
        };
        if done {
            self.drop_client(registry, index);
        }
    }

    /// Drops clients past their deadline (idle, slow or stuck); one that has no answer yet
    /// gets a 408 first, if its socket takes it.
    pub fn expire(&mut self, registry: &Registry, now: Instant) {
        for index in 0..self.clients.len() {
            let Some(client) = self
                .clients
                .get_mut(index)
                .and_then(Option::as_mut)
                .filter(|c| now >= c.deadline)
            else {
                continue;
            };
            tracing::debug!(uid = client.peer.uid, "control client timed out");
            if client.answer.is_none() {
                let answer = http::error_response(&HttpError {
                    status: 408,
                    message: format!("no whole request within {} s", CLIENT_TIMEOUT.as_secs()),
                    allow: None,
                });
                let _ = nix::unistd::write(&client.conn, &answer);
            }
            self.drop_client(registry, index);
        }
    }

    fn drop_client(&mut self, registry: &Registry, index: usize) {
        if let Some(client) = self.clients.get_mut(index).and_then(Option::take) {
            let _ = registry.deregister(&mut SourceFd(&client.conn.as_raw_fd()));
        }
    }

    /// One step of client `index`; `Ok(true)` when its conversation is over.
    fn serve(
        &mut self,
        registry: &Registry,
        index: usize,
        handle: &mut impl FnMut(&ControlRequest) -> ControlResponse,
    ) -> Result<bool, String> {
        let control_gid = self.control_gid;
        let Some(Some(client)) = self.clients.get_mut(index) else {
            return Ok(true);
        };
        if client.answer.is_none() {
            match read_request(client) {
                Ok(None) => return Ok(false),
                Ok(Some(req)) => {
                    let groups = super::peer_groups(client.conn.as_fd());
                    client.answer =
                        Some((answer(client.peer, &groups, control_gid, &req, handle), 0));
                }
                Err(ReadError::Closed) => return Ok(true),
                Err(ReadError::Io(e)) => return Err(e),
                Err(ReadError::Http(e)) => {
                    tracing::debug!(uid = client.peer.uid, status = e.status, error = %e.message, "bad control request");
                    client.answer = Some((http::error_response(&e), 0));
                }
            }
        }
        let Some((answer, written)) = client.answer.as_mut() else {
            return Ok(false);
        };
        while let Some(rest) = answer.get(*written..).filter(|r| !r.is_empty()) {
            match nix::unistd::write(&client.conn, rest) {
                Ok(n) => *written += n,
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => {
                    if !client.writing {
                        client.writing = true;
                        let token = Token(CLIENT_TOKEN_BASE + index);
                        registry
                            .reregister(
                                &mut SourceFd(&client.conn.as_raw_fd()),
                                token,
                                Interest::READABLE | Interest::WRITABLE,
                            )
                            .map_err(|e| e.to_string())?;
                    }
                    return Ok(false);
                }
                Err(e) => return Err(format!("writing the answer: {e}")),
            }
        }
        Ok(true)
    }
}

/// Why a request could not be read.
enum ReadError {
    /// The client hung up before a whole request.
    Closed,
    /// The socket failed.
    Io(String),
    /// The bytes are no acceptable request: answer with this.
    Http(HttpError),
}

/// Reads what `client` sent since the last time; `Some` once it makes a whole request.
fn read_request(client: &mut Client) -> Result<Option<http::Request>, ReadError> {
    let mut chunk = [0u8; 4096];
    loop {
        match nix::unistd::read(&client.conn, &mut chunk) {
            Ok(0) => return Err(ReadError::Closed),
            Ok(n) => {
                client
                    .request
                    .extend_from_slice(chunk.get(..n).unwrap_or_default());
                // Parsed as it arrives, so an oversized or malformed request is refused
                // without reading (or buffering) the rest of it.
                match http::parse(&client.request) {
                    Ok(Parse::Incomplete) => {}
                    Ok(Parse::Complete(req)) => return Ok(Some(req)),
                    Err(e) => return Err(ReadError::Http(e)),
                }
                if client.request.len() > http::MAX_HEAD + http::MAX_BODY {
                    return Err(ReadError::Http(HttpError::bad("request too large")));
                }
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => return Ok(None),
            Err(e) => return Err(ReadError::Io(e.to_string())),
        }
    }
}

/// The HTTP answer to `req` from `peer`: routed, authorised, handled, encoded as asked.
fn answer(
    peer: Peer,
    groups: &[u32],
    control_gid: Option<u32>,
    req: &http::Request,
    handle: &mut impl FnMut(&ControlRequest) -> ControlResponse,
) -> Vec<u8> {
    let routed = match http::route(req) {
        Ok(r) => r,
        Err(e) => return http::error_response(&e),
    };
    let encoding = match http::encoding(req.accept.as_deref()) {
        Ok(e) => e,
        Err(e) => return http::error_response(&e),
    };
    let control = match &routed {
        Routed::Control(c) => c.clone(),
        // The exposition renders the status report.
        Routed::Metrics => ControlRequest::Status,
    };
    let response = respond(peer, groups, control_gid, &control, handle);
    match (routed, response) {
        (Routed::Metrics, ControlResponse::Status(report)) => http::response(
            200,
            crate::metrics::CONTENT_TYPE,
            &[],
            crate::metrics::render(&report).as_bytes(),
        ),
        (Routed::Metrics, other) => http::json_answer(&other),
        (Routed::Control(_), response) => match encoding {
            http::Encoding::Json => http::json_answer(&response),
            http::Encoding::Bincode => match codec::encode(&response) {
                Ok(body) => http::response(
                    http::status_of(&response),
                    &http::bincode_media_type(),
                    &[],
                    &body,
                ),
                Err(e) => http::error_response(&HttpError {
                    status: 500,
                    message: format!("encoding the answer: {e}"),
                    allow: None,
                }),
            },
        },
    }
}

/// The daemon's answer to `req` from `peer`: authorised, handled.
fn respond(
    peer: Peer,
    groups: &[u32],
    control_gid: Option<u32>,
    req: &ControlRequest,
    handle: &mut impl FnMut(&ControlRequest) -> ControlResponse,
) -> ControlResponse {
    match authorize(peer, groups, control_gid, req) {
        Err(message) => {
            tracing::warn!(uid = peer.uid, pid = peer.pid, request = ?req, "control request refused");
            ControlResponse::Error {
                kind: ControlErrorKind::PermissionDenied,
                message,
            }
        }
        Ok(()) => {
            if super::is_mutating(req) {
                tracing::info!(uid = peer.uid, pid = peer.pid, request = ?req, "control request");
            }
            handle(req)
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
