//! palisade-worker-tls: TLS handshake records -> EVE `tls` events.
//!
//! Started by `palisade run` only (it refuses to run privileged or by hand).

use std::process::ExitCode;

use palisade_ipc::messages::WorkerKind;
use palisade_worker_runtime::{EventOut, Protocol, Record, eve};
use palisade_worker_tls::parse::{self, version_name};
use serde::Serialize;

#[derive(Serialize)]
struct TlsBody {
    /// `client_hello` or `server_hello`.
    handshake: &'static str,
    version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sni: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    alpn: Vec<String>,
    /// Offered (client) or chosen (server) cipher suites, IANA numbers.
    ciphers: Vec<u16>,
}

#[derive(Serialize)]
struct TlsEvent {
    #[serde(flatten)]
    common: eve::Common,
    tls: TlsBody,
}

struct Tls;

impl Protocol for Tls {
    const KIND: WorkerKind = WorkerKind::Tls;

    fn on_record(&mut self, ctx: &eve::Context, record: &Record<'_>, out: &mut EventOut<'_>) {
        if record.hdr.kind != palisade_abi::KIND_TLS {
            return out.drop(palisade_worker_runtime::stats::DROP_UNEXPECTED_KIND);
        }
        let hello = match parse::parse_record(record.payload) {
            Ok(h) => h,
            Err(e) => return out.drop(e.reason()),
        };
        let event = TlsEvent {
            common: eve::Common::new(ctx, "tls", &record.hdr),
            tls: TlsBody {
                handshake: if hello.client {
                    "client_hello"
                } else {
                    "server_hello"
                },
                version: version_name(hello.version()),
                sni: hello.sni,
                alpn: hello.alpn,
                ciphers: hello.ciphers,
            },
        };
        out.emit(&event);
    }
}

fn main() -> ExitCode {
    palisade_worker_runtime::run(Tls)
}
