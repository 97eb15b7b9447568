//! Every event the integration and conformance tests make is checked against Suricata's
//! own EVE JSON schema (`../shared/schemas/suricata-eve-schema.json`) by
//! `tests/schema/validate_eve.py` (Debian's python3-jsonschema): a [`crate::Daemon`]
//! validates all it wrote when it stops or is dropped, so no future field can break
//! EVE compatibility without a test failing.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// Suricata's schema, beside the repository.
pub fn schema_path() -> PathBuf {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/schemas/suricata-eve-schema.json"
    ));
    assert!(
        p.is_file(),
        "Suricata's EVE schema not found at {} (expected the `shared/` checkout beside the \
         repository)",
        p.display()
    );
    p
}

/// The validator script.
fn script() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/validate_eve.py"
    ))
}

/// Validates JSON lines (lines that are not JSON objects are skipped: a daemon's stdout
/// carries nothing else, and tests that feed garbage opt out). `Err` holds the
/// validator's report (at most 40 lines of it).
pub fn validate_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Result<usize, String> {
    let body: Vec<&str> = lines
        .into_iter()
        .filter(|l| {
            l.trim_start().starts_with('{') && serde_json::from_str::<serde_json::Value>(l).is_ok()
        })
        .collect();
    if body.is_empty() {
        return Ok(0);
    }
    let mut child = Command::new("/usr/bin/python3")
        .arg(script())
        .arg(schema_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run /usr/bin/python3 (install python3-jsonschema: scripts/deps)");
    let mut stdin = child.stdin.take().expect("stdin");
    let text = body.join("\n");
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(text.as_bytes());
    });
    let out = child.wait_with_output().expect("validator");
    let _ = writer.join();
    if out.status.success() {
        return Ok(body.len());
    }
    let report = String::from_utf8_lossy(&out.stdout);
    let shown: Vec<&str> = report.lines().take(40).collect();
    Err(format!(
        "{} of these events fail Suricata's EVE schema (exit {}):\n{}\n{}",
        report.lines().count(),
        out.status,
        shown.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// Validates every `*.json` file in `dir` (event logs) and `lines`.
pub fn validate_output(dir: &Path, lines: &[String]) -> Result<usize, String> {
    let mut all: Vec<String> = lines.to_vec();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.filter_map(Result::ok) {
            if e.path().extension().is_some_and(|x| x == "json")
                && let Ok(text) = std::fs::read_to_string(e.path())
            {
                all.extend(text.lines().map(str::to_owned));
            }
        }
    }
    validate_lines(all.iter().map(String::as_str))
}
