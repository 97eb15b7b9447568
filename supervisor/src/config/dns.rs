//! `[dns]`: the domain policy's list files, block action and encrypted-DNS resolvers.

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, check::Checker};
use crate::policy::dns::{BlockAction, DEFAULT_ENCRYPTED_DNS, DnsLists, parse_block_action};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDns {
    #[serde(default)]
    blocklists: Vec<Spanned<String>>,
    #[serde(default)]
    allowlists: Vec<Spanned<String>>,
    #[serde(default)]
    regex_lists: Vec<Spanned<String>>,
    block_action: Option<Spanned<String>>,
    encrypted_dns_resolvers: Option<Vec<Spanned<String>>>,
}

/// `[dns]`: domain policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// List files (contents validated by `policy::dns::RuleSet::load`).
    pub lists: DnsLists,
    /// What a blocked query gets. Default: NXDOMAIN.
    pub block_action: BlockAction,
}

/// Validates `[dns]`.
pub(super) fn parse(c: &Checker<'_>, raw: RawDns) -> Result<DnsConfig, ConfigError> {
    let block_action = match raw.block_action {
        None => BlockAction::Nxdomain,
        Some(v) => match parse_block_action(v.get_ref()) {
            Some(a) => a,
            None => {
                return c.invalid(
                    "dns.block_action",
                    v.span(),
                    format!("{:?} is not \"nxdomain\" or \"drop\"", v.get_ref()),
                );
            }
        },
    };
    let encrypted_dns = match raw.encrypted_dns_resolvers {
        None => DEFAULT_ENCRYPTED_DNS
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        Some(list) => {
            let mut out = Vec::new();
            for v in list {
                let entry = v.get_ref();
                if entry.parse::<std::net::IpAddr>().is_ok() {
                    out.push(entry.clone());
                } else {
                    match palisade_abi::dns_name::normalize(entry) {
                        Some(n) => out.push(n),
                        None => {
                            return c.invalid(
                                "dns.encrypted_dns_resolvers",
                                v.span(),
                                format!("{entry:?} is neither an IP address nor a domain name"),
                            );
                        }
                    }
                }
            }
            out
        }
    };
    Ok(DnsConfig {
        lists: DnsLists {
            blocklists: c.abs_paths("dns.blocklists", raw.blocklists)?,
            allowlists: c.abs_paths("dns.allowlists", raw.allowlists)?,
            regex_lists: c.abs_paths("dns.regex_lists", raw.regex_lists)?,
            encrypted_dns,
        },
        block_action,
    })
}
