//! palisade-worker-tls: TLS handshake records -> EVE `tls` events.
//!
//! Started by `palisade run` only (it refuses to run privileged or by hand).

use std::process::ExitCode;

use palisade_ipc::messages::WorkerKind;
use palisade_worker_runtime::{EventOut, Protocol, Record, eve};
use palisade_worker_tls::event::{self, TlsBody, TlsVendor};
use palisade_worker_tls::fingerprint::Transport;
use palisade_worker_tls::parse::{self, HandshakeStream, Message, StreamState};
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

struct Tls;

impl Protocol for Tls {
    const KIND: WorkerKind = WorkerKind::Tls;

    fn on_record(&mut self, ctx: &eve::Context, record: &Record<'_>, out: &mut EventOut<'_>) {
        if record.hdr.kind != palisade_abi::KIND_TLS {
            return out.drop(palisade_worker_runtime::stats::DROP_UNEXPECTED_KIND);
        }
        let mut stream = HandshakeStream::new();
        let mut hellos = 0;
        for raw in stream.push(record.payload) {
            let (tls, vendor, anomalies) = match parse::parse_message(&raw) {
                Ok(Message::ClientHello(h)) => {
                    let (b, v) = event::client(&h, Transport::Tcp);
                    (b, v, h.anomalies)
                }
                Ok(Message::ServerHello(h)) => {
                    let (b, v) = event::server(&h);
                    (b, v, h.anomalies)
                }
                Ok(_) => continue,
                Err(e) => {
                    out.drop(e.reason());
                    continue;
                }
            };
            for a in anomalies {
                out.notice(a.reason(), 1);
            }
            hellos += 1;
            let common = eve::Common::new(ctx, "tls", &record.hdr);
            out.emit(&TlsEvent {
                palisade: eve::Vendor::new(&common, TlsExtra { tls: vendor }),
                common,
                tls,
            });
        }
        if hellos == 0 {
            let reason = match stream.state() {
                StreamState::Failed(e) => e.reason(),
                _ => parse::TlsError::Truncated.reason(),
            };
            out.drop(reason);
        }
    }
}

fn main() -> ExitCode {
    palisade_worker_runtime::run(Tls)
}
