//! Helpers for Palisade's integration tests: a two-namespace lab joined by a
//! veth pair, the real `palisade` daemon running in one namespace, real
//! peers (dnsmasq, dig) in the other, and readers for what comes out.
//!
//! Every test builds its own [`Lab`] (unique namespace names, so tests run in
//! parallel) and the lab tears everything down on `Drop`, also when the test
//! panics. Tests need root and a kernel with eBPF (see README.md here).

pub mod accounts;
pub mod corpus;
pub mod dhcp_compare;
pub mod eve_schema;
pub mod tls_compare;
use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead, BufReader},
    os::{
        fd::{AsRawFd, OwnedFd},
        unix::{fs::PermissionsExt, process::CommandExt},
    },
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::Value;

/// Address of the sensor side (where palisade runs).
pub const SENSOR_IP: &str = "198.18.0.1";
/// Address of the peer side (dnsmasq etc.).
pub const PEER_IP: &str = "198.18.0.2";
/// Interface name in the sensor namespace.
pub const SENSOR_IF: &str = "pal0";
/// Interface name in the peer namespace.
pub const PEER_IF: &str = "peer0";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Directory holding the workspace's built binaries (target/debug).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/debug/deps/<test> -> target/debug
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_owned()
}

/// Path of a workspace binary, checked to exist.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} missing: run `cargo build --workspace --bins` first (scripts/test does)",
        p.display()
    );
    p
}

/// Runs a command, panicking with its output if it fails.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Polls `f` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One end of the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Where palisade runs (its programs see this end's veth).
    Sensor,
    /// The other namespace.
    Peer,
}

/// Two network namespaces joined by a veth pair, plus a scratch directory
/// readable by unprivileged workers.
#[derive(Debug)]
pub struct Lab {
    /// Unique id of this lab.
    pub id: String,
    /// Namespace where palisade runs.
    pub sensor_ns: String,
    /// Namespace of the peers.
    pub peer_ns: String,
    /// Scratch directory (mode 0755), removed on drop.
    pub dir: PathBuf,
    /// Pin root for this lab's daemon, removed on drop.
    pub pin_root: PathBuf,
    children: Mutex<Vec<Child>>,
}

impl Lab {
    /// Builds the lab. `name` only makes debugging easier.
    pub fn new(name: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let id = format!(
            "{}-{}-{n}",
            name.chars().take(10).collect::<String>(),
            std::process::id()
        );
        let sensor_ns = format!("pal-{id}-s");
        let peer_ns = format!("pal-{id}-p");
        let dir = std::env::temp_dir().join(format!("palisade-test-{id}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("scratch dir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod scratch dir");
        let pin_root = PathBuf::from(format!("/sys/fs/bpf/palisade-test-{id}"));
        let lab = Self {
            id,
            sensor_ns,
            peer_ns,
            dir,
            pin_root,
            children: Mutex::new(Vec::new()),
        };
        run(Command::new("ip").args(["netns", "add", &lab.sensor_ns]));
        run(Command::new("ip").args(["netns", "add", &lab.peer_ns]));
        run(Command::new("ip").args([
            "link",
            "add",
            "name",
            SENSOR_IF,
            "netns",
            &lab.sensor_ns,
            "type",
            "veth",
            "peer",
            "name",
            PEER_IF,
            "netns",
            &lab.peer_ns,
        ]));
        for (ns, ifname, ip) in [
            (&lab.sensor_ns, SENSOR_IF, SENSOR_IP),
            (&lab.peer_ns, PEER_IF, PEER_IP),
        ] {
            run(Command::new("ip").args([
                "-n",
                ns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                ifname,
            ]));
            run(Command::new("ip").args(["-n", ns, "link", "set", ifname, "up"]));
            run(Command::new("ip").args(["-n", ns, "link", "set", "lo", "up"]));
        }
        lab
    }

    /// A command that runs inside the peer namespace.
    pub fn peer(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.peer_ns, program]);
        c
    }

