//! One way to reach the object's maps by name, and one error type for every kernel call the
//! supervisor's policy and flow code makes.
//!
//! The policy transactions (`policy::dns_kernel`, `policy::ip_kernel`, `flows`) take a
//! `&dyn Maps` rather than the loaded object, so their unit tests can hand them maps created in
//! `palisade_ebpf::fake`'s in-memory kernel (no root, no kernel): the bpf(2) calls go through
//! the same seam either way.

use std::{io, os::fd::BorrowedFd};

use palisade_ebpf::maps::map_fd;

use super::loader::Loaded;

/// A kernel call that failed, or a map or program the object lacks. Each names the map (or
/// program); the source names the bpf(2) command and keeps the errno.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// A map is missing from the object (a bug).
    #[error("map {0} missing from the eBPF object")]
    MissingMap(&'static str),
    /// A program is missing from the object (a bug).
    #[error("program {0} not loaded")]
    MissingProgram(&'static str),
    /// AF_PACKET capture: no eBPF program or map is loaded, so nothing is enforced.
    #[error("unavailable: capture is AF_PACKET (no eBPF programs loaded), enforcement needs eBPF")]
    Unavailable,
    /// A call on a map failed.
    #[error("{map}")]
    Call {
        /// The map (or the object being built, e.g. "new IP trie").
        map: &'static str,
        /// The failed call (its message names the bpf(2) command).
        #[source]
        source: io::Error,
    },
}

/// Wraps an error of a call on `map`.
pub fn on(map: &'static str) -> impl FnOnce(io::Error) -> KernelError {
    move |source| KernelError::Call { map, source }
}

/// The object's maps, by name.
pub trait Maps {
    /// The descriptor of map `name`.
    fn fd(&self, name: &'static str) -> Result<BorrowedFd<'_>, KernelError>;

    /// The per-rule hit counters of map `name` (a per-CPU hash `u32 -> u64`), summed over the
    /// CPUs, sorted by rule id.
    fn hits(&self, name: &'static str) -> Result<Vec<(u32, u64)>, KernelError>;
}

/// The kernel side when capture is AF_PACKET: every map access answers
/// [`KernelError::Unavailable`], so each enforcement command says why it cannot act.
#[derive(Debug)]
pub struct NoKernel;

impl Maps for NoKernel {
    fn fd(&self, _name: &'static str) -> Result<BorrowedFd<'_>, KernelError> {
        Err(KernelError::Unavailable)
    }

    fn hits(&self, _name: &'static str) -> Result<Vec<(u32, u64)>, KernelError> {
        Err(KernelError::Unavailable)
    }
}

/// The maps of `loaded`, or [`NoKernel`] without eBPF.
pub fn of(loaded: &Option<Loaded>) -> &dyn Maps {
    match loaded {
        Some(l) => l,
        None => &NoKernel,
    }
}

impl Maps for Loaded {
    fn fd(&self, name: &'static str) -> Result<BorrowedFd<'_>, KernelError> {
        self.ebpf
            .map(name)
            .and_then(map_fd)
            .ok_or(KernelError::MissingMap(name))
    }

    fn hits(&self, name: &'static str) -> Result<Vec<(u32, u64)>, KernelError> {
        let map = self.ebpf.map(name).ok_or(KernelError::MissingMap(name))?;
        palisade_ebpf::maps::read_hits(map).map_err(|e| on(name)(io::Error::other(e)))
    }
}

/// Maps created in the fake kernel, shaped like the object's, for unit tests.
#[cfg(test)]
pub mod fake {
    use std::{
        collections::HashMap,
        os::fd::{AsFd, OwnedFd},
    };

    use palisade_abi::*;
    use palisade_ebpf::fake::{FakeKernel, map_type};

    use super::{BorrowedFd, KernelError, Maps};

    /// The policy and flow maps of the object, in a fake kernel installed on this thread.
    #[derive(Debug)]
    pub struct FakeMaps {
        /// The fake kernel (fault injection, entry dumps).
        pub kernel: FakeKernel,
        maps: HashMap<&'static str, OwnedFd>,
    }

    impl FakeMaps {
        pub fn new() -> Self {
            let kernel = palisade_ebpf::fake::install();
            let shapes: [(&'static str, u32, usize, usize, u32); 11] = [
                (MAP_DNS_POLICY, map_type::ARRAY_OF_MAPS, 4, 4, 1),
                (
                    MAP_DNS_LEARNED,
                    map_type::HASH,
                    8,
                    DnsLearned::SIZE,
                    DNS_LEARNED_ENTRIES,
                ),
                (MAP_DNS_CONFIG, map_type::ARRAY, 4, DnsConfig::SIZE, 1),
                (MAP_IP4_POLICY, map_type::ARRAY_OF_MAPS, 4, 4, 1),
                (MAP_IP6_POLICY, map_type::ARRAY_OF_MAPS, 4, 4, 1),
                (
                    MAP_IP4_FILTER,
                    map_type::ARRAY,
                    4,
                    8,
                    IP4_FILTER_WORDS as u32,
                ),
                (MAP_IP_CONFIG, map_type::ARRAY, 4, IpConfig::SIZE, 1),
                (MAP_FLOWS, map_type::ARRAY_OF_MAPS, 4, 4, FLOW_SHARDS),
                (
                    MAP_FLOW_SWEEP,
                    map_type::ARRAY,
                    4,
                    FlowSweep::SIZE,
                    FLOW_SHARDS,
                ),
                (
                    MAP_GUARD_ALLOW,
                    map_type::HASH,
                    GuardKey::SIZE,
                    4,
                    GUARD_ALLOW_MAX,
                ),
                (MAP_GUARD_CONFIG, map_type::ARRAY, 4, GuardConfig::SIZE, 1),
            ];
            let maps = shapes
                .into_iter()
                .map(|(name, ty, key, value, max)| {
                    let fd = kernel
                        .create_map(name, ty, key as u32, value as u32, max)
                        .expect("fake map");
                    (name, fd)
                })
                .collect();
            Self { kernel, maps }
        }

        /// Every entry of map `name`.
        pub fn entries(&self, name: &'static str) -> Vec<(Vec<u8>, Vec<u8>)> {
            self.maps
                .get(name)
                .map(|fd| self.kernel.entries(fd))
                .unwrap_or_default()
        }
    }

    impl Default for FakeMaps {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Maps for FakeMaps {
        fn fd(&self, name: &'static str) -> Result<BorrowedFd<'_>, KernelError> {
            self.maps
                .get(name)
                .map(AsFd::as_fd)
                .ok_or(KernelError::MissingMap(name))
        }

        /// The fake kernel runs no program: nothing is ever hit.
        fn hits(&self, _name: &'static str) -> Result<Vec<(u32, u64)>, KernelError> {
            Ok(Vec::new())
        }
    }
}
