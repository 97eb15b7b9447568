//! DNS policy end to end: block lists enforced by the kernel (dnsmasq
//! never sees blocked names), allow lists, regex-learned blocks, reloads
//! that keep the old rules when a list is broken, and the CLI.

#![expect(
    clippy::indexing_slicing,
    reason = "tests index JSON values; a panic is a test failure"
)]

use std::{fs, time::Duration};

use palisade_tests::{Daemon, Lab, Side, base_config, wait_for};

fn status_of(dig: &str) -> &str {
    dig.lines()
        .find_map(|l| l.split("status: ").nth(1))
        .and_then(|s| s.split(',').next())
        .unwrap_or("NO ANSWER")
}

fn policy_config(lab: &Lab, action: &str) -> String {
    let d = &lab.dir;
    fs::write(d.join("block.txt"), "# exact, suffix, hosts, adblock\nexact.example.test\n*.suffix.example.test\n0.0.0.0 hosts.example.test\n||adblock.example.test^\n||allowed.example.test^\n").expect("block list");
    fs::write(d.join("allow.txt"), "||ok.allowed.example.test^\n").expect("allow list");
    fs::write(
        d.join("regex.txt"),
        "# learned blocks\n^ads[0-9]+\\.example\\.test$\n",
    )
    .expect("regex list");
    base_config(
        lab,
        &format!(
            "[dns]\nblocklists = [\"{}\"]\nallowlists = [\"{}\"]\nregex_lists = [\"{}\"]\nblock_action = \"{action}\"\n",
            d.join("block.txt").display(),
            d.join("allow.txt").display(),
            d.join("regex.txt").display()
        ),
    )
}

#[test]
fn kernel_blocks_listed_names_before_the_resolver_sees_them() {
    let lab = Lab::new("dnsblock");
    lab.start_dnsmasq();
    let daemon = Daemon::start(&lab, &policy_config(&lab, "nxdomain"), &[]);
    daemon.wait_healthy();

    let blocked = [
        "exact.example.test",
        "suffix.example.test",
        "deep.sub.suffix.example.test",
        "hosts.example.test",
        "x.adblock.example.test",
        "allowed.example.test",
    ];
    for name in blocked {
        let out = lab.dig(&[name, "A"]);
        assert_eq!(status_of(&out), "NXDOMAIN", "{name}: {out}");
    }
    for name in [
        "sub.exact.example.test",
        "free.example.test",
        "ok.allowed.example.test",
        "a.ok.allowed.example.test",
    ] {
        let out = lab.dig(&[name, "A"]);
        assert_eq!(status_of(&out), "NOERROR", "{name} must resolve: {out}");
        assert!(out.contains("198.18.0.99"), "{name}: {out}");
    }
    // AAAA and mixed case are blocked too (names are normalized alike).
    assert_eq!(
        status_of(&lab.dig(&["EXACT.Example.TEST.", "AAAA"])),
        "NXDOMAIN"
    );

    let log = lab.dnsmasq_log();
    for name in blocked {
        assert!(
            !log.contains(&format!(" {name} from")),
            "dnsmasq saw blocked {name}:\n{log}"
        );
    }
    assert!(
        log.contains("ok.allowed.example.test from"),
        "dnsmasq answered the allowed name:\n{log}"
    );

    // The blocked query is logged with the policy decision.
    let e = daemon.wait_event("blocked query event", Duration::from_secs(5), |e| {
        e["event_type"] == "dns"
            && e["dns"]["rrname"] == "exact.example.test"
            && e["dns"]["type"] == "query"
    });
    assert_eq!(e["palisade"]["dns"]["policy"]["action"], "blocked", "{e}");

    // CLI: which rule decides, and hit counters.
    let t = daemon.ctl(&["dns", "test", "deep.sub.suffix.example.test"]);
    let t = String::from_utf8_lossy(&t.stdout);
    assert!(
        t.contains("blocked by block suffix suffix.example.test") && t.contains("block.txt:3"),
        "{t}"
    );
    let t = daemon.ctl(&["dns", "test", "ok.allowed.example.test"]);
    assert!(
        String::from_utf8_lossy(&t.stdout)
            .contains("allowed by allow suffix ok.allowed.example.test")
    );
    let hits = daemon.ctl(&["dns", "blocked-hits", "--json"]);
    let hits: serde_json::Value = serde_json::from_slice(&hits.stdout).expect("hits json");
    let suffix = hits
        .as_array()
        .expect("array")
        .iter()
        .find(|h| {
            h["rule"]
                .as_str()
                .is_some_and(|r| r.contains("suffix suffix.example.test"))
        })
        .expect("suffix rule hit");
    assert!(suffix["hits"].as_u64() >= Some(2), "{hits}");
    let status = daemon.status_json().expect("status");
    // 6 names from the lists, plus the built-in DoH canary.
    assert_eq!(status["dns"]["kernel_rules"], 7);
    assert_eq!(
        status_of(&lab.dig(&["use-application-dns.net", "A"])),
        "NXDOMAIN",
        "Firefox DoH canary"
    );

    // Block counters in the metrics.
    let metrics = daemon.ctl(&["metrics"]);
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    let blocked: u64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                "palisade_kernel_events_total{counter=\"blocked_nxdomain\",group=\"dns_policy\"} ",
            )
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no blocked_nxdomain metric:\n{metrics}"));
    assert!(blocked >= 8, "{blocked} queries blocked");
    assert!(metrics.contains("palisade_dns_kernel_rules 7"), "{metrics}");
    assert!(
        metrics.contains("palisade_worker_up{state=\"running\",worker=\"dns\"} 1"),
        "{metrics}"
    );
    assert_eq!(
        status["dns"]["worker_ruleset_sha256"], status["dns"]["ruleset_sha256"],
        "the worker applies our rule set"
    );
}

