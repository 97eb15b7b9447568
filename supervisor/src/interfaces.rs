//! Which interfaces to attach to, and what they are.
//!
//! The programs parse Ethernet frames, so only Ethernet-type interfaces
//! (ARPHRD_ETHER: NICs, veth, bridges, bonds, VLAN devices) qualify; a tun
//! or WireGuard device carries bare IP and would be misread.

use std::{
    collections::{BTreeMap, BTreeSet},
    io,
};

use nix::net::if_::{InterfaceFlags, if_nametoindex};

/// ARPHRD_ETHER from <linux/if_arp.h>.
const ARPHRD_ETHER: u16 = 1;

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
    Missing {
        name: String,
        #[source]
        source: nix::errno::Errno,
    },
    /// A configured interface does not carry Ethernet frames.
    #[error(
        "interface {name} is not an Ethernet interface (link type {hatype}); Palisade's programs parse Ethernet frames"
    )]
    NotEthernet { name: String, hatype: u16 },
    /// getifaddrs failed.
    #[error("listing interfaces (getifaddrs)")]
    List(#[source] nix::errno::Errno),
    /// No interface qualifies.
    #[error(
        "no interface to attach to: none is an up, non-loopback Ethernet interface (use --interface)"
    )]
    None,
}

/// Link type (ARPHRD_*) of every interface, from getifaddrs' AF_PACKET
/// entries, with its flags.
fn links() -> Result<BTreeMap<String, (u16, InterfaceFlags)>, InterfaceError> {
    let mut out = BTreeMap::new();
    for ifa in nix::ifaddrs::getifaddrs().map_err(InterfaceError::List)? {
        if let Some(link) = ifa.address.as_ref().and_then(|a| a.as_link_addr()) {
            out.insert(ifa.interface_name.clone(), (link.hatype(), ifa.flags));
        }
    }
    Ok(out)
}

/// Every Ethernet interface that is up and not a loopback, in this network
/// namespace.
pub fn default_interfaces() -> Result<Vec<String>, InterfaceError> {
    let names: BTreeSet<String> = links()?
        .into_iter()
        .filter(|(_, (hatype, flags))| {
            *hatype == ARPHRD_ETHER
                && flags.contains(InterfaceFlags::IFF_UP)
                && !flags.contains(InterfaceFlags::IFF_LOOPBACK)
        })
        .map(|(name, _)| name)
        .collect();
    if names.is_empty() {
        return Err(InterfaceError::None);
    }
    Ok(names.into_iter().collect())
}

/// Resolves names to indexes, refusing non-Ethernet interfaces.
pub fn resolve(names: &[String]) -> Result<Vec<Interface>, InterfaceError> {
    let links = links()?;
    names
        .iter()
        .map(|name| {
            if let Some((hatype, _)) = links.get(name).filter(|(h, _)| *h != ARPHRD_ETHER) {
                return Err(InterfaceError::NotEthernet {
                    name: name.clone(),
                    hatype: *hatype,
                });
            }
            if_nametoindex(name.as_str())
                .map(|index| Interface {
                    name: name.clone(),
                    index,
                })
                .map_err(|source| InterfaceError::Missing {
                    name: name.clone(),
                    source,
                })
        })
        .collect()
}

/// The driver of an interface (`SIOCETHTOOL` / `ETHTOOL_GDRVINFO` in this network namespace).
pub fn driver(ifname: &str) -> io::Result<String> {
    const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;
    #[repr(C)]
    struct DrvInfo {
        cmd: u32,
        driver: [u8; 32],
        rest: [u8; 160],
    }
    #[repr(C)]
    struct IfReq {
        name: [u8; libc::IFNAMSIZ],
        data: *mut DrvInfo,
        _pad: [u8; 16],
    }
    let mut info = DrvInfo {
        cmd: ETHTOOL_GDRVINFO,
        driver: [0; 32],
        rest: [0; 160],
    };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: &raw mut info,
        _pad: [0; 16],
    };
    for (slot, byte) in req
        .name
        .iter_mut()
        .zip(ifname.bytes().take(libc::IFNAMSIZ - 1))
    {
        *slot = byte;
    }
    // SAFETY: plain socket(2); the descriptor is checked and owned below.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor nothing else owns.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    // SAFETY: SIOCETHTOOL reads `req` (an ifreq whose data points at a valid, writable
    // ethtool_drvinfo-sized buffer) and writes at most that buffer; both outlive the call.
    let ret = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            libc::SIOCETHTOOL,
            &raw mut req,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    let len = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
    Ok(String::from_utf8_lossy(info.driver.get(..len).unwrap_or_default()).into_owned())
}
