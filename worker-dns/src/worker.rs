//! The DNS worker's protocol: DNS records -> EVE `dns` (and `alert`) events, with TCP
//! reassembly, query/answer correlation, regex rules and CNAME checks. `main.rs` runs it
//! under the worker runtime; tools and benchmarks can run it offline
//! (`palisade_worker_runtime::offline`).

use std::{collections::HashMap, time::Instant};

use crate::{
    correlate::{Correlator, QueryKey, TIMEOUT_NS, Track},
    event::{DNS_LOG_VERSION, DnsEvent, KeptQuery, Policy},
    parse::{self, Message, Name, Rdata},
    policy::{RegexPolicy, Reported, ResolverNames},
    tcp::Reassembler,
};
use palisade_abi::{RecordHeader, dns_name};
use palisade_ipc::messages::{SupervisorToWorker, WorkerKind, WorkerToSupervisor};
use palisade_worker_runtime::{
    EventOut, Protocol, Record,
    alert::{self, Alert},
    eve::{self, Mac},
};
use serde::Serialize;

/// An alert about a DNS message.
#[derive(Serialize)]
struct DnsAlert {
    #[serde(flatten)]
    common: eve::Common,
    alert: Alert,
    dns: AlertDns,
    palisade: eve::Vendor<AlertExtra>,
}

/// The alert's `dns`: the queried name, in Suricata's fields.
#[derive(Serialize)]
struct AlertDns {
    version: u8,
    rrname: String,
}

/// `palisade.dns` of an alert: the CNAME target and rule that blocked the name.
#[derive(Serialize)]
struct AlertExtra {
    #[serde(skip_serializing_if = "Option::is_none")]
    dns: Option<AlertDnsVendor>,
}

#[derive(Serialize)]
struct AlertDnsVendor {
    cname: String,
    rule: String,
}

impl DnsAlert {
    fn new(
        common: eve::Common,
        alert: Alert,
        rrname: String,
        blocked: Option<AlertDnsVendor>,
    ) -> Self {
        Self {
            palisade: eve::Vendor::new(&common, AlertExtra { dns: blocked }),
            common,
            alert,
            dns: AlertDns {
                version: DNS_LOG_VERSION,
                rrname,
            },
        }
    }
}

/// What is kept of a query until its answer (or timeout).
#[derive(Debug)]
struct QueryInfo {
    hdr: RecordHeader,
    query: KeptQuery,
}

/// CNAME checks awaiting the supervisor's verdict, at most.
const MAX_CNAME_PENDING: usize = 1024;
/// Targets sent per check, at most (the IPC bound is 16).
const MAX_CNAME_TARGETS: usize = 16;

/// The DNS worker's state.
#[derive(Debug, Default)]
pub struct Dns {
    tcp: Reassembler,
    pending: Correlator<QueryInfo>,
    regexes: RegexPolicy,
    resolvers: ResolverNames,
    cname_reported: Reported,
    /// Answer headers of CNAME checks in flight, to place the alert.
    cname_pending: HashMap<String, RecordHeader>,
}

const TCP: u8 = 6;

/// A name in the policy's normalized form (`dns_name::normalize` of its presentation
/// text), the text rendered on the stack.
fn normalized(name: &Name) -> Option<String> {
    // Presentation text is at most 4 characters per wire byte (`\DDD`).
    let mut text = [0u8; 4 * 256];
    let mut len = 0;
    name.write_text(|piece| {
        if let Some(slot) = text.get_mut(len..len + piece.len()) {
            slot.copy_from_slice(piece);
            len += piece.len();
        }
    });
    dns_name::normalize(std::str::from_utf8(text.get(..len)?).ok()?)
}

/// CNAME targets of an answer, normalized, in order.
fn cname_targets(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            Rdata::Cname(target) => normalized(target),
            _ => None,
        })
        .take(MAX_CNAME_TARGETS)
        .collect()
}

