//! Which interfaces to attach to: the configuration's names and patterns
//! ([`Selector`]), matched against the links rtnetlink reports (`crate::netlink`).
//!
//! The programs parse Ethernet frames, so only Ethernet-type interfaces
//! (ARPHRD_ETHER: NICs, veth, bridges, bonds, VLAN devices) qualify; a tun
//! or WireGuard device carries bare IP and would be misread.

use std::io;

/// ARPHRD_ETHER from <linux/if_arp.h>.
pub const ARPHRD_ETHER: u16 = 1;

/// Errors selecting interfaces at start.
#[derive(Debug, thiserror::Error)]
pub enum InterfaceError {
    /// A configured interface does not carry Ethernet frames.
    #[error(
        "interface {name} is not an Ethernet interface (link type {hatype}); Palisade's programs parse Ethernet frames"
    )]
    NotEthernet { name: String, hatype: u16 },
    /// The rtnetlink socket or its link dump failed.
    #[error("listing interfaces (rtnetlink)")]
    List(#[source] io::Error),
    /// No interface qualifies.
    #[error(
        "no interface to attach to: none is an up, non-loopback Ethernet interface (use --interface or a pattern such as \"eth*\" to wait for one)"
    )]
    None,
}

/// Characters that make an `interfaces` entry a pattern rather than a name.
const GLOB_CHARS: &[char] = &['*', '?', '['];

/// Whether a configured entry is a pattern (`*`, `?`, `[...]`) rather than an exact name.
pub fn is_glob(entry: &str) -> bool {
    entry.contains(GLOB_CHARS)
}

/// Checks a pattern's syntax: every `[` has its `]` (a `]` right after `[` or `[!` is a
/// member, as in fnmatch(3)). Returns what is wrong.
pub fn check_glob(pattern: &str) -> Result<(), String> {
    let p = pattern.as_bytes();
    let mut i = 0;
    while let Some(&c) = p.get(i) {
        if c == b'[' {
            match class_end(p, i) {
                Some(end) => i = end,
                None => return Err(format!("{pattern:?}: '[' without its ']'")),
            }
        }
        i += 1;
    }
    Ok(())
}

/// Index of the `]` closing the class that opens at `open`.
fn class_end(p: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    if matches!(p.get(i), Some(b'!' | b'^')) {
        i += 1;
    }
    // A `]` first in the class is a member.
    if p.get(i) == Some(&b']') {
        i += 1;
    }
    while let Some(&c) = p.get(i) {
        if c == b']' {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Whether `c` is in the class `p[open..=end]` (`[abc]`, `[a-z]`, `[!0-9]`).
fn class_matches(p: &[u8], open: usize, end: usize, c: u8) -> bool {
    let mut i = open + 1;
    let negated = matches!(p.get(i), Some(b'!' | b'^'));
    if negated {
        i += 1;
    }
    let mut found = false;
    let mut first = true;
    while i < end {
        let Some(&lo) = p.get(i) else { break };
        if lo == b']' && !first {
            break;
        }
        first = false;
        if p.get(i + 1) == Some(&b'-') && i + 2 < end {
            let hi = p.get(i + 2).copied().unwrap_or(lo);
            found |= (lo..=hi).contains(&c);
            i += 3;
        } else {
            found |= lo == c;
            i += 1;
        }
    }
    found != negated
}

/// Shell-style match of a whole interface name: `*` any run (also empty), `?` one
/// character, `[...]` one of a class (ranges, `!` or `^` negates). A pattern whose
/// brackets do not close ([`check_glob`] refuses it) matches its `[` literally.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    // Where the last `*` was, and the name position it is tried from: backtracking to it
    // alone is enough for `*` (linear in practice, names are 15 bytes at most).
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        let c = n.get(ni).copied().unwrap_or(0);
        let step = match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ni));
                pi += 1;
                continue;
            }
            Some(b'?') => Some(pi + 1),
            Some(b'[') => match class_end(p, pi) {
                Some(end) => class_matches(p, pi, end, c).then_some(end + 1),
                None => (c == b'[').then_some(pi + 1),
            },
            Some(&lit) => (lit == c).then_some(pi + 1),
            None => None,
        };
        match (step, star) {
            (Some(next), _) => {
                pi = next;
                ni += 1;
            }
            (None, Some((sp, sn))) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            (None, None) => return false,
        }
    }
    p.get(pi..).unwrap_or_default().iter().all(|&b| b == b'*')
}

/// One link as rtnetlink reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// ifindex.
    pub index: u32,
    /// Name.
    pub name: String,
    /// Link type (ARPHRD_*).
    pub hatype: u16,
    /// IFF_UP.
    pub up: bool,
    /// IFF_LOOPBACK.
    pub loopback: bool,
    /// The XDP program attached to it (IFLA_XDP_PROG_ID), 0 for none.
    pub xdp_prog: u32,
}

impl Link {
    /// Carries Ethernet frames (what the programs parse).
    pub fn is_ethernet(&self) -> bool {
        self.hatype == ARPHRD_ETHER && !self.loopback
    }
}

/// Which interfaces the configuration selects: `interfaces = [...]` as exact names and
/// patterns, or (empty) every up, non-loopback Ethernet interface.
///
/// An exact name is attached whether the interface is up or not, as before (a TCX link
/// stays through down and up); a pattern or the default selects an interface once it is up,
/// so a device being set up under a matching name is taken when it is ready. Either way
/// only Ethernet-type interfaces qualify.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    entries: Vec<String>,
}

