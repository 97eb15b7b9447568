//! `[drift]`: how often the daemon compares the kernel with what it put there.

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, check::Checker};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDrift {
    interval_s: Option<Spanned<i64>>,
}

/// `[drift]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriftConfig {
    /// Seconds between drift checks (links, pins, policy maps, the workers' rule sets);
    /// 0 turns the periodic check off (`palisade check` still runs one).
    pub interval_s: u32,
}

/// Default: every 5 s. A check reads every policy map once: about 0.1 s of one core for a
/// 1M-name DNS list, so 2% of a core at this period; smaller lists cost next to nothing.
pub const DEFAULT_DRIFT: DriftConfig = DriftConfig { interval_s: 5 };

/// Validates `[drift]`.
pub(super) fn parse(c: &Checker<'_>, raw: RawDrift) -> Result<DriftConfig, ConfigError> {
    Ok(DriftConfig {
        interval_s: c.seconds(
            "drift.interval_s",
            raw.interval_s,
            DEFAULT_DRIFT.interval_s,
            0..=3600,
        )?,
    })
}
