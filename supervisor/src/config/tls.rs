//! `[tls]`: the TLS policy's rule files and how long a cut connection stays cut.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, check::Checker};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    #[serde(default)]
    rules: Vec<Spanned<String>>,
    block_ttl_secs: Option<Spanned<i64>>,
}

/// Default of `[tls] block_ttl_secs`: an hour.
pub const DEFAULT_BLOCK_TTL_SECS: u32 = 3600;
const BLOCK_TTL_RANGE: std::ops::RangeInclusive<u32> = 1..=7 * 86_400;

/// `[tls]`: JA3/JA4/SNI rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// Rule files (contents validated by `policy::tls::TlsRules::load`).
    pub rules: Vec<PathBuf>,
    /// How long a connection a `block` rule cut stays in the kernel's flow-block map.
    pub block_ttl_secs: u32,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            rules: Vec::new(),
            block_ttl_secs: DEFAULT_BLOCK_TTL_SECS,
        }
    }
}

/// Validates `[tls]`.
pub(super) fn parse(c: &Checker<'_>, raw: RawTls) -> Result<TlsConfig, ConfigError> {
    let block_ttl_secs = match raw.block_ttl_secs {
        None => DEFAULT_BLOCK_TTL_SECS,
        Some(v) => match u32::try_from(*v.get_ref()) {
            Ok(n) if BLOCK_TTL_RANGE.contains(&n) => n,
            _ => {
                return c.invalid(
                    "tls.block_ttl_secs",
                    v.span(),
                    format!(
                        "{} is outside {}..={}",
                        v.get_ref(),
                        BLOCK_TTL_RANGE.start(),
                        BLOCK_TTL_RANGE.end()
                    ),
                );
            }
        },
    };
    Ok(TlsConfig {
        rules: c.abs_paths("tls.rules", raw.rules)?,
        block_ttl_secs,
    })
}
