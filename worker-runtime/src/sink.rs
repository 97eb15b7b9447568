//! JSON-lines output to the sink FD.
//!
//! Events are serialized into one buffer and written once per ring-buffer
//! drain. When the sink is shared with other writers (a pipe or terminal in
//! `--foreground` mode, where four workers write to the same stdout), writes
//! are cut at line boundaries into chunks of at most PIPE_BUF bytes, which
//! the kernel writes atomically, so lines from different workers never
//! interleave. Regular files get one write per drain.

use std::{
    fs::File,
    io::Write,
    os::fd::{AsFd, OwnedFd},
};

use serde::Serialize;

use crate::stats::{DROP_SINK_ERROR, Stats};

const PIPE_BUF: usize = 4096;
/// Flush when this much is buffered, even mid-drain.
const FLUSH_AT: usize = 256 * 1024;

/// The sink plus the pending buffer.
#[derive(Debug)]
pub struct Sink {
    file: File,
    shared: bool,
    buf: Vec<u8>,
    pending_lines: u64,
}

impl Sink {
    /// Wraps the sink FD.
    pub fn new(fd: OwnedFd) -> Self {
        let shared = nix::sys::stat::fstat(fd.as_fd())
            .map(|st| {
                let fmt = st.st_mode & libc::S_IFMT;
                fmt == libc::S_IFIFO || fmt == libc::S_IFCHR || fmt == libc::S_IFSOCK
            })
            .unwrap_or(true);
        Self {
            file: File::from(fd),
            shared,
            buf: Vec::with_capacity(FLUSH_AT),
            pending_lines: 0,
        }
    }

    /// Writes everything buffered; failed lines are counted as drops.
    pub fn flush(&mut self, stats: &mut Stats) {
        if self.buf.is_empty() {
            return;
        }
        let result = if self.shared {
            self.write_chunked()
        } else {
            self.file.write_all(&self.buf)
        };
        match result {
            Ok(()) => {
                stats.events += self.pending_lines;
                stats.bytes += self.buf.len() as u64;
            }
            Err(_) => stats.drop(DROP_SINK_ERROR, self.pending_lines),
        }
        self.buf.clear();
        self.pending_lines = 0;
    }

    fn write_chunked(&mut self) -> std::io::Result<()> {
        let mut rest = self.buf.as_slice();
        while !rest.is_empty() {
            // Largest prefix <= PIPE_BUF ending at a newline; a single line
            // longer than PIPE_BUF is written alone.
            let cut = if rest.len() <= PIPE_BUF {
                rest.len()
            } else {
                let window = rest.get(..PIPE_BUF).unwrap_or(rest);
                match window.iter().rposition(|b| *b == b'\n') {
                    Some(i) => i + 1,
                    None => rest
                        .iter()
                        .position(|b| *b == b'\n')
                        .map_or(rest.len(), |i| i + 1),
                }
            };
            let (chunk, tail) = rest.split_at(cut);
            self.file.write_all(chunk)?;
            rest = tail;
        }
        Ok(())
    }
}

/// What a [`crate::Protocol`] writes events, drops and requests through.
#[derive(Debug)]
pub struct EventOut<'a> {
    pub(crate) sink: &'a mut Sink,
    pub(crate) stats: &'a mut Stats,
    pub(crate) outbox: &'a mut Vec<palisade_ipc::messages::WorkerToSupervisor>,
}

impl EventOut<'_> {
    /// Appends one event as a JSON line.
    pub fn emit<T: Serialize>(&mut self, event: &T) {
        let start = self.sink.buf.len();
        match serde_json::to_writer(&mut self.sink.buf, event) {
            Ok(()) => {
                self.sink.buf.push(b'\n');
                self.sink.pending_lines += 1;
            }
            Err(_) => {
                self.sink.buf.truncate(start);
                self.stats.drop("serialize_error", 1);
            }
        }
        if self.sink.buf.len() >= FLUSH_AT {
            self.sink.flush(self.stats);
        }
    }

    /// Counts one record or event lost for `reason`.
    pub fn drop(&mut self, reason: &'static str) {
        self.stats.drop(reason, 1);
    }

    /// Queues a message to the supervisor (sent after the current drain).
    pub fn send(&mut self, msg: palisade_ipc::messages::WorkerToSupervisor) {
        self.outbox.push(msg);
    }
}
