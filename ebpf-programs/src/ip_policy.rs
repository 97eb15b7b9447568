//! Feeding the kernel's IP policy. Everything here is the supervisor's to call (it needs
//! CAP_BPF; workers never touch policy maps).
//!
//! A rule set is two LPM tries, `Ip4Key -> IpRule` and `Ip6Key -> IpRule`, that the XDP and
//! TC drop programs find in slot 0 of `pal_ip4_policy` / `pal_ip6_policy`
//! ([`palisade_abi::MAP_IP4_POLICY`], [`palisade_abi::MAP_IP6_POLICY`]). A reload builds complete new tries
//! ([`build`]) and swaps each in with one slot update ([`swap_in`], the same map-of-maps
//! pattern as [`crate::dns_policy`]): a packet is judged by the old or the new set of its
//! family, never a mix. Single prefixes (rules added at run time) go into the live trie with
//! [`insert`] / [`remove`], each one atomic element update.
//!
//! Tries are `BPF_F_NO_PREALLOC` (the kernel requires it for LPM tries, and the outer map's
//! template has the same flags); their `max_entries` is free (the kernel does not compare it
//! with the template for LPM tries). [`fill`] uses `BPF_MAP_UPDATE_BATCH` (the kernel's
//! generic batch: one syscall per chunk, the same per-element insert inside) and falls back
//! to one `BPF_MAP_UPDATE_ELEM` per prefix (docs/PERFORMANCE.md has the load time and
//! memory for a million prefixes).

use std::{
    fmt, io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsFd, OwnedFd},
    str::FromStr,
};

pub use crate::dns_policy::{clear, current_inner_id, swap_in};
use palisade_abi::{Ip4Key, Ip6Key, IpConfig, IpRule};

use crate::sys;

/// Name given to the IPv4 tries (visible in `bpftool map`).
pub const TRIE4_NAME: &str = "pal_ip4_rules";
/// Name given to the IPv6 tries.
pub const TRIE6_NAME: &str = "pal_ip6_rules";

/// An address family: which trie and which outer map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4: `pal_ip4_policy`, 32-bit prefixes.
    V4,
    /// IPv6: `pal_ip6_policy`, 128-bit prefixes.
    V6,
}

impl Family {
    /// Both families.
    pub const ALL: [Self; 2] = [Self::V4, Self::V6];

    /// The longest prefix.
    pub const fn max_len(self) -> u8 {
        match self {
            Self::V4 => 32,
            Self::V6 => 128,
        }
    }

    /// The outer map of this family.
    pub const fn outer_map(self) -> &'static str {
        match self {
            Self::V4 => palisade_abi::MAP_IP4_POLICY,
            Self::V6 => palisade_abi::MAP_IP6_POLICY,
        }
    }

    const fn key_size(self) -> usize {
        match self {
            Self::V4 => Ip4Key::SIZE,
            Self::V6 => Ip6Key::SIZE,
        }
    }

    const fn trie_name(self) -> &'static str {
        match self {
            Self::V4 => TRIE4_NAME,
            Self::V6 => TRIE6_NAME,
        }
    }
}

/// An IPv4 or IPv6 prefix with its host bits cleared: `addr/len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

/// Why a text is not a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixError {
    /// The address part is not an IPv4 or IPv6 address.
    Address,
    /// The length is not a number within 0..=32 (IPv4) or 0..=128 (IPv6).
    Length,
}

impl fmt::Display for PrefixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Address => "not an IPv4 or IPv6 address",
            Self::Length => "prefix length out of range (0-32 for IPv4, 0-128 for IPv6)",
        })
    }
}

impl std::error::Error for PrefixError {}