impl Dns {
    fn on_message(
        &mut self,
        ctx: &eve::Context,
        hdr: &RecordHeader,
        bytes: &[u8],
        out: &mut EventOut<'_>,
    ) {
        let parsed = match parse::parse_message_partial(bytes) {
            Ok(p) => p,
            Err(e) => return out.drop(e.kind.reason()),
        };
        // A message cut at the kernel's capture cap is not malformed: say so.
        let capped = hdr.flags & palisade_abi::FLAG_TRUNCATED != 0;
        let partial = parsed.error.map(|e| match e.kind {
            parse::ErrorKind::Truncated if capped => "capture_truncated",
            kind => kind.reason(),
        });
        if let Some(reason) = partial {
            // The event is still written; the malformed section is counted.
            out.drop(reason);
        }
        let m = &parsed.message;
        let common = eve::Common::new(ctx, "dns", hdr);
        let client_mac = Mac(if m.header.qr {
            hdr.dst_mac
        } else {
            hdr.src_mac
        });
        let qname = m.questions.first().and_then(|q| normalized(&q.name));
        let mut event = DnsEvent::of_message(m, partial, client_mac);
        if hdr.flags & palisade_abi::FLAG_DNS_BLOCKED != 0 {
            event.vendor.policy = Some(Policy {
                action: "blocked",
                rule_id: None,
            });
        } else if hdr.flags & palisade_abi::FLAG_DNS_REWRITTEN != 0 {
            event.vendor.policy = Some(Policy {
                action: "rewritten",
                rule_id: None,
            });
        } else if !m.header.qr
            && let Some((rule_id, fresh)) = qname.as_deref().and_then(|n| self.regexes.check(n))
        {
            if let (true, Some(name)) = (fresh, qname.clone()) {
                out.send(WorkerToSupervisor::BlockRequest { name, rule_id });
            }
            event.vendor.policy = Some(Policy {
                action: "block_requested",
                rule_id: Some(rule_id),
            });
        }
        if m.header.qr {
            let key: QueryKey = (
                common.dest_ip,
                hdr.dst_port,
                common.src_ip,
                hdr.src_port,
                hdr.l4_proto,
                m.header.id,
            );
            if let Some(q) = self.pending.answer(&key) {
                event.vendor.query_timestamp = Some(ctx.wall(q.ts_ns));
                event.vendor.rtt_ms = Some(hdr.ts_boot_ns.saturating_sub(q.ts_ns) as f64 / 1e6);
            }
            self.check_cnames(hdr, m, qname.as_deref(), out);
        } else {
            let key: QueryKey = (
                common.src_ip,
                hdr.src_port,
                common.dest_ip,
                hdr.dst_port,
                hdr.l4_proto,
                m.header.id,
            );
            let kept = QueryInfo {
                hdr: *hdr,
                query: KeptQuery::of(m),
            };
            if self.pending.query(key, hdr.ts_boot_ns, kept) == Track::Full {
                // The query's event is written; only its RTT (or `unanswered`) is missing.
                out.notice("dns_correlation_full", 1);
            }
            if let Some(name) = qname.filter(|n| self.resolvers.matches(n)) {
                let alert = Alert::new(alert::ENCRYPTED_DNS_RESOLVER_QUERY, "allowed");
                let common = eve::Common {
                    event_type: "alert",
                    ..common.clone()
                };
                out.emit(&DnsAlert::new(common, alert, name, None));
            }
        }
        out.emit_with(|w| event.write(w, &common));
    }

    /// Sends an answer's CNAME chain to the supervisor (once per name).
    fn check_cnames(
        &mut self,
        hdr: &RecordHeader,
        m: &Message,
        qname: Option<&str>,
        out: &mut EventOut<'_>,
    ) {
        let Some(name) = qname else { return };
        let targets = cname_targets(m);
        if targets.is_empty() || !self.cname_reported.first(name) {
            return;
        }
        if self.cname_pending.len() >= MAX_CNAME_PENDING {
            self.cname_pending.clear();
            out.drop("dns_cname_pending_full");
        }
        self.cname_pending.insert(name.to_owned(), *hdr);
        out.send(WorkerToSupervisor::CnameCheck {
            name: name.to_owned(),
            targets,
        });
    }
}

