//! Builds Palisade's eBPF object and the C-side layout facts of records.h.
//!
//! 1. `bpf/palisade.bpf.c` -> `$OUT_DIR/palisade.bpf.o` with clang-19 (embedded by `src/lib.rs`).
//! 2. A probe compiled with the host C compiler prints `sizeof`/`offsetof` of every struct and
//!    field of `bpf/include/records.h`, and every `PAL_*` constant, as Rust items into
//!    `$OUT_DIR/records_c.rs`; `src/records.rs` asserts its mirrors against them at compile time.
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
    process::Command,
};

/// The eBPF compiler. TOOLCHAIN.md: Debian's clang-19.
const CLANG: &str = "clang-19";
/// Install hint used by every toolchain error.
const INSTALL_HINT: &str = "install it with `apt-get install clang-19 llvm-19 libbpf-dev`";
/// libbpf's helper header, the canary for the `libbpf-dev` package.
const LIBBPF_HELPERS: &str = "/usr/include/bpf/bpf_helpers.h";

fn main() {
    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env_var("OUT_DIR"));
    let bpf_dir = manifest_dir.join("bpf");
    let include_dir = bpf_dir.join("include");

    println!("cargo:rerun-if-changed={}", bpf_dir.display());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=HOST_CC");

    compile_bpf(&bpf_dir, &include_dir, &out_dir);
    generate_layout(&include_dir, &out_dir);
}

fn env_var(name: &str) -> String {
    env::var(name).unwrap_or_else(|_| panic!("cargo did not set {name}"))
}

/// Compiles the eBPF object with clang-19 into `$OUT_DIR/palisade.bpf.o`.
fn compile_bpf(bpf_dir: &Path, include_dir: &Path, out_dir: &Path) {
    match Command::new(CLANG).arg("--version").output() {
        Ok(output) if output.status.success() => {}
        Ok(_) | Err(_) => panic!("{CLANG} not found: {INSTALL_HINT}"),
    }
    if !Path::new(LIBBPF_HELPERS).exists() {
        panic!("{LIBBPF_HELPERS} not found: install `libbpf-dev` ({INSTALL_HINT})");
    }

    // The UAPI headers include <asm/types.h>, which Debian keeps in the multiarch directory;
    // clang's BPF target does not search it by itself.
    let arch = env_var("CARGO_CFG_TARGET_ARCH");
    let asm_dir = PathBuf::from("/usr/include").join(multiarch_dir(&arch));
    if !asm_dir.join("asm/types.h").exists() {
        panic!(
            "{}/asm/types.h not found: install `linux-libc-dev` ({INSTALL_HINT})",
            asm_dir.display()
        );
    }
    // `-target bpf` means "the build machine's byte order"; name the order of the machine the
    // program will run on instead, so a cross build gets the right one (same thing natively).
    let bpf_target = match env_var("CARGO_CFG_TARGET_ENDIAN").as_str() {
        "big" => "bpfeb",
        _ => "bpfel",
    };

    let source = bpf_dir.join("palisade.bpf.c");
    let object = out_dir.join("palisade.bpf.o");
    let status = Command::new(CLANG)
        .args([
            "-g", "-O2", "-target", bpf_target, "-mcpu=v3", "-Wall", "-Werror",
        ])
        .arg("-I")
        .arg(include_dir)
        .arg("-I")
        .arg(&asm_dir)
        .arg("-c")
        .arg(&source)
        .arg("-o")
        .arg(&object)
        .status()
        .unwrap_or_else(|error| panic!("running {CLANG}: {error}"));
    if !status.success() {
        panic!("{CLANG} failed to compile {} ({status})", source.display());
    }
}

