#![expect(
    clippy::indexing_slicing,
    reason = "tests index JSON values and /proc fields; a panic is a test failure"
)]

//! What an installed Palisade relies on: the event logs readable by the log group and no
//! one else (`paths.log_group`), through rotation and reloads; and the daemon working with
//! nothing but the capabilities `packaging/palisade.service` grants it.

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::Output,
    time::Duration,
};

use palisade_tests::{
    Daemon, Lab, PEER_IP,
    accounts::{TempGroup, TempUser},
    base_config, bin, proc_status, wait_for,
};

/// (uid, gid, mode bits) of `path`.
fn owner(path: &Path) -> (u32, u32, u32) {
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    (m.uid(), m.gid(), m.mode() & 0o7777)
}

fn text(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asks the peer's resolver for `name` from the sensor side and waits until the DNS
/// worker wrote it to `file`.
fn dns_event_in(lab: &Lab, file: &Path, name: &str) {
    wait_for(
        Duration::from_secs(10),
        &format!("{name} in {}", file.display()),
        || {
            lab.dig(&["+short", name, "A"]);
            std::fs::read_to_string(file)
                .ok()
                .filter(|t| t.contains(name))
                .map(|_| ())
        },
    );
}

const KINDS: [&str; 4] = ["dhcp", "dns", "tls", "flow"];

#[test]
fn event_logs_are_readable_by_the_log_group_and_no_one_else_also_after_reopen() {
    let mut group = TempGroup::new("log");
    let member = group.user("m", true);
    let outsider = group.user("o", false);
    let lab = Lab::new("loggroup");
    lab.start_dnsmasq();
    let cfg = base_config(&lab, &format!("log_group = \"{}\"\n", group.name));
    let daemon = Daemon::start_with(&lab, &cfg, &[], false);
    daemon.wait_healthy();
    let dir = lab.dir.join("log");
    let dns = dir.join("dns.json");
    assert_eq!(owner(&dir), (0, group.gid, 0o750), "root:<group> 0750");
    dns_event_in(&lab, &dns, "first.example.test");
    for kind in KINDS {
        let file = dir.join(format!("{kind}.json"));
        assert_eq!(owner(&file), (0, group.gid, 0o640), "{}", file.display());
    }

    let cat =
        |user: &TempUser, file: &Path| user.command("cat").arg(file).output().expect("setpriv cat");
    let read = cat(&member, &dns);
    assert!(read.status.success(), "member reads: {}", text(&read));
    assert!(String::from_utf8_lossy(&read.stdout).contains("first.example.test"));
    let denied = cat(&outsider, &dns);
    assert!(
        !denied.status.success(),
        "outsider reads: {}",
        text(&denied)
    );
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("Permission denied"),
        "{}",
        text(&denied)
    );
    let listed = outsider
        .command("ls")
        .arg(&dir)
        .output()
        .expect("setpriv ls");
    assert!(
        !listed.status.success(),
        "outsider lists the directory: {}",
        text(&listed)
    );

    // Rotation as logrotate does it: rename, then `palisade reopen-logs`.
    let rotated = dir.join("dns.json.1");
    std::fs::rename(&dns, &rotated).expect("rename");
    let out = daemon.ctl(&["reopen-logs"]);
    assert!(out.status.success(), "reopen-logs: {}", text(&out));
    wait_for(Duration::from_secs(5), "a new dns.json", || {
        dns.exists().then_some(())
    });
    assert_eq!(owner(&dns), (0, group.gid, 0o640), "the new file");
    assert_eq!(owner(&rotated), (0, group.gid, 0o640), "the rotated one");
    dns_event_in(&lab, &dns, "second.example.test");
    let read = cat(&member, &dns);
    assert!(
        read.status.success() && String::from_utf8_lossy(&read.stdout).contains("second"),
        "member reads the new file: {}",
        text(&read)
    );
    assert!(
        cat(&member, &rotated).status.success(),
        "and the rotated one"
    );
    assert!(!cat(&outsider, &dns).status.success());
    assert!(daemon.stop().success());
}

