//! Loading the embedded object: maps are pinned by name below the pin tree,
//! so a restarted supervisor reuses the same maps (and the ring buffers keep
//! what was queued while it was down).

use std::os::fd::OwnedFd;

use aya::{
    Ebpf, EbpfLoader,
    programs::{SchedClassifier, Xdp},
};
use palisade_ipc::messages::WorkerKind;

use super::pin::PinTree;

/// Loader errors.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The object or a map could not be loaded (BPF_MAP_CREATE / BPF_OBJ_GET).
    #[error(
        "loading the eBPF object (BPF_MAP_CREATE/BPF_OBJ_GET); is this root with CAP_BPF and CAP_NET_ADMIN?"
    )]
    Object(#[source] aya::EbpfError),
    /// The verifier or the kernel refused a program (BPF_PROG_LOAD).
    #[error("loading program {name} (BPF_PROG_LOAD)")]
    Program {
        name: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    /// A map the object must contain is missing.
    #[error(transparent)]
    Map(#[from] super::maps::KernelError),
    /// Duplicating a map FD failed.
    #[error("dup of map {name} FD")]
    Dup {
        name: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Ring buffer map of a worker.
pub fn ring_map(kind: WorkerKind) -> &'static str {
    match kind {
        WorkerKind::Dns => palisade_abi::MAP_RB_DNS,
        WorkerKind::Dhcp => palisade_abi::MAP_RB_DHCP,
        WorkerKind::Tls => palisade_abi::MAP_RB_TLS,
        WorkerKind::Flow => palisade_abi::MAP_RB_FLOW,
    }
}

/// Program `name` of the object, as its type `T`.
fn program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, LoadError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(LoadError::Program {
            name,
            source: aya::programs::ProgramError::NotLoaded,
        })?
        .try_into()
        .map_err(|source| LoadError::Program { name, source })
}

/// The loaded object.
#[derive(Debug)]
pub struct Loaded {
    /// aya's handle: maps and programs.
    pub ebpf: Ebpf,
    /// The flow table's shards (the maps in `pal_flows`' slots), in slot order: created or
    /// opened from their pins by [`crate::flows::open_table`] before anything is attached.
    pub flow_shards: Vec<OwnedFd>,
}

impl Loaded {
    /// Loads the object, both TC observers, the IP policy's TC programs, its XDP program and
    /// the flow sweeper's arming program.
    pub fn load(pins: &PinTree) -> Result<Self, LoadError> {
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(pins.maps())
            .load(palisade_ebpf::PALISADE_BPF)
            .map_err(LoadError::Object)?;
        for name in [
            palisade_abi::PROG_TC_INGRESS,
            palisade_abi::PROG_TC_EGRESS,
            palisade_abi::PROG_FLOW_TIMER_ARM,
            palisade_abi::PROG_FLOW_END_ALL,
            palisade_abi::PROG_TC_BLOCK_INGRESS,
            palisade_abi::PROG_TC_BLOCK_EGRESS,
        ] {
            program::<SchedClassifier>(&mut ebpf, name)?
                .load()
                .map_err(|source| LoadError::Program { name, source })?;
        }
        let name = palisade_abi::PROG_XDP_BLOCK;
        program::<Xdp>(&mut ebpf, name)?
            .load()
            .map_err(|source| LoadError::Program { name, source })?;
        Ok(Self {
            ebpf,
            flow_shards: Vec::new(),
        })
    }

    /// A fresh read-write FD of a worker's ring buffer, to pass over IPC.
    pub fn ring_fd(&self, kind: WorkerKind) -> Result<OwnedFd, LoadError> {
        let name = ring_map(kind);
        super::maps::Maps::fd(self, name)?
            .try_clone_to_owned()
            .map_err(|source| LoadError::Dup { name, source })
    }
}
