//! Writes a DNS block list of generated names, one per line:
//! `<word><i>.<word>-<hex>.example` (the shape `bench/dns-policy-load` uses),
//! deterministic for a given count and seed.
//!
//! Every name ends in `.example`, so none of them is the generator's query
//! name (`q<...>.bench.test`) or one of its parents (`bench.test`, `test`):
//! a query passes after the kernel looked up every suffix of its name.
//! `--suffix-rule NAME` appends `.NAME` (a suffix rule: NAME and every
//! subdomain) to make every query blocked instead.

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::PathBuf,
};

use crate::Result;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of generated names.
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// Seed of the generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also add a suffix rule for this name (e.g. `bench.test`), as the last line.
    #[arg(long)]
    suffix_rule: Option<String>,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
}

const WORDS: [&str; 10] = [
    "ads", "track", "cdn", "metrics", "pixel", "beacon", "tag", "stat", "log", "img",
];

/// splitmix64: small, fast and good enough to vary the names.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn word(r: u64) -> &'static str {
    WORDS
        .get((r % WORDS.len() as u64) as usize)
        .copied()
        .unwrap_or("ads")
}

/// The `i`-th name (state advanced by three draws).
fn name(i: u64, state: &mut u64) -> String {
    let a = word(next(state));
    let b = word(next(state));
    let hex = next(state) & 0xff_ffff;
    format!("{a}{i}.{b}-{hex:x}.example")
}

pub fn main(args: &Args) -> Result<()> {
    let file = File::create(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut state = args.seed;
    let werr = |e: std::io::Error| format!("{}: {e}", args.out.display());
    for i in 0..args.count {
        writeln!(w, "{}", name(i, &mut state)).map_err(werr)?;
    }
    if let Some(s) = &args.suffix_rule {
        writeln!(w, ".{}", s.trim_start_matches('.')).map_err(werr)?;
    }
    w.flush().map_err(werr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_hosts_outside_bench_test() {
        let mut state = 1;
        let names: Vec<String> = (0..1000).map(|i| name(i, &mut state)).collect();
        let set: std::collections::HashSet<&String> = names.iter().collect();
        assert_eq!(set.len(), names.len());
        for n in &names {
            assert!(n.ends_with(".example"), "{n}");
            assert!(
                n.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'.'
                    || b == b'-'),
                "{n}"
            );
        }
    }
}