impl Protocol for Dns {
    const KIND: WorkerKind = WorkerKind::Dns;
    const AWAITS_POLICY: bool = true;

    fn on_record(&mut self, ctx: &eve::Context, record: &Record<'_>, out: &mut EventOut<'_>) {
        let hdr = &record.hdr;
        if hdr.kind != palisade_abi::KIND_DNS {
            return out.drop(palisade_worker_runtime::stats::DROP_UNEXPECTED_KIND);
        }
        if hdr.l4_proto != TCP {
            return self.on_message(ctx, hdr, record.payload, out);
        }
        if hdr.flags & palisade_abi::FLAG_TRUNCATED != 0 {
            // Bytes are missing from this segment: the stream cannot be followed.
            out.drop("dns_tcp_segment_truncated");
        }
        let key = (
            eve::addr(hdr.ip_version, hdr.src_addr),
            hdr.src_port,
            eve::addr(hdr.ip_version, hdr.dst_addr),
            hdr.dst_port,
        );
        let fed = self.tcp.feed(key, record.payload, hdr.ts_boot_ns);
        for reason in fed.drops {
            out.drop(reason);
        }
        for msg in fed.messages {
            self.on_message(ctx, hdr, &msg, out);
        }
    }

    fn on_supervisor_message(
        &mut self,
        ctx: &eve::Context,
        msg: SupervisorToWorker,
        out: &mut EventOut<'_>,
    ) -> Result<(), &'static str> {
        match msg {
            SupervisorToWorker::Policy(policy) => {
                self.regexes
                    .apply(policy.ruleset, &policy.regexes)
                    .map_err(|_| "a regex rule from the supervisor does not compile")?;
                self.resolvers.set(&policy.encrypted_dns_names);
                self.cname_reported.clear();
                out.send(WorkerToSupervisor::RulesetApplied {
                    ruleset: policy.ruleset,
                });
                Ok(())
            }
            SupervisorToWorker::CnameBlocked { name, target, rule } => {
                let Some(hdr) = self.cname_pending.remove(&name) else {
                    out.drop("dns_cname_alert_without_answer");
                    return Ok(());
                };
                let common = eve::Common::new(ctx, "alert", &hdr);
                let alert = Alert::new(alert::DNS_CNAME_TO_BLOCKED, "blocked");
                out.emit(&DnsAlert::new(
                    common,
                    alert,
                    name,
                    Some(AlertDnsVendor {
                        cname: target,
                        rule,
                    }),
                ));
                Ok(())
            }
            _ => Err("unexpected message for the DNS worker"),
        }
    }

    fn on_shutdown(&mut self, _ctx: &eve::Context, out: &mut EventOut<'_>) {
        // Queries still waiting: their answer may come after this process is gone (the
        // successor cannot match it), so no `unanswered` event; counted instead.
        out.notice("dns_pending_at_shutdown", self.pending.len() as u64);
    }

    fn on_tick(&mut self, ctx: &eve::Context, _now: Instant, out: &mut EventOut<'_>) {
        for _ in 0..self.tcp.expire(ctx.boot_now_ns()) {
            out.drop("dns_tcp_stream_expired");
        }
        for (_, q) in self.pending.expire(ctx.boot_now_ns()) {
            let event = DnsEvent::unanswered(
                &q.info.query,
                Mac(q.info.hdr.src_mac),
                TIMEOUT_NS / 1_000_000,
            );
            let common = eve::Common::new(ctx, "dns", &q.info.hdr);
            out.emit_with(|w| event.write(w, &common));
        }
    }
}
