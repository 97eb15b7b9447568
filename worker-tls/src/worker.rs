//! The TLS worker's protocol: followed handshake segments -> EVE `tls` events, QUIC Initial
//! datagrams -> EVE `quic` events, and the TLS rules (`policy`) applied to every
//! ClientHello: an `alert` event per matching rule, and for a rule that blocks a request to
//! the supervisor to cut the connection. `main.rs` runs it under the worker runtime; tools
//! and benchmarks can run it offline (`palisade_worker_runtime::offline`).

use std::time::Instant;

use crate::{
    conn::{Hello, Output, Ready, Tracker},
    event::{self, QuicBody, TlsBody},
    fingerprint::Transport,
    policy::{Seen, TlsRules},
    quic,
};
use palisade_abi::{RecordHeader, TlsSeg};
use palisade_ipc::messages::{
    FlowBlockRequest, SupervisorToWorker, TlsRule, WorkerKind, WorkerToSupervisor,
};
use palisade_worker_runtime::{
    EventOut, Protocol, Record,
    alert::{self, Alert},
    eve,
};
use serde::Serialize;

/// `palisade.tls_rule` of an alert: the rule and what matched it.
#[derive(Serialize)]
struct RuleRef<'a> {
    id: u32,
    kind: &'static str,
    value: &'a str,
    block: bool,
    matched: &'a str,
}

#[derive(Serialize)]
struct AlertExtra<'a> {
    tls_rule: RuleRef<'a>,
}

/// An alert for a hello that matched a TLS rule, with the hello's `tls` (or `quic`) object
/// as Suricata carries app-layer fields on alerts.
#[derive(Serialize)]
struct TlsAlert<'a> {
    #[serde(flatten)]
    common: eve::Common,
    alert: Alert,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<&'a TlsBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quic: Option<&'a QuicBody>,
    palisade: eve::Vendor<AlertExtra<'a>>,
}

/// Drop reason: a TLS record whose segment header is missing.
const DROP_BAD_SEGMENT: &str = "tls_bad_segment";

/// The TLS worker's protocol.
#[derive(Debug, Default)]
pub struct Tls {
    tracker: Tracker,
    quic: quic::Tracker,
    rules: TlsRules,
}