    /// A command that runs inside the sensor namespace.
    pub fn sensor(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.sensor_ns, program]);
        c
    }

    /// Starts a long-running process owned by the lab (killed on drop).
    pub fn spawn(&self, mut cmd: Command) {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        self.children.lock().expect("lock").push(child);
    }

    /// Starts dnsmasq as the peer's DNS server: every name below
    /// `example.test` resolves to 198.18.0.99 / 2001:db8::99. Its query log
    /// goes to `<dir>/dnsmasq.log`.
    pub fn start_dnsmasq(&self) {
        self.start_dnsmasq_on(Side::Peer);
    }

    /// Starts dnsmasq on either side (on the sensor side it plays the
    /// appliance's own resolver; clients then ask from the peer side).
    pub fn start_dnsmasq_on(&self, side: Side) {
        self.start_dnsmasq_with(side, &[]);
    }

    /// As [`Lab::start_dnsmasq_on`], with extra dnsmasq options.
    pub fn start_dnsmasq_with(&self, side: Side, extra: &[&str]) {
        let log = self.dir.join("dnsmasq.log");
        let (mut cmd, ip) = match side {
            Side::Peer => (self.peer("dnsmasq"), PEER_IP),
            Side::Sensor => (self.sensor("dnsmasq"), SENSOR_IP),
        };
        cmd.args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            &format!("--listen-address={ip}"),
            "--address=/example.test/198.18.0.99",
            "--address=/example.test/2001:db8::99",
            "--log-queries",
            &format!("--log-facility={}", log.display()),
            &format!("--pid-file={}", self.dir.join("dnsmasq.pid").display()),
        ]);
        cmd.args(extra);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        self.spawn(cmd);
        // Ready when it answers.
        let client = match side {
            Side::Peer => Side::Sensor,
            Side::Sensor => Side::Peer,
        };
        wait_for(Duration::from_secs(5), "dnsmasq to answer", || {
            let out = self.dig_from(client, &["+short", "ready.example.test", "A"]);
            (out.contains("198.18.0.99")).then_some(())
        });
    }

    /// What dnsmasq logged so far (`query[A] name from ...` lines).
    pub fn dnsmasq_log(&self) -> String {
        fs::read_to_string(self.dir.join("dnsmasq.log")).unwrap_or_default()
    }

    /// Runs dig from `side` against the other side; returns stdout.
    pub fn dig_from(&self, side: Side, args: &[&str]) -> String {
        let (mut cmd, server) = match side {
            Side::Sensor => (self.sensor("dig"), PEER_IP),
            Side::Peer => (self.peer("dig"), SENSOR_IP),
        };
        let out = cmd
            .args([&format!("@{server}"), "+tries=1", "+time=1"])
            .args(args)
            .output()
            .expect("dig runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs dig in the sensor namespace against the peer; returns stdout.
    pub fn dig(&self, args: &[&str]) -> String {
        self.dig_from(Side::Sensor, args)
    }

    /// Programs attached at a TCX hook of the sensor interface, as the
    /// kernel reports them (BPF_PROG_QUERY): (program id, name).
    pub fn tcx_programs(&self, ingress: bool) -> Vec<(u32, String)> {
        let netns = self.sensor_netns_fd();
        // setns affects only the calling thread: query from a fresh one.
        std::thread::spawn(move || {
            // SAFETY: setns on a valid netns FD, on this thread only.
            assert_eq!(
                unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) },
                0,
                "setns"
            );
            let hook = if ingress {
                aya::programs::TcAttachType::Ingress
            } else {
                aya::programs::TcAttachType::Egress
            };
            let (_, progs) =
                aya::programs::SchedClassifier::query_tcx(SENSOR_IF, hook).expect("BPF_PROG_QUERY");
            progs
                .iter()
                .map(|p| (p.id(), p.name_as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .join()
        .expect("query thread")
    }

    /// Another tool's programs: bench/bpf/noop.bpf.c compiled into the lab's directory
    /// (`bench_noop`, a TC classifier; `bench_xdp_noop`, XDP).
    pub fn foreign_object(&self) -> PathBuf {
        let object = self.dir.join("foreign-noop.o");
        if object.exists() {
            return object;
        }
        let multiarch = run(Command::new("gcc").arg("-print-multiarch"));
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/bpf/noop.bpf.c");
        run(Command::new("clang-19")
            .args(["-O2", "-target", "bpf", "-c"])
            .arg(format!(
                "-I/usr/include/{}",
                String::from_utf8_lossy(&multiarch.stdout).trim()
            ))
            .arg(&source)
            .arg("-o")
            .arg(&object));
        object
    }

    /// Attaches another tool's program (the benchmark's no-op classifier, compiled here with
    /// clang-19) at a TCX hook of the sensor interface, first in line; it stays attached as
    /// long as the returned handle lives.
    pub fn attach_foreign(&self, ingress: bool) -> aya::Ebpf {
        let object = self.foreign_object();
        let netns = self.sensor_netns_fd();
        std::thread::spawn(move || {
            // SAFETY: setns on a valid netns FD, on this thread only.
            assert_eq!(
                unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) },
                0,
                "setns"
            );
            let mut ebpf = aya::Ebpf::load_file(&object).expect("load the no-op object");
            let prog: &mut aya::programs::SchedClassifier = ebpf
                .program_mut("bench_noop")
                .expect("bench_noop")
                .try_into()
                .expect("a classifier");
            prog.load().expect("load bench_noop");
            let hook = if ingress {
                aya::programs::TcAttachType::Ingress
            } else {
                aya::programs::TcAttachType::Egress
            };
            prog.attach_with_options(
                SENSOR_IF,
                hook,
                aya::programs::tc::TcAttachOptions::TcxOrder(aya::programs::LinkOrder::first()),
            )
            .expect("attach bench_noop first");
            ebpf
        })
        .join()
        .expect("attach thread")
    }

    /// [`Lab::tcx_programs`] without the IP policy's TC programs (`pal_tc_block_*`, which
    /// run first at both hooks): the observer's view.
    pub fn observer_programs(&self, ingress: bool) -> Vec<(u32, String)> {
        self.tcx_programs(ingress)
            .into_iter()
            .filter(|(_, name)| !name.starts_with("pal_tc_block"))
            .collect()
    }

    /// Config sections that put test binary `program` (`hostile-worker`,
    /// `probe-worker`) in the place of workers: for each (worker, behaviour)
    /// a symlink `<program minus -worker>-<behaviour>-<worker>` in the lab
    /// directory (the binary reads its behaviour from its name).
    pub fn substitute_workers(&self, program: &str, roles: &[(&str, &str)]) -> String {
        let target = bin(program);
        let prefix = program.trim_end_matches("-worker");
        let mut toml = String::new();
        for (kind, behaviour) in roles {
            let link = self.dir.join(format!("{prefix}-{behaviour}-{kind}"));
            std::os::unix::fs::symlink(&target, &link).expect("symlink");
            toml.push_str(&format!(
                "[workers.{kind}]\npath = \"{}\"\n",
                link.display()
            ));
        }
        toml
    }

    /// Runs `f` on a thread inside `side`'s network namespace: sockets it
    /// creates live there, and stay there when moved out.
    pub fn in_netns<T: Send>(&self, side: Side, f: impl FnOnce() -> T + Send) -> T {
        let ns = match side {
            Side::Sensor => &self.sensor_ns,
            Side::Peer => &self.peer_ns,
        };
        let file = fs::File::open(format!("/run/netns/{ns}")).expect("open netns");
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                    f()
                })
                .join()
                .expect("netns thread")
        })
    }

    /// Opens the sensor namespace (for `setns`).
    /// The daemon's versioned pin directory (`<pin root>/v<ABI>`).
    pub fn pin_dir(&self) -> PathBuf {
        self.pin_root
            .join(format!("v{}", palisade_abi::ABI_VERSION))
    }

    pub fn sensor_netns_fd(&self) -> OwnedFd {
        fs::File::open(format!("/run/netns/{}", self.sensor_ns))
            .expect("open netns")
            .into()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for mut c in self
            .children
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.sensor_ns])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.peer_ns])
            .status();
        let _ = fs::remove_dir_all(&self.pin_root);
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("lab {} kept {} for inspection", self.id, self.dir.display());
        }
    }
}

