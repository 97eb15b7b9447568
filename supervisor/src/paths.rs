//! Every default path and permission mode, in one place. They match the
//! systemd unit's RuntimeDirectory=palisade, StateDirectory=palisade,
//! LogsDirectory=palisade and ConfigurationDirectory=palisade.

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
