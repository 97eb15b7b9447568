//! Every default path and permission mode, in one place. They match the
//! systemd unit's RuntimeDirectory=palisade, StateDirectory=palisade,
//! LogsDirectory=palisade and ConfigurationDirectory=palisade.

/// Configuration file (ConfigurationDirectory): what every command reads when not given
/// `--config`; a missing one means the built-in default (the same settings).
pub const CONFIG_FILE: &str = "/etc/palisade/palisade.toml";
/// Control socket (RuntimeDirectory).
pub const CONTROL_SOCKET: &str = "/run/palisade/control.sock";
/// bpffs pin root; the ABI-versioned directory lives below it.
pub const PIN_ROOT: &str = "/sys/fs/bpf/palisade";
/// Where bpffs is normally mounted.
pub const BPFFS_MOUNT: &str = "/sys/fs/bpf";
/// StateDirectory.
pub const STATE_DIR: &str = "/var/lib/palisade";
/// The DHCP worker's device inventory, in the state directory.
pub const DEVICES_FILE: &str = "devices.jsonl";
/// Mode of the device inventory file (owner root; the DHCP worker writes it through the FD
/// it is given).
pub const DEVICES_FILE_MODE: u32 = 0o600;
/// Debian's `ieee-data` package: the IEEE MAC registries (MA-L, MA-M, MA-S) as CSV.
pub const IEEE_DATA_DIR: &str = "/usr/share/ieee-data";
/// LogsDirectory.
pub const LOG_DIR: &str = "/var/log/palisade";
/// Where packages install worker binaries.
pub const LIBEXEC_DIR: &str = "/usr/libexec/palisade";
/// Group allowed read-only control commands.
pub const CONTROL_GROUP: &str = "palisade";
/// Group the package creates for readers of the event logs, and the packaged configuration
/// names as `paths.log_group` (a configuration without that key: no group, root only).
pub const LOG_GROUP: &str = "palisade-log";

/// Mode of the control socket: owner root, group [`CONTROL_GROUP`].
pub const CONTROL_SOCKET_MODE: u32 = 0o660;
/// Mode of event log files, owner root, group `paths.log_group` (root without one). Set
/// explicitly on every file the daemon opens, whatever the umask.
pub const LOG_FILE_MODE: u32 = 0o640;
/// Mode of `<log_dir>`, owner root, group `paths.log_group` (root without one): the group
/// may enter and list it. Not set-group-ID: the unit forbids setting that bit
/// (`RestrictSUIDSGID=yes`), and nothing needs it (logrotate's `create` copies the
/// rotated file's group and mode; the daemon sets them on every file it opens).
pub const LOG_DIR_MODE: u32 = 0o750;
/// Mode of pin directories (pins themselves are 0600 by the kernel).
pub const PIN_DIR_MODE: u32 = 0o700;

/// Prefix of a pin that is being written; a crash leaves it as debris that
/// start-up removes. (bpffs refuses names containing a dot.)
pub const STAGING_PREFIX: &str = "staging-";

/// Whether `dir` is a directory other software shares (`/`, a top-level directory, anything
/// directly under `/usr`, the shared ones under `/var` and `/run`): the daemon sets the
/// group and mode of its `log_dir`, so that must be a directory of its own. A path with
/// `..` counts as shared (it could name any of these).
pub fn is_shared_dir(dir: &std::path::Path) -> bool {
    use std::path::Component;
    const SHARED_UNDER_VAR: &[&str] = &[
        "backups", "cache", "lib", "local", "lock", "log", "mail", "opt", "run", "spool", "tmp",
    ];
    const SHARED_UNDER_RUN: &[&str] = &["lock", "user"];
    let mut names = Vec::new();
    for c in dir.components() {
        match c {
            Component::Normal(n) => names.push(n.to_str().unwrap_or("")),
            Component::ParentDir => return true,
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    match names.as_slice() {
        [] | [_] => true,
        ["usr", _] => true,
        ["var", name] => SHARED_UNDER_VAR.contains(name),
        ["run", name] => SHARED_UNDER_RUN.contains(name),
        _ => false,
    }
}

/// ABI-versioned pin directory name.
pub fn pin_dir_name() -> String {
    format!("v{}", palisade_abi::ABI_VERSION)
}

/// Largest configuration or list file read (a million-prefix list is about 20 MiB).
pub const MAX_INPUT_FILE: u64 = 512 << 20;

/// Reads a configuration or list file operators name. Only a regular file is read: a FIFO,
/// a device or a socket would block the daemon's event loop (or never end), so it is refused
/// without waiting (opened non-blocking, checked with fstat), as is a file over
/// [`MAX_INPUT_FILE`].
pub fn read_input_file(path: &std::path::Path) -> std::io::Result<String> {
    use std::{io::Read, os::unix::fs::OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if meta.len() > MAX_INPUT_FILE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("larger than {} MiB", MAX_INPUT_FILE >> 20),
        ));
    }
    let mut text = String::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_string(&mut text)?;
    Ok(text)
}
