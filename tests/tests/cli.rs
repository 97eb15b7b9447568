//! The `palisade` command line: checks that need no daemon, generated completions and man
//! pages, and the client behaviour against a real daemon (`--json`, `--config`, exit
//! statuses, refused callers), and what a failed `palisade run` leaves behind.

#![expect(
    clippy::indexing_slicing,
    reason = "JSON values are indexed; a missing key is null and fails the assertion"
)]

use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use palisade_tests::{Daemon, Lab, base_config, bin, run_in_sensor};
use serde_json::Value;

#[test]
fn check_config_names_the_line_and_exits_non_zero() {
    let dir = std::env::temp_dir().join(format!("palisade-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "interfaces = [\"eth0\"]\n\n[workers.dns]\nheartbeat_ms = 0\n",
    )
    .expect("write");
    let out = Command::new(bin("palisade"))
        .arg("check-config")
        .arg(&bad)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:4: workers.dns.heartbeat_ms: 0 is outside 10..=60000"),
        "{err}"
    );

    let typo = dir.join("typo.toml");
    std::fs::write(&typo, "[paths]\npin_rot = \"/x\"\n").expect("write");
    let out = Command::new(bin("palisade"))
        .arg("check-config")
        .arg(&typo)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2") && err.contains("pin_rot"), "{err}");

    let good = dir.join("good.toml");
    std::fs::write(&good, "interfaces = [\"eth0\"]\n").expect("write");
    let out = Command::new(bin("palisade"))
        .arg("check-config")
        .arg(&good)
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/palisade.toml");
    let out = Command::new(bin("palisade"))
        .arg("check-config")
        .arg(shipped)
        .output()
        .expect("run");
    assert!(out.status.success(), "shipped config is valid: {out:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn version_and_help() {
    let out = Command::new(bin("palisade"))
        .args(["version", "--control-socket", "/nonexistent/x.sock"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("protocol {}", palisade_ipc::PROTOCOL_VERSION))
            && text.contains(&format!("abi {}", palisade_abi::ABI_VERSION))
            && text.contains("daemon   not running"),
        "{text}"
    );
    let help = Command::new(bin("palisade"))
        .arg("--help")
        .output()
        .expect("run");
    let help = String::from_utf8_lossy(&help.stdout);
    for cmd in [
        "run",
        "check-config",
        "status",
        "restart",
        "version",
        "cleanup",
    ] {
        assert!(help.contains(cmd), "--help lacks {cmd}");
    }
}

#[test]
fn a_worker_started_by_hand_refuses_to_run_privileged() {
    // As root (the test runs as root): the worker must refuse before anything else.
    let out = Command::new(bin("palisade-worker-dns"))
        .output()
        .expect("run worker");
    assert_eq!(out.status.code(), Some(77), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refusing to run"),
        "{out:?}"
    );
    // Unprivileged but not started by the supervisor: FD 3 missing.
    let out = Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--no-new-privs",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(bin("palisade-worker-dns"))
        .output()
        .expect("setpriv");
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("started by `palisade run`"),
        "{out:?}"
    );
}

/// `palisade ARGS`, as root.
fn palisade(args: &[&str]) -> Output {
    Command::new(bin("palisade"))
        .args(args)
        .output()
        .expect("run palisade")
}

/// stdout parsed as JSON, or a panic showing the output.
fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {out:?}\nstdout: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The error a `--json` command reported: stdout empty, one JSON line on stderr.
fn json_error(out: &Output) -> Value {
    assert!(out.stdout.is_empty(), "{out:?}");
    let e: Value = serde_json::from_slice(&out.stderr)
        .unwrap_or_else(|e| panic!("stderr not JSON ({e}): {out:?}"));
    e["error"].clone()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn completions_are_generated_and_load_in_their_shells() {
    let dir = tempfile_dir("completions");
    let script = |shell: &str| {
        let out = palisade(&["generate", "completions", shell]);
        assert!(out.status.success(), "{out:?}");
        let path = dir.join(format!("palisade.{shell}"));
        fs::write(&path, &out.stdout).expect("write");
        path
    };
    // bash: valid syntax, and sourced it completes subcommands and their arguments.
    let bash = script("bash");
    let out = Command::new("bash")
        .arg("-n")
        .arg(&bash)
        .output()
        .expect("bash");
    assert!(out.status.success(), "bash -n: {}", stderr(&out));
    let complete = |words: &str| {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); _palisade palisade \"${{COMP_WORDS[-1]}}\" \"${{COMP_WORDS[-2]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                bash.display()
            ))
            .output()
            .expect("bash");
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let words = complete("palisade re");
    for want in ["reload", "reopen-logs", "restart"] {
        assert!(words.lines().any(|l| l == want), "{want} not in {words:?}");
    }
    let words = complete("palisade restart ''");
    for want in ["dhcp", "dns", "tls", "flow", "all"] {
        assert!(words.lines().any(|l| l == want), "{want} not in {words:?}");
    }
    assert!(complete("palisade status --j").contains("--json"));
    // zsh and fish (scripts/deps installs both): syntax, and fish completes for real.
    let zsh = script("zsh");
    assert!(
        fs::read_to_string(&zsh)
            .expect("read")
            .starts_with("#compdef palisade")
    );
    if have("zsh") {
        let out = Command::new("zsh")
            .arg("-n")
            .arg(&zsh)
            .output()
            .expect("zsh");
        assert!(out.status.success(), "zsh -n: {}", stderr(&out));
    } else {
        eprintln!("zsh not installed: zsh script not syntax-checked (scripts/deps installs it)");
    }
    let fish = script("fish");
    if have("fish") {
        let out = Command::new("fish")
            .arg("--no-execute")
            .arg(&fish)
            .output()
            .expect("fish");
        assert!(out.status.success(), "fish --no-execute: {}", stderr(&out));
        let out = Command::new("fish")
            .arg("-c")
            .arg(format!(
                "source {}; complete -C 'palisade check-c'",
                fish.display()
            ))
            .output()
            .expect("fish");
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with("check-config\t"),
            "{out:?}"
        );
    } else {
        eprintln!("fish not installed: fish script not checked (scripts/deps installs it)");
    }
    // An unknown shell is a usage error.
    assert_eq!(
        palisade(&["generate", "completions", "csh"]).status.code(),
        Some(2)
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn man_pages_are_generated_and_render_without_warnings() {
    let dir = tempfile_dir("man");
    let out = palisade(&["generate", "man", dir.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{out:?}");
    let listed: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(PathBuf::from)
        .collect();
    let names: Vec<String> = listed
        .iter()
        .filter_map(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    // palisade(8) and one page per subcommand (nested ones too), none for the hidden one.
    for cmd in [
        "run",
        "check-config",
        "status",
        "restart",
        "reload",
        "reopen-logs",
        "metrics",
        "dns",
        "dns-test",
        "dns-blocked-hits",
        "flows",
        "flows-top",
        "flows-show",
        "block",
        "block-add",
        "block-remove",
        "block-list",
        "tls",
        "tls-rules",
        "tls-rules-add",
        "tls-rules-remove",
        "tls-rules-list",
        "devices",
        "guard",
        "feature",
        "feature-enable",
        "feature-disable",
        "feature-list",
        "log-level",
        "version",
        "cleanup",
        "replay",
        "trace",
    ] {
        assert!(
            names.contains(&format!("palisade-{cmd}.8")),
            "{cmd}: {names:?}"
        );
    }
    assert!(names.contains(&"palisade.8".to_owned()));
    assert_eq!(names.len(), 35, "{names:?}");
    for page in &listed {
        // groff with every warning on: nothing on stderr.
        let out = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(page)
            .output()
            .expect("groff (groff-base)");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{}: {}",
            page.display(),
            stderr(&out)
        );
        // man -l renders it, with its name and the sections every page has.
        let out = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(page)
            .env("MANWIDTH", "100")
            .env("MANPAGER", "cat")
            .output()
            .expect("man (man-db)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{}: {}",
            page.display(),
            stderr(&out)
        );
        let stem = page
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "EXIT STATUS", "SEE ALSO"] {
            assert!(text.contains(section), "{stem}: no {section}:\n{text}");
        }
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains(&format!("{stem} - ")), "{stem}:\n{text}");
    }
    let main = fs::read_to_string(dir.join("palisade.8")).expect("palisade.8");
    assert!(
        main.contains("palisade\\-status(8)") && main.contains("FILES"),
        "{main}"
    );
    let status = fs::read_to_string(dir.join("palisade-status.8")).expect("page");
    assert!(
        status.contains("\\-\\-json") && status.contains("\\-\\-config"),
        "{status}"
    );
    let _ = fs::remove_dir_all(&dir);
}

/// A scratch directory (mode 0755) for one test.
fn tempfile_dir(name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("palisade-cli-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("dir");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

#[test]
fn usage_errors_exit_2_without_contacting_the_daemon() {
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, SockType, UnixAddr, accept4, bind, listen, socket,
    };
    // A listening control socket that counts who connects: nobody may.
    let dir = tempfile_dir("usage");
    let path = dir.join("control.sock");
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .expect("socket");
    bind(fd.as_raw_fd(), &UnixAddr::new(&path).expect("addr")).expect("bind");
    listen(&fd, Backlog::new(8).expect("backlog")).expect("listen");
    let socket_arg = path.to_str().expect("utf-8");
    for args in [
        &["block", "add", "not-a-cidr"][..],
        &["block", "add", "192.0.2.0/33"],
        &["block", "remove", "2001:db8::/129"],
        &["block", "add", "192.0.2.1", "--ttl", "5w"],
        &["restart", "ftp"],
        &["flows", "show", "--host", "example.com"],
        &["flows", "top", "-n", "0"],
        &["status", "--no-such-flag"],
        &["check-config", "a.toml", "--config", "b.toml"],
    ] {
        let out = Command::new(bin("palisade"))
            .args(args)
            .args(["--control-socket", socket_arg])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(
            stderr(&out).starts_with("error:"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert_eq!(
            accept4(fd.as_raw_fd(), SockFlag::SOCK_CLOEXEC).err(),
            Some(nix::errno::Errno::EAGAIN),
            "{args:?} connected to the daemon"
        );
    }
    // The same socket reached with a valid command: this check can see a connection.
    let out = Command::new(bin("palisade"))
        .args(["block", "list", "--control-socket", socket_arg])
        .output()
        .expect("run");
    assert_ne!(out.status.code(), Some(2), "{out:?}");
    assert!(accept4(fd.as_raw_fd(), SockFlag::SOCK_CLOEXEC).is_ok());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn check_config_reports_every_bad_line_of_every_list() {
    let dir = tempfile_dir("badlines");
    let ip = dir.join("drop.txt");
    fs::write(
        &ip,
        "192.0.2.0/24\nnot-a-cidr\n# comment\n198.51.100.0/33\n2001:db8::/32\n10.0.0.1 10.0.0.2\n",
    )
    .expect("write");
    let dns = dir.join("block.txt");
    fs::write(&dns, "ok.example\nbad!name\n||x.example\n*.fine.example\n").expect("write");
    let config = dir.join("palisade.toml");
    fs::write(
        &config,
        format!(
            "[ip]\nblocklists = [\"{}\"]\n[dns]\nblocklists = [\"{}\"]\n",
            ip.display(),
            dns.display()
        ),
    )
    .expect("write");
    let out = palisade(&["check-config", config.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = stderr(&out);
    for at in [
        format!("{}:2: \"not-a-cidr\"", ip.display()),
        format!("{}:4: \"198.51.100.0/33\"", ip.display()),
        format!("{}:6: ", ip.display()),
        format!("{}:2: ", dns.display()),
        format!("{}:3: AdBlock rule", dns.display()),
    ] {
        assert!(err.contains(&at), "{at} not in:\n{err}");
    }
    assert!(err.contains(": 5 problems"), "{err}");
    // The same as JSON, with file and line apart.
    let out = palisade(&[
        "check-config",
        "--json",
        "--config",
        config.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report = json(&out);
    assert_eq!(report["ok"], false);
    assert_eq!(report["errors_not_shown"], 0);
    let lines: Vec<(String, u64)> = report["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["file"].as_str().unwrap_or_default().to_owned(),
                e["line"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let ip_s = ip.display().to_string();
    let dns_s = dns.display().to_string();
    assert_eq!(
        lines,
        vec![
            (dns_s.clone(), 2),
            (dns_s, 3),
            (ip_s.clone(), 2),
            (ip_s.clone(), 4),
            (ip_s, 6)
        ]
    );
    // Bounded: a list of 1000 bad lines names 20 and counts the rest.
    fs::write(&ip, "bad\n".repeat(1000)).expect("write");
    fs::write(&dns, "ok.example\n").expect("write");
    let out = palisade(&["check-config", "--json", config.to_str().expect("utf-8")]);
    let report = json(&out);
    assert_eq!(report["errors"].as_array().map(Vec::len), Some(20));
    assert_eq!(report["errors_not_shown"], 980);
    let out = palisade(&["check-config", config.to_str().expect("utf-8")]);
    assert!(stderr(&out).contains("980 more bad list lines"), "{out:?}");
    // Fixed: OK, and {"ok": true}.
    fs::write(&ip, "192.0.2.0/24\n").expect("write");
    let out = palisade(&["check-config", "--json", config.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(json(&out)["ok"], true);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_configured_worker_account_that_does_not_exist_fails_check_config_and_run() {
    let lab = Lab::new("account");
    let missing = format!("palisade-nouser-{}", std::process::id());
    let config = lab.dir.join("account.toml");
    fs::write(
        &config,
        base_config(
            &lab,
            &format!(
                "[workers]\nallow_shared_account = true\n[workers.dns]\nuser = \"{missing}\"\n"
            ),
        ),
    )
    .expect("write");
    let line = fs::read_to_string(&config)
        .expect("read")
        .lines()
        .position(|l| l.starts_with("user = "))
        .expect("user line")
        + 1;
    let expected = format!(
        "{}:{line}: workers.dns.user: user \"{missing}\" does not exist",
        config.display()
    );
    let out = palisade(&["check-config", config.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
    // The daemon refuses alike (no fallback to nobody, even with allow_shared_account),
    // before anything is pinned.
    let out = run_in_sensor(&lab, &config);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
    assert!(!lab.pin_root.exists(), "nothing pinned");
}

/// Every file below `root` with its inode.
fn pins(root: &Path) -> BTreeMap<PathBuf, u64> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_owned()];
    while let Some(dir) = todo.pop() {
        for entry in fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
        {
            let meta = fs::symlink_metadata(entry.path()).expect("stat");
            if meta.is_dir() {
                todo.push(entry.path());
            } else {
                out.insert(entry.path(), meta.ino());
            }
        }
    }
    out
}

#[test]
fn a_failed_start_leaves_no_pins_and_keeps_a_previous_runs() {
    let lab = Lab::new("failstart");
    let run = |config: &str| {
        let path = lab.dir.join("fail.toml");
        fs::write(&path, config).expect("write");
        let out = run_in_sensor(&lab, &path);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        stderr(&out)
    };
    // A configured interface that is not Ethernet (a missing one is waited for): refused
    // before anything is pinned.
    let err = run(&base_config(&lab, "").replace(
        &format!("interfaces = [\"{}\"]", palisade_tests::SENSOR_IF),
        "interfaces = [\"lo\"]",
    ));
    assert!(
        err.contains("interface lo is not an Ethernet interface"),
        "{err}"
    );
    assert!(
        pins(&lab.pin_root).is_empty() && !lab.pin_root.exists(),
        "{:?}",
        pins(&lab.pin_root)
    );
    // A failure after the programs were loaded, pinned and attached (the control socket
    // cannot be created): everything this start created is rolled back.
    let unbindable = base_config(&lab, "").replace(
        &lab.dir.join("control.sock").display().to_string(),
        "/proc/palisade-no-such-dir/control.sock",
    );
    let err = run(&unbindable);
    assert!(err.contains("/proc/palisade-no-such-dir"), "{err}");
    assert!(err.contains("removed the pins"), "{err}");
    assert!(!lab.pin_root.exists(), "{:?}", pins(&lab.pin_root));
    assert!(
        lab.tcx_programs(true).is_empty(),
        "{:?}",
        lab.tcx_programs(true)
    );
    assert!(
        lab.tcx_programs(false).is_empty(),
        "{:?}",
        lab.tcx_programs(false)
    );
    // A previous run's pins (still enforcing after it stopped) survive a failed start.
    let daemon = Daemon::start(&lab, &base_config(&lab, ""), &[]);
    daemon.wait_healthy();
    assert!(daemon.stop().success());
    let before = pins(&lab.pin_root);
    let attached = lab.tcx_programs(true);
    assert!(!before.is_empty() && !attached.is_empty());
    let err = run(&unbindable);
    assert!(err.contains("/proc/palisade-no-such-dir"), "{err}");
    assert_eq!(
        pins(&lab.pin_root),
        before,
        "the same pins, the same inodes"
    );
    // Still attached, by the same links: a start replaces the code of the links it adopts
    // in place (without CAP_SYS_ADMIN it cannot tell the code is the same), so the program
    // ids may be new, the programs are the same ones.
    let names = |progs: Vec<(u32, String)>| progs.into_iter().map(|(_, n)| n).collect::<Vec<_>>();
    assert_eq!(
        names(lab.tcx_programs(true)),
        names(attached),
        "still attached"
    );
}

#[test]
fn json_config_and_refusals_against_a_daemon() {
    let lab = Lab::new("clijson");
    let list = lab.dir.join("drop.txt");
    fs::write(&list, "203.0.113.0/24\n").expect("list");
    let daemon = Daemon::start(
        &lab,
        &base_config(
            &lab,
            &format!(
                "[control]\ngroup = \"nogroup\"\n[ip]\nblocklists = [\"{}\"]\n",
                list.display()
            ),
        ),
        &[],
    );
    daemon.wait_healthy();
    let config = daemon.config.to_str().expect("utf-8").to_owned();

    // --json on every command that prints data or a result; each parses, with its shape.
    let ok = |args: &[&str]| {
        let out = daemon.ctl(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        json(&out)
    };
    assert!(ok(&["status", "--json"])["workers"].is_array());
    let v = ok(&["version", "--json"]);
    assert_eq!(v["daemon"]["abi"], v["binary"]["abi"]);
    assert!(v["daemon_error"].is_null());
    let r = ok(&["reload", "--json"]);
    assert!(
        r["dns_ruleset_sha256"].is_string() && r["restart_needed"].is_array(),
        "{r}"
    );
    assert_eq!(
        ok(&["reopen-logs", "--json"]),
        serde_json::json!({"reopened": []})
    );
    assert_eq!(
        ok(&["restart", "dns", "--json"]),
        serde_json::json!({"restarting": ["dns"]})
    );
    let added = ok(&["block", "add", "192.0.2.7", "--comment", "t", "--json"]);
    assert_eq!(added["cidr"], "192.0.2.7/32");
    assert_eq!(added["comment"], "t");
    let listed = ok(&["block", "list", "--json"]);
    assert!(
        listed["rules"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["cidr"] == "192.0.2.7/32")),
        "{listed}"
    );
    assert_eq!(
        ok(&["block", "remove", "192.0.2.7", "--json"])["cidr"],
        "192.0.2.7/32"
    );
    assert!(ok(&["dns", "test", "a.example", "--json"])["verdict"].is_string());
    assert!(ok(&["dns", "blocked-hits", "--json"]).is_array());
    assert!(ok(&["flows", "top", "--json"])["flows"].is_array());
    assert!(ok(&["flows", "show", "--host", "198.18.0.2", "--json"])["live"].is_u64());
    let c = palisade(&["check-config", "--json", &config]);
    assert!(c.status.success(), "{c:?}");
    assert_eq!(json(&c)["ok"], true);
    // A failure with --json: the error as JSON on stdout too, and the exit status.
    fs::write(&list, "not-a-cidr\n").expect("list");
    let out = daemon.ctl(&["reload", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let e = json_error(&out);
    assert_eq!(e["kind"], "failed");
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("drop.txt:1")),
        "{e}"
    );
    fs::write(&list, "203.0.113.0/24\n").expect("list");

    // --config: the configuration's paths.control_socket (not the default one) is used by
    // status, reload and reopen-logs, as ExecReload and logrotate run them.
    for args in [&["status"][..], &["reload"], &["reopen-logs"], &["version"]] {
        let out = palisade(&[args, &["--config", &config]].concat());
        assert!(out.status.success(), "{args:?} --config: {out:?}");
    }
    let v = json(&palisade(&["version", "--json", "--config", &config]));
    assert!(v["daemon"].is_object(), "{v}");
    // --control-socket still wins over the file.
    let out = palisade(&[
        "status",
        "--config",
        &config,
        "--control-socket",
        "/nonexistent/x.sock",
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    // A --config that does not exist is an error, not a fallback to the default socket.
    let missing = lab.dir.join("missing.toml");
    let out = palisade(&[
        "status",
        "--json",
        "--config",
        missing.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let e = json_error(&out);
    assert_eq!(e["kind"], "failed");
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("missing.toml: cannot read")),
        "{e}"
    );

    // Callers the authorisation refuses are told so (exit 4), never "not running".
    let as_user = |gid: &str, args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", gid, "--clear-groups"])
            .arg(bin("palisade"))
            .args(args)
            .arg("--control-socket")
            .arg(&daemon.control)
            .output()
            .expect("setpriv")
    };
    // Outside the control group: the socket refuses the connection.
    for args in [&["status"][..], &["version"], &["metrics"], &["reload"]] {
        let out = as_user("65533", args);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {out:?}");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert!(text.contains("permission denied"), "{args:?}: {text}");
        assert!(
            !text.contains("not running") && !text.contains("not reachable"),
            "{args:?}: {text}"
        );
    }
    let out = as_user("65533", &["status", "--json"]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(json_error(&out)["kind"], "permission_denied");
    let v = json(&as_user("65533", &["version", "--json"]));
    assert_eq!(v["daemon_error"]["kind"], "permission_denied", "{v}");
    // A member of the control group (nogroup, gid 65534) may read but not change: the
    // daemon refuses the request (SO_PEERCRED), and says why.
    assert!(as_user("65534", &["status"]).status.success());
    for args in [
        &["reload"][..],
        &["restart", "all"],
        &["block", "add", "192.0.2.9"],
    ] {
        let out = as_user("65534", args);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {out:?}");
        assert!(
            stderr(&out).contains("permission denied: uid 65534 may not change the daemon"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let out = as_user("65534", &["reopen-logs", "--json"]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(json_error(&out)["kind"], "permission_denied");
    // cleanup is root's, and refuses while the daemon runs.
    let out = as_user("65534", &["cleanup", "--json"]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let pin_root = lab.pin_root.to_str().expect("utf-8").to_owned();
    let out = daemon.ctl(&["cleanup", "--pin-root", &pin_root]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("a daemon is running"), "{out:?}");

    // A flow left open in the pinned table when the daemon stops (without
    // --detach-on-exit): cleanup ends it with its event (reason shutdown), written to the
    // configuration's <log_dir>/flow.json by the flow worker's parser.
    let sender = lab.in_netns(palisade_tests::Side::Sensor, || {
        let udp = std::net::UdpSocket::bind((palisade_tests::SENSOR_IP, 0)).expect("bind");
        for _ in 0..3 {
            udp.send_to(b"open flow", (palisade_tests::PEER_IP, 9))
                .expect("send");
        }
        udp.local_addr().expect("local address").port()
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    // After it stopped: cleanup --json lists what it removed.
    let control = daemon.control.clone();
    let config = daemon.config.clone();
    assert!(daemon.stop().success());
    // A DNS query while no daemon runs: its record waits in the pinned ring, unread; cleanup
    // logs it before the ring goes.
    lab.in_netns(palisade_tests::Side::Sensor, || {
        let udp = std::net::UdpSocket::bind((palisade_tests::SENSOR_IP, 0)).expect("bind");
        udp.send_to(
            &palisade_tests::dns_query(0x4242, "left.behind.test"),
            (palisade_tests::PEER_IP, 53),
        )
        .expect("send");
    });
    // In the daemon's network namespace, as on an appliance: events name its interfaces.
    let out = lab.in_netns(palisade_tests::Side::Sensor, || {
        palisade(&[
            "cleanup",
            "--json",
            "--pin-root",
            &pin_root,
            "--control-socket",
            control.to_str().expect("utf-8"),
            "--config",
            config.to_str().expect("utf-8"),
        ])
    });
    assert!(out.status.success(), "{out:?}");
    let c = json(&out);
    assert_eq!(c["pin_root"], pin_root.as_str());
    assert!(
        c["removed"].as_array().is_some_and(|r| !r.is_empty()),
        "{c}"
    );
    assert!(c["open_flows_ended"].as_u64() >= Some(1), "{c}");
    assert_eq!(c["open_flows_discarded"], 0, "{c}");
    assert!(c.get("open_flows_error").is_none(), "{c}");
    assert!(!lab.pin_root.exists());
    let log = lab.dir.join("log").join("flow.json");
    let events: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap_or_else(|e| panic!("{}: {e}", log.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect();
    // One event per flow ended (the ring may also hold ends its sweeper wrote meanwhile).
    assert_eq!(
        events
            .iter()
            .filter(|e| e["flow"]["reason"] == "shutdown")
            .count() as u64,
        c["open_flows_ended"].as_u64().unwrap_or(0),
        "{events:?}"
    );
    let ended = events
        .iter()
        .find(|e| e["src_port"] == sender && e["dest_port"] == 9)
        .unwrap_or_else(|| panic!("no event for the open flow: {events:?}"));
    assert_eq!(ended["event_type"], "flow", "{ended}");
    assert_eq!(ended["flow"]["reason"], "shutdown", "{ended}");
    assert_eq!(ended["flow"]["pkts_toserver"], 3, "{ended}");
    assert_eq!(
        ended["src_ip"],
        palisade_tests::SENSOR_IP.to_string(),
        "{ended}"
    );
    assert_eq!(ended["proto"], "UDP", "{ended}");
    assert_eq!(ended["in_iface"], palisade_tests::SENSOR_IF, "{ended}");
    let text = std::fs::read_to_string(&log).expect("flow.json");
    palisade_tests::eve_schema::validate_lines(text.lines()).expect("EVE schema");
    assert!(c["ring_records_logged"].as_u64() >= Some(1), "{c}");
    let dns = std::fs::read_to_string(lab.dir.join("log").join("dns.json")).expect("dns.json");
    palisade_tests::eve_schema::validate_lines(dns.lines()).expect("EVE schema");
    assert!(
        dns.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|e| e["dns"]["type"] == "query" && e["dns"]["rrname"] == "left.behind.test"),
        "the query sent while no daemon ran: {dns}"
    );
}
