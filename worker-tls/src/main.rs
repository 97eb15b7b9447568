//! palisade-worker-tls: TLS handshake records -> EVE `tls` events.
//!
//! Started by `palisade run` only (it refuses to run privileged or by hand).

use std::process::ExitCode;

use palisade_ipc::messages::WorkerKind;
use palisade_worker_runtime::{EventOut, Protocol, Record, eve};
use palisade_worker_tls::parse::{self, version_name};
use serde::Serialize;

/// The `tls` object, in Suricata's fields: one hello per event.
#[derive(Serialize)]
struct TlsBody {
    /// The highest version the hello offers (client) or the one chosen (server).
    version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sni: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_alpns: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_alpns: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_handshake: Option<ClientHandshake>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_handshake: Option<ServerHandshake>,
}

/// `tls.client_handshake`.
#[derive(Serialize)]
struct ClientHandshake {
    version: String,
    /// Offered cipher suites, IANA numbers, in wire order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ciphers: Vec<u16>,
}

/// `tls.server_handshake`.
#[derive(Serialize)]
struct ServerHandshake {
    version: String,
    /// The chosen cipher suite.
    #[serde(skip_serializing_if = "Option::is_none")]
    cipher: Option<u16>,
}

/// `palisade.tls`.
#[derive(Serialize)]
struct TlsVendor {
    /// `client_hello` or `server_hello`: which hello this event is.
    handshake: &'static str,
}

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
        let hello = match parse::parse_record(record.payload) {
            Ok(h) => h,
            Err(e) => return out.drop(e.reason()),
        };
        let common = eve::Common::new(ctx, "tls", &record.hdr);
        let version = version_name(hello.version());
        let alpns = (!hello.alpn.is_empty()).then_some(hello.alpn);
        let tls = if hello.client {
            TlsBody {
                version: version.clone(),
                sni: hello.sni,
                client_alpns: alpns,
                server_alpns: None,
                client_handshake: Some(ClientHandshake {
                    version,
                    ciphers: hello.ciphers,
                }),
                server_handshake: None,
            }
        } else {
            TlsBody {
                version: version.clone(),
                sni: hello.sni,
                client_alpns: None,
                server_alpns: alpns,
                client_handshake: None,
                server_handshake: Some(ServerHandshake {
                    version,
                    cipher: hello.ciphers.first().copied(),
                }),
            }
        };
        let handshake = if hello.client {
            "client_hello"
        } else {
            "server_hello"
        };
        out.emit(&TlsEvent {
            palisade: eve::Vendor::new(
                &common,
                TlsExtra {
                    tls: TlsVendor { handshake },
                },
            ),
            common,
            tls,
        });
    }
}

fn main() -> ExitCode {
    palisade_worker_runtime::run(Tls)
}
