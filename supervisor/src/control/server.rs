//! The daemon side of the control socket.
//!
//! Clients never block the event loop: every connection is non-blocking and registered with
//! the loop's poll; it advances one step (hello, then request -> response) each time it is
//! readable, and is dropped when it takes longer than [`CLIENT_TIMEOUT`] in all. At most
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
    MAX_FRAME, codec,
    handshake::{Hello, Role},
    messages::{ControlErrorKind, ControlRequest, ControlResponse},
    transport::{self, Received},
};

use super::{Peer, authorize, peer_groups};
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
    /// Receive buffer, one frame.
    buf: Vec<u8>,
}

/// Where a client's conversation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Waiting for the client's hello.
    Hello,
    /// Hello exchanged; waiting for the one request.
    Request,
}

/// One connection being served.
#[derive(Debug)]
struct Client {
    conn: OwnedFd,
    peer: Peer,
    step: Step,
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
            SockType::SeqPacket,
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
            buf: vec![0; MAX_FRAME],
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
                    step: Step::Hello,
                    deadline: Instant::now() + CLIENT_TIMEOUT,
                });
            }
        }
    }

    /// The client behind `token` is readable: advances its conversation as far as the frames
    /// already queued allow, answering its request with `handle`.
    pub fn on_readable(
        &mut self,
        registry: &Registry,
        token: Token,
        mut handle: impl FnMut(&ControlRequest) -> ControlResponse,
    ) {
        let index = token.0.wrapping_sub(CLIENT_TOKEN_BASE);
        let done = match self.serve(index, &mut handle) {
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

    /// Drops clients past their deadline (idle, slow or stuck).
    pub fn expire(&mut self, registry: &Registry, now: Instant) {
        for index in 0..self.clients.len() {
            if self
                .clients
                .get(index)
                .and_then(Option::as_ref)
                .is_some_and(|c| now >= c.deadline)
            {
                tracing::debug!("control client timed out");
                self.drop_client(registry, index);
            }
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
        index: usize,
        handle: &mut impl FnMut(&ControlRequest) -> ControlResponse,
    ) -> Result<bool, String> {
        let control_gid = self.control_gid;
        let Some(Some(client)) = self.clients.get_mut(index) else {
            return Ok(true);
        };
        let buf = &mut self.buf;
        loop {
            let len = match transport::recv_frame(client.conn.as_fd(), buf) {
                Ok(Received::Frame { len, .. }) => len,
                Ok(Received::WouldBlock) => return Ok(false),
                Ok(Received::Closed) => return Ok(true),
                Err(e) => return Err(e.to_string()),
            };
            let frame = buf.get(..len).unwrap_or_default();
            match client.step {
                Step::Hello => {
                    transport::send_frame(
                        client.conn.as_fd(),
                        &Hello::ours(Role::Supervisor).encode(),
                        &[],
                    )
                    .map_err(|e| e.to_string())?;
                    match Hello::decode(frame) {
                        Ok(Hello {
                            role: Role::Cli, ..
                        }) => client.step = Step::Request,
                        Ok(h) => return Err(format!("control client claims role {:?}", h.role)),
                        Err(e) => return Err(e.to_string()),
                    }
                }
                Step::Request => {
                    let groups = peer_groups(client.conn.as_fd());
                    let response = respond(client.peer, &groups, control_gid, frame, handle);
                    let frame = codec::encode(&response).map_err(|e| e.to_string())?;
                    transport::send_frame(client.conn.as_fd(), &frame, &[])
                        .map_err(|e| e.to_string())?;
                    return Ok(true);
                }
            }
        }
    }
}

/// The answer to one request frame from `peer`: decoded, authorised, handled.
fn respond(
    peer: Peer,
    groups: &[u32],
    control_gid: Option<u32>,
    frame: &[u8],
    handle: &mut impl FnMut(&ControlRequest) -> ControlResponse,
) -> ControlResponse {
    match codec::decode::<ControlRequest>(frame) {
        Err(e) => ControlResponse::Error {
            kind: ControlErrorKind::Failed,
            message: format!("bad request: {e}"),
        },
        Ok(req) => match authorize(peer, groups, control_gid, &req) {
            Err(message) => {
                tracing::warn!(uid = peer.uid, pid = peer.pid, request = ?req, "control request refused");
                ControlResponse::Error {
                    kind: ControlErrorKind::PermissionDenied,
                    message,
                }
            }
            Ok(()) => {
                if super::is_mutating(&req) {
                    tracing::info!(uid = peer.uid, pid = peer.pid, request = ?req, "control request");
                }
                handle(&req)
            }
        },
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
