//! Generates the Rust view of `include/records.h`: a probe compiled with the host C compiler
//! prints `sizeof`/`offsetof` of every struct and field of the header, and every `PAL_*`
//! constant, as Rust items into `$OUT_DIR/records_c.rs`; `src/records.rs` asserts its mirrors
//! against them at compile time.
//!
//! The probe's list of fields is read from records.h itself, so a field added to the header
//! shows up in the generated file without touching this script. The reader below only accepts
//! the header's own style (fixed-width fields, one per line) and fails loudly on anything else,
//! so no field can be skipped silently.

use std::{
    env,
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

include!("build_support/probe.rs");

fn main() {
    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env_var("OUT_DIR"));
    let include_dir = manifest_dir.join("include");

    println!("cargo:rerun-if-changed={}", include_dir.display());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=build_support/probe.rs");
    println!("cargo:rerun-if-env-changed=HOST_CC");

    generate_layout(&include_dir, &out_dir);
}

fn env_var(name: &str) -> String {
    env::var(name).unwrap_or_else(|_| panic!("cargo did not set {name}"))
}

/// One `struct` of records.h and its fields, in declaration order.
struct CStruct {
    name: String,
    fields: Vec<String>,
}

/// Everything the probe reports: the structs and the `#define PAL_*` names.
struct Header {
    structs: Vec<CStruct>,
    defines: Vec<String>,
}

