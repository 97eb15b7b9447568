//! The TLS worker's parser on arbitrary bytes as one direction of a connection: the record
//! and handshake layers, every hello, certificate list, fingerprint and event built from
//! them. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_worker_tls::{
    event,
    fingerprint::{self, Transport},
    parse::{HandshakeStream, Message, parse_message},
};

fuzz_target!(|data: &[u8]| {
    // Split in two at a point the input chooses, as segments would.
    let cut = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let (a, b) = data.split_at(cut);
    let mut stream = HandshakeStream::new();
    let mut raws = stream.push(a);
    raws.extend(stream.push(b));
    for raw in raws {
        match parse_message(&raw) {
            Ok(Message::ClientHello(h)) => {
                let _ = fingerprint::ja3(&h);
                let _ = fingerprint::ja4(&h, Transport::Quic);
                let _ = serde_json::to_string(&event::client(&h, Transport::Tcp).0);
            }
            Ok(Message::ServerHello(h)) => {
                let _ = serde_json::to_string(&event::server(&h).1);
            }
            _ => {}
        }
    }
});
