//! The worker's end of the IPC socket (FD 3).

use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};

use palisade_ipc::{
    MAX_FRAME, codec,
    handshake::{HandshakeError, Hello, Role},
    messages::{FdRole, SupervisorToWorker, WorkerConfig, WorkerKind, WorkerToSupervisor},
    transport::{self, Received, TransportError},
};

/// A message from the supervisor and the FDs it carried (only [`SupervisorToWorker::Fds`]
/// carries any), paired with their roles.
pub type Incoming = (SupervisorToWorker, Vec<(FdRole, OwnedFd)>);

/// The FD number the supervisor places the IPC socket at.
pub const IPC_FD: i32 = 3;

/// IPC failures on the worker side.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// FD 3 is missing or not a Unix SEQPACKET socket.
    #[error(
        "FD 3 is not a SEQPACKET socket: this program is started by `palisade run`, not by hand"
    )]
    NotStartedBySupervisor,
    /// The supervisor's hello was refused.
    #[error("handshake with the supervisor failed")]
    Handshake(#[from] HandshakeError),
    /// The supervisor answered the hello with something else.
    #[error("the supervisor answered with role {0:?}, expected Supervisor")]
    WrongPeer(Role),
    /// Transport failure.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Undecodable frame from the supervisor.
    #[error("undecodable frame from the supervisor")]
    Codec(#[from] codec::CodecError),
    /// The supervisor closed the socket.
    #[error("the supervisor closed the IPC socket")]
    Closed,
    /// Configure was malformed (wrong kind, FD count mismatch).
    #[error("bad configuration from the supervisor: {0}")]
    BadConfig(&'static str),
}

/// Where a worker's records come from.
#[derive(Debug)]
pub enum Input {
    /// The worker's BPF ring buffer (eBPF capture).
    Ring(OwnedFd),
    /// AF_PACKET sockets (capture without eBPF, [`crate::packet`]).
    Packets(Vec<OwnedFd>),
}

/// Configuration plus the FDs it describes.
#[derive(Debug)]
pub struct Configured {
    /// The configuration.
    pub config: WorkerConfig,
    /// Where records come from.
    pub input: Input,
    /// Event sink FD.
    pub sink: OwnedFd,
    /// Protocol-specific FDs (state file, registry), handed to
    /// [`crate::Protocol::on_fds`].
    pub extra: Vec<(FdRole, OwnedFd)>,
}

/// The IPC socket.
#[derive(Debug)]
pub struct Channel {
    sock: OwnedFd,
    buf: Vec<u8>,
}

impl Channel {
    /// Takes ownership of FD 3 after checking it is a SEQPACKET socket.
    pub fn from_fd3() -> Result<Self, ChannelError> {
        use nix::sys::socket::{getsockopt, sockopt::SockType};
        // SAFETY: FD 3 is ours by the startup contract; if it is not open,
        // getsockopt fails and we never use it. We own it from here on.
        let sock = unsafe { OwnedFd::from_raw_fd(IPC_FD) };
        match getsockopt(&sock, SockType) {
            Ok(nix::sys::socket::SockType::SeqPacket) => Ok(Self {
                sock,
                buf: vec![0; MAX_FRAME],
            }),
            _ => {
                std::mem::forget(sock);
                Err(ChannelError::NotStartedBySupervisor)
            }
        }
    }

    /// The socket, for polling.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// Sends our hello and checks the supervisor's.
    pub fn handshake(&mut self, kind: WorkerKind) -> Result<(), ChannelError> {
        transport::send_frame(
            self.sock.as_fd(),
            &Hello::ours(Role::Worker(kind)).encode(),
            &[],
        )?;
        let (len, _fds) = self.recv_raw()?;
        let frame = self.buf.get(..len).unwrap_or_default();
        let hello = Hello::decode(frame)?;
        if hello.role != Role::Supervisor {
            return Err(ChannelError::WrongPeer(hello.role));
        }
        Ok(())
    }

    /// Waits for `Configure` and its FDs.
    pub fn configure(&mut self, kind: WorkerKind) -> Result<Configured, ChannelError> {
        let (len, fds) = self.recv_raw()?;
        let msg: SupervisorToWorker = codec::decode(self.buf.get(..len).unwrap_or_default())?;
        let SupervisorToWorker::Configure(config) = msg else {
            return Err(ChannelError::BadConfig("first message was not Configure"));
        };
        if config.kind != kind {
            return Err(ChannelError::BadConfig(
                "configured for another worker kind",
            ));
        }
        if config.fds.len() != fds.len() {
            return Err(ChannelError::BadConfig(
                "FD count does not match the FD roles",
            ));
        }
        let (mut ring, mut sink, mut extra, mut packets) = (None, None, Vec::new(), Vec::new());
        for (role, fd) in config.fds.iter().zip(fds) {
            match role {
                FdRole::RingBuf => ring = Some(fd),
                FdRole::EventSink => sink = Some(fd),
                FdRole::State | FdRole::Registry => extra.push((*role, fd)),
                FdRole::PacketSocket => packets.push(fd),
            }
        }
        let input = match (ring, packets.is_empty()) {
            (Some(ring), true) => Input::Ring(ring),
            (None, false) => Input::Packets(packets),
            (Some(_), false) => {
                return Err(ChannelError::BadConfig(
                    "both a ring buffer and packet sockets",
                ));
            }
            (None, true) => return Err(ChannelError::BadConfig("ring buffer FD missing")),
        };
        match sink {
            Some(sink) => Ok(Configured {
                config,
                input,
                sink,
                extra,
            }),
            None => Err(ChannelError::BadConfig("sink FD missing")),
        }
    }

    fn recv_raw(&mut self) -> Result<(usize, Vec<OwnedFd>), ChannelError> {
        match transport::recv_frame(self.sock.as_fd(), &mut self.buf)? {
            Received::Frame { len, fds } => Ok((len, fds)),
            Received::Closed => Err(ChannelError::Closed),
            // The socket is blocking until the event loop starts.
            Received::WouldBlock => Err(ChannelError::Transport(TransportError::Recv(
                nix::errno::Errno::EAGAIN,
            ))),
        }
    }

    /// Switches the socket to non-blocking for the event loop.
    pub fn set_nonblocking(&self) -> Result<(), ChannelError> {
        use nix::fcntl::{FcntlArg, OFlag, fcntl};
        let flags = fcntl(&self.sock, FcntlArg::F_GETFL).map_err(TransportError::Recv)?;
        let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
        fcntl(&self.sock, FcntlArg::F_SETFL(flags)).map_err(TransportError::Recv)?;
        Ok(())
    }

    /// Non-blocking receive of the next message, if any, with the FDs of an
    /// [`SupervisorToWorker::Fds`] message (paired with their roles); FDs with any other
    /// message, or a count that does not match the roles, are an error (and closed).
    pub fn try_recv(&mut self) -> Result<Option<Incoming>, ChannelError> {
        match transport::recv_frame(self.sock.as_fd(), &mut self.buf)? {
            Received::Frame { len, fds } => {
                let msg = codec::decode(self.buf.get(..len).unwrap_or_default())?;
                let paired = match &msg {
                    SupervisorToWorker::Fds(roles) if roles.len() == fds.len() => {
                        roles.iter().copied().zip(fds).collect()
                    }
                    SupervisorToWorker::Fds(_) => {
                        return Err(ChannelError::BadConfig("FD count differs from the roles"));
                    }
                    _ if !fds.is_empty() => return Err(ChannelError::BadConfig("unexpected FDs")),
                    _ => Vec::new(),
                };
                Ok(Some((msg, paired)))
            }
            Received::WouldBlock => Ok(None),
            Received::Closed => Err(ChannelError::Closed),
        }
    }

    /// Sends one message.
    pub fn send(&self, msg: &WorkerToSupervisor) -> Result<(), ChannelError> {
        let frame = codec::encode(msg)?;
        transport::send_frame(self.sock.as_fd(), &frame, &[])?;
        Ok(())
    }
}