#[test]
fn queries_arriving_on_ingress_are_answered_by_the_kernel() {
    // The appliance runs the resolver; clients ask from the other side.
    let lab = Lab::new("dnsingress");
    lab.start_dnsmasq_on(Side::Sensor);
    let daemon = Daemon::start(&lab, &policy_config(&lab, "nxdomain"), &[]);
    daemon.wait_healthy();
    let out = lab.dig_from(Side::Peer, &["exact.example.test", "A"]);
    assert_eq!(status_of(&out), "NXDOMAIN", "{out}");
    let out = lab.dig_from(Side::Peer, &["free.example.test", "A"]);
    assert_eq!(status_of(&out), "NOERROR", "{out}");
    assert!(!lab.dnsmasq_log().contains("exact.example.test from"));
}

#[test]
fn drop_action_makes_blocked_queries_time_out() {
    let lab = Lab::new("dnsdrop");
    lab.start_dnsmasq();
    let daemon = Daemon::start(&lab, &policy_config(&lab, "drop"), &[]);
    daemon.wait_healthy();
    let out = lab.dig(&["exact.example.test", "A"]);
    assert_eq!(status_of(&out), "NO ANSWER", "{out}");
    assert!(
        out.contains("timed out") || out.contains("no servers could be reached"),
        "{out}"
    );
    assert_eq!(status_of(&lab.dig(&["free.example.test", "A"])), "NOERROR");
}

#[test]
fn regex_matches_are_learned_and_blocked_from_the_next_query() {
    let lab = Lab::new("dnsregex");
    lab.start_dnsmasq();
    let daemon = Daemon::start(&lab, &policy_config(&lab, "nxdomain"), &[]);
    daemon.wait_healthy();
    // First query: the kernel has no rule yet; the worker matches the regex
    // and asks the supervisor to learn the name.
    let asked = std::time::Instant::now();
    lab.dig(&["ads42.example.test", "A"]);
    let e = daemon.wait_event("block request event", Duration::from_secs(5), |e| {
        e["dns"]["rrname"] == "ads42.example.test" && e["dns"]["type"] == "query"
    });
    assert_eq!(
        e["palisade"]["dns"]["policy"]["action"], "block_requested",
        "{e}"
    );
    wait_for(Duration::from_secs(3), "the learned block", || {
        let t = daemon.ctl(&["dns", "test", "ads42.example.test"]);
        String::from_utf8_lossy(&t.stdout)
            .contains("learned")
            .then_some(())
    });
    // The leak window: from the first query until the kernel blocks the
    // name (an upper bound: it includes dig's round trip and the polling).
    let window = asked.elapsed();
    eprintln!("regex verdict in force {window:?} after the first query was sent");
    assert!(window < Duration::from_secs(1), "verdict took {window:?}");
    // From the next query on, the kernel answers.
    let before = lab.dnsmasq_log().matches("ads42.example.test from").count();
    let out = lab.dig(&["ads42.example.test", "A"]);
    assert_eq!(status_of(&out), "NXDOMAIN", "{out}");
    assert_eq!(
        lab.dnsmasq_log().matches("ads42.example.test from").count(),
        before,
        "the resolver did not see it again"
    );
    // Other names are untouched.
    assert_eq!(status_of(&lab.dig(&["ads.example.test", "A"])), "NOERROR");
    assert_eq!(daemon.status_json().expect("status")["dns"]["learned"], 1);
}