/// The hello's body, for an alert.
#[derive(Clone, Copy)]
enum Body<'a> {
    Tls(&'a TlsBody),
    Quic(&'a QuicBody),
}

impl Tls {
    /// The TLS rules a ClientHello matches: an alert each, and one block request per hello
    /// if any of them blocks.
    fn apply_rules(
        &self,
        ctx: &eve::Context,
        hdr: &RecordHeader,
        seen: Seen<'_>,
        body: Body<'_>,
        out: &mut EventOut<'_>,
    ) {
        if self.rules.is_empty() {
            return;
        }
        let hits = self.rules.matching(seen);
        let mut request: Option<(&TlsRule, &str)> = None;
        for (rule, matched) in &hits {
            let common = eve::Common::new(ctx, "alert", hdr);
            let (tls, quic) = match body {
                Body::Tls(b) => (Some(b), None),
                Body::Quic(b) => (None, Some(b)),
            };
            out.emit(&TlsAlert {
                palisade: eve::Vendor::new(
                    &common,
                    AlertExtra {
                        tls_rule: RuleRef {
                            id: rule.id,
                            kind: rule.kind.name(),
                            value: &rule.value,
                            block: rule.block,
                            matched,
                        },
                    },
                ),
                common,
                alert: Alert::new(
                    alert::TLS_RULE_MATCH,
                    if rule.block { "blocked" } else { "allowed" },
                ),
                tls,
                quic,
            });
            if rule.block && request.is_none() {
                request = Some((rule, matched));
            }
        }
        if let Some((rule, matched)) = request {
            out.send(WorkerToSupervisor::FlowBlockRequest(FlowBlockRequest {
                rule_id: rule.id,
                observed: matched.to_owned(),
                ip_version: hdr.ip_version,
                l4_proto: hdr.l4_proto,
                src: (hdr.src_addr, hdr.src_port),
                dst: (hdr.dst_addr, hdr.dst_port),
                hello_ns: hdr.ts_boot_ns,
            }));
        }
    }

    /// Writes the events and counts of one tracker output.
    fn write(&self, ctx: &eve::Context, output: Output, out: &mut EventOut<'_>) {
        for reason in output.drops {
            out.drop(reason);
        }
        for reason in output.notices {
            out.notice(reason, 1);
        }
        for Ready { hello, index, hdr } in output.hellos {
            let client = matches!(hello, Hello::Client(_));
            let (tls, mut vendor, anomalies) = match hello {
                Hello::Client(h) => {
                    let (b, v) = event::client(&h, Transport::Tcp);
                    (b, v, h.anomalies)
                }
                Hello::Server(h, sni, cert) => {
                    let (mut b, v) = event::server(&h);
                    b.sni = sni.as_deref().map(event::escape);
                    if let Some(c) = cert {
                        event::certificate(&mut b, c);
                    }
                    (b, v, h.anomalies)
                }
            };
            for a in anomalies {
                out.notice(a.reason(), 1);
            }
            vendor.hello_index = (index > 1).then_some(index);
            let common = eve::Common::new(ctx, "tls", &hdr);
            out.emit_with(|w| event::write_tls_event(w, &common, &tls, &vendor));
            if client {
                let sni = tls.sni.as_deref().map(str::to_ascii_lowercase);
                let seen = Seen {
                    ja3: tls.ja3.as_ref().map(|j| j.hash.as_str()),
                    ja4: tls.ja4.as_deref(),
                    sni: sni.as_deref(),
                };
                self.apply_rules(ctx, &hdr, seen, Body::Tls(&tls), out);
            }
        }
    }

    /// Writes the `quic` events and counts of one QUIC tracker output.
    fn write_quic(&self, ctx: &eve::Context, output: quic::Output, out: &mut EventOut<'_>) {
        for reason in output.drops {
            out.drop(reason);
        }
        for reason in output.notices {
            out.notice(reason, 1);
        }
        for q in output.hellos {
            let (body, mut vendor) = event::quic(
                &q.ready.hello,
                q.version,
                [&q.dcid, &q.scid],
                q.server_scid.as_deref(),
            );
            let (anomalies, client) = match &q.ready.hello {
                Hello::Client(h) => (&h.anomalies, true),
                Hello::Server(h, ..) => (&h.anomalies, false),
            };
            for a in anomalies {
                out.notice(a.reason(), 1);
            }
            vendor.tls.hello_index = (q.ready.index > 1).then_some(q.ready.index);
            let common = eve::Common::new(ctx, "quic", &q.ready.hdr);
            out.emit_with(|w| event::write_quic_event(w, &common, &body, &vendor));
            if client {
                let sni = body.sni.as_deref().map(str::to_ascii_lowercase);
                let seen = Seen {
                    ja3: body.ja3.as_ref().map(|j| j.hash.as_str()),
                    ja4: body.ja4.as_deref(),
                    sni: sni.as_deref(),
                };
                self.apply_rules(ctx, &q.ready.hdr, seen, Body::Quic(&body), out);
            }
        }
    }
}

impl Protocol for Tls {
    const KIND: WorkerKind = WorkerKind::Tls;
    const AWAITS_POLICY: bool = true;

    fn on_record(&mut self, ctx: &eve::Context, record: &Record<'_>, out: &mut EventOut<'_>) {
        if record.hdr.kind == palisade_abi::KIND_QUIC {
            let output = self.quic.datagram(&record.hdr, record.payload);
            return self.write_quic(ctx, output, out);
        }
        if record.hdr.kind != palisade_abi::KIND_TLS {
            return out.drop(palisade_worker_runtime::stats::DROP_UNEXPECTED_KIND);
        }
        let Ok((seg, data)) = TlsSeg::read(record.payload) else {
            return out.drop(DROP_BAD_SEGMENT);
        };
        let output = self.tracker.segment(&record.hdr, &seg, data);
        self.write(ctx, output, out);
    }

    fn on_tick(&mut self, ctx: &eve::Context, _now: Instant, out: &mut EventOut<'_>) {
        let output = self.tracker.expire(ctx.boot_now_ns());
        self.write(ctx, output, out);
        let output = self.quic.expire(ctx.boot_now_ns());
        self.write_quic(ctx, output, out);
    }

    fn on_shutdown(&mut self, ctx: &eve::Context, out: &mut EventOut<'_>) {
        let output = self.tracker.clear();
        self.write(ctx, output, out);
        let output = self.quic.clear();
        self.write_quic(ctx, output, out);
    }

    fn on_supervisor_message(
        &mut self,
        _ctx: &eve::Context,
        msg: SupervisorToWorker,
        out: &mut EventOut<'_>,
    ) -> Result<(), &'static str> {
        match msg {
            SupervisorToWorker::TlsPolicy(policy) => {
                let ruleset = policy.ruleset;
                self.rules
                    .apply(policy)
                    .map_err(|_| "a TLS rule pattern from the supervisor does not compile")?;
                out.send(WorkerToSupervisor::RulesetApplied { ruleset });
                Ok(())
            }
            _ => Err("a message the TLS worker does not take"),
        }
    }
}
