//! The command line: one file per subcommand. The clap doc comments are the `--help` text,
//! the man pages and the shell completions (`palisade generate`, [`generate`]), so they are
//! written for all three.
//!
//! Conventions every subcommand keeps:
//! - `--config FILE` (default [`crate::paths::CONFIG_FILE`]) names the configuration whose
//!   `paths.control_socket` (and, for `cleanup`, `paths.pin_root`) a client command uses when
//!   `--control-socket` is not given; a missing default file means the built-in defaults, a
//!   missing file given with `--config` is an error.
//! - `--json` on every command that prints data or a result: one JSON document on stdout;
//!   on failure stdout stays empty and stderr gets one line `{"error": {"kind": ...,
//!   "message": ...}}` (shapes: docs/operations.md).
//! - Exit status: [`crate::control::client::exit`]; a malformed argument is a usage error
//!   (2) found by clap before anything is read or asked.

mod block;
mod check;
mod check_config;
mod cleanup;
mod devices;
mod dns;
mod feature;
mod flows;
pub mod generate;
mod guard;
mod log_level;
mod metrics;
mod reload;
mod reopen_logs;
mod replay;
mod restart;
mod run;
mod status;
mod tls;
mod trace;
mod version;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::{
    config::{ClientPaths, ConfigError},
    control::client::{ClientError, exit},
};

/// Palisade: privilege-separated eBPF network sensor.
///
/// `palisade run` starts the supervisor (as root): it loads and pins the eBPF programs,
/// attaches them to the interfaces and runs one unprivileged worker per protocol (DHCP,
/// DNS, TLS, flow), each writing JSON-lines events. The other subcommands talk to a running
/// supervisor over its control socket (root may run every command; members of the control
/// group the read-only ones), except `check-config`, which validates a configuration
/// offline, and `cleanup`, which removes the pins of a stopped daemon.
///
/// Every command takes `--config FILE` (default /etc/palisade/palisade.toml): client
/// commands read `paths.control_socket` from it unless `--control-socket` is given. Commands
/// that print data or a result take `--json`.
///
/// Exit status: 0 success, 1 failure, 2 usage error, 3 daemon not running, 4 permission
/// denied (including a request the daemon refused), 5 protocol version mismatch with the
/// daemon.
#[derive(Debug, Parser)]
#[command(name = "palisade", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where to reach the daemon.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ControlArgs {
    /// Configuration file to read `paths.control_socket` from [default:
    /// /etc/palisade/palisade.toml; the built-in socket path when that file does not exist].
    /// Only the `[paths]` keys are read here; the daemon validates the rest on reload.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Control socket of the daemon (overrides `paths.control_socket` of the configuration)
    /// [default: /run/palisade/control.sock].
    #[arg(long, value_name = "PATH")]
    control_socket: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    Run(run::Args),
    CheckConfig(check_config::Args),
    Status(status::Args),
    Restart(restart::Args),
    Reload(reload::Args),
    Check(check::Args),
    ReopenLogs(reopen_logs::Args),
    Metrics(metrics::Args),
    Dns(dns::Args),
    Flows(flows::Args),
    Block(block::Args),
    Devices(devices::Args),
    Guard(guard::Args),
    Feature(feature::Args),
    LogLevel(log_level::Args),
    Tls(tls::Args),
    Trace(trace::Args),
    Version(version::Args),
    Cleanup(cleanup::Args),
    Replay(replay::Args),
    #[command(hide = true)]
    Generate(generate::Args),
}

/// Runs the chosen subcommand.
pub fn dispatch(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Run(a) => run::main(a),
        Command::CheckConfig(a) => check_config::main(a),
        Command::Status(a) => status::main(a),
        Command::Restart(a) => restart::main(a),
        Command::Reload(a) => reload::main(a),
        Command::Check(a) => check::main(a),
        Command::ReopenLogs(a) => reopen_logs::main(a),
        Command::Metrics(a) => metrics::main(a),
        Command::Dns(a) => dns::main(a),
        Command::Flows(a) => flows::main(a),
        Command::Block(a) => block::main(a),
        Command::Devices(a) => devices::main(a),
        Command::Guard(a) => guard::main(a),
        Command::Feature(a) => feature::main(a),
        Command::LogLevel(a) => log_level::main(a),
        Command::Tls(a) => tls::main(a),
        Command::Trace(a) => trace::main(a),
        Command::Version(a) => version::main(a),
        Command::Cleanup(a) => cleanup::main(a),
        Command::Replay(a) => replay::main(a),
        Command::Generate(a) => generate::main(a),
    }
}