/// Debian's multiarch include directory for a Rust target architecture.
fn multiarch_dir(arch: &str) -> &'static str {
    match arch {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        "arm" => "arm-linux-gnueabihf",
        "x86" => "i386-linux-gnu",
        "riscv64" => "riscv64-linux-gnu",
        "powerpc64" => "powerpc64le-linux-gnu",
        "s390x" => "s390x-linux-gnu",
        "loongarch64" => "loongarch64-linux-gnu",
        other => panic!("no known Debian multiarch include directory for target arch {other}"),
    }
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

    let probe_c = out_dir.join("records_probe.c");
    let probe_bin = out_dir.join("records_probe");
    fs::write(&probe_c, probe_source(&header))
        .unwrap_or_else(|error| panic!("writing {}: {error}", probe_c.display()));

    let cc = env::var("HOST_CC").unwrap_or_else(|_| "cc".to_owned());
    let status = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Werror", "-I"])
        .arg(include_dir)
        .arg(&probe_c)
        .arg("-o")
        .arg(&probe_bin)
        .status()
        .unwrap_or_else(|error| panic!("running host C compiler `{cc}`: {error}"));
    if !status.success() {
        panic!("`{cc}` failed to compile the records.h probe ({status})");
    }
    let output = Command::new(&probe_bin)
        .output()
        .unwrap_or_else(|error| panic!("running {}: {error}", probe_bin.display()));
    if !output.status.success() {
        panic!("{} failed ({})", probe_bin.display(), output.status);
    }
    let generated = out_dir.join("records_c.rs");
    fs::write(&generated, &output.stdout)
        .unwrap_or_else(|error| panic!("writing {}: {error}", generated.display()));
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
        ("PAL_ABI_VERSION", "u16"),    // pal_record_hdr.abi_version
        ("PAL_RECORD_MAGIC", "u32"),   // pal_record_hdr.magic
        ("PAL_KIND_", "u16"),          // pal_record_hdr.kind
        ("PAL_DIR_", "u8"),            // pal_record_hdr.direction
        ("PAL_FLAG_", "u8"),           // pal_record_hdr.flags
        ("PAL_FLOW_REASON_", "u8"),    // pal_flow_record.end_reason
        ("PAL_FLOW_F_", "u8"),         // pal_flow_value.flags, pal_flow_record.flags
        ("PAL_FLOW_STAT_", "u32"),     // pal_flow_stats key
        ("PAL_RING_", "u32"),          // pal_stats key arithmetic
        ("PAL_STATS_", "u32"),         // pal_stats key arithmetic
        ("PAL_STAT_", "u32"),          // pal_stats key arithmetic
        ("PAL_CAP_", "u32"),           // pal_record_hdr.payload_len
        ("PAL_FNV64_", "u64"),         // name hash arithmetic
        ("PAL_DNS_WIRE_MAX", "usize"), // name limits, used on Rust strings
        ("PAL_DNS_NAME_MAX", "usize"),
        ("PAL_DNS_LABEL_MAX", "usize"),
        ("PAL_DNS_SUFFIX_MAX", "usize"),
        ("PAL_DNS_BLOCK", "u8"),         // pal_dns_rule.action
        ("PAL_DNS_ALLOW", "u8"),         // pal_dns_rule.action
        ("PAL_DNS_RULE_", "u8"),         // pal_dns_rule.flags
        ("PAL_DNS_ACTION_", "u32"),      // pal_dns_config.block_action
        ("PAL_DNS_STAT_", "u32"),        // pal_dns_stats key
        ("PAL_IP_MATCH_", "u8"),         // pal_ip_block_record.matched
        ("PAL_IP_HOOK_", "u8"),          // pal_ip_block_record.hook
        ("PAL_IP_STAT_", "u32"),         // pal_ip_stats key
        ("PAL_IP4_FILTER_WORDS", "u32"), // pal_ip4_filter max_entries
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
        "#include <stddef.h>\n#include <stdio.h>\n#include <linux/bpf.h>\n#include \"records.h\"\n\nint main(void)\n{\n",
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
    kernel_facts(&mut c);
    c.push_str("\treturn 0;\n}\n");
    c
}

