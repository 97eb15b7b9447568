//! JSON-lines output to the sink FD.
//!
//! Events are serialized into one buffer and written once per ring-buffer
//! drain. When the sink is shared with other writers (a pipe or terminal in
//! `--foreground` mode, where four workers write to the same stdout), writes
//! are cut at line boundaries into chunks of at most PIPE_BUF bytes, which
//! the kernel writes atomically, so lines from different workers never
//! interleave. Regular files get one write per drain.
//!
//! A write that fails part-way (disk full, file size limit) never leaves a torn line for the
//! next event to be glued to: the lines that reached the file are counted as written, the rest
//! as lost (`sink_error`), and a partial last line is counted (`sink_partial_line`) and
//! terminated with a newline before anything else is written, so every later line is whole.

use std::{
    fs::File,
    io::Write,
    os::fd::{AsFd, OwnedFd},
};

use serde::Serialize;

use crate::{
    json::JsonWriter,
    stats::{DROP_SINK_ERROR, DROP_SINK_PARTIAL_LINE, Stats},
};

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
    /// The file ends inside a line (a write failed part-way): write `\n` first.
    torn: bool,
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
            torn: false,
        }
    }

    /// Writes everything buffered; lines that did not reach the sink are counted as drops.
    pub fn flush(&mut self, stats: &mut Stats) {
        if self.buf.is_empty() {
            return;
        }
        let shared = self.shared;
        let outcome = write_lines(&mut self.file, &self.buf, shared, &mut self.torn);
        record(stats, &self.buf, self.pending_lines, outcome);
        self.buf.clear();
        self.pending_lines = 0;
    }
}

/// How far one flush got: bytes of the buffer that reached the sink, and whether it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Outcome {
    written: usize,
    failed: bool,
}

