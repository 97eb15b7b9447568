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
//!
//! With `[control] listen` the same API is also served over TCP ([`Server::bind_tcp`]):
//! the same parser, limits and slots; each request must carry the bearer token
//! ([`super::token`]), which gives the control group's rights (reads), or root's with
//! `tcp_changes = true`. `GET /metrics` may be left open (`metrics_without_token`).

use std::{
    net::SocketAddr,
    os::{
        fd::{AsFd, AsRawFd, OwnedFd, RawFd},
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
use super::{Peer, authorize, token::Token as ApiToken};
use crate::{config::ControlTcp, paths};

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
    /// The TCP listener (`[control] listen`) could not be opened.
    #[error("control.listen {addr}: {problem}")]
    Tcp { addr: SocketAddr, problem: String },
    /// The bearer token could not be read (`[control] token_file`).
    #[error("control.token_file: {0}")]
    Token(String),
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
    /// The API over TCP, when configured.
    tcp: Option<Tcp>,
}

/// The TCP side: its listener, settings and token.
#[derive(Debug)]
struct Tcp {
    listener: std::net::TcpListener,
    settings: ControlTcp,
    token: ApiToken,
    /// The token file as last read (device, inode, ctime, mtime, size).
    stamp: Option<(u64, u64, i64, i64, u64)>,
}

/// What identifies a version of a file: a rename over it, or a rewrite, changes it.
fn stamp(path: &Path) -> Option<(u64, u64, i64, i64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.dev(),
        m.ino(),
        m.ctime() * 1_000_000_000 + m.ctime_nsec(),
        m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        m.len(),
    ))
}

impl Tcp {
    /// Reads the token file again when it changed (rotation needs no restart); a new file
    /// that is no good token leaves the old one in force, and says so once.
    fn refresh(&mut self) {
        let now = stamp(&self.settings.token_file);
        if now == self.stamp {
            return;
        }
        self.stamp = now;
        match ApiToken::read(&self.settings.token_file) {
            Ok(t) => {
                if t != self.token {
                    tracing::info!("API token replaced (its file changed)");
                    self.token = t;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "API token file changed but holds no usable token: the previous token stays in force")
            }
        }
    }
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone, Copy)]
enum Who {
    /// A local process on the control socket (SO_PEERCRED).
    Local(Peer),
    /// A TCP client (rights from the bearer token its request carries).
    Tcp(SocketAddr),
}

