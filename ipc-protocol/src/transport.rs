//! Frames over `SOCK_SEQPACKET` Unix sockets, with SCM_RIGHTS FD passing.
//!
//! The only I/O in this crate. Received FDs are `MSG_CMSG_CLOEXEC` so they
//! never leak into a process the receiver later spawns.

use std::{
    io::{IoSlice, IoSliceMut},
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd},
};

use nix::{
    cmsg_space,
    errno::Errno,
    sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, UnixAddr, recvmsg, sendmsg},
};

use crate::{MAX_FDS_PER_FRAME, MAX_FRAME};

/// Transport failures.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// `sendmsg` failed.
    #[error("sendmsg on IPC socket")]
    Send(#[source] Errno),
    /// `recvmsg` failed.
    #[error("recvmsg on IPC socket")]
    Recv(#[source] Errno),
    /// The peer sent a frame larger than [`MAX_FRAME`]; the kernel truncated it.
    #[error("peer sent a frame larger than {MAX_FRAME} bytes")]
    Oversized,
    /// The peer sent more FDs than [`MAX_FDS_PER_FRAME`].
    #[error("peer sent more than {MAX_FDS_PER_FRAME} file descriptors")]
    TooManyFds,
    /// A frame to send is larger than [`MAX_FRAME`].
    #[error("refusing to send a frame of {len} bytes")]
    FrameTooLarge { len: usize },
}

/// Result of one receive.
#[derive(Debug)]
pub enum Received {
    /// A frame of `len` bytes at the start of the buffer, with its FDs.
    Frame {
        /// Bytes in the buffer.
        len: usize,
        /// FDs that arrived with it (owned; close on drop).
        fds: Vec<OwnedFd>,
    },
    /// Non-blocking socket with nothing queued.
    WouldBlock,
    /// The peer closed its end.
    Closed,
}

/// Sends one frame, with optional FDs.
pub fn send_frame(
    sock: BorrowedFd<'_>,
    frame: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<(), TransportError> {
    if frame.len() > MAX_FRAME {
        return Err(TransportError::FrameTooLarge { len: frame.len() });
    }
    let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    let iov = [IoSlice::new(frame)];
    let rights = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &rights };
    loop {
        match sendmsg::<UnixAddr>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(TransportError::Send(e)),
        }
    }
}

/// Receives one frame into `buf` (which should be [`MAX_FRAME`] bytes).
pub fn recv_frame(sock: BorrowedFd<'_>, buf: &mut [u8]) -> Result<Received, TransportError> {
    let mut cmsg = cmsg_space!([RawFd; MAX_FDS_PER_FRAME]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = loop {
        match recvmsg::<UnixAddr>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => break msg,
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return Ok(Received::WouldBlock),
            Err(e) => return Err(TransportError::Recv(e)),
        }
    };
    let mut fds = Vec::new();
    // cmsgs() fails on MSG_CTRUNC: more FDs than we have room for.
    let cmsgs = msg.cmsgs().map_err(|_| TransportError::TooManyFds)?;
    for c in cmsgs {
        if let ControlMessageOwned::ScmRights(raw) = c {
            for fd in raw {
                // SAFETY: the kernel just installed `fd` in our table for us;
                // nothing else owns it.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    if msg.flags.contains(MsgFlags::MSG_TRUNC) {
        return Err(TransportError::Oversized);
    }
    if msg.bytes == 0 && fds.is_empty() {
        return Ok(Received::Closed);
    }
    Ok(Received::Frame {
        len: msg.bytes,
        fds,
    })
}

#[cfg(test)]
mod tests {
    use std::{fs::File, io::Read, os::fd::AsFd};

    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};

    use super::*;

    fn pair() -> (OwnedFd, OwnedFd) {
        socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .expect("socketpair")
    }

    #[test]
    fn frame_with_fd_round_trip() {
        let (a, b) = pair();
        let mut tmp = tempfile_with(b"hello fd");
        send_frame(a.as_fd(), b"abc", &[tmp.as_fd()]).expect("send");
        let mut buf = vec![0u8; MAX_FRAME];
        match recv_frame(b.as_fd(), &mut buf).expect("recv") {
            Received::Frame { len, fds } => {
                assert_eq!(buf.get(..len), Some(&b"abc"[..]));
                assert_eq!(fds.len(), 1);
                let mut f = File::from(fds.into_iter().next().expect("one fd"));
                let mut s = String::new();
                f.read_to_string(&mut s).expect("read passed fd");
                assert_eq!(s, "hello fd");
                let flags = nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_GETFD).expect("getfd");
                assert_ne!(
                    flags & libc::FD_CLOEXEC,
                    0,
                    "received FDs must be close-on-exec"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        let _ = tmp.flush_close();
    }

    #[test]
    fn oversized_frame_is_reported() {
        let (a, b) = pair();
        let big = vec![1u8; MAX_FRAME + 10];
        // Bypass send_frame's own check: a hostile peer would.
        let iov = [IoSlice::new(&big)];
        sendmsg::<UnixAddr>(a.as_raw_fd(), &iov, &[], MsgFlags::empty(), None).expect("raw send");
        let mut buf = vec![0u8; MAX_FRAME];
        assert!(matches!(
            recv_frame(b.as_fd(), &mut buf),
            Err(TransportError::Oversized)
        ));
    }

    #[test]
    fn closed_peer() {
        let (a, b) = pair();
        drop(a);
        let mut buf = vec![0u8; 16];
        assert!(matches!(
            recv_frame(b.as_fd(), &mut buf),
            Ok(Received::Closed)
        ));
    }

    struct TmpFile(File, std::path::PathBuf);
    impl TmpFile {
        fn as_fd(&self) -> BorrowedFd<'_> {
            self.0.as_fd()
        }
        fn flush_close(&mut self) -> std::io::Result<()> {
            std::fs::remove_file(&self.1)
        }
    }
    fn tempfile_with(content: &[u8]) -> TmpFile {
        let path = std::env::temp_dir().join(format!("palisade-ipc-test-{}", std::process::id()));
        std::fs::write(&path, content).expect("write temp");
        TmpFile(File::open(&path).expect("open temp"), path)
    }
}
