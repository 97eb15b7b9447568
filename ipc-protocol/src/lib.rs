//! Palisade's versioned IPC protocol.
//!
//! Two conversations use it, both over `SOCK_SEQPACKET` Unix sockets (one
//! frame per datagram, so message boundaries are the kernel's, not ours):
//!
//! * supervisor <-> worker, over the socketpair a worker inherits as FD 3;
//! * CLI <-> supervisor, over the control socket.
//!
//! Every conversation starts with a fixed-size [`handshake::Hello`] frame
//! (magic + [`PROTOCOL_VERSION`] + role) that any version of Palisade can
//! read, so a version mismatch is reported clearly instead of as garbage.
//! After it, frames are bincode-encoded [`messages`], at most [`MAX_FRAME`]
//! bytes. All bincode calls live in [`codec`]; which side may send which
//! message in which state is the table in [`validation`]; the only I/O is
//! in [`transport`] (SCM_RIGHTS FD passing).
//!
//! Any change to the encoding of any message must bump [`PROTOCOL_VERSION`]:
//! the golden-bytes tests in `codec` fail otherwise.

pub mod codec;
pub mod handshake;
pub mod messages;
pub mod transport;
pub mod validation;

/// Version of the wire protocol. Bump on any change to a message's encoding.
pub const PROTOCOL_VERSION: u16 = 9;

/// First four bytes of every handshake frame.
pub const MAGIC: [u8; 4] = *b"PLSD";

/// Largest frame either side sends or accepts, checked before any decoding.
pub const MAX_FRAME: usize = 64 * 1024;

/// Most file descriptors one frame may carry.
pub const MAX_FDS_PER_FRAME: usize = 8;

/// Exit statuses of a worker process, so the supervisor can say why a worker
/// ended even though workers have no stderr (their FDs 0-2 are /dev/null).
pub mod exit_code {
    /// Clean shutdown after `Shutdown`, or the supervisor went away.
    pub const OK: i32 = 0;
    /// Not started by the supervisor (FD 3 is not an IPC socket).
    pub const USAGE: i32 = 64;
    /// The handshake failed (version mismatch, bad magic, bad frame).
    pub const PROTOCOL: i32 = 76;
    /// The worker found itself privileged and refused to run.
    pub const PRIVILEGED: i32 = 77;
    /// Setting up (ring buffer, seccomp, prctl) failed.
    pub const SETUP: i32 = 71;
    /// A runtime I/O failure on the IPC socket.
    pub const IO: i32 = 74;

    /// Human-readable meaning of a worker exit status.
    pub fn describe(code: i32) -> &'static str {
        match code {
            OK => "exited cleanly",
            USAGE => "was not started by the palisade supervisor",
            PROTOCOL => "failed the IPC handshake (protocol version mismatch?)",
            PRIVILEGED => "refused to run because it is privileged",
            SETUP => "failed to set up (ring buffer, seccomp or prctl)",
            IO => "lost its IPC connection",
            _ => "exited with an unexpected status",
        }
    }
}
