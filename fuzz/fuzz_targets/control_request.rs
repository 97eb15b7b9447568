//! A hostile control client's frames as the daemon takes them: the hello, the request
//! decoded with the byte limit, and its authorisation for root, a control-group member and
//! a stranger. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade::control::{Peer, authorize, is_mutating};
use palisade_ipc::{codec, handshake::Hello, messages::ControlRequest};

fuzz_target!(|data: &[u8]| {
    let _ = Hello::decode(data);
    if let Ok(req) = codec::decode::<ControlRequest>(data) {
        let _ = is_mutating(&req);
        for (uid, gid) in [(0, 0), (1000, 999), (1001, 1001)] {
            let peer = Peer { pid: 1, uid, gid };
            let _ = authorize(peer, &[999], Some(999), &req);
        }
    }
});
