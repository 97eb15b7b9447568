//! Which interfaces to attach to.

use std::collections::BTreeSet;

use nix::net::if_::{InterfaceFlags, if_nametoindex};

/// An interface by name and index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Name.
    pub name: String,
    /// ifindex.
    pub index: u32,
}

/// Errors resolving interfaces.
#[derive(Debug, thiserror::Error)]
pub enum InterfaceError {
    /// A configured interface does not exist.
    #[error("interface {name} does not exist")]
    Missing { name: String, #[source] source: nix::errno::Errno },
    /// getifaddrs failed.
    #[error("listing interfaces (getifaddrs)")]
    List(#[source] nix::errno::Errno),
    /// No interface qualifies.
    #[error("no interface to attach to: none is up apart from loopback (use --interface)")]
    None,
}

/// Every interface that is up and not a loopback, in this network namespace.
pub fn default_interfaces() -> Result<Vec<String>, InterfaceError> {
    let mut names = BTreeSet::new();
    for ifa in nix::ifaddrs::getifaddrs().map_err(InterfaceError::List)? {
        if ifa.flags.contains(InterfaceFlags::IFF_UP) && !ifa.flags.contains(InterfaceFlags::IFF_LOOPBACK) {
            names.insert(ifa.interface_name);
        }
    }
    if names.is_empty() {
        return Err(InterfaceError::None);
    }
    Ok(names.into_iter().collect())
}

/// Resolves names to indexes.
pub fn resolve(names: &[String]) -> Result<Vec<Interface>, InterfaceError> {
    names
        .iter()
        .map(|name| {
            if_nametoindex(name.as_str())
                .map(|index| Interface { name: name.clone(), index })
                .map_err(|source| InterfaceError::Missing { name: name.clone(), source })
        })
        .collect()
}
