//! Drift: the kernel state changed behind the daemon's back (with bpftool and rm, as an
//! operator or another tool would) is found within a check interval, counted and repaired,
//! and `palisade check` reports it; a worker applying another rule set is resynced, then
//! restarted.

#![expect(
    clippy::indexing_slicing,
    reason = "tests index JSON values; a panic is a test failure"
)]

use std::{path::Path, process::Command, time::Duration};

use palisade_tests::{Daemon, Lab, SENSOR_IF, base_config, run, wait_for};
use serde_json::Value;

/// `bpftool ARGS -j`, parsed.
fn bpftool(args: &[&str]) -> Value {
    let out = run(Command::new("bpftool").arg("-j").args(args));
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// The id of the map in slot 0 of a pinned map-of-maps.
fn inner_id(outer: &Path) -> u64 {
    let v = bpftool(&[
        "map",
        "lookup",
        "pinned",
        outer.to_str().expect("utf-8"),
        "key",
        "0",
        "0",
        "0",
        "0",
    ]);
    v["value"]
        .as_u64()
        .or_else(|| v["formatted"]["value"].as_u64())
        .or_else(|| {
            // Raw bytes: the id, little-endian.
            let bytes: Vec<u8> = v["value"]
                .as_array()?
                .iter()
                .filter_map(|b| u8::from_str_radix(b.as_str()?.trim_start_matches("0x"), 16).ok())
                .collect();
            Some(u64::from(u32::from_le_bytes(
                bytes.get(..4)?.try_into().ok()?,
            )))
        })
        .unwrap_or_else(|| panic!("no inner map id in {v}"))
}

/// `palisade check --json`: (exit code, report).
fn check(daemon: &Daemon) -> (i32, Value) {
    let out = daemon.ctl(&["check", "--json"]);
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("check --json: {e}: {out:?}"));
    (out.status.code().unwrap_or(-1), report)
}

/// `object` is in the check's findings as another tool's program, left alone, running
/// before Palisade's.
fn assert_reported_before(report: &Value, object: &str) {
    let f = report["findings"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["object"] == object))
        .unwrap_or_else(|| panic!("{object} not in {report}"));
    assert_eq!(f["repaired"], false, "{f}");
    let text = |key: &str| f[key].as_str().unwrap_or_default().to_owned();
    assert!(text("action").contains("never touched"), "{f}");
    assert!(text("problem").contains("runs before Palisade's"), "{f}");
}

