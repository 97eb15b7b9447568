//! Runtime feature switches (`palisade feature enable|disable NAME`): enforcement an
//! operator turns off and on without editing the configuration, kept in
//! `<state_dir>/features.json` so that a restart keeps it.
//!
//! Switching off changes what the daemon writes into the kernel and sends to the workers,
//! never the programs: with `dns-blocking` off `pal_dns_config` says "off" (the TC program
//! returns before looking at a name), with `ip-blocking` off both IP tries and the /16
//! pre-filter are empty (XDP and TC find no prefix), with `tls-rules` off the TLS worker
//! applies an empty rule set (no alerts, no cuts) and the connections the rules cut are let
//! go (the flow-block map emptied), with `dhcp-guard` off `pal_guard_config` says "off" (no
//! DHCP server message or router advertisement is flagged or dropped), with `capture-dns`,
//! `-dhcp`, `-tls` or `-flow` off `pal_capture_config` has that ring's bit (the kernel makes
//! no record for it, and counts each as `capture_off`). Rules stay in the
//! daemon (and runtime rules can still be added and removed); switching on applies them
//! again. Drift checks compare the kernel and the workers with the switched state.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use palisade_abi::MAP_CAPTURE_CONFIG;
use palisade_ipc::messages::FeatureState;

use crate::{
    ebpf::maps::{KernelError, Maps, on},
    policy::ip::{StateError, write_state_file},
};

/// The state file, in the state directory.
pub const STATE_FILE: &str = "features.json";

/// A feature that can be switched at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Feature {
    /// Domain blocking in the kernel (the DNS policy; events are still written).
    DnsBlocking,
    /// IP/CIDR blocking in the kernel (XDP/TC drops and their alerts).
    IpBlocking,
    /// The TLS rules (their alerts, and the connections rules with `block` cut).
    TlsRules,
    /// The rogue DHCP / router advertisement guard (its alerts and, with `guard = true`,
    /// its drops).
    DhcpGuard,
    /// DNS records (the DNS worker's events; the DNS policy still decides).
    CaptureDns,
    /// DHCP, ARP and neighbour discovery records (DHCP events, devices; the guard still
    /// decides).
    CaptureDhcp,
    /// TLS handshake and QUIC Initial records (TLS and QUIC events; TLS rules see nothing).
    CaptureTls,
    /// Flow records (flow events; the table is kept).
    CaptureFlow,
}

impl Feature {
    /// Every feature.
    pub const ALL: [Self; 8] = [
        Self::DnsBlocking,
        Self::IpBlocking,
        Self::TlsRules,
        Self::DhcpGuard,
        Self::CaptureDns,
        Self::CaptureDhcp,
        Self::CaptureTls,
        Self::CaptureFlow,
    ];

    /// Its name in the CLI, the API, status and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Self::DnsBlocking => "dns-blocking",
            Self::IpBlocking => "ip-blocking",
            Self::TlsRules => "tls-rules",
            Self::DhcpGuard => "dhcp-guard",
            Self::CaptureDns => "capture-dns",
            Self::CaptureDhcp => "capture-dhcp",
            Self::CaptureTls => "capture-tls",
            Self::CaptureFlow => "capture-flow",
        }
    }

    /// The ring a capture switch stops, for the capture features.
    pub const fn ring(self) -> Option<u32> {
        match self {
            Self::CaptureDns => Some(palisade_abi::RING_DNS),
            Self::CaptureDhcp => Some(palisade_abi::RING_DHCP),
            Self::CaptureTls => Some(palisade_abi::RING_TLS),
            Self::CaptureFlow => Some(palisade_abi::RING_FLOW),
            _ => None,
        }
    }

    /// The feature of a name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// What is switched off, and where that is kept.
#[derive(Debug, Clone)]
pub struct Features {
    disabled: BTreeSet<Feature>,
    path: PathBuf,
}

/// The file's shape: the features switched off, by name.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    disabled: Vec<String>,
}

impl Features {
    /// Reads `<state_dir>/features.json` (every feature on when it does not exist). A file
    /// that does not parse, or names a feature this version does not know, is refused: the
    /// daemon must not enforce what an operator switched off.
    pub fn open(state_dir: &Path) -> Result<Self, StateError> {
        let path = state_dir.join(STATE_FILE);
        let mut features = Self {
            disabled: BTreeSet::new(),
            path: path.clone(),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(features),
            Err(source) => {
                return Err(StateError::Io {
                    op: "read",
                    path,
                    source,
                });
            }
        };
        let corrupt = |problem: String| StateError::Corrupt {
            path: path.clone(),
            problem,
        };
        let file: File = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        for name in file.disabled {
            let f = Feature::from_name(&name)
                .ok_or_else(|| corrupt(format!("unknown feature {name:?}")))?;
            features.disabled.insert(f);
        }
        Ok(features)
    }