/// One connection being served.
#[derive(Debug)]
struct Client {
    conn: OwnedFd,
    who: Who,
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
            tcp: None,
        })
    }

    /// Opens the API over TCP: reads the token, then listens on `settings.listen`.
    pub fn bind_tcp(&mut self, settings: &ControlTcp) -> Result<(), ServerError> {
        let stamp = stamp(&settings.token_file);
        let token = ApiToken::read(&settings.token_file).map_err(ServerError::Token)?;
        let addr = settings.listen;
        let listener = std::net::TcpListener::bind(addr).map_err(|e| ServerError::Tcp {
            addr,
            problem: match e.raw_os_error() {
                Some(libc::EAFNOSUPPORT | libc::EPERM | libc::EACCES) => format!(
                    "{e}: under systemd the unit allows no IP sockets; install the drop-in packaging/api-tcp.conf"
                ),
                _ => e.to_string(),
            },
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| ServerError::Tcp {
                addr,
                problem: e.to_string(),
            })?;
        tracing::info!(
            %addr,
            changes = settings.changes,
            metrics_without_token = settings.metrics_without_token,
            "API listening on TCP (bearer token)"
        );
        self.tcp = Some(Tcp {
            listener,
            settings: settings.clone(),
            token,
            stamp,
        });
        Ok(())
    }

    /// The listening FD, for polling.
    pub fn fd(&self) -> &OwnedFd {
        &self.listener
    }

    /// The TCP listener's FD, for polling, when there is one.
    pub fn tcp_fd(&self) -> Option<RawFd> {
        self.tcp.as_ref().map(|t| t.listener.as_raw_fd())
    }

    /// Accepts every pending TCP connection into a free slot.
    pub fn accept_tcp(&mut self, registry: &Registry) {
        loop {
            let Some(tcp) = &self.tcp else { return };
            let (stream, addr) = match tcp.listener.accept() {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "accept on the API's TCP listener");
                    return;
                }
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            self.admit(registry, OwnedFd::from(stream), Who::Tcp(addr));
        }
    }

    /// Puts a new connection into a free slot (closing it when there is none) and registers
    /// it with `registry`.
    fn admit(&mut self, registry: &Registry, conn: OwnedFd, who: Who) {
        let Some(index) = self.clients.iter().position(Option::is_none) else {
            self.refused += 1;
            if self.refused.is_power_of_two() {
                tracing::warn!(
                    refused = self.refused,
                    "control: {MAX_CLIENTS} clients already connected; closing new ones"
                );
            }
            return;
        };
        let token = Token(CLIENT_TOKEN_BASE + index);
        if let Err(e) =
            registry.register(&mut SourceFd(&conn.as_raw_fd()), token, Interest::READABLE)
        {
            tracing::warn!(error = %e, "epoll_ctl for a control client");
            return;
        }
        if let Some(slot) = self.clients.get_mut(index) {
            *slot = Some(Client {
                conn,
                who,
                request: Vec::new(),
                answer: None,
                writing: false,
                deadline: Instant::now() + CLIENT_TIMEOUT,
            });
        }
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
            let Ok(cred) = getsockopt(&conn, PeerCredentials) else {
                continue;
            };
            let peer = Peer {
                pid: cred.pid(),
                uid: cred.uid(),
                gid: cred.gid(),
            };
            self.admit(registry, conn, Who::Local(peer));
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
            tracing::debug!(client = ?client.who, "control client timed out");
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
        let tcp = self.tcp.as_mut();
        let Some(Some(client)) = self.clients.get_mut(index) else {
            return Ok(true);
        };
        if client.answer.is_none() {
            match read_request(client) {
                Ok(None) => return Ok(false),
                Ok(Some(req)) => {
                    let access = match client.who {
                        Who::Local(peer) => Access::Local {
                            peer,
                            groups: super::peer_groups(client.conn.as_fd()),
                            control_gid,
                        },
                        Who::Tcp(addr) => match tcp {
                            Some(tcp) => Access::Tcp {
                                // A rotated token file is read once per whole request.
                                token_ok: {
                                    tcp.refresh();
                                    tcp.token.admits(req.authorization.as_deref())
                                },
                                addr,
                                changes: tcp.settings.changes,
                                metrics_open: tcp.settings.metrics_without_token,
                            },
                            None => return Ok(true),
                        },
                    };
                    client.answer = Some((answer(&access, &req, handle), 0));
                }
                Err(ReadError::Closed) => return Ok(true),
                Err(ReadError::Io(e)) => return Err(e),
                Err(ReadError::Http(e)) => {
                    tracing::debug!(client = ?client.who, status = e.status, error = %e.message, "bad control request");
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

/// What a request's sender may do.
#[derive(Debug)]
enum Access {
    /// A local process: by its credentials ([`authorize`]).
    Local {
        peer: Peer,
        groups: Vec<u32>,
        control_gid: Option<u32>,
    },
    /// A TCP client: by the token its request carries.
    Tcp {
        addr: SocketAddr,
        token_ok: bool,
        changes: bool,
        metrics_open: bool,
    },
}

/// The HTTP answer to `req`: routed, authorised, handled, encoded as asked.
fn answer(
    access: &Access,
    req: &http::Request,
    handle: &mut impl FnMut(&ControlRequest) -> ControlResponse,
) -> Vec<u8> {
    let routed = match http::route(req) {
        Ok(r) => r,
        Err(e) => return http::error_response(&e),
    };
    if let Access::Tcp {
        addr,
        token_ok: false,
        metrics_open,
        ..
    } = access
        && !(*metrics_open && matches!(routed, Routed::Metrics))
    {
        tracing::warn!(%addr, "API request over TCP without the token refused");
        return http::error_response(&HttpError {
            status: 401,
            message: "the API over TCP needs the bearer token: Authorization: Bearer <token>"
                .into(),
            allow: None,
        });
    }
    let encoding = match http::encoding(req.accept.as_deref()) {
        Ok(e) => e,
        Err(e) => return http::error_response(&e),
    };
    let control = match &routed {
        Routed::Control(c) => c.clone(),
        // The exposition renders the status report.
        Routed::Metrics => ControlRequest::Status,
    };
    let response = respond(access, &control, handle);
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

/// The daemon's answer to `req`: authorised, handled.
fn respond(
    access: &Access,
    req: &ControlRequest,
    handle: &mut impl FnMut(&ControlRequest) -> ControlResponse,
) -> ControlResponse {
    let verdict = match access {
        Access::Local {
            peer,
            groups,
            control_gid,
        } => authorize(*peer, groups, *control_gid, req),
        Access::Tcp { changes, .. } => {
            if super::is_mutating(req) && !changes {
                Err("over TCP the token gives read access only (control.tcp_changes = true gives it root's)".into())
            } else {
                Ok(())
            }
        }
    };
    let who = match access {
        Access::Local { peer, .. } => format!("uid {} pid {}", peer.uid, peer.pid),
        Access::Tcp { addr, .. } => format!("tcp {addr}"),
    };
    match verdict {
        Err(message) => {
            tracing::warn!(client = %who, request = ?req, "control request refused");
            ControlResponse::Error {
                kind: ControlErrorKind::PermissionDenied,
                message,
            }
        }
        Ok(()) => {
            if super::is_mutating(req) {
                tracing::info!(client = %who, request = ?req, "control request");
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
