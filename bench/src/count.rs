//! Counts JSON lines on stdin by `event_type`: stands in for the log
//! shipper reading `palisade run --foreground`'s stdout. It must be much
//! faster than the daemon writes (a few hundred MB/s): lines are found with
//! glibc's memchr and only the first bytes of each line are searched.

use std::{collections::BTreeMap, io::Write, path::PathBuf};

use serde::Serialize;

use crate::{Result, os_err};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the counts (JSON) at end of input.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, Default, Serialize)]
struct Counts {
    lines: u64,
    bytes: u64,
    /// Lines without an event_type in their first bytes.
    other: u64,
    by_type: BTreeMap<String, u64>,
    /// `dns` events by their `dns.type` (query, answer, unanswered, ...).
    dns_by_type: BTreeMap<String, u64>,
}

const DNS_TYPE: &[u8] = b"\"dns\":{\"type\":\"";

fn memmem(hay: &[u8], needle: &[u8]) -> Option<usize> {
    // SAFETY: both slices are live for the call; glibc reads within their lengths.
    let p = unsafe {
        libc::memmem(
            hay.as_ptr().cast(),
            hay.len(),
            needle.as_ptr().cast(),
            needle.len(),
        )
    };
    if p.is_null() {
        None
    } else {
        Some(p as usize - hay.as_ptr() as usize)
    }
}

fn bump(map: &mut BTreeMap<String, u64>, key: &[u8]) {
    let key = String::from_utf8_lossy(key);
    match map.get_mut(key.as_ref()) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.into_owned(), 1);
        }
    }
}

/// The string value that starts at `rest` (up to its closing quote, at most 32 bytes).
fn string_at(rest: &[u8]) -> Option<&[u8]> {
    let end = memchr(rest.get(..32.min(rest.len()))?, b'"')?;
    rest.get(..end)
}

const KEY: &[u8] = b"\"event_type\":\"";
/// EVE puts event_type after timestamp and in_iface: well within this.
const SEARCH: usize = 160;

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn memchr(hay: &[u8], byte: u8) -> Option<usize> {
    // SAFETY: reads at most hay.len() bytes of a live slice.
    let p = unsafe { libc::memchr(hay.as_ptr().cast(), i32::from(byte), hay.len()) };
    if p.is_null() {
        None
    } else {
        Some(p as usize - hay.as_ptr() as usize)
    }
}

impl Counts {
    fn line(&mut self, line: &[u8]) {
        self.lines += 1;
        let head = line.get(..SEARCH.min(line.len())).unwrap_or(line);
        let ty = find(head, KEY).and_then(|i| string_at(line.get(i + KEY.len()..)?));
        match ty {
            Some(t) => {
                bump(&mut self.by_type, t);
                if t == b"dns" {
                    let sub = memmem(line, DNS_TYPE)
                        .and_then(|i| string_at(line.get(i + DNS_TYPE.len()..)?));
                    bump(&mut self.dns_by_type, sub.unwrap_or(b"?"));
                }
            }
            None => self.other += 1,
        }
    }
}

pub fn main(args: &Args) -> Result<()> {
    let mut counts = Counts::default();
    let mut buf = vec![0u8; 4 << 20];
    let mut filled = 0usize;
    loop {
        let spare = buf.get_mut(filled..).unwrap_or_default();
        if spare.is_empty() {
            // A line longer than the buffer: count it as other, drop it.
            counts.other += 1;
            filled = 0;
            continue;
        }
        // SAFETY: reading into the spare part of our buffer.
        let n = unsafe { libc::read(0, spare.as_mut_ptr().cast(), spare.len()) };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(os_err("read stdin"));
        }
        if n == 0 {
            break;
        }
        let n = n as usize;
        counts.bytes += n as u64;
        filled += n;
        let mut start = 0usize;
        while let Some(rel) = buf.get(start..filled).and_then(|s| memchr(s, b'\n')) {
            if let Some(line) = buf.get(start..start + rel) {
                counts.line(line);
            }
            start += rel + 1;
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
    }
    if filled > 0 {
        counts.other += 1;
    }
    let text = serde_json::to_string(&counts).map_err(|e| e.to_string())?;
    let mut f =
        std::fs::File::create(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    writeln!(f, "{text}").map_err(|e| format!("{}: {e}", args.out.display()))?;
    Ok(())
}