impl Prefix {
    /// `addr/len` with the host bits of `addr` cleared. `None` if `len` is too long.
    pub fn new(addr: IpAddr, len: u8) -> Option<Self> {
        let addr = match addr {
            IpAddr::V4(v4) if len <= 32 => {
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
            }
            IpAddr::V6(v6) if len <= 128 => {
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
            _ => return None,
        };
        Some(Self { addr, len })
    }

    /// Parses `a.b.c.d/n`, `x::y/n` or a bare address (a host prefix). Also returns whether
    /// host bits were set (and cleared).
    pub fn parse(text: &str) -> Result<(Self, bool), PrefixError> {
        let (addr, len) = match text.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (text, None),
        };
        let addr = IpAddr::from_str(addr).map_err(|_| PrefixError::Address)?;
        let family = Self::family_of(addr);
        let len = match len {
            None => family.max_len(),
            Some(len) if !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit()) => {
                len.parse::<u8>().map_err(|_| PrefixError::Length)?
            }
            Some(_) => return Err(PrefixError::Length),
        };
        let prefix = Self::new(addr, len).ok_or(PrefixError::Length)?;
        Ok((prefix, prefix.addr != addr))
    }

    fn family_of(addr: IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The network address (host bits clear).
    pub const fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub const fn len(&self) -> u8 {
        self.len
    }

    /// Whether this is the zero-length prefix (everything).
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Its family.
    pub fn family(&self) -> Family {
        Self::family_of(self.addr)
    }

    /// Whether `addr` lies in this prefix.
    pub fn contains(&self, addr: IpAddr) -> bool {
        Self::new(addr, self.len).is_some_and(|p| p.addr == self.addr)
    }

    /// The trie key bytes (`Ip4Key` or `Ip6Key`).
    pub fn key_bytes(&self) -> Vec<u8> {
        match self.addr {
            IpAddr::V4(v4) => Ip4Key {
                prefixlen: u32::from(self.len),
                addr: v4.octets(),
            }
            .to_bytes()
            .to_vec(),
            IpAddr::V6(v6) => Ip6Key {
                prefixlen: u32::from(self.len),
                addr: v6.octets(),
            }
            .to_bytes()
            .to_vec(),
        }
    }

    /// The prefix of trie key bytes of `family`.
    pub fn from_key_bytes(family: Family, bytes: &[u8]) -> Option<Self> {
        match family {
            Family::V4 => {
                let key = Ip4Key::from_bytes(bytes).ok()?;
                Self::new(
                    IpAddr::V4(Ipv4Addr::from(key.addr)),
                    u8::try_from(key.prefixlen).ok()?,
                )
            }
            Family::V6 => {
                let key = Ip6Key::from_bytes(bytes).ok()?;
                Self::new(
                    IpAddr::V6(Ipv6Addr::from(key.addr)),
                    u8::try_from(key.prefixlen).ok()?,
                )
            }
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Creates an empty trie of `family` (`BPF_MAP_CREATE`: LPM trie, `BPF_F_NO_PREALLOC`) for
/// up to `max_entries` prefixes.
pub fn create_trie(family: Family, max_entries: u32) -> io::Result<OwnedFd> {
    sys::map_create(
        sys::MAP_TYPE_LPM_TRIE,
        family.key_size() as u32,
        IpRule::SIZE as u32,
        max_entries.max(1),
        sys::F_NO_PREALLOC,
        family.trie_name(),
    )
}

/// Stores `rules` (all of the trie's family) in a trie: `BPF_MAP_UPDATE_BATCH` in chunks
/// (the kernel loops over the elements itself), or one `BPF_MAP_UPDATE_ELEM` per prefix
/// where the kernel has no batch operation for LPM tries.
pub fn fill(trie: impl AsFd, rules: &[(Prefix, IpRule)]) -> io::Result<()> {
    sys::map_fill(
        trie.as_fd(),
        rules,
        |(p, _), out| out.extend_from_slice(&p.key_bytes()),
        |(_, r), out| out.extend_from_slice(&r.to_bytes()),
    )
}

/// A trie of `family` holding exactly `rules` (their family must match), with room for
/// `spare` more prefixes added at run time.
pub fn build(family: Family, rules: &[(Prefix, IpRule)], spare: u32) -> io::Result<OwnedFd> {
    if rules.iter().any(|(p, _)| p.family() != family) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "prefix of the other family",
        ));
    }
    let len = u32::try_from(rules.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "more than 2^32 prefixes"))?;
    let trie = create_trie(family, len.saturating_add(spare))?;
    fill(&trie, rules)?;
    Ok(trie)
}

/// Adds or replaces one prefix in a live trie (`BPF_MAP_UPDATE_ELEM`, atomic for packets).
pub fn insert(trie: impl AsFd, prefix: Prefix, rule: IpRule) -> io::Result<()> {
    sys::map_update(
        trie.as_fd(),
        &prefix.key_bytes(),
        &rule.to_bytes(),
        sys::ANY,
    )
}

/// Removes one prefix from a live trie (`BPF_MAP_DELETE_ELEM`); `Ok(false)` if absent.
pub fn remove(trie: impl AsFd, prefix: Prefix) -> io::Result<bool> {
    sys::map_delete(trie.as_fd(), &prefix.key_bytes())
}