/// Writes `buf` (whole JSON lines) to `out`; first terminates a line a previous flush left
/// torn. Shared sinks get chunks of at most [`PIPE_BUF`] bytes cut at line ends (atomic for
/// pipes, so lines of different workers never interleave); files get one write at a time.
fn write_lines(out: &mut impl Write, buf: &[u8], shared: bool, torn: &mut bool) -> Outcome {
    if *torn {
        if out.write_all(b"\n").is_err() {
            return Outcome {
                written: 0,
                failed: true,
            };
        }
        *torn = false;
    }
    let mut written = 0;
    while written < buf.len() {
        let rest = buf.get(written..).unwrap_or_default();
        let chunk = if shared { chunk_len(rest) } else { rest.len() };
        match out.write(rest.get(..chunk).unwrap_or(rest)) {
            Ok(0) => break,
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    // A failure part-way through a line leaves the sink inside that line.
    *torn = written > 0 && buf.get(written - 1) != Some(&b'\n');
    Outcome {
        written,
        failed: written < buf.len(),
    }
}

/// Largest prefix of `rest` of at most [`PIPE_BUF`] bytes ending at a newline; a single line
/// longer than that is written alone.
fn chunk_len(rest: &[u8]) -> usize {
    if rest.len() <= PIPE_BUF {
        return rest.len();
    }
    let window = rest.get(..PIPE_BUF).unwrap_or(rest);
    match window.iter().rposition(|b| *b == b'\n') {
        Some(i) => i + 1,
        None => rest
            .iter()
            .position(|b| *b == b'\n')
            .map_or(rest.len(), |i| i + 1),
    }
}

/// Counts a flush of `lines` lines in `buf`: whole lines written are events, every other line
/// is a drop (the one cut in the middle separately).
fn record(stats: &mut Stats, buf: &[u8], lines: u64, outcome: Outcome) {
    stats.bytes += outcome.written as u64;
    if !outcome.failed {
        stats.events += lines;
        return;
    }
    // Only a failed write needs to know how far it got, line by line.
    let whole = buf
        .get(..outcome.written)
        .unwrap_or(buf)
        .iter()
        .filter(|b| **b == b'\n')
        .count() as u64;
    stats.events += whole;
    let partial = u64::from(outcome.written > 0 && buf.get(outcome.written - 1) != Some(&b'\n'));
    stats.drop(DROP_SINK_PARTIAL_LINE, partial);
    stats.drop(DROP_SINK_ERROR, lines.saturating_sub(whole + partial));
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

    /// Appends one event as a JSON line that `write` writes with a [`JsonWriter`] straight
    /// into the sink's buffer (no intermediate structs, no allocation): the hot path.
    pub fn emit_with(&mut self, write: impl FnOnce(&mut JsonWriter<'_>)) {
        write(&mut JsonWriter::new(&mut self.sink.buf));
        self.sink.buf.push(b'\n');
        self.sink.pending_lines += 1;
        if self.sink.buf.len() >= FLUSH_AT {
            self.sink.flush(self.stats);
        }
    }

    /// Counts one record or event lost for `reason`.
    pub fn drop(&mut self, reason: &'static str) {
        self.stats.drop(reason, 1);
    }

    /// Counts `n` notices: the events were written, without something they could have had
    /// (see [`Stats::notice`]).
    pub fn notice(&mut self, reason: &'static str, n: u64) {
        self.stats.notice(reason, n);
    }

    /// Queues a message to the supervisor (sent after the current drain).
    pub fn send(&mut self, msg: palisade_ipc::messages::WorkerToSupervisor) {
        self.outbox.push(msg);
    }
}

#[cfg(test)]
#[expect(clippy::indexing_slicing, reason = "a panic is a test failure")]
mod tests {
    use super::*;

    /// A sink with room for `room` more bytes, then ENOSPC (as a full file system behaves:
    /// a short write, then the error).
    struct Filling {
        data: Vec<u8>,
        room: usize,
    }

    impl Write for Filling {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.room == 0 {
                return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
            }
            let n = buf.len().min(self.room);
            self.data.extend_from_slice(buf.get(..n).unwrap_or(buf));
            self.room -= n;
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(n: usize, tag: &str) -> Vec<u8> {
        (0..n)
            .flat_map(|i| format!("{{\"event\":\"{tag}{i}\"}}\n").into_bytes())
            .collect()
    }

    fn flush(out: &mut Filling, buf: &[u8], shared: bool, torn: &mut bool, stats: &mut Stats) {
        let n = buf.iter().filter(|b| **b == b'\n').count() as u64;
        let outcome = write_lines(out, buf, shared, torn);
        record(stats, buf, n, outcome);
    }

    #[test]
    fn a_disk_full_mid_line_leaves_every_later_line_whole_and_counts_the_loss() {
        for shared in [false, true] {
            let first = lines(10, "a"); // 10 lines of 15 bytes
            let mut out = Filling {
                data: Vec::new(),
                room: 40, // two whole lines and 10 bytes of a third
            };
            let (mut torn, mut stats) = (false, Stats::default());
            flush(&mut out, &first, shared, &mut torn, &mut stats);
            assert!(torn, "the file ends inside a line");
            assert_eq!(stats.events, 2);
            assert_eq!(stats.drops(DROP_SINK_PARTIAL_LINE), 1);
            assert_eq!(stats.drops(DROP_SINK_ERROR), 7);

            // Still full: nothing more, everything counted, the torn line still pending.
            flush(&mut out, &lines(3, "b"), shared, &mut torn, &mut stats);
            assert!(torn);
            assert_eq!(stats.drops(DROP_SINK_ERROR), 10);

            // Space again: the torn line is terminated first, then whole lines follow.
            out.room = usize::MAX;
            flush(&mut out, &lines(3, "c"), shared, &mut torn, &mut stats);
            assert!(!torn);
            assert_eq!(stats.events, 5);
            let text = String::from_utf8(out.data.clone()).expect("utf8");
            let got: Vec<&str> = text.lines().collect();
            assert_eq!(got.len(), 6, "{text}");
            assert_eq!(&got[..2], [r#"{"event":"a0"}"#, r#"{"event":"a1"}"#]);
            assert_eq!(got[2], r#"{"event":""#, "the partial line, terminated");
            assert_eq!(
                &got[3..],
                [
                    r#"{"event":"c0"}"#,
                    r#"{"event":"c1"}"#,
                    r#"{"event":"c2"}"#
                ]
            );
            assert!(text.ends_with('\n'));
        }
    }

    #[test]
    fn a_failure_at_a_line_end_tears_nothing() {
        let buf = lines(4, "a");
        let first_two = buf
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(1)
            .map(|(i, _)| i + 1)
            .expect("two lines");
        let mut out = Filling {
            data: Vec::new(),
            room: first_two,
        };
        let (mut torn, mut stats) = (false, Stats::default());
        flush(&mut out, &buf, false, &mut torn, &mut stats);
        assert!(!torn);
        assert_eq!(stats.events, 2);
        assert_eq!(stats.drops(DROP_SINK_PARTIAL_LINE), 0);
        assert_eq!(stats.drops(DROP_SINK_ERROR), 2);
    }
}
