//! Palisade's eBPF programs and the privileged half of the kernel interface: the supervisor's.
//!
//! Everything here loads, creates, writes or runs kernel objects; only the supervisor (and the
//! benches and root-only tests) depend on this crate. Workers must not: they see the kernel
//! through `palisade-abi` (records, names) and `palisade-worker-runtime`'s ring-buffer reader,
//! and `tests/tests/structure.rs` fails if a worker's dependency tree reaches this crate or aya.
//!
//! - [`PALISADE_BPF`]: the compiled object (`bpf/palisade.bpf.c`, built by `build.rs` with
//!   clang-19), ready for `aya::EbpfLoader::load`. Its program and map names are in
//!   `palisade_abi::names`.
//! - [`dns_policy`]: building rule-set maps and swapping them into `pal_dns_policy`, learned
//!   blocks, the block action.
//! - [`ip_policy`]: IPv4/IPv6 prefixes, building LPM tries and swapping them into
//!   `pal_ip4_policy` / `pal_ip6_policy`, single-prefix updates, the alert rate limit.
//! - [`links`]: the interface of an XDP/TCX link, detaching one synchronously.
//! - [`maps`]: a descriptor of any of the object's maps (`map_fd`), `map_facts`, `read_hits`.
//! - [`flow_table`]: the flow table's configuration, seeding and dump.
//! - [`trace`]: the packet trace's filter (`pal_trace_config`) and the reader of `rb_trace`.
//! - [`prog_test_run`]: `BPF_PROG_TEST_RUN`, for benches and tests.
//!
//! Every raw bpf(2) call goes through `sys`, whose errors name the command.

pub mod capture;
pub mod dns_policy;
pub mod flow_block;
pub mod flow_table;
pub mod guard;
pub mod ip_policy;
pub mod links;
pub mod maps;
mod sys;
pub mod trace;

pub use sys::BpfCallError;
/// The in-memory kernel behind the bpf(2) seam, for unit tests without root (feature
/// `fake-kernel`; only test builds enable it).
#[cfg(feature = "fake-kernel")]
pub use sys::fake;

/// The bpf(2) ABI facts of `<linux/bpf.h>` that `sys` uses, printed by the host probe of
/// `build.rs`.
mod c {
    include!(concat!(env!("OUT_DIR"), "/kernel_c.rs"));
}

/// The eBPF object file (ELF, BTF included), 8-byte aligned as aya requires.
pub const PALISADE_BPF: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/palisade.bpf.o"));

/// Runs a loaded program `repeat` times on the frame `data` (`BPF_PROG_TEST_RUN`, no
/// device involved); returns its return value and the kernel's mean ns per run. For
/// measuring the programs' own per-packet cost (`palisade-bench prog-cost`).
pub fn prog_test_run(
    prog: std::os::fd::BorrowedFd<'_>,
    data: &[u8],
    repeat: u32,
) -> std::io::Result<(u32, u32)> {
    sys::prog_test_run(prog, data, repeat, None).map(|(ret, ns, _)| (ret, ns))
}

/// [`prog_test_run`], also returning the frame as the program left it (rewrites and trims
/// included; redirects are not carried out), up to `data.len() + 512` bytes.
pub fn prog_test_run_frame(
    prog: std::os::fd::BorrowedFd<'_>,
    data: &[u8],
    repeat: u32,
) -> std::io::Result<(u32, Vec<u8>, u32)> {
    let mut out = vec![0_u8; data.len() + 512];
    let (ret, ns, len) = sys::prog_test_run(prog, data, repeat, Some(&mut out))?;
    out.truncate(len);
    Ok((ret, out, ns))
}
