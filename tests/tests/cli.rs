//! CLI behaviour that needs no daemon.

use std::process::Command;

use palisade_tests::bin;

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
            && text.contains("not reachable"),
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
