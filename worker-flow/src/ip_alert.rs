//! `alert` events for packets the kernel's IP policy dropped
//! (`KIND_IP_BLOCK` records, rate-limited in the kernel): EVE alerts with
//! `alert.action: "blocked"`, signature 9000010 (blocked source) or 9000011
//! (blocked destination), and a `palisade.ip_block` object naming the rule,
//! its CIDR, the hook that dropped the packet and how many drops on the same
//! CPU were not alerted since the previous alert.

use std::net::IpAddr;

use palisade_abi::{IP_HOOK_TC, IP_HOOK_XDP, IP_MATCH_DST, IP_MATCH_SRC, IpBlockRecord};
use palisade_worker_runtime::{
    EventOut, Record,
    alert::{self, Alert},
    eve,
};
use serde::Serialize;

#[derive(Serialize)]
struct IpBlockBody {
    /// The supervisor's rule id (`palisade block list`).
    rule_id: u32,
    /// The rule's prefix.
    cidr: String,
    /// `src` or `dest`: which address of the packet matched.
    matched: &'static str,
    /// `xdp` or `tc`.
    hook: &'static str,
    /// Drops on the same CPU not alerted since the previous alert (rate limit).
    suppressed: u32,
}

/// `palisade` of an IP policy alert: `{"ip_block": {...}}`.
#[derive(Serialize)]
struct IpBlockExtra {
    ip_block: IpBlockBody,
}

/// The packet never reached the observer, so it has no flow (no `flow_id`); its
/// `community_id` joins it to flows of the same tuple (none for ICMP: the record does
/// not carry the type and code).
#[derive(Serialize)]
struct IpBlockAlert {
    #[serde(flatten)]
    common: eve::Common,
    alert: Alert,
    palisade: eve::Vendor<IpBlockExtra>,
}

/// The rule's CIDR: the matched address cut to the rule's prefix length.
fn cidr(addr: IpAddr, len: u8) -> String {
    match addr {
        IpAddr::V4(v4) if len <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            format!("{}/{len}", std::net::Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) if len <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            format!("{}/{len}", std::net::Ipv6Addr::from(u128::from(v6) & mask))
        }
        _ => format!("{addr}/{len}"),
    }
}

/// Renders one `KIND_IP_BLOCK` record.
pub fn render(ctx: &eve::Context, record: &Record<'_>, out: &mut EventOut<'_>) {
    let Ok(r) = IpBlockRecord::read(record.payload) else {
        return out.drop("ip_block_record_malformed");
    };
    let common = eve::Common::new(ctx, "alert", &record.hdr);
    let (sig, matched, addr) = match r.matched {
        IP_MATCH_SRC => (alert::IP_BLOCKED_SOURCE, "src", common.src_ip),
        IP_MATCH_DST => (alert::IP_BLOCKED_DESTINATION, "dest", common.dest_ip),
        _ => return out.drop("ip_block_record_malformed"),
    };
    let hook = match r.hook {
        IP_HOOK_XDP => "xdp",
        IP_HOOK_TC => "tc",
        _ => "unknown",
    };
    let extra = IpBlockExtra {
        ip_block: IpBlockBody {
            rule_id: r.rule_id,
            cidr: cidr(addr, r.prefixlen),
            matched,
            hook,
            suppressed: r.suppressed,
        },
    };
    out.emit(&IpBlockAlert {
        palisade: eve::Vendor::new(&common, extra),
        common,
        alert: Alert::new(sig, "blocked"),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_is_the_address_cut_to_the_prefix() {
        let v4: IpAddr = "198.51.100.77".parse().expect("addr");
        assert_eq!(cidr(v4, 24), "198.51.100.0/24");
        assert_eq!(cidr(v4, 0), "0.0.0.0/0");
        assert_eq!(cidr(v4, 32), "198.51.100.77/32");
        let v6: IpAddr = "2001:db8:1:2::5".parse().expect("addr");
        assert_eq!(cidr(v6, 48), "2001:db8:1::/48");
    }
}
