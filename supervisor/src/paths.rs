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
/// LogsDirectory.
pub const LOG_DIR: &str = "/var/log/palisade";
/// Where packages install worker binaries.
pub const LIBEXEC_DIR: &str = "/usr/libexec/palisade";
/// Group allowed read-only control commands.
pub const CONTROL_GROUP: &str = "palisade";

/// Mode of the control socket: owner root, group [`CONTROL_GROUP`].
pub const CONTROL_SOCKET_MODE: u32 = 0o660;
/// Mode of event log files.
pub const LOG_FILE_MODE: u32 = 0o640;
/// Mode of pin directories (pins themselves are 0600 by the kernel).
pub const PIN_DIR_MODE: u32 = 0o700;

/// Prefix of a pin that is being written; a crash leaves it as debris that
/// start-up removes. (bpffs refuses names containing a dot.)
pub const STAGING_PREFIX: &str = "staging-";

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
