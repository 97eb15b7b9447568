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
pub const PROTOCOL_VERSION: u16 = 1;

/// First four bytes of every handshake frame.
pub const MAGIC: [u8; 4] = *b"PLSD";

/// Largest frame either side sends or accepts, checked before any decoding.
pub const MAX_FRAME: usize = 64 * 1024;

/// Most file descriptors one frame may carry.
pub const MAX_FDS_PER_FRAME: usize = 8;
