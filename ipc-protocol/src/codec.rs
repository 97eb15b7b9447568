//! The only place that calls bincode.
//!
//! Decoding checks the frame length against [`MAX_FRAME`] before bincode sees
//! a byte, decodes with a byte limit (bincode 2 has none by default: a small
//! frame declaring a huge `Vec` would otherwise allocate without bound), and
//! rejects trailing bytes.

use bincode::{Decode, Encode, config};

use crate::MAX_FRAME;

/// The one bincode configuration of the protocol.
fn wire_config()
-> config::Configuration<config::LittleEndian, config::Varint, config::Limit<MAX_FRAME>> {
    config::standard().with_limit::<MAX_FRAME>()
}

/// Why a frame could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The frame exceeds [`MAX_FRAME`] (checked before decoding).
    #[error("frame of {len} bytes exceeds the {MAX_FRAME}-byte limit")]
    Oversized { len: usize },
    /// Empty frame.
    #[error("empty frame")]
    Empty,
    /// bincode rejected the bytes.
    #[error("undecodable frame")]
    Decode(#[source] bincode::error::DecodeError),
    /// The message ended before the frame did.
    #[error("{trailing} trailing bytes after the message")]
    TrailingBytes { trailing: usize },
    /// bincode could not encode the message.
    #[error("unencodable message")]
    Encode(#[source] bincode::error::EncodeError),
}

/// Encodes a message into one frame.
pub fn encode<T: Encode>(msg: &T) -> Result<Vec<u8>, CodecError> {
    let bytes = bincode::encode_to_vec(msg, wire_config()).map_err(CodecError::Encode)?;
    if bytes.len() > MAX_FRAME {
        return Err(CodecError::Oversized { len: bytes.len() });
    }
    Ok(bytes)
}

/// Decodes exactly one message from one frame.
pub fn decode<T: Decode<()>>(frame: &[u8]) -> Result<T, CodecError> {
    if frame.len() > MAX_FRAME {
        return Err(CodecError::Oversized { len: frame.len() });
    }
    if frame.is_empty() {
        return Err(CodecError::Empty);
    }
    let (msg, used) =
        bincode::decode_from_slice(frame, wire_config()).map_err(CodecError::Decode)?;
    if used != frame.len() {
        return Err(CodecError::TrailingBytes {
            trailing: frame.len() - used,
        });
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    //! Golden bytes: one per message variant. If one of these fails, the wire
    //! format changed: bump PROTOCOL_VERSION and update the bytes.
    use super::*;
    use crate::{PROTOCOL_VERSION, messages::*};

    fn golden<T: Encode + Decode<()> + PartialEq + std::fmt::Debug>(msg: T, hex_bytes: &str) {
        let bytes = encode(&msg).expect("encodes");
        assert_eq!(
            hex(&bytes),
            hex_bytes,
            "wire bytes of {msg:?} changed: bump PROTOCOL_VERSION (now {PROTOCOL_VERSION}) and update the golden bytes"
        );
        assert_eq!(decode::<T>(&bytes).expect("decodes"), msg);
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn iface() -> InterfaceName {
        InterfaceName {
            ifindex: 2,
            name: "eth0".into(),
        }
    }

    fn stats() -> WorkerStats {
        WorkerStats {
            records: 10,
            events: 9,
            bytes: 300,
            drops: vec![DropCount {
                reason: "parse".into(),
                count: 1,
            }],
            notices: vec![DropCount {
                reason: "n".into(),
                count: 2,
            }],
            gauges: vec![DropCount {
                reason: "g".into(),
                count: 3,
            }],
        }
    }

    #[test]
    fn golden_supervisor_to_worker() {
        golden(
            SupervisorToWorker::Configure(WorkerConfig {
                kind: WorkerKind::Dns,
                heartbeat_ms: 250,
                poll_backstop_ms: 10,
                fds: vec![FdRole::RingBuf, FdRole::EventSink],
                interfaces: vec![iface()],
            }),
            "0001fa0a02000101020465746830",
        );
        golden(
            SupervisorToWorker::Interfaces(vec![iface()]),
            "0101020465746830",
        );
        golden(SupervisorToWorker::Shutdown, "02");
        golden(
            SupervisorToWorker::Policy(WorkerPolicy {
                ruleset: [0xab; 32],
                regexes: vec![RegexRule {
                    id: 5,
                    pattern: "^a$".into(),
                }],
                encrypted_dns_names: vec!["dns.example".into()],
                encrypted_dns_addresses: vec!["192.0.2.1".into()],
                flow_start_events: true,
                dhcp_transaction_timeout_s: 30,
            }),
            concat!(
                "03",
                "abababababababababababababababababababababababababababababababab",
                "0105035e6124",
                "010b646e732e6578616d706c65",
                "01093139322e302e322e31",
                "01",
                "1e"
            ),
        );
        golden(
            SupervisorToWorker::CnameBlocked {
                name: "a.example".into(),
                target: "b.example".into(),
                rule: "r".into(),
            },
            "0409612e6578616d706c6509622e6578616d706c650172",
        );
        golden(SupervisorToWorker::Fds(vec![FdRole::Registry]), "060103");
        golden(SupervisorToWorker::SetLogLevel(LogLevel::Warn), "0701");
        golden(
            SupervisorToWorker::PacketCapture(PacketCaptureConfig {
                idle_ns: 1,
                tcp_idle_ns: 2,
                update_ns: 4,
                max_flows: 3,
            }),
            "0801020403",
        );
        golden(
            SupervisorToWorker::Configure(WorkerConfig {
                kind: WorkerKind::Flow,
                heartbeat_ms: 250,
                poll_backstop_ms: 10,
                fds: vec![FdRole::PacketSocket, FdRole::EventSink],
                interfaces: vec![],
            }),
            "0003fa0a02040100",
        );
    }

    #[test]
    fn golden_tls_policy() {
        golden(
            SupervisorToWorker::TlsPolicy(TlsWorkerPolicy {
                ruleset: [1; 32],
                rules: vec![TlsRule {
                    id: 2,
                    kind: TlsRuleKind::SniSuffix,
                    value: "a.b".into(),
                    block: true,
                }],
            }),
            concat!(
                "05",
                "0101010101010101010101010101010101010101010101010101010101010101",
                "01020303612e6201"
            ),
        );
        golden(
            WorkerToSupervisor::FlowBlockRequest(FlowBlockRequest {
                rule_id: 2,
                observed: "x.a.b".into(),
                ip_version: 4,
                l4_proto: 6,
                src: ([1; 16], 443),
                dst: ([2; 16], 40000),
                hello_ns: 9,
            }),
            concat!(
                "070205782e612e620406",
                "01010101010101010101010101010101fbbb01",
                "02020202020202020202020202020202fb409c09"
            ),
        );
    }

    #[test]
    fn golden_worker_to_supervisor() {
        golden(WorkerToSupervisor::Ready, "00");
        golden(WorkerToSupervisor::Heartbeat { seq: 7 }, "0107");
        golden(
            WorkerToSupervisor::Stats(stats()),
            "020a09fb2c0101057061727365 01 01016e02 01 01670 3"
                .replace(' ', "")
                .as_str(),
        );
        golden(
            WorkerToSupervisor::Log {
                level: LogLevel::Warn,
                message: "hi".into(),
            },
            "0301026869",
        );
        golden(
            WorkerToSupervisor::BlockRequest {
                name: "a.example".into(),
                rule_id: 300,
            },
            "0409612e6578616d706c65fb2c01",
        );
        golden(
            WorkerToSupervisor::RulesetApplied { ruleset: [1; 32] },
            concat!(
                "05",
                "0101010101010101010101010101010101010101010101010101010101010101"
            ),
        );
        golden(
            WorkerToSupervisor::CnameCheck {
                name: "a.example".into(),
                targets: vec!["b.example".into()],
            },
            "0609612e6578616d706c650109622e6578616d706c65",
        );
    }

    #[test]
    fn golden_control() {
        golden(ControlRequest::Status, "00");
        golden(ControlRequest::Version, "01");
        golden(ControlRequest::Devices { offset: 7 }, "0f07");
        golden(ControlRequest::Check, "10");
        golden(
            ControlResponse::Checked(DriftStatus {
                interval_s: 0,
                checks: 1,
                last_check_unix: 2,
                found_total: 0,
                repaired_total: 0,
                findings: vec![],
            }),
            "10000102000000",
        );
        golden(ControlRequest::Guard { limit: 5 }, "1105");
        let change = LogLevelChange {
            level: "debug".into(),
            worker: Some(WorkerKind::Dns),
        };
        golden(ControlRequest::LogLevel(change), "120564656275670101");
        golden(
            ControlResponse::LogLevelSet(LogLevelChange {
                level: "info".into(),
                worker: None,
            }),
            "1204696e666f00",
        );
        golden(ControlRequest::Features, "13");
        golden(
            ControlRequest::FeatureSet {
                name: "dns-blocking".into(),
                enabled: true,
            },
            "140c646e732d626c6f636b696e6701",
        );
        golden(
            ControlResponse::Features(vec![FeatureState {
                name: "dns-blocking".into(),
                enabled: true,
            }]),
            "13010c646e732d626c6f636b696e6701",
        );
        golden(
            ControlRequest::TraceStart(TraceFilter {
                host: Some("10.0.0.1".into()),
                proto: None,
                port: Some(53),
                duration_s: 30,
            }),
            "15010831302e302e302e310001351e",
        );
        golden(ControlRequest::TracePoll { after: 300 }, "16fb2c01");
        golden(ControlRequest::TraceStop, "17");
        golden(
            ControlResponse::Trace(Box::new(TraceReport {
                active: false,
                filter: TraceFilter {
                    host: None,
                    proto: None,
                    port: None,
                    duration_s: 0,
                },
                remaining_ms: 0,
                ended: Some("stopped".into()),
                events: vec![TraceEventInfo {
                    seq: 1,
                    timestamp: "t".into(),
                    hook: "x".into(),
                    interface: "i".into(),
                    direction: "e".into(),
                    proto: "p".into(),
                    src_ip: "s".into(),
                    src_port: 1,
                    dest_ip: "d".into(),
                    dest_port: 2,
                    vlan: None,
                    length: 60,
                    verdict: "drop".into(),
                    decided_by: Some("b".into()),
                    rule_id: Some(7),
                    rule: Some("r".into()),
                    matched: Some("m".into()),
                    flow: None,
                    records: vec!["f".into()],
                    lost: vec![],
                }],
                next: 3,
                kernel_lost: 0,
                buffer_lost: 1,
            })),
            concat!(
                "14",
                "00",
                "00000000",
                "00",
                "01077374",
                "6f70706564",
                "01", // one event
                "01",
                "0174",
                "0178",
                "0169",
                "0165",
                "0170",
                "0173",
                "01",
                "0164",
                "02",
                "00",
                "3c",
                "0464726f70",
                "010162",
                "0107",
                "010172",
                "01016d",
                "00",
                "010166",
                "00",
                "03",
                "00",
                "01",
            ),
        );
        golden(
            ControlResponse::Guard(GuardReport {
                mode: "drop".into(),
                allowed_servers: vec!["a".into()],
                senders_total: 1,
                senders: vec![GuardSender {
                    mac: "m".into(),
                    ip: "i".into(),
                    dhcp4: 1,
                    dhcp6: 2,
                    ra: 3,
                    dropped: 4,
                    first_seen: 5,
                    last_seen: 6,
                }],
            }),
            "110464726f700101610101016d0169010203040506",
        );
        golden(
            ControlRequest::Restart(RestartTarget::One(WorkerKind::Flow)),
            "020003",
        );
        golden(ControlRequest::Restart(RestartTarget::All), "0201");
        let version = VersionInfo {
            version: "0.1.0".into(),
            protocol: 1,
            abi: 1,
        };
        golden(
            ControlResponse::Version(version.clone()),
            "0105302e312e300101",
        );
        golden(
            ControlResponse::Restarted(vec![WorkerKind::Dns, WorkerKind::Tls]),
            "02020102",
        );
        golden(
            ControlResponse::Error {
                kind: ControlErrorKind::PermissionDenied,
                message: "no".into(),
            },
            "0600026e6f",
        );
        golden(
            ControlResponse::Status(Box::new(StatusReport {
                version,
                pid: 42,
                uptime_ms: 1000,
                pin_dir: "/p".into(),
                workers: vec![WorkerStatus {
                    kind: WorkerKind::Dhcp,
                    state: WorkerState::Running,
                    pid: Some(43),
                    uid: 65534,
                    gid: 65534,
                    uptime_ms: Some(5),
                    restarts: 1,
                    violations: 0,
                    last_heartbeat_ms_ago: Some(100),
                    last_exit: None,
                    stats: stats(),
                }],
                interfaces: vec![InterfaceStatus {
                    name: "eth0".into(),
                    ifindex: 2,
                    attachments: vec![Attachment {
                        direction: "ingress".into(),
                        program: "pal_tc_ingress".into(),
                        program_id: 7,
                        link_id: 8,
                        mode: "tcx".into(),
                        adopted: false,
                    }],
                    error: None,
                    state: "attached".into(),
                    since: 5,
                }],
                kernel: vec![KernelCounter {
                    group: "dns".into(),
                    counter: "records".into(),
                    value: 3,
                }],
                dns: DnsPolicyStatus::default(),
                flows: FlowTableStatus::default(),
                drift: DriftStatus {
                    interval_s: 5,
                    checks: 2,
                    last_check_unix: 9,
                    found_total: 1,
                    repaired_total: 1,
                    findings: vec![DriftFinding {
                        object: "link eth0/ingress".into(),
                        problem: "detached".into(),
                        action: "attached again".into(),
                        repaired: true,
                    }],
                },
                network: NetworkStatus {
                    link_events: 1,
                    resyncs: 2,
                    attached: 3,
                    released: 4,
                    renamed: 5,
                },
                capture: CaptureStatus {
                    mode: "af_packet".into(),
                    fallback_reason: None,
                    enforcement: vec![EnforcementState {
                        feature: "dns_blocking".into(),
                        state: "unavailable".into(),
                    }],
                    sockets: vec![PacketSocketStatus {
                        worker: WorkerKind::Dns,
                        packets: 5,
                        drops: 1,
                    }],
                },
                features: vec![FeatureState {
                    name: "ip-blocking".into(),
                    enabled: false,
                }],
            })),
            concat!(
                "0005302e312e3001012afbe803022f70010001012bfbfefffbfeff010501000164000a09fb2c01010570",
                "617273650101016e0201016703010465746830020107696e67726573730e70616c5f74635f696e677265737307080374637800",
                "00086174746163686564050103646e73077265636f72647303000000000000000000000000000000000000",
                "050209010101116c696e6b20657468302f696e67726573730864657461636865640e617474616368656420616761696e01",
                "0102030405",
                "0961665f7061636b657400010c646e735f626c6f636b696e670b756e617661696c61626c6501010501",
                "010b69702d626c6f636b696e6700"
            ),
        );
    }

    #[test]
    fn golden_control_ip_block() {
        golden(
            ControlRequest::BlockAdd(BlockAddRequest {
                cidr: "192.0.2.0/24".into(),
                ttl_secs: Some(60),
                comment: Some("x".into()),
            }),
            "090c3139322e302e322e302f3234013c010178",
        );
        golden(ControlRequest::BlockRemove("::1".into()), "0a033a3a31");
        golden(ControlRequest::BlockList { limit: 50 }, "0b32");
        let rule = IpRuleInfo {
            id: 7,
            cidr: "192.0.2.0/24".into(),
            source: "cli".into(),
            comment: None,
            expires_unix: Some(300),
            hits: 2,
            in_kernel: true,
        };
        golden(
            ControlResponse::BlockAdded(rule.clone()),
            "09070c3139322e302e322e302f323403636c690001fb2c010201",
        );
        golden(
            ControlResponse::BlockRemoved(rule.clone()),
            "0a070c3139322e302e322e302f323403636c690001fb2c010201",
        );
        golden(
            ControlResponse::BlockList(IpBlockList {
                list_rules: 1,
                runtime_rules: 1,
                kernel_v4: 2,
                kernel_v6: 0,
                rules: vec![rule],
            }),
            "0b0101020001070c3139322e302e322e302f323403636c690001fb2c010201",
        );
    }

    #[test]
    fn golden_control_dns() {
        golden(ControlRequest::Reload, "03");
        golden(
            ControlRequest::DnsTest("x.example".into()),
            "0409782e6578616d706c65",
        );
        golden(ControlRequest::DnsBlockedHits, "05");
        golden(ControlRequest::ReopenLogs, "06");
        golden(
            ControlResponse::LogsReopened(vec![WorkerKind::Dns]),
            "070101",
        );
        golden(
            ControlResponse::Reloaded(ReloadReport {
                dns_ruleset_sha256: "ab".into(),
                dns_kernel_rules: 2,
                restart_needed: vec!["interfaces".into()],
            }),
            "0302616202010a696e7465726661636573",
        );
        golden(
            ControlResponse::DnsTest(DnsTestReport {
                name: Some("x.example".into()),
                verdict: "blocked".into(),
                rule: Some("block exact x.example (/l:1)".into()),
            }),
            "040109782e6578616d706c6507626c6f636b6564011c626c6f636b20657861637420782e6578616d706c6520282f6c3a3129",
        );
        golden(
            ControlResponse::DnsBlockedHits(vec![RuleHits {
                id: 1,
                rule: "r".into(),
                hits: 7,
            }]),
            "050101017207",
        );
    }

    #[test]
    fn golden_control_flows() {
        golden(
            ControlRequest::FlowsTop {
                by: FlowOrder::Packets,
                limit: 10,
            },
            "07010a",
        );
        golden(
            ControlRequest::FlowsShow {
                host: "::1".into(),
                limit: 5,
            },
            "08033a3a3105",
        );
        golden(
            ControlResponse::Flows(FlowList {
                live: 3,
                matched: 1,
                flows: vec![FlowSummary {
                    proto: "tcp".into(),
                    src_ip: "a".into(),
                    src_port: 1,
                    dest_ip: "b".into(),
                    dest_port: 2,
                    pkts_toserver: 3,
                    pkts_toclient: 4,
                    bytes_toserver: 5,
                    bytes_toclient: 6,
                    age_ms: 7,
                    idle_ms: 8,
                    interface: "e".into(),
                    tcp_flags_ts: 0x1b,
                    tcp_flags_tc: 0x12,
                    seeded: true,
                }],
            }),
            "080301010374637001610101620203040506070801651b1201",
        );
    }

    #[test]
    fn rejects_trailing_bytes() {
        let mut bytes = encode(&WorkerToSupervisor::Heartbeat { seq: 1 }).expect("encodes");
        bytes.push(0);
        assert!(matches!(
            decode::<WorkerToSupervisor>(&bytes),
            Err(CodecError::TrailingBytes { trailing: 1 })
        ));
    }

    #[test]
    fn rejects_oversized_before_decoding() {
        let frame = vec![0u8; MAX_FRAME + 1];
        assert!(matches!(
            decode::<WorkerToSupervisor>(&frame),
            Err(CodecError::Oversized { .. })
        ));
    }

    #[test]
    fn rejects_huge_declared_length_without_allocating() {
        // Stats { records, events, bytes, drops: Vec of u64::MAX elements }.
        let frame = [
            0x02, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ];
        assert!(matches!(
            decode::<WorkerToSupervisor>(&frame),
            Err(CodecError::Decode(_))
        ));
        // Log message claiming a 4 GiB string.
        let frame = [0x03, 0x00, 0xfc, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            decode::<WorkerToSupervisor>(&frame),
            Err(CodecError::Decode(_))
        ));
    }

    #[test]
    fn rejects_garbage_and_empty() {
        assert!(matches!(
            decode::<WorkerToSupervisor>(&[]),
            Err(CodecError::Empty)
        ));
        assert!(matches!(
            decode::<WorkerToSupervisor>(&[0xee]),
            Err(CodecError::Decode(_))
        ));
        assert!(matches!(
            decode::<ControlRequest>(&[0x7f, 0x01]),
            Err(CodecError::Decode(_))
        ));
    }
}