    /// Whether `f` is on.
    pub fn enabled(&self, f: Feature) -> bool {
        !self.disabled.contains(&f)
    }

    /// Switches `f`, saving the file first (a switch a restart would forget is never
    /// applied). Returns whether anything changed.
    pub fn set(&mut self, f: Feature, on: bool) -> Result<bool, StateError> {
        if self.enabled(f) == on {
            return Ok(false);
        }
        let mut next = self.disabled.clone();
        if on {
            next.remove(&f);
        } else {
            next.insert(f);
        }
        let file = File {
            disabled: next.iter().map(|f| f.name().to_owned()).collect(),
        };
        let text = serde_json::to_string_pretty(&file).unwrap_or_default() + "\n";
        write_state_file(&self.path, &text)?;
        self.disabled = next;
        Ok(true)
    }

    /// `pal_capture_config[0].off`: bit `1 << ring` for each capture switched off.
    pub fn capture_off(&self) -> u32 {
        self.disabled
            .iter()
            .filter_map(|f| f.ring())
            .fold(0, |mask, ring| mask | 1 << ring)
    }

    /// Writes the capture switches into the kernel, and which flows get a start record:
    /// all with `[flow] start_events`, else only those the flow worker alerts on.
    pub fn write_capture(
        &self,
        maps: &dyn Maps,
        flow_start_events: bool,
    ) -> Result<(), KernelError> {
        let flow_starts = if flow_start_events {
            palisade_abi::FLOW_STARTS_ALL
        } else {
            palisade_abi::FLOW_STARTS_ALERTS
        };
        palisade_ebpf::capture::set(
            maps.fd(MAP_CAPTURE_CONFIG)?,
            self.capture_off(),
            flow_starts,
        )
        .map_err(on(MAP_CAPTURE_CONFIG))
    }

    /// Every feature and whether it is on, for `status` and the API.
    pub fn states(&self) -> Vec<FeatureState> {
        Feature::ALL
            .into_iter()
            .map(|f| FeatureState {
                name: f.name().to_owned(),
                enabled: self.enabled(f),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_persist_and_a_bad_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut f = Features::open(dir.path()).expect("no file: all on");
        assert!(Feature::ALL.into_iter().all(|x| f.enabled(x)));
        assert!(f.set(Feature::IpBlocking, false).expect("save"));
        assert!(!f.set(Feature::IpBlocking, false).expect("no change"));
        let again = Features::open(dir.path()).expect("read back");
        assert!(!again.enabled(Feature::IpBlocking));
        assert!(again.enabled(Feature::DnsBlocking));
        assert_eq!(
            again.states(),
            vec![
                FeatureState {
                    name: "dns-blocking".into(),
                    enabled: true
                },
                FeatureState {
                    name: "ip-blocking".into(),
                    enabled: false
                },
                FeatureState {
                    name: "tls-rules".into(),
                    enabled: true
                },
                FeatureState {
                    name: "dhcp-guard".into(),
                    enabled: true
                },
                FeatureState {
                    name: "capture-dns".into(),
                    enabled: true
                },
                FeatureState {
                    name: "capture-dhcp".into(),
                    enabled: true
                },
                FeatureState {
                    name: "capture-tls".into(),
                    enabled: true
                },
                FeatureState {
                    name: "capture-flow".into(),
                    enabled: true
                },
            ]
        );
        let mut f = again;
        assert_eq!(f.capture_off(), 0);
        f.set(Feature::CaptureTls, false).expect("save");
        f.set(Feature::CaptureFlow, false).expect("save");
        assert_eq!(
            f.capture_off(),
            1 << palisade_abi::RING_TLS | 1 << palisade_abi::RING_FLOW
        );
        std::fs::write(
            dir.path().join(STATE_FILE),
            "{\"disabled\": [\"warp-drive\"]}",
        )
        .expect("write");
        assert!(matches!(
            Features::open(dir.path()),
            Err(StateError::Corrupt { .. })
        ));
        std::fs::write(dir.path().join(STATE_FILE), "{").expect("write");
        assert!(Features::open(dir.path()).is_err());
    }
}
