//! A hostile worker's frames as the supervisor takes them: the hello, then bincode messages
//! decoded with the byte limit and checked against every worker kind and session state.
//! Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_ipc::{
    codec,
    handshake::Hello,
    messages::{WorkerKind, WorkerToSupervisor},
    validation::{WorkerSession, check_worker_message},
};

fuzz_target!(|data: &[u8]| {
    let _ = Hello::decode(data);
    if let Ok(msg) = codec::decode::<WorkerToSupervisor>(data) {
        for kind in WorkerKind::ALL {
            for state in [
                WorkerSession::AwaitHello,
                WorkerSession::AwaitReady,
                WorkerSession::Running,
                WorkerSession::Draining,
            ] {
                let _ = check_worker_message(kind, state, &msg);
            }
        }
        // What decodes can be encoded again (the supervisor logs and forwards parts of it).
        assert!(codec::encode(&msg).is_ok());
    }
});