impl Selector {
    /// From `interfaces` (already validated by the configuration).
    pub fn new(entries: &[String]) -> Self {
        Self {
            entries: entries.to_vec(),
        }
    }

    /// The default: every up, non-loopback Ethernet interface.
    pub fn is_default(&self) -> bool {
        self.entries.is_empty()
    }

    /// The exact names configured.
    pub fn exact(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .filter(|e| !is_glob(e))
            .map(String::as_str)
    }

    /// The patterns configured.
    pub fn globs(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .filter(|e| is_glob(e))
            .map(String::as_str)
    }

    /// Whether the name is configured exactly.
    pub fn names_exactly(&self, name: &str) -> bool {
        self.exact().any(|e| e == name)
    }

    /// Whether `name` is selected by name alone (type and state aside).
    pub fn matches_name(&self, name: &str) -> bool {
        self.is_default() || self.names_exactly(name) || self.globs().any(|g| glob_match(g, name))
    }

    /// Whether Palisade, attached to `link`, stays: it is still selected by name and
    /// carries Ethernet (down or up: links stay through that).
    pub fn keeps(&self, link: &Link) -> bool {
        link.is_ethernet() && self.matches_name(&link.name)
    }

    /// Whether Palisade should be attached to `link` now.
    pub fn wants(&self, link: &Link) -> bool {
        if !link.is_ethernet() {
            return false;
        }
        if self.names_exactly(&link.name) {
            return true;
        }
        link.up && (self.is_default() || self.globs().any(|g| glob_match(g, &link.name)))
    }
}

/// Checks the links present at start against the selection: a configured exact name
/// that exists must carry Ethernet (a configuration error, as before), and the default
/// selection must find at least one interface (a host without any is most likely the wrong
/// network namespace). Names and patterns that match nothing yet are waited for.
pub fn check_selection(selector: &Selector, links: &[Link]) -> Result<(), InterfaceError> {
    for name in selector.exact() {
        if let Some(l) = links.iter().find(|l| l.name == name && !l.is_ethernet()) {
            return Err(InterfaceError::NotEthernet {
                name: name.to_owned(),
                hatype: l.hatype,
            });
        }
    }
    if selector.is_default() && !links.iter().any(|l| selector.wants(l)) {
        return Err(InterfaceError::None);
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, up: bool) -> Link {
        Link {
            index: 7,
            name: name.into(),
            hatype: ARPHRD_ETHER,
            up,
            loopback: false,
            xdp_prog: 0,
        }
    }

    #[test]
    fn globs_match_like_fnmatch() {
        for (p, n, m) in [
            ("eth*", "eth0", true),
            ("eth*", "eth", true),
            ("eth*", "veth0", false),
            ("veth?", "veth1", true),
            ("veth?", "veth10", false),
            ("br-lan", "br-lan", true),
            ("br-*", "br-lan", true),
            ("*lan", "br-lan", true),
            ("*", "anything", true),
            ("e*h*0", "eth0", true),
            ("e*h*0", "eth01", false),
            ("eth[0-3]", "eth2", true),
            ("eth[0-3]", "eth4", false),
            ("eth[!0-3]", "eth4", true),
            ("eth[^0-3]", "eth1", false),
            ("eth[]x]", "eth]", true),
            ("wan[ab]*", "wanb.100", true),
            ("ppp[", "ppp[", true),
            ("*.*", "eth0.100", true),
            ("*.*", "eth0", false),
        ] {
            assert_eq!(glob_match(p, n), m, "{p} vs {n}");
        }
        assert!(check_glob("eth[0-9]*").is_ok());
        assert!(check_glob("eth[]]").is_ok());
        assert!(check_glob("eth[0-9").is_err());
        assert!(is_glob("eth*") && is_glob("veth?") && is_glob("e[t]h") && !is_glob("br-lan"));
    }

    #[test]
    fn selection_rules() {
        let s = Selector::new(&["eth*".into(), "wan0".into()]);
        assert!(s.wants(&link("eth3", true)));
        assert!(
            !s.wants(&link("eth3", false)),
            "a pattern waits for the link to be up"
        );
        assert!(
            s.wants(&link("wan0", false)),
            "an exact name is attached up or down"
        );
        assert!(!s.wants(&link("lan0", true)));
        let mut tun = link("eth9", true);
        tun.hatype = 65534;
        assert!(!s.wants(&tun), "not Ethernet");
        let d = Selector::default();
        assert!(d.wants(&link("anything", true)) && !d.wants(&link("x", false)));
        let mut lo = link("lo", true);
        lo.loopback = true;
        assert!(!d.wants(&lo));

        // At start: an exact name that is not Ethernet is an error; missing ones are waited
        // for; the default needs at least one interface.
        assert!(check_selection(&s, &[]).is_ok());
        assert!(matches!(
            check_selection(&Selector::new(&["lo".into()]), &[lo.clone()]),
            Err(InterfaceError::NotEthernet { .. })
        ));
        assert!(matches!(
            check_selection(&d, &[lo]),
            Err(InterfaceError::None)
        ));
    }
}