/// The rule stored for exactly `prefix` (`BPF_MAP_LOOKUP_ELEM` is a longest-prefix match on
/// an LPM trie: this checks the match is the prefix itself).
pub fn lookup(trie: impl AsFd, prefix: Prefix) -> io::Result<Option<IpRule>> {
    let mut value = [0_u8; IpRule::SIZE];
    if !sys::map_lookup(trie.as_fd(), &prefix.key_bytes(), &mut value)? {
        return Ok(None);
    }
    let rule = IpRule::from_bytes(&value)
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
    Ok((rule.prefixlen == prefix.len()).then_some(rule))
}

/// A descriptor of the live trie of `outer` (`BPF_MAP_GET_FD_BY_ID`), `None` if the slot is
/// empty.
pub fn open_current(outer: impl AsFd) -> io::Result<Option<OwnedFd>> {
    crate::dns_policy::open_current(outer)
}

/// Every prefix of a trie (`BPF_MAP_GET_NEXT_KEY` + `BPF_MAP_LOOKUP_ELEM`), sorted.
pub fn read_rules(trie: impl AsFd, family: Family) -> io::Result<Vec<(Prefix, IpRule)>> {
    let trie = trie.as_fd();
    let mut rules = Vec::new();
    let mut key: Option<Vec<u8>> = None;
    let mut next = vec![0_u8; family.key_size()];
    while sys::map_next_key(trie, key.as_deref(), &mut next)? {
        let mut value = [0_u8; IpRule::SIZE];
        if sys::map_lookup(trie, &next, &mut value)? {
            let rule = IpRule::from_bytes(&value)
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
            let prefix = Prefix::from_key_bytes(family, &next)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad trie key"))?;
            rules.push((prefix, rule));
        }
        key = Some(next.clone());
    }
    rules.sort_unstable_by_key(|&(prefix, _)| prefix);
    Ok(rules)
}

/// Writes the alert rate limit to `pal_ip_config` (`per_second` 0 = no alerts).
pub fn set_alert_rate(config: impl AsFd, per_second: u32, burst: u32) -> io::Result<()> {
    let value = IpConfig {
        alert_interval_ns: if per_second == 0 {
            0
        } else {
            1_000_000_000 / u64::from(per_second)
        },
        alert_burst: burst.max(1),
        _pad: 0,
    };
    sys::set_slot0(config.as_fd(), &value.to_bytes())
}

/// Words of the IPv4 pre-filter (`pal_ip4_filter`): one bit per /16.
pub use palisade_abi::IP4_FILTER_WORDS;

/// The /16 range (first, count) an IPv4 prefix touches; `None` for IPv6.
fn slash16s(prefix: &Prefix) -> Option<(u32, u32)> {
    let IpAddr::V4(v4) = prefix.addr() else {
        return None;
    };
    let first = u32::from(v4) >> 16;
    let count = if prefix.len() >= 16 {
        1
    } else {
        1 << (16 - u32::from(prefix.len()))
    };
    Some((first, count))
}

/// The pre-filter bits of a set of prefixes (IPv6 ones are ignored): bit `n` of word `w` is
/// set when some prefix covers or lies inside the /16 `w * 64 + n`.
pub fn filter_bits<'a>(prefixes: impl IntoIterator<Item = &'a Prefix>) -> Vec<u64> {
    let mut words = vec![0_u64; IP4_FILTER_WORDS];
    for prefix in prefixes {
        if let Some((first, count)) = slash16s(prefix) {
            for hi in first..first.saturating_add(count).min(1 << 16) {
                if let Some(word) = words.get_mut((hi >> 6) as usize) {
                    *word |= 1 << (hi & 63);
                }
            }
        }
    }
    words
}

/// The kernel's pre-filter words (`BPF_MAP_LOOKUP_ELEM` per word).
pub fn read_filter(filter: impl AsFd) -> io::Result<Vec<u64>> {
    let filter = filter.as_fd();
    let mut words = vec![0_u64; IP4_FILTER_WORDS];
    for (index, word) in words.iter_mut().enumerate() {
        let mut value = [0_u8; 8];
        // At most IP4_FILTER_WORDS (1024): fits u32.
        sys::map_lookup(filter, &(index as u32).to_ne_bytes(), &mut value)?;
        *word = u64::from_ne_bytes(value);
    }
    Ok(words)
}