/// The bpf(2) ABI facts `src/sys.rs` relies on, from the UAPI header `<linux/bpf.h>`: command
/// and flag numbers, and the offsets of the `union bpf_attr` / `struct bpf_map_info` fields it
/// fills or reads. `src/sys.rs` asserts its `#[repr(C)]` structs against them at compile time.
fn kernel_facts(c: &mut String) {
    const CONSTANTS: &[(&str, &str)] = &[
        ("BPF_MAP_CREATE", "u32"),
        ("BPF_MAP_LOOKUP_ELEM", "u32"),
        ("BPF_MAP_UPDATE_ELEM", "u32"),
        ("BPF_MAP_DELETE_ELEM", "u32"),
        ("BPF_MAP_GET_NEXT_KEY", "u32"),
        ("BPF_MAP_GET_FD_BY_ID", "u32"),
        ("BPF_OBJ_GET", "u32"),
        ("BPF_OBJ_GET_INFO_BY_FD", "u32"),
        ("BPF_MAP_LOOKUP_BATCH", "u32"),
        ("BPF_MAP_UPDATE_BATCH", "u32"),
        ("BPF_PROG_TEST_RUN", "u32"),
        ("BPF_MAP_TYPE_HASH", "u32"),
        ("BPF_MAP_TYPE_ARRAY_OF_MAPS", "u32"),
        ("BPF_MAP_TYPE_LPM_TRIE", "u32"),
        ("BPF_F_NO_PREALLOC", "u32"),
        ("BPF_ANY", "u64"),
        ("BPF_NOEXIST", "u64"),
        ("BPF_OBJ_NAME_LEN", "usize"),
    ];
    /// (Rust name, C type, C member designator).
    const OFFSETS: &[(&str, &str, &str)] = &[
        ("ATTR_MAP_TYPE", "union bpf_attr", "map_type"),
        ("ATTR_KEY_SIZE", "union bpf_attr", "key_size"),
        ("ATTR_VALUE_SIZE", "union bpf_attr", "value_size"),
        ("ATTR_MAX_ENTRIES", "union bpf_attr", "max_entries"),
        ("ATTR_MAP_FLAGS", "union bpf_attr", "map_flags"),
        ("ATTR_INNER_MAP_FD", "union bpf_attr", "inner_map_fd"),
        ("ATTR_NUMA_NODE", "union bpf_attr", "numa_node"),
        ("ATTR_MAP_NAME", "union bpf_attr", "map_name"),
        ("ATTR_ELEM_MAP_FD", "union bpf_attr", "map_fd"),
        ("ATTR_ELEM_KEY", "union bpf_attr", "key"),
        ("ATTR_ELEM_VALUE", "union bpf_attr", "value"),
        ("ATTR_ELEM_FLAGS", "union bpf_attr", "flags"),
        ("ATTR_BATCH_IN_BATCH", "union bpf_attr", "batch.in_batch"),
        ("ATTR_BATCH_OUT_BATCH", "union bpf_attr", "batch.out_batch"),
        ("ATTR_BATCH_KEYS", "union bpf_attr", "batch.keys"),
        ("ATTR_BATCH_VALUES", "union bpf_attr", "batch.values"),
        ("ATTR_BATCH_COUNT", "union bpf_attr", "batch.count"),
        ("ATTR_BATCH_MAP_FD", "union bpf_attr", "batch.map_fd"),
        (
            "ATTR_BATCH_ELEM_FLAGS",
            "union bpf_attr",
            "batch.elem_flags",
        ),
        ("ATTR_BATCH_FLAGS", "union bpf_attr", "batch.flags"),
        ("ATTR_INFO_BPF_FD", "union bpf_attr", "info.bpf_fd"),
        ("ATTR_INFO_INFO_LEN", "union bpf_attr", "info.info_len"),
        ("ATTR_INFO_INFO", "union bpf_attr", "info.info"),
        ("ATTR_TEST_PROG_FD", "union bpf_attr", "test.prog_fd"),
        ("ATTR_TEST_RETVAL", "union bpf_attr", "test.retval"),
        (
            "ATTR_TEST_DATA_SIZE_IN",
            "union bpf_attr",
            "test.data_size_in",
        ),
        ("ATTR_TEST_DATA_IN", "union bpf_attr", "test.data_in"),
        (
            "ATTR_TEST_DATA_SIZE_OUT",
            "union bpf_attr",
            "test.data_size_out",
        ),
        ("ATTR_TEST_DATA_OUT", "union bpf_attr", "test.data_out"),
        ("ATTR_TEST_REPEAT", "union bpf_attr", "test.repeat"),
        ("ATTR_TEST_DURATION", "union bpf_attr", "test.duration"),
        ("ATTR_MAP_ID", "union bpf_attr", "map_id"),
        ("ATTR_OPEN_FLAGS", "union bpf_attr", "open_flags"),
        (
            "LINK_INFO_XDP_IFINDEX",
            "struct bpf_link_info",
            "xdp.ifindex",
        ),
        ("ATTR_PATHNAME", "union bpf_attr", "pathname"),
        ("ATTR_FILE_FLAGS", "union bpf_attr", "file_flags"),
        ("MAP_INFO_TYPE", "struct bpf_map_info", "type"),
        ("MAP_INFO_ID", "struct bpf_map_info", "id"),
        ("MAP_INFO_KEY_SIZE", "struct bpf_map_info", "key_size"),
        ("MAP_INFO_VALUE_SIZE", "struct bpf_map_info", "value_size"),
        ("MAP_INFO_MAX_ENTRIES", "struct bpf_map_info", "max_entries"),
        ("MAP_INFO_MAP_FLAGS", "struct bpf_map_info", "map_flags"),
        ("MAP_INFO_NAME", "struct bpf_map_info", "name"),
    ];
    let _ = writeln!(c, "\tprintf(\"\\n// <linux/bpf.h>\\n\");");
    for (name, ty) in CONSTANTS {
        let _ = writeln!(
            c,
            "\tprintf(\"pub const KERNEL_{name}: {ty} = %llu;\\n\", (unsigned long long)({name}));"
        );
    }
    for (name, ty, member) in OFFSETS {
        let _ = writeln!(
            c,
            "\tprintf(\"pub const KERNEL_{name}: usize = %zu;\\n\", offsetof({ty}, {member}));"
        );
    }
}
