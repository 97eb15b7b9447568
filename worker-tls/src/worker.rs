//! The TLS worker's protocol: followed handshake segments -> EVE `tls` events. `main.rs`
//! runs it under the worker runtime; tools and benchmarks can run it offline
//! (`palisade_worker_runtime::offline`).

use std::time::Instant;

use crate::{
    conn::{Hello, Output, Ready, Tracker},
    event::{self, QuicBody, QuicVendor, TlsBody, TlsVendor},
    fingerprint::Transport,
    quic,
};
use palisade_abi::TlsSeg;
use palisade_ipc::messages::WorkerKind;
use palisade_worker_runtime::{EventOut, Protocol, Record, eve};
use serde::Serialize;

#[derive(Serialize)]
struct TlsExtra {
    tls: TlsVendor,
}

#[derive(Serialize)]
struct TlsEvent {
    #[serde(flatten)]
    common: eve::Common,
    tls: TlsBody,
    palisade: eve::Vendor<TlsExtra>,
}

#[derive(Serialize)]
struct QuicExtra {
    quic: QuicVendor,
}

#[derive(Serialize)]
struct QuicEvent {
    #[serde(flatten)]
    common: eve::Common,
    quic: QuicBody,
    palisade: eve::Vendor<QuicExtra>,
}

/// Drop reason: a TLS record whose segment header is missing.
const DROP_BAD_SEGMENT: &str = "tls_bad_segment";

/// The TLS worker's protocol.
#[derive(Debug, Default)]
pub struct Tls {
    tracker: Tracker,
    quic: quic::Tracker,
}

/// Writes the events and counts of one tracker output.
fn write(ctx: &eve::Context, output: Output, out: &mut EventOut<'_>) {
    for reason in output.drops {
        out.drop(reason);
    }
    for reason in output.notices {
        out.notice(reason, 1);
    }
    for Ready { hello, index, hdr } in output.hellos {
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
        out.emit(&TlsEvent {
            palisade: eve::Vendor::new(&common, TlsExtra { tls: vendor }),
            common,
            tls,
        });
    }
}

/// Writes the `quic` events and counts of one QUIC tracker output.
fn write_quic(ctx: &eve::Context, output: quic::Output, out: &mut EventOut<'_>) {
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
        let anomalies = match &q.ready.hello {
            Hello::Client(h) => &h.anomalies,
            Hello::Server(h, ..) => &h.anomalies,
        };
        for a in anomalies {
            out.notice(a.reason(), 1);
        }
        vendor.tls.hello_index = (q.ready.index > 1).then_some(q.ready.index);
        let common = eve::Common::new(ctx, "quic", &q.ready.hdr);
        out.emit(&QuicEvent {
            palisade: eve::Vendor::new(&common, QuicExtra { quic: vendor }),
            common,
            quic: body,
        });
    }
}

impl Protocol for Tls {
    const KIND: WorkerKind = WorkerKind::Tls;

    fn on_record(&mut self, ctx: &eve::Context, record: &Record<'_>, out: &mut EventOut<'_>) {
        if record.hdr.kind == palisade_abi::KIND_QUIC {
            let output = self.quic.datagram(&record.hdr, record.payload);
            return write_quic(ctx, output, out);
        }
        if record.hdr.kind != palisade_abi::KIND_TLS {
            return out.drop(palisade_worker_runtime::stats::DROP_UNEXPECTED_KIND);
        }
        let Ok((seg, data)) = TlsSeg::read(record.payload) else {
            return out.drop(DROP_BAD_SEGMENT);
        };
        let output = self.tracker.segment(&record.hdr, &seg, data);
        write(ctx, output, out);
    }

    fn on_tick(&mut self, ctx: &eve::Context, _now: Instant, out: &mut EventOut<'_>) {
        let output = self.tracker.expire(ctx.boot_now_ns());
        write(ctx, output, out);
        let output = self.quic.expire(ctx.boot_now_ns());
        write_quic(ctx, output, out);
    }

    fn on_shutdown(&mut self, ctx: &eve::Context, out: &mut EventOut<'_>) {
        let output = self.tracker.clear();
        write(ctx, output, out);
        let output = self.quic.clear();
        write_quic(ctx, output, out);
    }
}
