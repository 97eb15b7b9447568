//! The privilege boundary in the build graph: no worker can link code that loads a program,
//! creates, writes or pins a map (invariant 1 of ARCHITECTURE.md). Workers see the kernel
//! through `palisade-abi` (records, names; no system calls) and `palisade-worker-runtime`'s
//! ring-buffer reader; `palisade-ebpf` (the supervisor's bpf(2) calls) and aya must not be in
//! their dependency tree. Runs `cargo tree`, no root needed.

use std::process::Command;

/// Crates that can write a BPF map or load a program.
const PRIVILEGED: &[&str] = &["palisade-ebpf", "aya", "aya-obj"];

const WORKERS: &[&str] = &[
    "palisade-worker-runtime",
    "palisade-worker-dns",
    "palisade-worker-dhcp",
    "palisade-worker-tls",
    "palisade-worker-flow",
    // `palisade replay`: the workers' parsers, run in an ordinary process.
    "palisade-replay",
    // Frames to records (replay, and the workers' AF_PACKET input): a packet parser.
    "palisade-record-builder",
];

/// Names of the crates `package` links (normal dependencies, all features), one per line.
fn dependency_names(package: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let output = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "--locked",
            "--manifest-path",
            manifest,
            "--package",
            package,
            "--edges",
            "normal,build",
            "--all-features",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .expect("running cargo tree");
    assert!(
        output.status.success(),
        "cargo tree -p {package} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn workers_cannot_link_privileged_bpf_code() {
    for worker in WORKERS {
        let names = dependency_names(worker);
        assert!(
            names.iter().any(|n| n == "palisade-abi"),
            "{worker}: expected palisade-abi in its tree, got {names:?}"
        );
        for forbidden in PRIVILEGED {
            assert!(
                !names.iter().any(|n| n == forbidden),
                "{worker} depends on {forbidden}, which can write BPF maps: {names:?}"
            );
        }
    }
}

#[test]
fn supervisor_links_no_packet_parser() {
    // `palisade replay` runs the palisade-replay binary instead of linking the parsers.
    let names = dependency_names("palisade");
    for parser in WORKERS.iter().skip(1) {
        assert!(
            !names.iter().any(|n| n == parser),
            "palisade links {parser}: the root supervisor must not hold packet parsers"
        );
    }
}

#[test]
fn supervisor_links_the_privileged_crate() {
    // The check above is only meaningful if cargo tree does report these crates where they are.
    let names = dependency_names("palisade");
    for expected in ["palisade-ebpf", "aya", "palisade-abi"] {
        assert!(
            names.iter().any(|n| n == expected),
            "palisade: expected {expected} in {names:?}"
        );
    }
}

#[test]
fn abi_crate_makes_no_system_calls() {
    // palisade-abi is plain data and pure functions: no libc, nix or aya underneath it.
    let names = dependency_names("palisade-abi");
    for forbidden in ["libc", "nix", "aya", "palisade-ebpf"] {
        assert!(
            !names.iter().any(|n| n == forbidden),
            "palisade-abi depends on {forbidden}: {names:?}"
        );
    }
}
