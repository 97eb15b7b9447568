// Shared by the build scripts of `palisade-abi` and `palisade-ebpf` (`include!`d: build
// scripts cannot depend on a crate of the workspace). Compiles a C probe with the host C
// compiler (`HOST_CC`, default `cc`) and writes what it prints, Rust items, to
// `$OUT_DIR/<name>.rs`.

/// Compiles `source` (C, with `include_dir` on the include path if given) to
/// `$OUT_DIR/<name>`, runs it, and writes its standard output to `$OUT_DIR/<name>.rs`.
/// `what` names the probe in errors.
fn run_probe(
    out_dir: &std::path::Path,
    name: &str,
    source: &str,
    include_dir: Option<&std::path::Path>,
    what: &str,
) {
    use std::process::Command;
    let probe_c = out_dir.join(format!("{name}.c"));
    let probe_bin = out_dir.join(name);
    std::fs::write(&probe_c, source)
        .unwrap_or_else(|error| panic!("writing {}: {error}", probe_c.display()));
    let cc = std::env::var("HOST_CC").unwrap_or_else(|_| "cc".to_owned());
    let mut cmd = Command::new(&cc);
    cmd.args(["-std=c11", "-Wall", "-Werror"]);
    if let Some(dir) = include_dir {
        cmd.arg("-I").arg(dir);
    }
    let status = cmd
        .arg(&probe_c)
        .arg("-o")
        .arg(&probe_bin)
        .status()
        .unwrap_or_else(|error| panic!("running host C compiler `{cc}`: {error}"));
    if !status.success() {
        panic!("`{cc}` failed to compile the {what} probe ({status})");
    }
    let output = Command::new(&probe_bin)
        .output()
        .unwrap_or_else(|error| panic!("running {}: {error}", probe_bin.display()));
    if !output.status.success() {
        panic!("{} failed ({})", probe_bin.display(), output.status);
    }
    let generated = out_dir.join(format!("{name}.rs"));
    std::fs::write(&generated, &output.stdout)
        .unwrap_or_else(|error| panic!("writing {}: {error}", generated.display()));
}
