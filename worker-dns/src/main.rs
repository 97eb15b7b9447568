//! palisade-worker-dns: DNS records -> EVE `dns` events.
//!
//! Started by `palisade run` only (it refuses to run privileged or by hand).

use std::process::ExitCode;

use palisade_ipc::messages::WorkerKind;
use palisade_worker_dns::{event::DnsBody, parse};
use palisade_worker_runtime::{EventOut, Protocol, Record, eve};
use serde::Serialize;

#[derive(Serialize)]
struct DnsEvent {
    #[serde(flatten)]
    common: eve::Common,
    dns: DnsBody,
}

struct Dns;

/// The DNS message inside a record: UDP payload as is; over TCP, one
/// message behind its 2-byte length prefix (a segment that starts a
/// message; reassembly across segments is not done yet).
fn message_bytes<'a>(record: &Record<'a>) -> Result<&'a [u8], &'static str> {
    if record.hdr.l4_proto != 6 {
        return Ok(record.payload);
    }
    let (len, rest) = record.payload.split_first_chunk::<2>().ok_or("dns_tcp_short")?;
    let len = usize::from(u16::from_be_bytes(*len));
    rest.get(..len).ok_or("dns_tcp_segmented")
}

impl Protocol for Dns {
    const KIND: WorkerKind = WorkerKind::Dns;

    fn on_record(&mut self, ctx: &eve::Context, record: &Record<'_>, out: &mut EventOut<'_>) {
        if record.hdr.kind != palisade_ebpf::KIND_DNS {
            return out.drop(palisade_worker_runtime::stats::DROP_UNEXPECTED_KIND);
        }
        let bytes = match message_bytes(record) {
            Ok(b) => b,
            Err(reason) => return out.drop(reason),
        };
        let parsed = match parse::parse_message_partial(bytes) {
            Ok(p) => p,
            Err(e) => return out.drop(e.kind.reason()),
        };
        let partial = parsed.error.map(|e| e.kind.reason());
        if let Some(reason) = partial {
            // The event is still written; the malformed section is counted.
            out.drop(reason);
        }
        out.emit(&DnsEvent { common: eve::Common::new(ctx, "dns", &record.hdr), dns: DnsBody::new(&parsed.message, partial) });
    }
}

fn main() -> ExitCode {
    palisade_worker_runtime::run(Dns)
}
