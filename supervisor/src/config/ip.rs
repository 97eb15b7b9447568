//! `[ip]`: the IP policy's list files, ingress hook and alert rate.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, check::Checker};
use crate::ebpf::xdp::XdpMode;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIp {
    #[serde(default)]
    blocklists: Vec<Spanned<String>>,
    xdp_mode: Option<Spanned<String>>,
    alerts_per_second: Option<Spanned<i64>>,
}

/// Default of `[ip] alerts_per_second`.
pub const DEFAULT_IP_ALERTS_PER_SECOND: u32 = 10;
const IP_ALERTS_RANGE: std::ops::RangeInclusive<u32> = 0..=100_000;

/// `[ip]`: IP/CIDR block lists.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IpConfig {
    /// List files (contents validated by `policy::ip::IpRuleSet::load`).
    pub blocklists: Vec<PathBuf>,
    /// Ingress hook. Default: `auto`.
    pub xdp_mode: XdpMode,
    /// Alerts per second per CPU (and burst); 0 = none. Default 10.
    pub alerts_per_second: u32,
}

/// Validates `[ip]`.
pub(super) fn parse(c: &Checker<'_>, raw: RawIp) -> Result<IpConfig, ConfigError> {
    let xdp_mode = match raw.xdp_mode {
        None => XdpMode::Auto,
        Some(v) => match XdpMode::parse(v.get_ref()) {
            Some(m) => m,
            None => {
                return c.invalid(
                    "ip.xdp_mode",
                    v.span(),
                    format!(
                        "{:?} is not \"auto\", \"native\", \"generic\" or \"tc\"",
                        v.get_ref()
                    ),
                );
            }
        },
    };
    let alerts_per_second = match raw.alerts_per_second {
        None => DEFAULT_IP_ALERTS_PER_SECOND,
        Some(v) => match u32::try_from(*v.get_ref()) {
            Ok(n) if IP_ALERTS_RANGE.contains(&n) => n,
            _ => {
                return c.invalid(
                    "ip.alerts_per_second",
                    v.span(),
                    format!(
                        "{} is outside {}..={}",
                        v.get_ref(),
                        IP_ALERTS_RANGE.start(),
                        IP_ALERTS_RANGE.end()
                    ),
                );
            }
        },
    };
    Ok(IpConfig {
        blocklists: c.abs_paths("ip.blocklists", raw.blocklists)?,
        xdp_mode,
        alerts_per_second,
    })
}