/// What kind of failure a command had: its exit status and its `kind` in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The request failed or was invalid (exit 1).
    Failed,
    /// No daemon on the control socket (exit 3).
    NotRunning,
    /// The caller may not do this: the socket, a file, or the daemon refused (exit 4).
    PermissionDenied,
    /// The daemon speaks another protocol version (exit 5).
    Protocol,
}

impl FailureKind {
    /// The exit status.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Failed => exit::FAILED,
            Self::NotRunning => exit::NOT_RUNNING,
            Self::PermissionDenied => exit::PERMISSION,
            Self::Protocol => exit::PROTOCOL,
        }
    }
}

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// What kind of failure.
    pub kind: FailureKind,
    /// The message, as printed on stderr (without the `palisade: ` prefix).
    pub message: String,
}

impl Failure {
    fn failed(message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Failed,
            message: message.into(),
        }
    }

    /// Prints it on stderr (with `json`, as one line `{"error": {"kind", "message"}}`; stdout
    /// stays empty, so that it holds JSON only when there is a result) and returns the exit
    /// status.
    fn report(&self, json: bool) -> ExitCode {
        #[derive(Serialize)]
        struct Error<'a> {
            error: &'a Failure,
        }
        match serde_json::to_string(&Error { error: self }) {
            Ok(line) if json => eprintln!("{line}"),
            _ => eprintln!("palisade: {}", self.message),
        }
        ExitCode::from(self.kind.exit_code())
    }
}

impl From<&ClientError> for Failure {
    fn from(err: &ClientError) -> Self {
        let kind = match err {
            ClientError::NotRunning { .. } => FailureKind::NotRunning,
            ClientError::Permission { .. } | ClientError::Refused(_) => {
                FailureKind::PermissionDenied
            }
            ClientError::Protocol { .. } => FailureKind::Protocol,
            ClientError::Failed(_) | ClientError::Io { .. } => FailureKind::Failed,
        };
        debug_assert_eq!(kind.exit_code(), err.exit_code());
        Self {
            kind,
            message: crate::error_chain(err),
        }
    }
}

impl From<&ConfigError> for Failure {
    fn from(err: &ConfigError) -> Self {
        let denied = matches!(err, ConfigError::Read { source, .. }
            if source.kind() == std::io::ErrorKind::PermissionDenied);
        Self {
            kind: if denied {
                FailureKind::PermissionDenied
            } else {
                FailureKind::Failed
            },
            message: crate::error_chain(err),
        }
    }
}

/// The paths a client command uses: from `config` (`None`: `default`, where a missing file
/// means the built-in paths), then the flag `control_socket` over the file's.
fn client_paths(
    config: Option<&Path>,
    default: &Path,
    control_socket: Option<&Path>,
) -> Result<ClientPaths, Failure> {
    let mut paths = match config {
        Some(file) => ClientPaths::load(file).map_err(|e| Failure::from(&e))?,
        None => match ClientPaths::load(default) {
            Ok(p) => Ok(p),
            Err(ConfigError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(ClientPaths::default())
            }
            Err(e) => Err(Failure::from(&e)),
        }?,
    };
    if let Some(socket) = control_socket {
        paths.control_socket = socket.to_owned();
    }
    Ok(paths)
}

impl ControlArgs {
    /// The configuration's paths with the flags applied.
    fn paths(&self) -> Result<ClientPaths, Failure> {
        client_paths(
            self.config.as_deref(),
            Path::new(crate::paths::CONFIG_FILE),
            self.control_socket.as_deref(),
        )
    }