/// A running `palisade run --foreground` in the lab's sensor namespace.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    /// The `palisade` binary it runs, whose CLI [`Daemon::ctl`] uses.
    cli: PathBuf,
    /// Control socket path.
    pub control: PathBuf,
    /// Config file written for this daemon.
    pub config: PathBuf,
    /// Daemon stderr log.
    pub log: PathBuf,
    lines: Arc<Mutex<Vec<String>>>,
    /// The thread collecting stdout (ends when every writer of the pipe is gone).
    reader: Option<std::thread::JoinHandle<()>>,
    /// Validate the events against Suricata's schema when stopped (see [`eve_schema`]).
    schema_check: bool,
}

/// `palisade run --foreground --config CONFIG` in the lab's sensor network namespace, as
/// the daemon of [`Daemon::start`] runs there: only the network namespace changes (`ip netns
/// exec` would also give it a private mount namespace with a bpffs of its own, whose pins
/// vanish with it and are invisible here). Waits at most 30 s.
pub fn run_in_sensor(lab: &Lab, config: &Path) -> Output {
    use std::os::{fd::AsRawFd, unix::process::CommandExt};
    let netns = lab.sensor_netns_fd();
    let raw = netns.as_raw_fd();
    let mut cmd = Command::new("timeout");
    cmd.arg("30")
        .arg(bin("palisade"))
        .args(["run", "--foreground", "--config"])
        .arg(config);
    // SAFETY: setns is async-signal-safe; `netns` outlives the spawn.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(raw, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("palisade run");
    drop(netns);
    out
}

