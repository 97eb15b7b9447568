//! The daemon side of the control socket.

use std::{
    os::{
        fd::{AsFd, AsRawFd, OwnedFd},
        unix::fs::PermissionsExt,
    },
    path::{Path, PathBuf},
    time::Duration,
};

use nix::sys::{
    socket::{
        AddressFamily, Backlog, SockFlag, SockType, UnixAddr, accept4, bind, getsockopt, listen,
        setsockopt, socket,
        sockopt::{PeerCredentials, ReceiveTimeout, SendTimeout},
    },
    time::TimeVal,
};
use palisade_ipc::{
    MAX_FRAME, codec,
    handshake::{Hello, Role},
    messages::{ControlErrorKind, ControlRequest, ControlResponse},
    transport::{self, Received},
};

use super::{Peer, authorize, supplementary_groups};
use crate::paths;

/// A client gets this long per read/write before it is dropped.
const CLIENT_TIMEOUT: Duration = Duration::from_millis(500);

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

/// The listening socket.
#[derive(Debug)]
pub struct Server {
    listener: OwnedFd,
    path: PathBuf,
    control_gid: Option<u32>,
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
        })
    }

    /// The listening FD, for polling.
    pub fn fd(&self) -> &OwnedFd {
        &self.listener
    }

    /// Accepts every pending connection and serves each with `handle`.
    pub fn accept_all(&self, mut handle: impl FnMut(&ControlRequest) -> ControlResponse) {
        loop {
            let conn = match accept4(self.listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
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
            if let Err(e) = self.serve(&conn, &mut handle) {
                tracing::debug!(error = %e, "control client dropped");
            }
        }
    }

    fn serve(
        &self,
        conn: &OwnedFd,
        handle: &mut impl FnMut(&ControlRequest) -> ControlResponse,
    ) -> Result<(), String> {
        let tv = TimeVal::new(0, CLIENT_TIMEOUT.as_micros() as i64);
        setsockopt(conn, ReceiveTimeout, &tv).map_err(|e| e.to_string())?;
        setsockopt(conn, SendTimeout, &tv).map_err(|e| e.to_string())?;
        let cred = getsockopt(conn, PeerCredentials).map_err(|e| e.to_string())?;
        let peer = Peer {
            pid: cred.pid(),
            uid: cred.uid(),
            gid: cred.gid(),
        };
        let mut buf = vec![0u8; MAX_FRAME];
        let recv = |buf: &mut Vec<u8>| match transport::recv_frame(conn.as_fd(), buf) {
            Ok(Received::Frame { len, .. }) => Ok(len),
            Ok(other) => Err(format!("{other:?}")),
            Err(e) => Err(e.to_string()),
        };
        let len = recv(&mut buf)?;
        transport::send_frame(conn.as_fd(), &Hello::ours(Role::Supervisor).encode(), &[])
            .map_err(|e| e.to_string())?;
        match Hello::decode(buf.get(..len).unwrap_or_default()) {
            Ok(Hello {
                role: Role::Cli, ..
            }) => {}
            Ok(h) => return Err(format!("control client claims role {:?}", h.role)),
            Err(e) => return Err(e.to_string()),
        }
        let len = recv(&mut buf)?;
        let response = match codec::decode::<ControlRequest>(buf.get(..len).unwrap_or_default()) {
            Err(e) => ControlResponse::Error {
                kind: ControlErrorKind::Failed,
                message: format!("bad request: {e}"),
            },
            Ok(req) => match authorize(
                peer,
                &supplementary_groups(peer.pid),
                self.control_gid,
                &req,
            ) {
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
        };
        let frame = codec::encode(&response).map_err(|e| e.to_string())?;
        transport::send_frame(conn.as_fd(), &frame, &[]).map_err(|e| e.to_string())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