#[test]
fn a_reload_regroups_the_event_logs_and_an_unknown_group_is_refused_at_its_line() {
    let mut group = TempGroup::new("rld");
    let member = group.user("m", true);
    let lab = Lab::new("logreload");
    let with = |g: &str| base_config(&lab, &format!("\nlog_group = \"{g}\"\n"));
    let missing = format!("{}-gone", group.name);
    let dir = lab.dir.join("log");

    // check-config and run refuse a group that does not exist, naming its line; run
    // refuses before it touches the kernel.
    let bad = lab.dir.join("bad.toml");
    std::fs::write(&bad, with(&missing)).expect("write");
    let out = std::process::Command::new(bin("palisade"))
        .arg("check-config")
        .arg(&bad)
        .output()
        .expect("check-config");
    let expected = format!("bad.toml:8: paths.log_group: group \"{missing}\" does not exist");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&expected),
        "{}",
        text(&out)
    );
    let out = lab
        .sensor(bin("palisade").to_str().expect("utf-8 path"))
        .args(["run", "--config"])
        .arg(&bad)
        .output()
        .expect("palisade run");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&expected),
        "{}",
        text(&out)
    );
    assert!(!lab.pin_root.exists(), "nothing pinned");

    let daemon = Daemon::start_with(&lab, &with(&group.name), &[], false);
    daemon.wait_healthy();
    let dns = dir.join("dns.json");
    assert_eq!(owner(&dns), (0, group.gid, 0o640));

    // An unknown group: the reload fails and changes nothing.
    std::fs::write(&daemon.config, with(&missing)).expect("write");
    let out = daemon.ctl(&["reload"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("paths.log_group: group"),
        "{}",
        text(&out)
    );
    assert_eq!(owner(&dir), (0, group.gid, 0o750));
    assert_eq!(owner(&dns), (0, group.gid, 0o640));

    // No group: root only, at once (the open files included).
    std::fs::write(&daemon.config, base_config(&lab, "")).expect("write");
    let out = daemon.ctl(&["reload"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(owner(&dir), (0, 0, 0o750));
    for kind in KINDS {
        assert_eq!(
            owner(&dir.join(format!("{kind}.json"))),
            (0, 0, 0o640),
            "{kind}"
        );
    }
    let out = member.command("cat").arg(&dns).output().expect("cat");
    assert!(!out.status.success(), "no longer readable: {}", text(&out));

    // The group again.
    std::fs::write(&daemon.config, with(&group.name)).expect("write");
    let out = daemon.ctl(&["reload"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(owner(&dir), (0, group.gid, 0o750));
    assert_eq!(owner(&dns), (0, group.gid, 0o640));
    let out = member.command("cat").arg(&dns).output().expect("cat");
    assert!(out.status.success(), "readable again: {}", text(&out));
    assert!(daemon.stop().success());
}

/// `Key=` of `packaging/palisade.service` (its last occurrence).
fn unit_setting(key: &str) -> String {
    let unit = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../packaging/palisade.service");
    let text = std::fs::read_to_string(&unit).expect("read the unit");
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key}= in the unit"))
        .trim()
        .to_owned()
}

/// `sh -c 'umask ...; exec setpriv --bounding-set=<the unit's> --no-new-privs -- ...'`.
fn unit_wrapper() -> Vec<String> {
    let caps: Vec<String> = unit_setting("CapabilityBoundingSet")
        .split_whitespace()
        .map(|c| format!("+{}", c.to_lowercase().trim_start_matches("cap_")))
        .collect();
    vec![
        "sh".into(),
        "-c".into(),
        "umask \"$0\" && exec \"$@\"".into(),
        unit_setting("UMask"),
        "setpriv".into(),
        format!("--bounding-set=-all,{}", caps.join(",")),
        "--inh-caps=-all".into(),
        "--no-new-privs".into(),
        "--".into(),
    ]
}

#[test]
fn the_daemon_works_with_only_the_capabilities_of_its_unit() {
    let mut group = TempGroup::new("cap");
    let member = group.user("m", true);
    let outsider = group.user("o", false);
    let lab = Lab::new("unitcaps");
    lab.start_dnsmasq();
    let wrapper = unit_wrapper();
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let cfg = base_config(
        &lab,
        &format!(
            "log_group = \"{g}\"\n[control]\ngroup = \"{g}\"\n",
            g = group.name
        ),
    );
    let first = Daemon::start_wrapped(&lab, &cfg, &[], false, &wrapper);
    first.wait_healthy();
    // The wrapper did what the unit does: no CAP_CHOWN (0), no CAP_SYS_ADMIN (21).
    let bounding = u64::from_str_radix(&proc_status(first.pid())["CapBnd"], 16).expect("CapBnd");
    assert_eq!(bounding & (1 << 0 | 1 << 21), 0, "CapBnd {bounding:x}");
    assert_eq!(proc_status(first.pid())["NoNewPrivs"], "1");

    // Its files get their groups without CAP_CHOWN.
    assert_eq!(
        owner(&first.control),
        (0, group.gid, 0o660),
        "control socket"
    );
    let dir = lab.dir.join("log");
    assert_eq!(owner(&dir), (0, group.gid, 0o750));
    dns_event_in(&lab, &dir.join("dns.json"), "caps.example.test");
    assert_eq!(owner(&dir.join("dns.json")), (0, group.gid, 0o640));
    // A member through a supplementary group (its primary group is its own) may ask for
    // status; others may not.
    let status = |user: &TempUser| {
        user.command(bin("palisade").to_str().expect("utf-8 path"))
            .args(["status", "--control-socket"])
            .arg(&first.control)
            .output()
            .expect("status")
    };
    let out = status(&member);
    assert!(out.status.success(), "member: {}", text(&out));
    assert_eq!(status(&outsider).status.code(), Some(4));

    // Runtime IP rules go into the live trie; reload works.
    let out = first.ctl(&["block", "add", "203.0.113.0/24", "--comment", "caps"]);
    assert!(out.status.success(), "block add: {}", text(&out));
    let out = first.ctl(&["reload"]);
    assert!(out.status.success(), "reload: {}", text(&out));
    let link_id =
        first.status_json().expect("status")["interfaces"][0]["attachments"][0]["link_id"].clone();
    assert!(first.stop().success());

    // A restart adopts the pinned links (no second attachment) and can still change the
    // trie it swapped in at start.
    let second = Daemon::start_wrapped(&lab, &cfg, &["--detach-on-exit"], false, &wrapper);
    second.wait_healthy();
    let s = second.status_json().expect("status");
    let attachments = s["interfaces"][0]["attachments"]
        .as_array()
        .expect("attachments")
        .clone();
    assert!(
        attachments.iter().all(|a| a["adopted"] == true),
        "{attachments:?}"
    );
    assert_eq!(attachments[0]["link_id"], link_id, "the same link");
    assert_eq!(lab.observer_programs(true).len(), 1, "attached once");
    assert_eq!(lab.observer_programs(false).len(), 1, "attached once");
    let out = second.ctl(&["block", "remove", "203.0.113.0/24"]);
    assert!(out.status.success(), "block remove: {}", text(&out));
    let ping = || {
        lab.sensor("ping")
            .args(["-c", "1", "-W", "1", PEER_IP])
            .output()
            .expect("ping")
            .status
            .success()
    };
    assert!(ping(), "the peer answers before it is blocked");
    let out = second.ctl(&["block", "add", &format!("{PEER_IP}/32")]);
    assert!(out.status.success(), "block add: {}", text(&out));
    assert!(!ping(), "blocked in the kernel");
    let out = second.ctl(&["block", "remove", &format!("{PEER_IP}/32")]);
    assert!(out.status.success(), "block remove: {}", text(&out));
    assert!(ping(), "unblocked");
    assert!(second.stop().success());
    assert!(lab.tcx_programs(true).is_empty(), "--detach-on-exit");
}