/// Extra TOML for the config (worker sections etc.).
pub fn base_config(lab: &Lab, extra: &str) -> String {
    format!(
        "interfaces = [\"{SENSOR_IF}\"]\n[paths]\ncontrol_socket = \"{}\"\npin_root = \"{}\"\nstate_dir = \"{}\"\nlog_dir = \"{}\"\n{extra}",
        lab.dir.join("control.sock").display(),
        lab.pin_root.display(),
        lab.dir.join("state").display(),
        lab.dir.join("log").display(),
    )
}

impl Daemon {
    /// Starts the daemon with `config` (TOML) and extra args; waits until
    /// the control socket answers.
    pub fn start(lab: &Lab, config: &str, extra_args: &[&str]) -> Self {
        Self::start_with(lab, config, extra_args, true)
    }

    /// As [`Daemon::start`]; `foreground: false` makes the daemon write
    /// events to `<log_dir>/<protocol>.json` instead of stdout.
    pub fn start_with(lab: &Lab, config: &str, extra_args: &[&str], foreground: bool) -> Self {
        Self::start_wrapped(lab, config, extra_args, foreground, &[])
    }

    /// As [`Daemon::start_with`], started through `wrapper` (a command that ends by
    /// exec-ing its arguments, such as `setpriv ... --`), so that the pid stays the daemon's.
    pub fn start_wrapped(
        lab: &Lab,
        config: &str,
        extra_args: &[&str],
        foreground: bool,
        wrapper: &[&str],
    ) -> Self {
        Self::spawn(
            lab,
            config,
            extra_args,
            foreground,
            wrapper,
            &bin("palisade"),
        )
    }

    /// As [`Daemon::start`], with the `palisade` of another build (its directory, holding
    /// its workers too, as `scripts/build-previous-abi` prints it); [`Daemon::ctl`] then
    /// uses that build's CLI, which speaks its protocol version.
    pub fn start_build(lab: &Lab, config: &str, build: &Path) -> Self {
        Self::spawn(lab, config, &[], true, &[], &build.join("palisade"))
    }

