//! Configuration: raw TOML is parsed into `RawConfig`, then converted into
//! the validated [`Config`]. `palisade check-config` runs exactly that
//! conversion. Every error names the line it comes from.
//!
//! One file per section with more than a key or two ([`dns`], [`flow`],
//! [`ip`], [`workers`]): its raw form, its validated form and its checks;
//! `interfaces` and `[paths]` are checked here, and [`check`]
//! holds what the sections share. A new section: its file, its field in
//! `RawConfig` and [`Config`], and its line in [`Config::parse`].

mod check;
mod control;
mod dhcp;
mod dns;
mod drift;
mod flow;
mod group;
mod ip;
mod tls;
mod workers;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use palisade_ipc::messages::WorkerKind;
use serde::Deserialize;
use toml::Spanned;

use self::check::Checker;
pub use self::{
    control::{ControlTcp, TOKEN_FILE},
    dhcp::{AllowedServer, DhcpConfig},
    dns::DnsConfig,
    drift::DriftConfig,
    flow::FlowConfig,
    group::NamedGroup,
    ip::IpConfig,
    tls::TlsConfig,
    workers::{AccountName, WorkerSettings},
};
use crate::{capture::CaptureMode, paths};

/// The built-in default configuration (also shipped as
/// /etc/palisade/palisade.toml).
pub const EMBEDDED_DEFAULT: &str = include_str!("../../../packaging/palisade.toml");

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
    capture: Option<Spanned<String>>,
    tc_attach: Option<Spanned<String>>,
    #[serde(default)]
    paths: RawPaths,
    #[serde(default)]
    control: control::RawControl,
    #[serde(default)]
    workers: workers::RawWorkers,
    #[serde(default)]
    dns: dns::RawDns,
    #[serde(default)]
    flow: flow::RawFlow,
    #[serde(default)]
    dhcp: dhcp::RawDhcp,
    #[serde(default)]
    drift: drift::RawDrift,
    #[serde(default)]
    ip: ip::RawIp,
    #[serde(default)]
    tls: tls::RawTls,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPaths {
    control_socket: Option<Spanned<String>>,
    pin_root: Option<Spanned<String>>,
    state_dir: Option<Spanned<String>>,
    log_dir: Option<Spanned<String>>,
    log_group: Option<Spanned<String>>,
    ieee_data_dir: Option<Spanned<String>>,
}

/// What a client command (`status`, `reload`, `cleanup`, ...) takes from the configuration:
/// where the daemon's control socket and pins are. Only these two keys are read and checked:
/// a mistake elsewhere in the file is for `check-config` and the daemon (`reload`) to report,
/// and must not keep an operator from reaching the running daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPaths {
    /// `paths.control_socket`.
    pub control_socket: PathBuf,
    /// `paths.pin_root`.
    pub pin_root: PathBuf,
}

/// The part of the file [`ClientPaths`] reads; every other key is ignored.
#[derive(Debug, Default, Deserialize)]
struct RawClientView {
    #[serde(default)]
    paths: RawClientPaths,
}

#[derive(Debug, Default, Deserialize)]
struct RawClientPaths {
    control_socket: Option<Spanned<String>>,
    pin_root: Option<Spanned<String>>,
}

impl Default for ClientPaths {
    /// The built-in defaults ([`paths::CONTROL_SOCKET`], [`paths::PIN_ROOT`]).
    fn default() -> Self {
        Self {
            control_socket: PathBuf::from(paths::CONTROL_SOCKET),
            pin_root: PathBuf::from(paths::PIN_ROOT),
        }
    }
}