    /// The control socket to use.
    fn socket(&self) -> Result<PathBuf, Failure> {
        // The flag alone decides: no file is read (nor can a broken one get in the way).
        if let (Some(socket), None) = (&self.control_socket, &self.config) {
            return Ok(socket.clone());
        }
        self.paths().map(|p| p.control_socket)
    }
}

/// `90`, `90s`, `30m`, `12h`, `7d`.
pub(super) fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let (digits, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, ""), |i| text.split_at(i));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?}: expected a number with s, m, h or d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(format!("{text:?}: unit must be s, m, h or d")),
    };
    if secs == 0 {
        return Err("a duration of at least 1 s".into());
    }
    Ok(std::time::Duration::from_secs(secs))
}

/// Sends one request to the daemon; on failure reports why (see [`Failure::report`]) and
/// returns the exit status to use.
fn ask(
    control: &ControlArgs,
    json: bool,
    req: &palisade_ipc::messages::ControlRequest,
) -> Result<palisade_ipc::messages::ControlResponse, ExitCode> {
    let socket = control.socket().map_err(|f| f.report(json))?;
    crate::control::client::request(&socket, req).map_err(|e| Failure::from(&e).report(json))
}

/// An answer of the wrong kind (a daemon bug): says so.
fn unexpected(json: bool, answer: &palisade_ipc::messages::ControlResponse) -> ExitCode {
    Failure::failed(format!("unexpected answer from the daemon: {answer:?}")).report(json)
}

/// Prints `value` as pretty JSON.
fn print_json<T: Serialize>(value: &T) -> ExitCode {
    match serde_json::to_string_pretty(value) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("palisade: rendering JSON: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::CommandFactory;

    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn config_decides_the_socket_unless_the_flag_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("p.toml");
        std::fs::write(
            &file,
            "[paths]\ncontrol_socket = \"/x/c.sock\"\npin_root = \"/sys/fs/bpf/x\"\n",
        )
        .expect("write");
        let missing = dir.path().join("missing.toml");
        // A missing default file: the built-in paths.
        assert_eq!(
            client_paths(None, &missing, None),
            Ok(ClientPaths::default())
        );
        // The default file when it exists, an explicit one otherwise.
        for (config, default) in [(None, file.as_path()), (Some(file.as_path()), &missing)] {
            let p = client_paths(config, default, None).expect("read");
            assert_eq!(p.control_socket, PathBuf::from("/x/c.sock"));
            assert_eq!(p.pin_root, PathBuf::from("/sys/fs/bpf/x"));
        }
        // The flag wins over the file.
        let p = client_paths(Some(&file), &missing, Some(Path::new("/y.sock"))).expect("read");
        assert_eq!(p.control_socket, PathBuf::from("/y.sock"));
        // A missing file given explicitly is an error that names it.
        let f = client_paths(Some(&missing), &file, None).expect_err("missing");
        assert_eq!(f.kind, FailureKind::Failed);
        assert!(f.message.contains("missing.toml: cannot read"), "{f:?}");
        // A broken [paths] too; mistakes elsewhere in the file do not matter here.
        std::fs::write(&file, "[paths]\ncontrol_socket = 3\n").expect("write");
        assert!(client_paths(None, &file, None).is_err());
        std::fs::write(&file, "[dns]\nblock_action = \"bounce\"\n").expect("write");
        assert_eq!(client_paths(None, &file, None), Ok(ClientPaths::default()));
    }

    #[test]
    fn failures_keep_the_client_exit_codes() {
        let errors = [
            ClientError::NotRunning {
                path: "/s".into(),
                errno: nix::errno::Errno::ENOENT,
            },
            ClientError::Permission { path: "/s".into() },
            ClientError::Refused("no".into()),
            ClientError::Failed("bad".into()),
        ];
        for e in &errors {
            assert_eq!(Failure::from(e).kind.exit_code(), e.exit_code(), "{e}");
        }
        let json = serde_json::to_value(Failure::from(&ClientError::Refused("uid 1".into())))
            .expect("json");
        assert_eq!(
            json,
            serde_json::json!({"kind": "permission_denied", "message": "permission denied: uid 1"})
        );
    }
}
