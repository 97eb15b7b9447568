//! Configuration: raw TOML is parsed into [`RawConfig`], then converted with
//! `TryFrom` into the validated [`Config`]. `palisade check-config` runs
//! exactly that conversion. Every error names the line it comes from.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use palisade_ipc::messages::WorkerKind;
use serde::Deserialize;
use toml::Spanned;

use crate::{
    ebpf::xdp::XdpMode,
    paths,
    policy::dns::{BlockAction, DEFAULT_ENCRYPTED_DNS, DnsLists, parse_block_action},
};

/// The built-in default configuration (also shipped as
/// /etc/palisade/palisade.toml).
pub const EMBEDDED_DEFAULT: &str = include_str!("../../packaging/palisade.toml");

/// Default heartbeat interval.
pub const DEFAULT_HEARTBEAT_MS: u32 = 250;
const HEARTBEAT_RANGE: std::ops::RangeInclusive<u32> = 10..=60_000;

/// A configuration error, located.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax error or unknown/mistyped key (toml names line and column).
    #[error("{origin}: {message}")]
    Syntax { origin: String, message: String },
    /// A value is invalid.
    #[error("{origin}:{line}: {key}: {problem}")]
    Invalid {
        origin: String,
        line: usize,
        key: String,
        problem: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    interfaces: Vec<Spanned<String>>,
    #[serde(default)]
    paths: RawPaths,
    #[serde(default)]
    control: RawControl,
    #[serde(default)]
    workers: RawWorkers,
    #[serde(default)]
    dns: RawDns,
    #[serde(default)]
    flow: RawFlow,
    #[serde(default)]
    ip: RawIp,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlow {
    idle_timeout_s: Option<Spanned<i64>>,
    tcp_idle_timeout_s: Option<Spanned<i64>>,
    update_interval_s: Option<Spanned<i64>>,
    seed_from_conntrack: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIp {
    #[serde(default)]
    blocklists: Vec<Spanned<String>>,
    xdp_mode: Option<Spanned<String>>,
    alerts_per_second: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDns {
    #[serde(default)]
    blocklists: Vec<Spanned<String>>,
    #[serde(default)]
    allowlists: Vec<Spanned<String>>,
    #[serde(default)]
    regex_lists: Vec<Spanned<String>>,
    block_action: Option<Spanned<String>>,
    encrypted_dns_resolvers: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPaths {
    control_socket: Option<Spanned<String>>,
    pin_root: Option<Spanned<String>>,
    state_dir: Option<Spanned<String>>,
    log_dir: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawControl {
    group: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkers {
    dhcp: Option<RawWorker>,
    dns: Option<RawWorker>,
    tls: Option<RawWorker>,
    flow: Option<RawWorker>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorker {
    user: Option<Spanned<String>>,
    group: Option<Spanned<String>>,
    heartbeat_ms: Option<Spanned<i64>>,
    path: Option<Spanned<String>>,
}

/// Validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Interfaces to attach to; empty = every up, non-loopback interface.
    pub interfaces: Vec<String>,
    /// Control socket path.
    pub control_socket: PathBuf,
    /// bpffs pin root.
    pub pin_root: PathBuf,
    /// State directory.
    pub state_dir: PathBuf,
    /// Event log directory.
    pub log_dir: PathBuf,
    /// Group allowed read-only control commands.
    pub control_group: String,
    /// Per-worker settings, for every [`WorkerKind`].
    pub workers: BTreeMap<WorkerKind, WorkerSettings>,
    /// DNS policy.
    pub dns: DnsConfig,
    /// Flow table.
    pub flow: FlowConfig,
    /// IP policy.
    pub ip: IpConfig,
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

/// `[flow]`: the kernel flow table's timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowConfig {
    /// UDP, ICMP: a flow ends after this many seconds without a packet.
    pub idle_timeout_s: u32,
    /// TCP without FIN pair or RST: idem.
    pub tcp_idle_timeout_s: u32,
    /// Seconds between update records of a long flow; 0 for none.
    pub update_interval_s: u32,
    /// Seed the table from the kernel's conntrack table at start.
    pub seed_from_conntrack: bool,
}

impl FlowConfig {
    /// The sweeper's view, in nanoseconds.
    pub fn timeouts(&self) -> palisade_ebpf::flow_table::Timeouts {
        const NS: u64 = 1_000_000_000;
        palisade_ebpf::flow_table::Timeouts {
            idle_ns: u64::from(self.idle_timeout_s) * NS,
            tcp_idle_ns: u64::from(self.tcp_idle_timeout_s) * NS,
            update_ns: u64::from(self.update_interval_s) * NS,
        }
    }
}

/// Defaults: Zeek's inactivity timeouts (1 min UDP/ICMP, 5 min TCP), no periodic updates
/// (as Suricata and Zeek), seeding on.
pub const DEFAULT_FLOW: FlowConfig = FlowConfig {
    idle_timeout_s: 60,
    tcp_idle_timeout_s: 300,
    update_interval_s: 0,
    seed_from_conntrack: true,
};

/// `[dns]`: domain policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// List files (contents validated by `policy::dns::RuleSet::load`).
    pub lists: DnsLists,
    /// What a blocked query gets. Default: NXDOMAIN.
    pub block_action: BlockAction,
}

/// Settings of one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSettings {
    /// Account name to run as (resolved at spawn, `nobody` fallback).
    pub user: String,
    /// Group name to run as (`nogroup` fallback).
    pub group: String,
    /// Heartbeat interval.
    pub heartbeat_ms: u32,
    /// Binary; `None` = default lookup.
    pub path: Option<PathBuf>,
}

struct Checker<'a> {
    origin: &'a str,
    text: &'a str,
}

impl Checker<'_> {
    fn line(&self, offset: usize) -> usize {
        self.text
            .get(..offset)
            .map_or(1, |t| t.bytes().filter(|b| *b == b'\n').count() + 1)
    }

    fn invalid<T>(
        &self,
        key: &str,
        span: std::ops::Range<usize>,
        problem: impl Into<String>,
    ) -> Result<T, ConfigError> {
        Err(ConfigError::Invalid {
            origin: self.origin.to_owned(),
            line: self.line(span.start),
            key: key.to_owned(),
            problem: problem.into(),
        })
    }

    fn abs_path(
        &self,
        key: &str,
        value: Option<Spanned<String>>,
        default: &str,
    ) -> Result<PathBuf, ConfigError> {
        let Some(v) = value else {
            return Ok(PathBuf::from(default));
        };
        let path = Path::new(v.get_ref());
        if !path.is_absolute() {
            return self.invalid(
                key,
                v.span(),
                format!("{:?} is not an absolute path", v.get_ref()),
            );
        }
        Ok(path.to_owned())
    }

    fn name(
        &self,
        key: &str,
        value: Option<Spanned<String>>,
        default: String,
    ) -> Result<String, ConfigError> {
        let Some(v) = value else { return Ok(default) };
        let s = v.get_ref();
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
            && !s.starts_with('-');
        if !ok {
            return self.invalid(
                key,
                v.span(),
                format!("{s:?} is not a valid user or group name"),
            );
        }
        Ok(s.clone())
    }

    /// A whole number of seconds within `range`, or `default`.
    fn seconds(
        &self,
        key: &str,
        value: Option<Spanned<i64>>,
        default: u32,
        range: std::ops::RangeInclusive<u32>,
    ) -> Result<u32, ConfigError> {
        let Some(v) = value else { return Ok(default) };
        match u32::try_from(*v.get_ref()) {
            Ok(s) if range.contains(&s) => Ok(s),
            _ => self.invalid(
                key,
                v.span(),
                format!(
                    "{} is outside {}..={} (seconds)",
                    v.get_ref(),
                    range.start(),
                    range.end()
                ),
            ),
        }
    }

    fn worker(
        &self,
        kind: WorkerKind,
        raw: Option<RawWorker>,
    ) -> Result<WorkerSettings, ConfigError> {
        let raw = raw.unwrap_or_default();
        let key = |k: &str| format!("workers.{}.{k}", kind.name());
        let heartbeat_ms = match raw.heartbeat_ms {
            None => DEFAULT_HEARTBEAT_MS,
            Some(v) => match u32::try_from(*v.get_ref()) {
                Ok(ms) if HEARTBEAT_RANGE.contains(&ms) => ms,
                _ => {
                    return self.invalid(
                        &key("heartbeat_ms"),
                        v.span(),
                        format!(
                            "{} is outside {}..={}",
                            v.get_ref(),
                            HEARTBEAT_RANGE.start(),
                            HEARTBEAT_RANGE.end()
                        ),
                    );
                }
            },
        };
        let path = match raw.path {
            None => None,
            Some(v) => Some(self.abs_path(&key("path"), Some(v), "")?),
        };
        Ok(WorkerSettings {
            user: self.name(&key("user"), raw.user, format!("palisade-{}", kind.name()))?,
            group: self.name(
                &key("group"),
                raw.group,
                format!("palisade-{}", kind.name()),
            )?,
            heartbeat_ms,
            path,
        })
    }
}

/// Maximum interface name length (IFNAMSIZ - 1).
const IFNAMSIZ_MAX: usize = 15;

/// Whether `name` can be a Linux interface name.
pub fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= IFNAMSIZ_MAX
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
}

impl Config {
    /// Parses and validates `text`; `origin` names it in errors.
    pub fn parse(origin: &str, text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            origin: origin.to_owned(),
            message: e.to_string().trim_end().replace('\n', "\n  "),
        })?;
        let c = Checker { origin, text };
        let mut interfaces = Vec::new();
        for i in raw.interfaces {
            if !valid_ifname(i.get_ref()) {
                return c.invalid(
                    "interfaces",
                    i.span(),
                    format!("{:?} is not a valid interface name", i.get_ref()),
                );
            }
            if interfaces.contains(i.get_ref()) {
                return c.invalid(
                    "interfaces",
                    i.span(),
                    format!("{:?} is listed twice", i.get_ref()),
                );
            }
            interfaces.push(i.into_inner());
        }
        let paths_of =
            |key: &str, list: Vec<Spanned<String>>| -> Result<Vec<PathBuf>, ConfigError> {
                list.into_iter()
                    .map(|v| c.abs_path(key, Some(v), ""))
                    .collect()
            };
        let block_action = match raw.dns.block_action {
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
        let encrypted_dns = match raw.dns.encrypted_dns_resolvers {
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
        let dns = DnsConfig {
            lists: DnsLists {
                blocklists: paths_of("dns.blocklists", raw.dns.blocklists)?,
                allowlists: paths_of("dns.allowlists", raw.dns.allowlists)?,
                regex_lists: paths_of("dns.regex_lists", raw.dns.regex_lists)?,
                encrypted_dns,
            },
            block_action,
        };
        const DAY: u32 = 86_400;
        let flow_table = FlowConfig {
            idle_timeout_s: c.seconds(
                "flow.idle_timeout_s",
                raw.flow.idle_timeout_s,
                DEFAULT_FLOW.idle_timeout_s,
                1..=DAY,
            )?,
            tcp_idle_timeout_s: c.seconds(
                "flow.tcp_idle_timeout_s",
                raw.flow.tcp_idle_timeout_s,
                DEFAULT_FLOW.tcp_idle_timeout_s,
                1..=7 * DAY,
            )?,
            update_interval_s: c.seconds(
                "flow.update_interval_s",
                raw.flow.update_interval_s,
                DEFAULT_FLOW.update_interval_s,
                0..=DAY,
            )?,
            seed_from_conntrack: raw
                .flow
                .seed_from_conntrack
                .unwrap_or(DEFAULT_FLOW.seed_from_conntrack),
        };
        let xdp_mode = match raw.ip.xdp_mode {
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
        let alerts_per_second = match raw.ip.alerts_per_second {
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
        let ip = IpConfig {
            blocklists: paths_of("ip.blocklists", raw.ip.blocklists)?,
            xdp_mode,
            alerts_per_second,
        };
        let RawWorkers {
            dhcp,
            dns: dns_worker,
            tls,
            flow,
        } = raw.workers;
        let mut workers = BTreeMap::new();
        for (kind, w) in [
            (WorkerKind::Dhcp, dhcp),
            (WorkerKind::Dns, dns_worker),
            (WorkerKind::Tls, tls),
            (WorkerKind::Flow, flow),
        ] {
            workers.insert(kind, c.worker(kind, w)?);
        }
        Ok(Self {
            interfaces,
            control_socket: c.abs_path(
                "paths.control_socket",
                raw.paths.control_socket,
                paths::CONTROL_SOCKET,
            )?,
            pin_root: c.abs_path("paths.pin_root", raw.paths.pin_root, paths::PIN_ROOT)?,
            state_dir: c.abs_path("paths.state_dir", raw.paths.state_dir, paths::STATE_DIR)?,
            log_dir: c.abs_path("paths.log_dir", raw.paths.log_dir, paths::LOG_DIR)?,
            control_group: c.name(
                "control.group",
                raw.control.group,
                paths::CONTROL_GROUP.to_owned(),
            )?,
            workers,
            dns,
            flow: flow_table,
            ip,
        })
    }

    /// Reads and validates a file, or the embedded default when `None`.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        match path {
            None => Self::parse("<embedded default>", EMBEDDED_DEFAULT),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.display().to_string(),
                    source,
                })?;
                Self::parse(&p.display().to_string(), &text)
            }
        }
    }
}