impl ClientPaths {
    /// Reads the two paths from configuration text; `origin` names it in errors.
    pub fn parse(origin: &str, text: &str) -> Result<Self, ConfigError> {
        let raw: RawClientView = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            origin: origin.to_owned(),
            message: e.to_string().trim_end().replace('\n', "\n  "),
        })?;
        let c = Checker { origin, text };
        Ok(Self {
            control_socket: c.abs_path(
                "paths.control_socket",
                raw.paths.control_socket,
                paths::CONTROL_SOCKET,
            )?,
            pin_root: c.abs_path("paths.pin_root", raw.paths.pin_root, paths::PIN_ROOT)?,
        })
    }

    /// Reads the two paths from a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = crate::paths::read_input_file(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&path.display().to_string(), &text)
    }
}

/// Validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Interfaces to attach to, by name or pattern (`*`, `?`, `[...]`, see
    /// `interfaces::Selector`); empty = every up, non-loopback Ethernet interface, also
    /// those that appear later.
    pub interfaces: Vec<String>,
    /// `capture`: eBPF programs, AF_PACKET sockets, or eBPF with AF_PACKET as fallback.
    pub capture: CaptureMode,
    /// `tc_attach`: how the TC observer is attached.
    pub tc_attach: crate::ebpf::attach::TcAttach,
    /// Control socket path.
    pub control_socket: PathBuf,
    /// bpffs pin root.
    pub pin_root: PathBuf,
    /// State directory.
    pub state_dir: PathBuf,
    /// Event log directory.
    pub log_dir: PathBuf,
    /// Where the IEEE MAC registries are (`oui.csv`, `mam.csv`, `oui36.csv`: Debian's
    /// `ieee-data`), read at start and at every reload.
    pub ieee_data_dir: PathBuf,
    /// `paths.log_group`: the group that may read the event logs (`<log_dir>` root:group
    /// 0750, the files root:group 0640); `None`: root only (root:root 0750 and 0640).
    /// Resolved by the daemon and `check-config` ([`NamedGroup::resolve`]).
    pub log_group: Option<NamedGroup>,
    /// Group allowed read-only control commands.
    pub control_group: String,
    /// The API over TCP with a bearer token (`[control] listen`); `None`: the socket only.
    pub control_tcp: Option<ControlTcp>,
    /// Per-worker settings, for every [`WorkerKind`].
    pub workers: BTreeMap<WorkerKind, WorkerSettings>,
    /// `[workers] allow_shared_account`: run workers as an account other processes (or other
    /// workers) share, such as the `nobody` fallback. Off by default: a process of the same
    /// uid may signal or ptrace a worker.
    pub allow_shared_account: bool,
    /// DNS policy.
    pub dns: DnsConfig,
    /// Flow table.
    pub flow: FlowConfig,
    /// DHCP transactions.
    pub dhcp: DhcpConfig,
    /// Drift checks.
    pub drift: DriftConfig,
    /// IP policy.
    pub ip: IpConfig,
    /// TLS policy.
    pub tls: TlsConfig,
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
                    format!("{:?} is not a valid interface name or pattern", i.get_ref()),
                );
            }
            if crate::interfaces::is_glob(i.get_ref())
                && let Err(e) = crate::interfaces::check_glob(i.get_ref())
            {
                return c.invalid("interfaces", i.span(), e);
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
        let capture = match raw.capture {
            None => CaptureMode::default(),
            Some(v) => match CaptureMode::from_name(v.get_ref()) {
                Some(m) => m,
                None => {
                    return c.invalid(
                        "capture",
                        v.span(),
                        format!(
                            "{:?} is not a capture mode (\"ebpf\", \"af_packet\" or \"auto\")",
                            v.get_ref()
                        ),
                    );
                }
            },
        };
        let tc_attach = match raw.tc_attach {
            None => crate::ebpf::attach::TcAttach::default(),
            Some(v) => match crate::ebpf::attach::TcAttach::from_name(v.get_ref()) {
                Some(m) => m,
                None => {
                    return c.invalid(
                        "tc_attach",
                        v.span(),
                        format!("{:?} is not \"auto\", \"tcx\" or \"clsact\"", v.get_ref()),
                    );
                }
            },
        };
        // Sections in this order: with several errors, the first one reported stays the same.
        let dns = dns::parse(&c, raw.dns)?;
        let flow = flow::parse(&c, raw.flow)?;
        let dhcp = dhcp::parse(&c, raw.dhcp)?;
        let drift = drift::parse(&c, raw.drift)?;
        let ip = ip::parse(&c, raw.ip)?;
        let tls = tls::parse(&c, raw.tls)?;
        let (allow_shared_account, workers) = workers::parse(&c, raw.workers)?;
        let (control_group, control_tcp) = control::parse(&c, raw.control)?;
        Ok(Self {
            interfaces,
            capture,
            tc_attach,
            control_socket: c.abs_path(
                "paths.control_socket",
                raw.paths.control_socket,
                paths::CONTROL_SOCKET,
            )?,
            pin_root: c.abs_path("paths.pin_root", raw.paths.pin_root, paths::PIN_ROOT)?,
            state_dir: c.abs_path("paths.state_dir", raw.paths.state_dir, paths::STATE_DIR)?,
            log_dir: c.own_dir("paths.log_dir", raw.paths.log_dir, paths::LOG_DIR)?,
            ieee_data_dir: c.abs_path(
                "paths.ieee_data_dir",
                raw.paths.ieee_data_dir,
                paths::IEEE_DATA_DIR,
            )?,
            log_group: c.group("paths.log_group", raw.paths.log_group)?,
            control_group,
            control_tcp,
            workers,
            allow_shared_account,
            dns,
            flow,
            dhcp,
            drift,
            ip,
            tls,
        })
    }

    /// Reads and validates a file, or the embedded default when `None`.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        match path {
            None => Self::parse("<embedded default>", EMBEDDED_DEFAULT),
            Some(p) => {
                let text =
                    crate::paths::read_input_file(p).map_err(|source| ConfigError::Read {
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
    use super::{flow::DEFAULT_FLOW, ip::DEFAULT_IP_ALERTS_PER_SECOND, *};
    use crate::{ebpf::xdp::XdpMode, policy::dns::BlockAction};

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
        assert_eq!(c.workers[&WorkerKind::Dns].user.name, "palisade-dns");
        assert!(!c.workers[&WorkerKind::Dns].user.is_configured());
    }

    #[test]
    fn capture_is_ebpf_af_packet_or_auto() {
        let parse = |t: &str| Config::parse("t.toml", t).expect("valid").capture;
        assert_eq!(parse(""), CaptureMode::Ebpf);
        assert_eq!(parse("capture = \"ebpf\"\n"), CaptureMode::Ebpf);
        assert_eq!(parse("capture = \"af_packet\"\n"), CaptureMode::AfPacket);
        assert_eq!(parse("capture = \"auto\"\n"), CaptureMode::Auto);
        assert_eq!(
            err("interfaces = []\ncapture = \"pcap\"\n"),
            "t.toml:2: capture: \"pcap\" is not a capture mode (\"ebpf\", \"af_packet\" or \"auto\")"
        );
        // The packaged file documents the key and keeps the default.
        assert!(EMBEDDED_DEFAULT.contains("# capture = \"ebpf\""));
        let tc = |t: &str| Config::parse("t.toml", t).map(|c| c.tc_attach);
        assert_eq!(tc("").expect("valid"), crate::ebpf::attach::TcAttach::Auto);
        assert_eq!(
            tc("tc_attach = \"clsact\"\n").expect("valid"),
            crate::ebpf::attach::TcAttach::Clsact
        );
        assert!(tc("tc_attach = \"ingress\"\n").is_err());
        assert!(EMBEDDED_DEFAULT.contains("# tc_attach = \"auto\""));
        assert_eq!(parse(EMBEDDED_DEFAULT), CaptureMode::Ebpf);
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
            "t.toml:1: interfaces: \"bad/name\" is not a valid interface name or pattern"
        );
        assert!(err("[workers.dns]\nuser = \"\"\n").starts_with("t.toml:2: workers.dns.user"));
    }

    #[test]
    fn log_group_is_looked_up_when_resolved_and_named_by_its_line() {
        let c = Config::load(None).expect("embedded default parses");
        assert_eq!(
            c.log_group.as_ref().map(|g| g.name.as_str()),
            Some(paths::LOG_GROUP),
            "the packaged configuration names the group the package creates"
        );
        let c = Config::parse("t.toml", "[paths]\nlog_dir = \"/x/y\"\n").expect("valid");
        assert_eq!(c.log_group, None, "absent: root only");
        // Parsing does not look the group up; resolving does, and names the line.
        let missing = format!("palisade-no-such-group-{}", std::process::id());
        let text = format!("[paths]\n\nlog_group = \"{missing}\"\n");
        let c = Config::parse("t.toml", &text).expect("parses");
        let e = c.log_group.expect("set").resolve().expect_err("unknown");
        assert_eq!(
            e.to_string(),
            format!("t.toml:3: paths.log_group: group \"{missing}\" does not exist")
        );
        for root in ["root", "0"] {
            let text = format!("[paths]\nlog_group = \"{root}\"\n");
            let c = Config::parse("t.toml", &text).expect("parses");
            assert_eq!(c.log_group.expect("set").resolve().expect("exists"), 0);
        }
        assert_eq!(
            err("[paths]\nlog_group = \"a b\"\n"),
            "t.toml:2: paths.log_group: \"a b\" is not a valid user or group name"
        );
    }

    #[test]
    fn log_dir_must_be_a_directory_of_its_own() {
        let shared = [
            "/",
            "/var",
            "/tmp",
            "/var/log",
            "/var/tmp",
            "/usr/lib",
            "/run/user",
            "/x/../var/log",
        ];
        for dir in shared {
            let e = err(&format!("[paths]\nlog_dir = \"{dir}\"\n"));
            assert!(
                e.starts_with("t.toml:2: paths.log_dir: ") && e.contains("other software shares"),
                "{dir}: {e}"
            );
        }
        for dir in [
            "/var/log/palisade",
            "/srv/palisade/events",
            "/var/palisade",
            "/tmp/x/log",
        ] {
            Config::parse("t.toml", &format!("[paths]\nlog_dir = \"{dir}\"\n"))
                .unwrap_or_else(|e| panic!("{dir}: {e}"));
        }
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
    fn client_paths_read_only_the_paths() {
        assert_eq!(
            ClientPaths::parse("t.toml", "").expect("empty is valid"),
            ClientPaths::default()
        );
        // A mistake elsewhere does not matter to a client; the daemon reports it on reload.
        let p = ClientPaths::parse(
            "t.toml",
            "[workers.dns]\nheartbeat_ms = 0\n[paths]\ncontrol_socket = \"/tmp/p.sock\"\nlog_dir = \"rel\"\n",
        )
        .expect("only paths.control_socket and paths.pin_root are checked");
        assert_eq!(p.control_socket, PathBuf::from("/tmp/p.sock"));
        assert_eq!(p.pin_root, PathBuf::from(paths::PIN_ROOT));
        let e = ClientPaths::parse("t.toml", "[paths]\n\npin_root = \"x\"\n")
            .expect_err("relative")
            .to_string();
        assert_eq!(e, "t.toml:3: paths.pin_root: \"x\" is not an absolute path");
        let e = ClientPaths::parse("t.toml", "[paths\n")
            .expect_err("syntax")
            .to_string();
        assert!(e.starts_with("t.toml: ") && e.contains("line 1"), "{e}");
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
        assert_eq!(
            (flow.user.name.as_str(), flow.heartbeat_ms),
            ("nobody", 100)
        );
        assert!(flow.user.is_configured() && !flow.group.is_configured());
        assert_eq!(
            flow.user.error("x").map(|e| e.to_string()).as_deref(),
            Some("t:5: workers.flow.user: x")
        );
        assert_eq!(flow.path.as_deref(), Some(Path::new("/opt/w")));
    }
}
