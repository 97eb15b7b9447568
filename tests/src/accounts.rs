//! Temporary system accounts for a test: one group and users that are, or are not, its
//! members, made with groupadd/useradd and removed on `Drop` (also when the test panics).
//! Names carry the test process id and a counter, so that tests running in parallel, and
//! test runs at the same time, never share one. Accounts are made one at a time in a
//! process, and retried when another process holds the lock of /etc/passwd.

use std::{
    process::{Command, Output},
    sync::{
        Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

static COUNTER: AtomicU32 = AtomicU32::new(0);
static ACCOUNTS_LOCK: Mutex<()> = Mutex::new(());

/// A temporary group and its users.
#[derive(Debug)]
pub struct TempGroup {
    /// Group name.
    pub name: String,
    /// Group id.
    pub gid: u32,
    users: Vec<String>,
}

/// A temporary user (removed with its [`TempGroup`]).
#[derive(Debug, Clone)]
pub struct TempUser {
    /// User name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Its own primary group's id (not the [`TempGroup`]'s).
    pub gid: u32,
}

/// Runs an account command, retrying while another process holds the account files' lock.
fn account_cmd(program: &str, args: &[&str]) -> Output {
    let _serial = ACCOUNTS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut last = None;
    for _ in 0..50 {
        let out = Command::new(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("spawning {program}: {e}"));
        if out.status.success() {
            return out;
        }
        last = Some(out);
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = last.expect("at least one attempt");
    panic!(
        "{program} {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TempGroup {
    /// Creates a system group named after `tag` (a few letters), the process and a counter.
    pub fn new(tag: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("pt{}{}g{n}", tag, std::process::id());
        account_cmd("groupadd", &["--system", &name]);
        let gid = nix::unistd::Group::from_name(&name)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("group {name} just created"))
            .gid
            .as_raw();
        Self {
            name,
            gid,
            users: Vec::new(),
        }
    }

    /// Creates a system user (no home, no shell, a primary group of its own), a
    /// supplementary member of this group when `member`.
    pub fn user(&mut self, tag: &str, member: bool) -> TempUser {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("pt{}{}u{n}", tag, std::process::id());
        let mut args = vec![
            "--system",
            "--no-create-home",
            "--home-dir",
            "/",
            "--shell",
            "/usr/sbin/nologin",
            "--user-group",
        ];
        if member {
            args.extend(["--groups", self.name.as_str()]);
        }
        args.push(&name);
        account_cmd("useradd", &args);
        self.users.push(name.clone());
        let user = nix::unistd::User::from_name(&name)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("user {name} just created"));
        TempUser {
            name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        }
    }
}

impl TempUser {
    /// `program` run as this user with its groups from /etc/group (what a login or a
    /// service of that user gets), no capabilities.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid",
            &self.uid.to_string(),
            "--regid",
            &self.gid.to_string(),
        ])
        .args(["--init-groups", "--inh-caps=-all", "--bounding-set=-all"])
        .arg("--")
        .arg(program);
        c
    }
}

impl Drop for TempGroup {
    fn drop(&mut self) {
        let _serial = ACCOUNTS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        for user in &self.users {
            let _ = Command::new("userdel").arg(user).output();
        }
        let _ = Command::new("groupdel").arg(&self.name).output();
    }
}
