//! Frames over `SOCK_SEQPACKET` Unix sockets, with SCM_RIGHTS FD passing.
//!
//! The only I/O in this crate. Received FDs are `MSG_CMSG_CLOEXEC` so they
//! never leak into a process the receiver later spawns.

use std::{
    io::IoSlice,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd},
};

use nix::{
    errno::Errno,
    sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg},
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

/// Room for the control message of one frame: one `SCM_RIGHTS` header and
/// [`MAX_FDS_PER_FRAME`] descriptors, `u64`-aligned as `cmsghdr` requires.
const CMSG_WORDS: usize = 2 + (MAX_FDS_PER_FRAME * size_of::<RawFd>()).div_ceil(8) + 2;

/// Receives one frame into `buf` (which should be [`MAX_FRAME`] bytes).
///
/// Every descriptor the kernel installed is owned before any check, so none leaks whatever
/// the peer sent: with more than [`MAX_FDS_PER_FRAME`] descriptors the kernel installs what
/// fits, sets `MSG_CTRUNC` and drops the rest; the ones installed are closed here and the
/// frame is refused ([`TransportError::TooManyFds`]).
pub fn recv_frame(sock: BorrowedFd<'_>, buf: &mut [u8]) -> Result<Received, TransportError> {
    let mut control = [0_u64; CMSG_WORDS];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is valid (no name, no iov, no control yet).
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = control.as_mut_ptr().cast();
    hdr.msg_controllen = size_of_val(&control) as _;
    let bytes = loop {
        // SAFETY: `hdr` points at `iov` (over `buf`) and `control`, both alive and exclusively
        // borrowed for the call.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut hdr, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n.unsigned_abs();
        }
        match Errno::last() {
            Errno::EINTR => continue,
            Errno::EAGAIN => return Ok(Received::WouldBlock),
            e => return Err(TransportError::Recv(e)),
        }
    };
    let fds = take_fds(&hdr);
    if hdr.msg_flags & libc::MSG_CTRUNC != 0 {
        drop(fds);
        return Err(TransportError::TooManyFds);
    }
    if hdr.msg_flags & libc::MSG_TRUNC != 0 {
        return Err(TransportError::Oversized);
    }
    if bytes == 0 && fds.is_empty() {
        return Ok(Received::Closed);
    }
    Ok(Received::Frame { len: bytes, fds })
}

/// Owns every descriptor of every `SCM_RIGHTS` message `recvmsg` wrote into `hdr`'s control
/// buffer (also when it was truncated: those the kernel installed).
fn take_fds(hdr: &libc::msghdr) -> Vec<OwnedFd> {
    let mut fds = Vec::new();
    // SAFETY: `hdr` was filled by recvmsg; CMSG_FIRSTHDR/NXTHDR stay within `msg_controllen`.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(hdr) };
    while !cmsg.is_null() {
        // SAFETY: `cmsg` is a header inside the control buffer (checked by the macros).
        let c = unsafe { &*cmsg };
        if c.cmsg_level == libc::SOL_SOCKET && c.cmsg_type == libc::SCM_RIGHTS {
            // SAFETY: CMSG_LEN(0) is a constant computation.
            let header = unsafe { libc::CMSG_LEN(0) } as usize;
            let count = (c.cmsg_len as usize).saturating_sub(header) / size_of::<RawFd>();
            // SAFETY: the data of an SCM_RIGHTS message is `count` descriptors.
            let data = unsafe { libc::CMSG_DATA(cmsg) }.cast::<RawFd>();
            for i in 0..count {
                // SAFETY: `i < count`, inside this message's data; unaligned read is safe.
                let fd = unsafe { data.add(i).read_unaligned() };
                if fd >= 0 {
                    // SAFETY: the kernel just installed `fd` in our table for us; nothing
                    // else owns it.
                    fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        // SAFETY: as above.
        cmsg = unsafe { libc::CMSG_NXTHDR(hdr, cmsg) };
    }
    fds
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

    /// Descriptors of this process open on `path`.
    fn open_on(path: &std::path::Path) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .expect("/proc/self/fd")
            .filter_map(Result::ok)
            .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == path))
            .count()
    }

    #[test]
    fn too_many_fds_are_refused_and_none_leaks() {
        let (a, b) = pair();
        let path = std::env::temp_dir().join(format!("palisade-ipc-fdleak-{}", std::process::id()));
        std::fs::write(&path, b"x").expect("write temp");
        let file = File::open(&path).expect("open temp");
        let raw = vec![file.as_raw_fd(); MAX_FDS_PER_FRAME + 5];
        // A hostile peer: more descriptors than a frame may carry, in one SCM_RIGHTS.
        let iov = [IoSlice::new(b"frame")];
        let rights = [ControlMessage::ScmRights(&raw)];
        for _ in 0..3 {
            sendmsg::<UnixAddr>(a.as_raw_fd(), &iov, &rights, MsgFlags::empty(), None)
                .expect("raw send");
        }
        let mut buf = vec![0u8; MAX_FRAME];
        for _ in 0..3 {
            assert!(matches!(
                recv_frame(b.as_fd(), &mut buf),
                Err(TransportError::TooManyFds)
            ));
        }
        assert_eq!(
            open_on(&path),
            1,
            "only our own descriptor is open on the file"
        );
        // Exactly MAX_FDS_PER_FRAME still arrive, all owned.
        let raw = vec![file.as_raw_fd(); MAX_FDS_PER_FRAME];
        let rights = [ControlMessage::ScmRights(&raw)];
        sendmsg::<UnixAddr>(a.as_raw_fd(), &iov, &rights, MsgFlags::empty(), None).expect("send");
        match recv_frame(b.as_fd(), &mut buf).expect("recv") {
            Received::Frame { fds, .. } => {
                assert_eq!(fds.len(), MAX_FDS_PER_FRAME);
                assert_eq!(open_on(&path), 1 + MAX_FDS_PER_FRAME);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(open_on(&path), 1, "dropped with the frame");
        let _ = std::fs::remove_file(&path);
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