fn objects(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .map(|f| {
            f.iter()
                .map(|x| {
                    format!(
                        "{} [{}] repaired={}",
                        x["object"], x["action"], x["repaired"]
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn kernel_state_changed_behind_the_daemons_back_is_found_and_repaired() {
    let lab = Lab::new("drift");
    let list = lab.dir.join("block.txt");
    std::fs::write(&list, "blocked.example\n").expect("write the DNS list");
    let ips = lab.dir.join("ips.txt");
    std::fs::write(&ips, "192.0.2.0/24\n").expect("write the IP list");
    // Periodic checks off: each repair below is triggered by `palisade check`, so the test
    // sees each finding itself (the periodic check is the same code; see the next test).
    let extra = format!(
        "[drift]\ninterval_s = 0\n[dns]\nblocklists = [\"{}\"]\n[ip]\nblocklists = [\"{}\"]\n",
        list.display(),
        ips.display()
    );
    let daemon = Daemon::start(&lab, &base_config(&lab, &extra), &[]);
    daemon.wait_healthy();
    let (code, report) = check(&daemon);
    assert_eq!(code, 0, "a fresh daemon is clean: {report}");
    assert_eq!(report["findings"], serde_json::json!([]));

    let status = daemon.status_json().expect("status");
    let pin_dir = std::path::PathBuf::from(status["pin_dir"].as_str().expect("pin_dir"));
    let maps = pin_dir.join("maps");

    // 1. The observer's ingress link detached with bpftool: attached again.
    let link_pin = pin_dir.join("links").join(format!("{SENSOR_IF}_ingress"));
    let observer = lab.observer_programs(true);
    assert_eq!(observer.len(), 1, "{observer:?}");
    run(Command::new("bpftool")
        .args(["link", "detach", "pinned"])
        .arg(&link_pin));
    assert!(
        lab.observer_programs(true).is_empty(),
        "bpftool detached it"
    );
    let (code, report) = check(&daemon);
    assert_eq!(code, 1, "{report}");
    let found = objects(&report);
    assert!(
        found
            .iter()
            .any(|f| f.contains(&format!("link {SENSOR_IF}/ingress"))
                && f.contains("attached again")
                && f.ends_with("repaired=true")),
        "{found:?}"
    );
    // Reported as an event too, beside the workers' (schema-checked when the daemon stops).
    let event = daemon.wait_event("the drift event", Duration::from_secs(5), |e| {
        e["event_type"] == "drift"
            && e["palisade"]["drift"]["object"] == format!("link {SENSOR_IF}/ingress")
    });
    assert_eq!(event["palisade"]["drift"]["repaired"], true, "{event}");
    assert!(
        event["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with("+0000"))
    );
    let back = lab.observer_programs(true);
    assert_eq!(back.len(), 1, "observer attached again: {back:?}");
    assert!(link_pin.exists(), "pinned again");

    // 2. A map pin removed: pinned again (the programs never lost the map).
    let config_pin = maps.join("pal_ip_config");
    std::fs::remove_file(&config_pin).expect("rm the pin");
    let (code, report) = check(&daemon);
    assert_eq!(code, 1, "{report}");
    assert!(
        objects(&report)
            .iter()
            .any(|f| f.contains("pin maps/pal_ip_config") && f.ends_with("repaired=true")),
        "{report}"
    );
    assert!(config_pin.exists());

    // 3. A name rule of the live DNS rule map changed (block -> allow): the rule set is
    // written again (a fresh map).
    let before = inner_id(&maps.join("pal_dns_policy"));
    let dump = bpftool(&["map", "dump", "id", &before.to_string()]);
    let key: Vec<String> = dump[0]["key"]
        .as_array()
        .unwrap_or_else(|| panic!("no entry in {dump}"))
        .iter()
        .filter_map(|b| b.as_str().map(str::to_owned))
        .collect();
    let mut edit = Command::new("bpftool");
    edit.args(["map", "update", "id", &before.to_string(), "key"])
        .args(&key)
        // struct pal_dns_rule: rule id 9, action 2 (allow), flags 1.
        .args(["value", "9", "0", "0", "0", "2", "1", "0", "0"]);
    run(&mut edit);
    let (code, report) = check(&daemon);
    assert_eq!(code, 1, "{report}");
    assert!(
        objects(&report)
            .iter()
            .any(|f| f.contains("map pal_dns_policy") && f.ends_with("repaired=true")),
        "{report}"
    );
    let after = inner_id(&maps.join("pal_dns_policy"));
    assert_ne!(before, after, "a fresh rule map was swapped in");
    let now = bpftool(
        &["map", "lookup", "id", &after.to_string(), "key"]
            .into_iter()
            .map(str::to_owned)
            .chain(key.iter().cloned())
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_ne!(
        now["value"][4], "0x02",
        "the edited rule is back to its own: {now}"
    );

    // 4. A prefix added to the live IPv4 trie: written again.
    let trie = inner_id(&maps.join("pal_ip4_policy"));
    // struct { u32 prefixlen; u8 addr[4] } -> 198.51.100.0/24; value: rule 77, len 24.
    run(Command::new("bpftool").args([
        "map",
        "update",
        "id",
        &trie.to_string(),
        "key",
        "24",
        "0",
        "0",
        "0",
        "198",
        "51",
        "100",
        "0",
        "value",
        "77",
        "0",
        "0",
        "0",
        "24",
        "0",
        "0",
        "0",
        "0",
        "0",
        "0",
        "0",
        "0",
        "0",
        "0",
        "0",
    ]));
    let (code, report) = check(&daemon);
    assert_eq!(code, 1, "{report}");
    assert!(
        objects(&report)
            .iter()
            .any(|f| f.contains("pal_ip4_policy") && f.ends_with("repaired=true")),
        "{report}"
    );
    assert_ne!(trie, inner_id(&maps.join("pal_ip4_policy")));

    // 5. A config value changed: written again.
    run(Command::new("bpftool")
        .args(["map", "update", "pinned"])
        .arg(maps.join("pal_flow_config"))
        .args(["key", "0", "0", "0", "0", "value"])
        .args(std::iter::repeat_n(
            "0",
            config_size(&maps.join("pal_flow_config")),
        )));
    let (code, report) = check(&daemon);
    assert_eq!(code, 1, "{report}");
    assert!(
        objects(&report)
            .iter()
            .any(|f| f.contains("map pal_flow_config") && f.ends_with("repaired=true")),
        "{report}"
    );

    // And now it is clean again; status counted everything.
    let (code, report) = check(&daemon);
    assert_eq!(code, 0, "{report}");
    let drift = &daemon.status_json().expect("status")["drift"];
    assert!(drift["found_total"].as_u64() >= Some(5), "{drift}");
    assert_eq!(drift["found_total"], drift["repaired_total"], "{drift}");

    // 6. Another tool's program at the ingress hook, ahead of Palisade's: reported, never
    // touched; listed by every check while it stays, logged and counted once.
    let foreign = lab.attach_foreign(true);
    let foreign_id = lab
        .tcx_programs(true)
        .into_iter()
        .find(|(_, name)| name == "bench_noop")
        .map(|(id, _)| id)
        .expect("the foreign program is attached");
    let object = format!("foreign program {foreign_id} on {SENSOR_IF}/ingress");
    for _ in 0..2 {
        let (code, report) = check(&daemon);
        assert_eq!(code, 1, "{report}");
        assert_reported_before(&report, &object);
        assert_eq!(
            report["findings"].as_array().map(Vec::len),
            Some(1),
            "{report}"
        );
    }
    assert_eq!(
        lab.tcx_programs(true).first().map(|(id, _)| *id),
        Some(foreign_id),
        "still attached, still first"
    );
    let drift = &daemon.status_json().expect("status")["drift"];
    assert_eq!(
        drift["found_total"].as_u64(),
        drift["repaired_total"].as_u64().map(|n| n + 1),
        "counted once over two checks: {drift}"
    );
    let events = daemon
        .events()
        .into_iter()
        .filter(|e| {
            e["event_type"] == "drift" && e["palisade"]["drift"]["object"] == object.as_str()
        })
        .count();
    assert_eq!(events, 1, "one event for the foreign program");
    drop(foreign);
    wait_for(Duration::from_secs(5), "clean once it is gone", || {
        (check(&daemon).0 == 0).then_some(())
    });
    // DNS still enforced after all this: the blocked name gets NXDOMAIN from the kernel.
    daemon.assert_alive();
}

#[test]
fn a_foreign_xdp_program_ahead_of_palisade_is_reported_and_left_alone() {
    let lab = Lab::new("driftxdp");
    // The IP policy at TC: the interface's XDP hook is free for another tool.
    let extra = "[drift]\ninterval_s = 0\n[ip]\nxdp_mode = \"tc\"\n";
    let daemon = Daemon::start(&lab, &base_config(&lab, extra), &[]);
    daemon.wait_healthy();
    assert_eq!(check(&daemon).0, 0, "a fresh daemon is clean");
    let object = lab.foreign_object();
    let ip_link = |args: &[&str]| {
        let out = lab
            .sensor("ip")
            .args(["link", "set", "dev", SENSOR_IF])
            .args(args)
            .output();
        let out = out.expect("ip link");
        assert!(out.status.success(), "{out:?}");
    };
    ip_link(&[
        "xdpgeneric",
        "obj",
        object.to_str().expect("utf-8"),
        "sec",
        "xdp",
    ]);
    let net_show = || -> Value {
        let out = lab
            .sensor("bpftool")
            .args(["-j", "net", "show", "dev", SENSOR_IF])
            .output();
        let out = out.expect("bpftool net show");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
    };
    let shown = net_show();
    let id = shown[0]["xdp"][0]["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("the foreign XDP program is attached: {shown}"));
    let object = format!("foreign program {id} on {SENSOR_IF}/xdp");
    let (code, report) = check(&daemon);
    assert_eq!(code, 1, "{report}");
    assert_reported_before(&report, &object);
    // Left alone: still there after the check.
    let shown = net_show();
    assert_eq!(shown[0]["xdp"][0]["id"].as_u64(), Some(id), "{shown}");
    ip_link(&["xdpgeneric", "off"]);
    assert_eq!(check(&daemon).0, 0, "clean once it is gone");
    daemon.assert_alive();
}

/// `value_size` of a pinned map.
fn config_size(pin: &Path) -> usize {
    let v = bpftool(&["map", "show", "pinned", pin.to_str().expect("utf-8")]);
    v["bytes_value"].as_u64().expect("bytes_value") as usize
}

#[test]
fn a_worker_reporting_another_rule_set_is_resynced_then_restarted() {
    let lab = Lab::new("drift-worker");
    let extra = format!(
        "[drift]\ninterval_s = 1\n{}",
        lab.substitute_workers("hostile-worker", &[("dns", "stale")])
    );
    let mut daemon = Daemon::start(&lab, &base_config(&lab, &extra), &[]);
    daemon.skip_schema_check();
    // The periodic check finds it, sends the policy again, finds it again: restart.
    let w = wait_for(
        Duration::from_secs(10),
        "the stale DNS worker restarted",
        || {
            let w = daemon.workers()["dns"].clone();
            (w["restarts"].as_u64() >= Some(1)).then_some(w)
        },
    );
    assert_eq!(w["violations"], 0, "drift is not a violation: {w}");
    let drift = &daemon.status_json().expect("status")["drift"];
    assert!(drift["checks"].as_u64() >= Some(2), "{drift}");
    assert!(drift["found_total"].as_u64() >= Some(2), "{drift}");
    let log = daemon.log_text();
    assert!(
        log.contains("policy sent again (resync)")
            && log.contains("restarted (still another rule set after a resync)"),
        "{log}"
    );
}

/// `tc -j filter show dev pal0 HOOK` in the sensor namespace: the bpf filters' program names.
fn clsact_filters(lab: &Lab, hook: &str) -> Vec<String> {
    let out = lab
        .sensor("tc")
        .args(["-j", "filter", "show", "dev", SENSOR_IF, hook])
        .output()
        .expect("tc filter show");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Array(Vec::new()));
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["options"]["bpf_name"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn clsact_filters_are_replaced_at_restart_put_back_and_removed_on_detach() {
    let lab = Lab::new("clsact");
    lab.start_dnsmasq();
    let config = format!(
        "tc_attach = \"clsact\"\n{}",
        base_config(&lab, "[drift]\ninterval_s = 0\n[ip]\nxdp_mode = \"tc\"\n")
    );
    let observer = |hook: &str| {
        clsact_filters(&lab, hook)
            .into_iter()
            .filter(|n| n.starts_with("pal_tc_"))
            .collect::<Vec<_>>()
    };
    // One DNS query and its answer: exactly two DNS events (a second filter of the
    // observer at a hook would record each message twice).
    let dns_events = |daemon: &Daemon, name: &'static str| {
        lab.dig(&[name, "A"]);
        daemon.wait_event("the answer's event", Duration::from_secs(5), move |e| {
            e["event_type"] == "dns" && e["dns"]["rrname"] == name && e["dns"]["type"] == "answer"
        });
        std::thread::sleep(Duration::from_millis(300));
        daemon
            .events()
            .iter()
            .filter(|e| e["event_type"] == "dns" && e["dns"]["rrname"] == name)
            .count()
    };

    let first = Daemon::start(&lab, &config, &[]);
    first.wait_healthy();
    let status = first.status_json().expect("status");
    let modes: Vec<&str> = status["interfaces"][0]["attachments"]
        .as_array()
        .expect("attachments")
        .iter()
        .filter_map(|a| a["mode"].as_str())
        .collect();
    assert_eq!(modes, ["clsact"; 4], "{status}");
    // In the order they run: the IP policy before the observer, as with TCX.
    let ingress = ["pal_tc_block_ingress", "pal_tc_ingress"];
    let egress = ["pal_tc_block_egress", "pal_tc_egress"];
    assert_eq!(observer("ingress"), ingress);
    assert_eq!(observer("egress"), egress);
    assert_eq!(dns_events(&first, "one.example.test"), 2);
    assert_eq!(check(&first).0, 0, "clean");
    assert!(first.stop().success());
    // The filters outlive the daemon (enforcement and capture go on)...
    assert_eq!(observer("ingress"), ingress);

    // ...and the next start replaces them instead of adding a second pair.
    let second = Daemon::start(&lab, &config, &["--detach-on-exit"]);
    second.wait_healthy();
    assert_eq!(observer("ingress"), ingress);
    assert_eq!(observer("egress"), egress);
    assert_eq!(dns_events(&second, "two.example.test"), 2);

    // Deleted behind the daemon's back: found and put back.
    let out = lab
        .sensor("tc")
        .args(["filter", "del", "dev", SENSOR_IF, "ingress"])
        .output()
        .expect("tc filter del");
    assert!(out.status.success(), "{out:?}");
    assert!(observer("ingress").is_empty());
    let (code, report) = check(&second);
    assert_eq!(code, 1, "{report}");
    assert!(
        objects(&report)
            .iter()
            .any(|f| f.contains(&format!("filter {SENSOR_IF}/ingress"))
                && f.ends_with("repaired=true")),
        "{report}"
    );
    assert_eq!(observer("ingress"), ingress);
    assert_eq!(dns_events(&second, "three.example.test"), 2);

    // --detach-on-exit removes them.
    let control = second.control.clone();
    assert!(second.stop().success());
    assert!(observer("ingress").is_empty() && observer("egress").is_empty());

    // So does `palisade cleanup`, after a daemon that left them.
    let third = Daemon::start(&lab, &config, &[]);
    third.wait_healthy();
    assert!(third.stop().success());
    assert_eq!(observer("ingress"), ingress);
    // In the sensor's network namespace only (`ip netns exec` would bring a bpffs of its own).
    let out = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", lab.sensor_ns))
        .arg(palisade_tests::bin("palisade"))
        .arg("cleanup")
        .arg("--pin-root")
        .arg(&lab.pin_root)
        .arg("--control-socket")
        .arg(&control)
        .arg("--config")
        .arg(lab.dir.join("palisade.toml"))
        .arg("--json")
        .output()
        .expect("palisade cleanup");
    assert!(out.status.success(), "{out:?}");
    let cleaned: Value = serde_json::from_slice(&out.stdout).expect("cleanup --json");
    assert_eq!(cleaned["clsact_filters_removed"], 4, "{cleaned}");
    assert!(observer("ingress").is_empty() && observer("egress").is_empty());
}