#[test]
fn reload_applies_valid_lists_and_keeps_the_old_rules_on_errors() {
    let lab = Lab::new("dnsreload");
    lab.start_dnsmasq();
    let daemon = Daemon::start(&lab, &policy_config(&lab, "nxdomain"), &[]);
    daemon.wait_healthy();
    let sha = daemon.status_json().expect("status")["dns"]["ruleset_sha256"].clone();

    // A broken list: reload refused, old rules stay in force.
    fs::write(
        lab.dir.join("block.txt"),
        "new.example.test\nthis is not a rule\n",
    )
    .expect("write");
    let out = daemon.ctl(&["reload"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("block.txt:2"), "{err}");
    assert_eq!(
        status_of(&lab.dig(&["exact.example.test", "A"])),
        "NXDOMAIN",
        "old rule still enforced"
    );
    assert_eq!(
        status_of(&lab.dig(&["new.example.test", "A"])),
        "NOERROR",
        "half a list never applies"
    );
    assert_eq!(
        daemon.status_json().expect("status")["dns"]["ruleset_sha256"],
        sha
    );

    // A valid list: swapped in whole.
    fs::write(lab.dir.join("block.txt"), "new.example.test\n").expect("write");
    let out = daemon.ctl(&["reload"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(status_of(&lab.dig(&["new.example.test", "A"])), "NXDOMAIN");
    assert_eq!(
        status_of(&lab.dig(&["exact.example.test", "A"])),
        "NOERROR",
        "old rule gone"
    );
    let s = daemon.status_json().expect("status");
    assert_ne!(s["dns"]["ruleset_sha256"], sha);
    wait_for(
        Duration::from_secs(3),
        "worker confirms the new rule set",
        || {
            let s = daemon.status_json()?;
            (s["dns"]["worker_ruleset_sha256"] == s["dns"]["ruleset_sha256"]).then_some(())
        },
    );

    // SIGHUP does the same.
    fs::write(lab.dir.join("block.txt"), "hup.example.test\n").expect("write");
    // SAFETY: kill(2) on our daemon.
    unsafe { libc::kill(daemon.pid() as i32, libc::SIGHUP) };
    wait_for(Duration::from_secs(3), "SIGHUP reload", || {
        (status_of(&lab.dig(&["hup.example.test", "A"])) == "NXDOMAIN").then_some(())
    });
}

#[test]
fn check_config_validates_the_lists() {
    let lab = Lab::new("dnscheck");
    let cfg = policy_config(&lab, "nxdomain");
    let path = lab.dir.join("check.toml");
    fs::write(&path, &cfg).expect("write");
    let ok = std::process::Command::new(palisade_tests::bin("palisade"))
        .arg("check-config")
        .arg(&path)
        .output()
        .expect("run");
    assert!(ok.status.success(), "{ok:?}");
    fs::write(lab.dir.join("regex.txt"), "(unclosed\n").expect("write");
    let bad = std::process::Command::new(palisade_tests::bin("palisade"))
        .arg("check-config")
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("regex.txt:1"),
        "{bad:?}"
    );
}

#[test]
fn cname_chains_to_blocked_domains_and_encrypted_dns_raise_alerts() {
    let lab = Lab::new("dnscname");
    lab.start_dnsmasq_with(
        Side::Peer,
        &[
            "--host-record=t.cname-target.test,198.18.0.77",
            "--cname=alias.cname.test,t.cname-target.test",
        ],
    );
    fs::write(lab.dir.join("block.txt"), "||cname-target.test^\n").expect("list");
    let cfg = base_config(
        &lab,
        &format!(
            "[dns]\nblocklists = [\"{}\"]\nencrypted_dns_resolvers = [\"doh.example.test\", \"{}\"]\n",
            lab.dir.join("block.txt").display(),
            palisade_tests::PEER_IP
        ),
    );
    let daemon = Daemon::start(&lab, &cfg, &[]);
    daemon.wait_healthy();
    wait_for(
        Duration::from_secs(3),
        "both policy workers confirm the rule set",
        || {
            let s = daemon.status_json()?;
            (s["dns"]["worker_ruleset_sha256"] == s["dns"]["ruleset_sha256"]).then_some(())
        },
    );

    // The alias resolves through a CNAME to a blocked domain: the answer
    // passes once (its question is not blocked), the chain is reported, the
    // alias is learned, and the next query is answered by the kernel.
    let first = lab.dig(&["alias.cname.test", "A"]);
    assert!(
        first.contains("t.cname-target.test"),
        "dnsmasq answers with the CNAME: {first}"
    );
    let alert = daemon.wait_event("CNAME alert", Duration::from_secs(5), |e| {
        e["event_type"] == "alert" && e["alert"]["signature_id"] == 9_000_004
    });
    assert_eq!(alert["dns"]["rrname"], "alias.cname.test");
    assert_eq!(alert["palisade"]["dns"]["cname"], "t.cname-target.test");
    assert!(
        alert["palisade"]["dns"]["rule"]
            .as_str()
            .is_some_and(|r| r.contains("block suffix cname-target.test")),
        "{alert}"
    );
    assert_eq!(alert["alert"]["action"], "blocked");
    assert_eq!(status_of(&lab.dig(&["alias.cname.test", "A"])), "NXDOMAIN");

    // A query for a known DoH resolver name.
    lab.dig(&["doh.example.test", "A"]);
    let doh = daemon.wait_event("DoH name alert", Duration::from_secs(5), |e| {
        e["event_type"] == "alert" && e["alert"]["signature_id"] == 9_000_002
    });
    assert_eq!(doh["dns"]["rrname"], "doh.example.test");
    assert_eq!(doh["dest_port"], 53);

    // A DNS-over-TLS connection attempt (port 853) to a resolver address.
    let _ = lab
        .sensor("bash")
        .args(["-c", "exec 3<>/dev/tcp/198.18.0.2/853"])
        .output();
    let dot = daemon.wait_event("DoT alert", Duration::from_secs(5), |e| {
        e["event_type"] == "alert" && e["alert"]["signature_id"] == 9_000_001
    });
    assert_eq!(dot["dest_port"], 853);
    assert_eq!(dot["proto"], "TCP");
}