    fn spawn(
        lab: &Lab,
        config: &str,
        extra_args: &[&str],
        foreground: bool,
        wrapper: &[&str],
        palisade: &Path,
    ) -> Self {
        let config_path = lab.dir.join("palisade.toml");
        fs::write(&config_path, config).expect("write config");
        let log = lab.dir.join("daemon.log");
        let netns = lab.sensor_netns_fd();
        let raw = netns.as_raw_fd();
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(palisade);
                c
            }
            None => Command::new(palisade),
        };
        cmd.arg("run");
        if foreground {
            cmd.arg("--foreground");
        }
        cmd.arg("--config")
            .arg(&config_path)
            .args(extra_args)
            .env("PALISADE_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log).expect("daemon log"));
        // SAFETY: setns is async-signal-safe; `netns` outlives spawn().
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(raw, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("spawn palisade run");
        drop(netns);
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().expect("lock").push(line);
            }
        });
        let control = lab.dir.join("control.sock");
        let daemon = Self {
            child: Some(child),
            cli: palisade.to_owned(),
            control,
            config: config_path,
            log,
            lines,
            reader: Some(reader),
            schema_check: true,
        };
        wait_for(Duration::from_secs(20), "the control socket", || {
            daemon.assert_alive();
            daemon
                .ctl(&["version"])
                .status
                .success()
                .then_some(())
                .filter(|()| daemon.status_json().is_some())
        });
        daemon
    }

    /// Panics (with the daemon log) if the daemon exited.
    pub fn assert_alive(&self) {
        if let Some(c) = self.child.as_ref() {
            // try_wait needs &mut; check /proc instead.
            let stat = fs::read_to_string(format!("/proc/{}/stat", c.id())).unwrap_or_default();
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().next())
                .unwrap_or("X");
            assert!(
                state != "Z" && state != "X",
                "palisade exited; log:\n{}",
                self.log_text()
            );
        }
    }

    /// The daemon's stderr so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Pid of the daemon.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("running")
    }

    /// Runs a `palisade` CLI subcommand against this daemon.
    pub fn ctl(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(&self.cli);
        cmd.args(args).arg("--control-socket").arg(&self.control);
        cmd.output().expect("palisade cli")
    }

    /// `palisade status --json`, parsed; `None` if it did not answer.
    pub fn status_json(&self) -> Option<Value> {
        let out = self.ctl(&["status", "--json"]);
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Worker entries of the status, by name.
    pub fn workers(&self) -> BTreeMap<String, Value> {
        let status = self.status_json().expect("status answers");
        status
            .get("workers")
            .and_then(Value::as_array)
            .expect("workers array")
            .iter()
            .map(|w| (w["kind"].as_str().unwrap_or_default().to_owned(), w.clone()))
            .collect()
    }

    /// Waits until every worker is running; returns their pids.
    pub fn wait_healthy(&self) -> BTreeMap<String, u32> {
        wait_for(Duration::from_secs(10), "four running workers", || {
            let w = self.workers();
            let ok = w.len() == 4
                && w.values()
                    .all(|v| v["state"] == "running" && v["last_heartbeat_ms_ago"].is_u64());
            ok.then(|| {
                w.iter()
                    .map(|(k, v)| (k.clone(), v["pid"].as_u64().unwrap_or(0) as u32))
                    .collect()
            })
        })
    }

    /// A kernel counter from `status` (`group` such as `dns` or `ip_policy`), `None` when
    /// status has no such counter.
    pub fn kernel_counter(&self, group: &str, counter: &str) -> Option<u64> {
        self.status_json()?
            .get("kernel")?
            .as_array()?
            .iter()
            .find(|k| k["group"] == group && k["counter"] == counter)?
            .get("value")?
            .as_u64()
    }

    /// Every event line so far, parsed.
    pub fn events(&self) -> Vec<Value> {
        self.lines
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Raw output lines so far.
    pub fn raw_lines(&self) -> Vec<String> {
        self.lines.lock().expect("lock").clone()
    }

    /// Waits for an event satisfying `pred`.
    pub fn wait_event(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        wait_for(timeout, what, || {
            self.events().into_iter().find(|e| pred(e))
        })
    }

    /// Does not validate this daemon's events against Suricata's schema: for tests whose
    /// substitute workers write deliberately broken output.
    pub fn skip_schema_check(&mut self) {
        self.schema_check = false;
    }

    /// Validates everything this daemon wrote (stdout and `<lab>/log/*.json`) against
    /// Suricata's EVE schema, once; panics with the report.
    fn check_schema(&mut self) {
        if !std::mem::replace(&mut self.schema_check, false) {
            return;
        }
        let log_dir = self
            .config
            .parent()
            .map(|d| d.join("log"))
            .unwrap_or_default();
        let lines = self.raw_lines();
        if let Err(report) = eve_schema::validate_output(&log_dir, &lines) {
            panic!("{report}");
        }
    }

    /// Sends SIGTERM and waits for the exit status; validates the events.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let status = self.terminate();
        self.check_schema();
        status
    }

    /// As [`Daemon::stop`], also returning every event it wrote, up to the last one its
    /// workers wrote while stopping (their output pipe is read to its end).
    pub fn stop_with_events(mut self) -> (std::process::ExitStatus, Vec<Value>) {
        let status = self.terminate();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.check_schema();
        (status, self.events())
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "palisade did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- palisade log ---\n{}", self.log_text());
        } else {
            self.check_schema();
        }
    }
}

/// Fields of /proc/PID/status, by key.
pub fn proc_status(pid: u32) -> BTreeMap<String, String> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

/// A DNS query (type A, RD) for `name` with id `id`, as a resolver's client sends it.
pub fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}
