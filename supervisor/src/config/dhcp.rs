//! `[dhcp]`: the DHCP worker's transaction tracking.

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, check::Checker};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDhcp {
    transaction_timeout_s: Option<Spanned<i64>>,
}

/// `[dhcp]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpConfig {
    /// A DHCP transaction (DISCOVER..ACK, SOLICIT..REPLY) still open after this many
    /// seconds is written as `incomplete` and leaves the worker's memory.
    pub transaction_timeout_s: u32,
}

/// Default: 30 s (a DHCP client retransmits for about a minute; an exchange that got an
/// answer ends in well under a second).
pub const DEFAULT_DHCP: DhcpConfig = DhcpConfig {
    transaction_timeout_s: 30,
};

/// Validates `[dhcp]`.
pub(super) fn parse(c: &Checker<'_>, raw: RawDhcp) -> Result<DhcpConfig, ConfigError> {
    Ok(DhcpConfig {
        transaction_timeout_s: c.seconds(
            "dhcp.transaction_timeout_s",
            raw.transaction_timeout_s,
            DEFAULT_DHCP.transaction_timeout_s,
            1..=3600,
        )?,
    })
}