#[cfg(test)]
#[expect(clippy::indexing_slicing, reason = "a panic is a test failure")]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::parse("t.toml", text)
            .expect_err("must be rejected")
            .to_string()
    }

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::load(None).expect("embedded default parses");
        assert!(c.interfaces.is_empty());
        assert_eq!(c.pin_root, PathBuf::from("/sys/fs/bpf/palisade"));
        assert_eq!(c.workers.len(), 4);
        assert_eq!(c.workers[&WorkerKind::Dns].heartbeat_ms, 250);
        assert_eq!(c.workers[&WorkerKind::Dns].user, "palisade-dns");
    }

    #[test]
    fn errors_name_line_and_problem() {
        assert_eq!(
            err("interfaces = [\"eth0\"]\n[workers.dns]\nheartbeat_ms = 5\n"),
            "t.toml:3: workers.dns.heartbeat_ms: 5 is outside 10..=60000"
        );
        assert_eq!(
            err("[paths]\n\npin_root = \"relative/dir\"\n"),
            "t.toml:3: paths.pin_root: \"relative/dir\" is not an absolute path"
        );
        assert_eq!(
            err("interfaces = [\"eth0\", \"bad/name\"]\n"),
            "t.toml:1: interfaces: \"bad/name\" is not a valid interface name"
        );
        assert!(err("[workers.dns]\nuser = \"\"\n").starts_with("t.toml:2: workers.dns.user"));
    }

    #[test]
    fn syntax_and_unknown_keys_name_the_line() {
        let e = err("[paths]\ncontrol_sock = \"/x\"\n");
        assert!(
            e.contains("line 2") && e.contains("unknown field `control_sock`"),
            "{e}"
        );
        let e = err("[workers.ftp]\n");
        assert!(
            e.contains("line 1") && e.contains("unknown field `ftp`"),
            "{e}"
        );
        let e = err("interfaces = [\n");
        assert!(e.contains("line "), "{e}");
        let e = err("[workers.dns]\nheartbeat_ms = \"fast\"\n");
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn dns_section() {
        let c = Config::parse(
            "t",
            "[dns]\nblocklists = [\"/etc/b.txt\"]\nblock_action = \"drop\"\n",
        )
        .expect("valid");
        assert_eq!(c.dns.lists.blocklists, vec![PathBuf::from("/etc/b.txt")]);
        assert_eq!(c.dns.block_action, BlockAction::Drop);
        assert_eq!(
            err("[dns]\nblock_action = \"refuse\"\n"),
            "t.toml:2: dns.block_action: \"refuse\" is not \"nxdomain\" or \"drop\""
        );
        assert_eq!(
            err("[dns]\nallowlists = [\"rel.txt\"]\n"),
            "t.toml:2: dns.allowlists: \"rel.txt\" is not an absolute path"
        );
    }

    #[test]
    fn flow_section() {
        let c = Config::load(None).expect("embedded default parses");
        assert_eq!(c.flow, DEFAULT_FLOW);
        let c = Config::parse(
            "t",
            "[flow]\nidle_timeout_s = 30\ntcp_idle_timeout_s = 3600\nupdate_interval_s = 60\nseed_from_conntrack = false\n",
        )
        .expect("valid");
        assert_eq!(
            (
                c.flow.idle_timeout_s,
                c.flow.tcp_idle_timeout_s,
                c.flow.update_interval_s,
                c.flow.seed_from_conntrack
            ),
            (30, 3600, 60, false)
        );
        assert_eq!(c.flow.timeouts().update_ns, 60_000_000_000);
        assert_eq!(
            err("[flow]\n\nidle_timeout_s = 0\n"),
            "t.toml:3: flow.idle_timeout_s: 0 is outside 1..=86400 (seconds)"
        );
        assert_eq!(
            err("[flow]\nupdate_interval_s = -1\n"),
            "t.toml:2: flow.update_interval_s: -1 is outside 0..=86400 (seconds)"
        );
    }

    #[test]
    fn ip_section() {
        let c = Config::parse(
            "t",
            "[ip]\nblocklists = [\"/etc/drop.txt\"]\nxdp_mode = \"generic\"\nalerts_per_second = 0\n",
        )
        .expect("valid");
        assert_eq!(c.ip.blocklists, vec![PathBuf::from("/etc/drop.txt")]);
        assert_eq!(c.ip.xdp_mode, XdpMode::Generic);
        assert_eq!(c.ip.alerts_per_second, 0);
        let d = Config::parse("t", "").expect("valid");
        assert_eq!(d.ip.xdp_mode, XdpMode::Auto);
        assert_eq!(d.ip.alerts_per_second, DEFAULT_IP_ALERTS_PER_SECOND);
        assert_eq!(
            err("[ip]\n\nxdp_mode = \"fast\"\n"),
            "t.toml:3: ip.xdp_mode: \"fast\" is not \"auto\", \"native\", \"generic\" or \"tc\""
        );
        assert_eq!(
            err("[ip]\nblocklists = [\"rel.txt\"]\n"),
            "t.toml:2: ip.blocklists: \"rel.txt\" is not an absolute path"
        );
        assert_eq!(
            err("[ip]\nalerts_per_second = -1\n"),
            "t.toml:2: ip.alerts_per_second: -1 is outside 0..=100000"
        );
    }

    #[test]
    fn values_are_applied() {
        let c = Config::parse(
            "t",
            "interfaces = [\"veth0\"]\n[paths]\ncontrol_socket = \"/tmp/x.sock\"\n[workers.flow]\nuser = \"nobody\"\nheartbeat_ms = 100\npath = \"/opt/w\"\n",
        )
        .expect("valid");
        assert_eq!(c.interfaces, vec!["veth0".to_owned()]);
        assert_eq!(c.control_socket, PathBuf::from("/tmp/x.sock"));
        let flow = &c.workers[&WorkerKind::Flow];
        assert_eq!((flow.user.as_str(), flow.heartbeat_ms), ("nobody", 100));
        assert_eq!(flow.path.as_deref(), Some(Path::new("/opt/w")));
    }
}
