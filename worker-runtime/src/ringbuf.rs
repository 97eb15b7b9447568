//! The worker's BPF ring buffer, mapped from the FD the supervisor passed.

use std::os::fd::OwnedFd;

use aya::maps::{Map, MapData, MapError, RingBuf};

/// Mapping the ring buffer failed.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    /// `BPF_OBJ_GET_INFO_BY_FD` or the mmaps failed. On kernels before 5.19
    /// with unprivileged BPF disabled every bpf() call fails for a worker.
    #[error(
        "mapping the ring buffer FD (BPF_OBJ_GET_INFO_BY_FD / mmap); kernels < 5.19 refuse bpf() to unprivileged processes"
    )]
    Map(#[source] MapError),
    /// The FD is a map, but not a ring buffer.
    #[error("the FD passed as ring buffer is not a BPF ring buffer map")]
    NotRingBuf(#[source] MapError),
}

/// Maps the ring buffer. Must run before seccomp is installed (it needs
/// `bpf` and `mmap`).
pub fn open(fd: OwnedFd) -> Result<RingBuf<MapData>, RingError> {
    let data = MapData::from_fd(fd).map_err(RingError::Map)?;
    let map = Map::from_map_data(data).map_err(RingError::Map)?;
    RingBuf::try_from(map).map_err(RingError::NotRingBuf)
}