/// Writes the words of `words` that differ from `current` (each an atomic 8-byte update).
pub fn write_filter(filter: impl AsFd, current: &[u64], words: &[u64]) -> io::Result<()> {
    let filter = filter.as_fd();
    for (index, (&new, old)) in words.iter().zip(current.iter()).enumerate() {
        if new != *old {
            sys::map_update(
                filter,
                &(index as u32).to_ne_bytes(),
                &new.to_ne_bytes(),
                sys::ANY,
            )?;
        }
    }
    Ok(())
}

/// Sets the pre-filter bits of one IPv4 prefix in the live filter (before the prefix goes
/// into the trie; a no-op for IPv6).
pub fn filter_add(filter: impl AsFd, prefix: &Prefix) -> io::Result<()> {
    let filter = filter.as_fd();
    let current = read_filter(filter)?;
    let mut words = filter_bits([prefix]);
    for (new, old) in words.iter_mut().zip(current.iter()) {
        *new |= old;
    }
    write_filter(filter, &current, &words)
}

/// CLOCK_BOOTTIME now, in ns (the clock of `IpRule::expires_boot_ns`).
pub fn boot_time_ns() -> io::Result<u64> {
    sys::boot_time_ns()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_parse_and_normalise() {
        let (p, host_bits) = Prefix::parse("10.1.2.3/8").expect("valid");
        assert_eq!((p.to_string().as_str(), host_bits), ("10.0.0.0/8", true));
        let (p, host_bits) = Prefix::parse("192.0.2.7").expect("valid");
        assert_eq!((p.to_string().as_str(), host_bits), ("192.0.2.7/32", false));
        let (p, _) = Prefix::parse("2001:db8::1/32").expect("valid");
        assert_eq!(p.to_string(), "2001:db8::/32");
        assert_eq!(p.family(), Family::V6);
        assert_eq!(Prefix::parse("0.0.0.0/0").map(|(p, _)| p.len()), Ok(0));
        assert_eq!(Prefix::parse("10.0.0.0/33"), Err(PrefixError::Length));
        assert_eq!(Prefix::parse("10.0.0.0/"), Err(PrefixError::Length));
        assert_eq!(Prefix::parse("10.0.0.0/+8"), Err(PrefixError::Length));
        assert_eq!(Prefix::parse("::/129"), Err(PrefixError::Length));
        assert_eq!(Prefix::parse("10.0.0"), Err(PrefixError::Address));
        assert_eq!(Prefix::parse("example.com"), Err(PrefixError::Address));
    }

    #[test]
    fn filter_bits_cover_every_slash16_a_prefix_touches() {
        let bit = |words: &[u64], hi: u32| {
            words
                .get((hi >> 6) as usize)
                .is_some_and(|w| w >> (hi & 63) & 1 == 1)
        };
        let (a, _) = Prefix::parse("10.1.2.0/24").expect("valid");
        let (b, _) = Prefix::parse("172.16.0.0/12").expect("valid");
        let (c, _) = Prefix::parse("2001:db8::/32").expect("valid");
        let words = filter_bits([&a, &b, &c]);
        assert!(bit(&words, (10 << 8) | 1));
        assert!(!bit(&words, (10 << 8) | 2));
        assert!(bit(&words, (172 << 8) | 16) && bit(&words, (172 << 8) | 31));
        assert!(!bit(&words, (172 << 8) | 32));
        assert_eq!(words.iter().map(|w| w.count_ones()).sum::<u32>(), 1 + 16);
        let (all, _) = Prefix::parse("0.0.0.0/0").expect("valid");
        assert!(filter_bits([&all]).iter().all(|&w| w == u64::MAX));
    }

    #[test]
    fn keys_round_trip_and_contain() {
        for text in ["198.51.100.0/24", "0.0.0.0/0", "2001:db8:1::/48", "::1/128"] {
            let (p, _) = Prefix::parse(text).expect("valid");
            let bytes = p.key_bytes();
            assert_eq!(Prefix::from_key_bytes(p.family(), &bytes), Some(p));
        }
        let (p, _) = Prefix::parse("198.51.100.0/24").expect("valid");
        assert!(p.contains("198.51.100.200".parse().expect("addr")));
        assert!(!p.contains("198.51.101.1".parse().expect("addr")));
        assert!(!p.contains("::1".parse().expect("addr")));
    }
}