/// Writes `$OUT_DIR/records_c.rs` by compiling and running a probe against records.h.
fn generate_layout(include_dir: &Path, out_dir: &Path) {
    let header_path = include_dir.join("records.h");
    let text = fs::read_to_string(&header_path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", header_path.display()));
    let header = parse_header(&strip_comments(&text));

    run_probe(
        out_dir,
        "records_c",
        &probe_source(&header),
        Some(include_dir),
        "records.h",
    );
}

/// Removes `/* ... */` comments (records.h uses no `//` comments or comment-like strings).
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((before, after)) = rest.split_once("/*") {
        out.push_str(before);
        let Some((_comment, tail)) = after.split_once("*/") else {
            panic!("records.h: unterminated comment")
        };
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// Reads struct fields and `#define PAL_*` names from comment-free records.h text.
fn parse_header(text: &str) -> Header {
    let mut structs = Vec::new();
    let mut defines = Vec::new();
    let mut current: Option<CStruct> = None;

    for (number, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let fail = || panic!("records.h line {}: cannot read `{line}`", number + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(strukt) = current.as_mut() {
            if line == "};" {
                structs.extend(current.take());
                continue;
            }
            // `__u8 name;` or `__u8 name[N];`, fixed-width types only.
            let Some((ty, rest)) = line.split_once(char::is_whitespace) else {
                fail()
            };
            let Some(decl) = rest.trim().strip_suffix(';') else {
                fail()
            };
            let name = decl.split('[').next().unwrap_or_default().trim();
            let fixed_width = [
                "__u8", "__u16", "__u32", "__u64", "__s8", "__s16", "__s32", "__s64",
            ];
            if !fixed_width.contains(&ty) || !is_identifier(name) {
                fail();
            }
            strukt.fields.push(name.to_owned());
        } else if let Some(rest) = line.strip_prefix("struct ") {
            let Some(name) = rest.strip_suffix('{').map(str::trim) else {
                fail()
            };
            current = Some(CStruct {
                name: name.to_owned(),
                fields: Vec::new(),
            });
        } else if let Some(rest) = line.strip_prefix("#define ") {
            let name = rest.split_whitespace().next().unwrap_or_default();
            if name.starts_with("PAL_") && name != "PALISADE_RECORDS_H" {
                if name.contains('(') {
                    fail();
                }
                defines.push(name.to_owned());
            }
        }
    }
    if current.is_some() {
        panic!("records.h: unterminated struct");
    }
    Header { structs, defines }
}

fn is_identifier(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The Rust type of a `#define`, chosen by the header field the constant goes into.
fn define_type(name: &str) -> &'static str {
    const BY_PREFIX: &[(&str, &str)] = &[
        ("PAL_ABI_VERSION", "u16"),       // pal_record_hdr.abi_version
        ("PAL_RECORD_MAGIC", "u32"),      // pal_record_hdr.magic
        ("PAL_KIND_", "u16"),             // pal_record_hdr.kind
        ("PAL_DIR_", "u8"),               // pal_record_hdr.direction
        ("PAL_FLAG_", "u8"),              // pal_record_hdr.flags
        ("PAL_FLOW_REASON_", "u8"),       // pal_flow_record.end_reason
        ("PAL_FLOW_F_", "u8"),            // pal_flow_value.flags, pal_flow_record.flags
        ("PAL_FLOW_LAYOUT_SINCE", "u16"), // compared with PAL_ABI_VERSION
        ("PAL_FLOW_STAT_", "u32"),        // pal_flow_stats key
        ("PAL_FLOW_STARTS_", "u32"),      // pal_capture_config.flow_starts
        ("PAL_FLOW_SHARDS", "u32"),       // pal_flows max_entries, shard arithmetic
        ("PAL_FLOW_END_BATCH", "u32"),    // pal_flow_end_all return value
        ("PAL_RING_", "u32"),             // pal_stats key arithmetic
        ("PAL_STATS_", "u32"),            // pal_stats key arithmetic
        ("PAL_STAT_", "u32"),             // pal_stats key arithmetic
        ("PAL_CAP_", "u32"),              // pal_record_hdr.payload_len
        ("PAL_FNV64_", "u64"),            // name hash arithmetic
        ("PAL_DNS_WIRE_MAX", "usize"),    // name limits, used on Rust strings
        ("PAL_DNS_NAME_MAX", "usize"),
        ("PAL_DNS_LABEL_MAX", "usize"),
        ("PAL_DNS_SUFFIX_MAX", "usize"),
        ("PAL_DNS_BLOCK", "u8"),          // pal_dns_rule.action
        ("PAL_DNS_ALLOW", "u8"),          // pal_dns_rule.action
        ("PAL_DNS_RULE_", "u8"),          // pal_dns_rule.flags
        ("PAL_DNS_ACTION_", "u32"),       // pal_dns_config.block_action
        ("PAL_DNS_STAT_", "u32"),         // pal_dns_stats key
        ("PAL_IP_MATCH_", "u8"),          // pal_ip_block_record.matched
        ("PAL_IP_HOOK_", "u8"),           // pal_ip_block_record.hook
        ("PAL_IP_STAT_", "u32"),          // pal_ip_stats key
        ("PAL_IP4_FILTER_WORDS", "u32"),  // pal_ip4_filter max_entries
        ("PAL_TLS_MAX_BYTES", "u32"),     // pal_tls_seg.offset bound
        ("PAL_TLS_MAX_NS", "u64"),        // boot-clock ns
        ("PAL_TLS_CHUNKS", "u32"),        // records per skb
        ("PAL_TLS_CONNS", "u32"),         // pal_tls_conns max_entries
        ("PAL_TLS_DIR_", "u8"),           // pal_tls_seg.dir
        ("PAL_TLS_SEG_", "u8"),           // pal_tls_seg.flags
        ("PAL_TLS_ST_", "u8"),            // pal_tls_conn.state
        ("PAL_TLS_STAT_", "u32"),         // pal_tls_stats key
        ("PAL_QUIC_MIN_DATAGRAM", "u32"), // UDP payload length
        ("PAL_FLOW_BLOCK_MAX", "u32"),    // pal_flow_block max_entries
        ("PAL_QUIC_V", "u32"),            // QUIC version field
        ("PAL_GUARD_KEY_", "u8"),         // pal_guard_key.type
        ("PAL_GUARD_STAT_", "u32"),       // pal_guard_stats key
        ("PAL_GUARD_", "u32"),            // pal_guard_config.mode, guard map sizes
        ("PAL_TRACE_HOOK_", "u8"),        // pal_trace_event.hook
        ("PAL_TRACE_BY_", "u8"),          // pal_trace_event.decided_by
        ("PAL_TRACE_F_", "u8"),           // pal_trace_event.flags
        ("PAL_TRACE_STAT_", "u32"),       // pal_trace_stats key
    ];
    BY_PREFIX
        .iter()
        .find(|(prefix, _)| name.starts_with(prefix))
        .map(|&(_, ty)| ty)
        .unwrap_or_else(|| panic!("records.h: no Rust type for {name}: extend define_type()"))
}

/// C source of the probe: one `printf` per generated Rust item.
fn probe_source(header: &Header) -> String {
    let mut c = String::from(
        "#include <stddef.h>\n#include <stdio.h>\n#include \"records.h\"\n\nint main(void)\n{\n",
    );
    let line = |c: &mut String, text: String| {
        let _ = writeln!(c, "\t{text}");
    };
    line(
        &mut c,
        r#"printf("// Generated by build.rs from records.h. Do not edit.\n\n");"#.into(),
    );
    for define in &header.defines {
        let ty = define_type(define);
        line(
            &mut c,
            format!(
                r#"printf("pub const {define}: {ty} = %llu;\n", (unsigned long long)({define}));"#
            ),
        );
    }
    for strukt in &header.structs {
        let upper = strukt.name.to_uppercase();
        let name = &strukt.name;
        line(&mut c, r#"printf("\n");"#.into());
        line(
            &mut c,
            format!(r#"printf("pub const {upper}_SIZE: usize = %zu;\n", sizeof(struct {name}));"#),
        );
        for field in &strukt.fields {
            let field_upper = field.trim_start_matches('_').to_uppercase();
            line(
                &mut c,
                format!(
                    r#"printf("pub const {upper}_OFF_{field_upper}: usize = %zu;\n", offsetof(struct {name}, {field}));"#
                ),
            );
        }
    }
    c.push_str("\treturn 0;\n}\n");
    c
}
