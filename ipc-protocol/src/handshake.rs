//! The fixed-size first frame of every conversation.
//!
//! Layout (8 bytes, checked for exact size): `MAGIC` (4) | version (u16 LE) |
//! role (u8) | reserved (u8, must be 0). It never changes shape, so two
//! different protocol versions can always tell each other apart.

use crate::{MAGIC, PROTOCOL_VERSION, messages::WorkerKind};

/// Size of a handshake frame.
pub const HELLO_LEN: usize = 8;

/// Who is speaking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The supervisor (answering a worker or a CLI client).
    Supervisor,
    /// A worker of the given kind.
    Worker(WorkerKind),
    /// An operator CLI client on the control socket.
    Cli,
}

impl Role {
    fn to_byte(self) -> u8 {
        match self {
            Self::Supervisor => 0,
            Self::Worker(kind) => 1 + kind as u8,
            Self::Cli => 0x80,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::Supervisor),
            0x80 => Some(Self::Cli),
            n => WorkerKind::ALL
                .iter()
                .copied()
                .find(|k| 1 + *k as u8 == n)
                .map(Self::Worker),
        }
    }
}

/// A decoded handshake frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// The sender's protocol version.
    pub version: u16,
    /// The sender's role.
    pub role: Role,
}

/// Why a handshake frame was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// Not exactly [`HELLO_LEN`] bytes.
    #[error("handshake frame is {len} bytes, expected {HELLO_LEN}")]
    BadLength { len: usize },
    /// Does not start with [`MAGIC`].
    #[error("handshake frame has bad magic (not a Palisade peer)")]
    BadMagic,
    /// Unknown role byte or non-zero reserved byte.
    #[error("handshake frame has unknown role {role:#04x} or reserved bits set")]
    BadRole { role: u8 },
    /// The peer speaks another protocol version.
    #[error(
        "protocol version mismatch: peer speaks version {peer}, this side speaks {PROTOCOL_VERSION}"
    )]
    VersionMismatch { peer: u16 },
}

impl Hello {
    /// Our own hello, for the given role.
    pub fn ours(role: Role) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            role,
        }
    }

    /// Wire bytes of this hello.
    pub fn encode(&self) -> [u8; HELLO_LEN] {
        let v = self.version.to_le_bytes();
        [
            MAGIC[0],
            MAGIC[1],
            MAGIC[2],
            MAGIC[3],
            v[0],
            v[1],
            self.role.to_byte(),
            0,
        ]
    }

    /// Decodes and checks a peer's hello: exact size, magic, role, and that
    /// the version equals ours.
    pub fn decode(frame: &[u8]) -> Result<Self, HandshakeError> {
        let bytes: &[u8; HELLO_LEN] = frame
            .try_into()
            .map_err(|_| HandshakeError::BadLength { len: frame.len() })?;
        let [m0, m1, m2, m3, v0, v1, role, reserved] = *bytes;
        if [m0, m1, m2, m3] != MAGIC {
            return Err(HandshakeError::BadMagic);
        }
        let role_parsed = Role::from_byte(role).filter(|_| reserved == 0);
        let role = role_parsed.ok_or(HandshakeError::BadRole { role })?;
        let version = u16::from_le_bytes([v0, v1]);
        if version != PROTOCOL_VERSION {
            return Err(HandshakeError::VersionMismatch { peer: version });
        }
        Ok(Self { version, role })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_bytes() {
        assert_eq!(
            Hello::ours(Role::Worker(WorkerKind::Dns)).encode(),
            [b'P', b'L', b'S', b'D', 9, 0, 2, 0]
        );
        assert_eq!(
            Hello::ours(Role::Supervisor).encode(),
            [b'P', b'L', b'S', b'D', 9, 0, 0, 0]
        );
        assert_eq!(
            Hello::ours(Role::Cli).encode(),
            [b'P', b'L', b'S', b'D', 9, 0, 0x80, 0]
        );
    }

    #[test]
    fn round_trip_every_role() {
        for role in WorkerKind::ALL
            .iter()
            .map(|k| Role::Worker(*k))
            .chain([Role::Supervisor, Role::Cli])
        {
            let hello = Hello::ours(role);
            assert_eq!(Hello::decode(&hello.encode()), Ok(hello));
        }
    }

    #[test]
    fn refuses_bad_frames() {
        let good = Hello::ours(Role::Cli).encode();
        assert_eq!(
            Hello::decode(&good[..7]),
            Err(HandshakeError::BadLength { len: 7 })
        );
        let mut long = good.to_vec();
        long.push(0);
        assert_eq!(
            Hello::decode(&long),
            Err(HandshakeError::BadLength { len: 9 })
        );
        let mut bad = good;
        bad[0] = b'X';
        assert_eq!(Hello::decode(&bad), Err(HandshakeError::BadMagic));
        let mut bad = good;
        bad[4] = 99;
        assert_eq!(
            Hello::decode(&bad),
            Err(HandshakeError::VersionMismatch { peer: 99 })
        );
        let mut bad = good;
        bad[6] = 0x42;
        assert_eq!(
            Hello::decode(&bad),
            Err(HandshakeError::BadRole { role: 0x42 })
        );
        let mut bad = good;
        bad[7] = 1;
        assert!(matches!(
            Hello::decode(&bad),
            Err(HandshakeError::BadRole { .. })
        ));
    }
}
