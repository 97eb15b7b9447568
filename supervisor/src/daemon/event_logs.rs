//! The event logs: `<log_dir>/<kind>.json`, one JSON-lines file per worker, and their
//! directory.
//!
//! Without `paths.log_group` only root reads them: the directory is root:root 0750 and
//! the files root:root 0640. With a log group its members read them too (a log shipper's
//! account, say): the directory is root:<group> 0750 and the files root:<group> 0640.
//! The daemon sets group and mode itself: on the directory at start-up, on `reopen-logs`
//! and when a reload changes the group, and on every file it opens; whatever created them
//! before (an older configuration, logrotate, an operator), they end up as configured.
//! The files are root's and the supervisor is a member of the log group
//! ([`crate::users::join_groups`]), so this needs no CAP_CHOWN, which the unit does not
//! grant.

use std::{
    fs::OpenOptions,
    io,
    os::{
        fd::{AsFd, BorrowedFd, OwnedFd},
        unix::fs::OpenOptionsExt,
    },
    path::Path,
};

use nix::sys::stat::{Mode, fchmod, fstat};
use palisade_ipc::messages::WorkerKind;

use crate::paths::{LOG_DIR_MODE, LOG_FILE_MODE};

/// An event log (or its directory) could not be opened or given its group and mode.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct SinkError {
    what: String,
    #[source]
    source: io::Error,
}

impl SinkError {
    pub(super) fn new(what: String, source: io::Error) -> Self {
        Self { what, source }
    }
}

fn sink_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> SinkError {
    let what = what.into();
    move |source| SinkError { what, source }
}

/// The sink of `--foreground` mode: our stdout.
pub(super) fn dup_stdout() -> Result<OwnedFd, SinkError> {
    std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map_err(sink_err("dup stdout"))
}

/// Creates `dir` if it is missing and gives it the group and mode for `gid`.
pub(crate) fn prepare_dir(dir: &Path, gid: Option<u32>) -> Result<(), SinkError> {
    std::fs::create_dir_all(dir).map_err(sink_err(format!("mkdir {}", dir.display())))?;
    // The directory itself may be a symbolic link (an operator's choice); what it points to
    // must be a directory.
    let handle = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map_err(sink_err(format!("open {}", dir.display())))?;
    set_group_and_mode(handle.as_fd(), gid, LOG_DIR_MODE)
        .map_err(sink_err(format!("set group and mode of {}", dir.display())))
}

/// Opens (creating it if needed) `<dir>/<kind>.json` for appending, root:<group> 0640.
/// A symbolic link or anything but a regular file there is refused: the daemon would
/// otherwise change the group and mode of whatever it points to, or (a FIFO without a
/// reader) block. Opened non-blocking for that check only.
pub(crate) fn open(dir: &Path, kind: WorkerKind, gid: Option<u32>) -> Result<OwnedFd, SinkError> {
    open_named(dir, kind.name(), gid)
}

/// The supervisor's own event log, `<log_dir>/palisade.json` (drift events): opened for each
/// event (they are rare), so a rotation needs no reopen.
const SUPERVISOR_LOG: &str = "palisade";

/// Appends one event line the supervisor itself reports (JSON, no newline): to stdout with
/// `--foreground` (beside the workers' events, one `write` so it is not interleaved), else to
/// `<log_dir>/palisade.json`. Failures are logged, never fatal.
pub(super) fn write_own_event(foreground: bool, dir: &Path, gid: Option<u32>, line: &str) {
    use std::io::Write;
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    let written = if foreground {
        std::io::stdout().lock().write_all(&bytes)
    } else {
        open_named(dir, SUPERVISOR_LOG, gid)
            .map_err(|e| io::Error::other(e.to_string()))
            .and_then(|fd| std::fs::File::from(fd).write_all(&bytes))
    };
    if let Err(e) = written {
        tracing::error!(error = %e, "writing the supervisor's event");
    }
}

fn open_named(dir: &Path, name: &str, gid: Option<u32>) -> Result<OwnedFd, SinkError> {
    let path = dir.join(format!("{name}.json"));
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(LOG_FILE_MODE)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(&path)
        .map_err(sink_err(format!("open {}", path.display())))?;
    let meta = file
        .metadata()
        .map_err(sink_err(format!("fstat {}", path.display())))?;
    if !meta.file_type().is_file() {
        return Err(SinkError {
            what: format!("open {}", path.display()),
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        });
    }
    nix::fcntl::fcntl(
        &file,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_APPEND),
    )
    .map_err(|e| SinkError {
        what: format!("fcntl {}", path.display()),
        source: e.into(),
    })?;
    set_group_and_mode(file.as_fd(), gid, LOG_FILE_MODE).map_err(sink_err(format!(
        "set group and mode of {}",
        path.display()
    )))?;
    Ok(file.into())
}

/// Gives an open event log the group and mode for `gid` (a reload that changes the group).
pub(super) fn set_file_group(file: BorrowedFd<'_>, gid: Option<u32>) -> io::Result<()> {
    set_group_and_mode(file, gid, LOG_FILE_MODE)
}

/// Group `gid` (root's group 0 when `None`) and `mode`, each changed only when it differs:
/// the owner stays as it is (changing it would need CAP_CHOWN).
fn set_group_and_mode(fd: BorrowedFd<'_>, gid: Option<u32>, mode: u32) -> io::Result<()> {
    let group = gid.unwrap_or(0);
    let st = fstat(fd).map_err(io::Error::from)?;
    if st.st_gid != group {
        std::os::unix::fs::fchown(fd, None, Some(group))?;
    }
    if st.st_mode & 0o7777 != mode {
        fchmod(fd, Mode::from_bits_truncate(mode)).map_err(io::Error::from)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    fn mode_and_gid(path: &Path) -> (u32, u32) {
        let m = std::fs::metadata(path).expect("stat");
        (m.permissions().mode() & 0o7777, m.gid())
    }

    // Group changes need root (or membership): as an unprivileged user these check modes
    // with the file's own group, which any owner may keep.
    fn own_gid() -> u32 {
        nix::unistd::getegid().as_raw()
    }

    #[test]
    fn directory_and_files_get_their_modes_whatever_the_umask() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("log");
        let old = nix::sys::stat::umask(Mode::from_bits_truncate(0o077));
        let gid = Some(own_gid());
        prepare_dir(&dir, gid).expect("prepare");
        let fd = open(&dir, WorkerKind::Dns, gid).expect("open");
        nix::sys::stat::umask(old);
        assert_eq!(mode_and_gid(&dir), (0o750, own_gid()));
        assert_eq!(
            mode_and_gid(&dir.join("dns.json")),
            (0o640, own_gid()),
            "root:<group> 0640"
        );
        drop(fd);
        // A too-open file from elsewhere is narrowed when it is opened again.
        std::fs::set_permissions(dir.join("dns.json"), std::fs::Permissions::from_mode(0o666))
            .expect("chmod");
        let _fd = open(&dir, WorkerKind::Dns, gid).expect("reopen");
        assert_eq!(mode_and_gid(&dir.join("dns.json")).0, 0o640);
    }

    #[test]
    fn without_a_group_the_directory_is_roots_group() {
        if !nix::unistd::geteuid().is_root() {
            // Group 0 is only reachable for root here.
            return;
        }
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("log");
        // Any gid will do for root (group 1 is `daemon` or `bin`).
        prepare_dir(&dir, Some(1)).expect("with a group");
        assert_eq!(mode_and_gid(&dir), (0o750, 1));
        prepare_dir(&dir, None).expect("without");
        assert_eq!(mode_and_gid(&dir), (0o750, 0));
    }

    #[test]
    fn a_symbolic_link_or_a_fifo_is_not_opened() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path();
        let target = dir.join("elsewhere");
        std::fs::write(&target, "").expect("write");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::os::unix::fs::symlink(&target, dir.join("dns.json")).expect("symlink");
        let e = open(dir, WorkerKind::Dns, None).expect_err("a symlink is refused");
        assert!(crate::error_chain(&e).contains("dns.json"), "{e}");
        assert_eq!(mode_and_gid(&target).0, 0o600, "its target is left alone");
        nix::unistd::mkfifo(&dir.join("tls.json"), Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        // Returns (ENXIO: no reader) instead of blocking.
        let e = open(dir, WorkerKind::Tls, None).expect_err("a FIFO is refused");
        assert!(crate::error_chain(&e).contains("tls.json"), "{e}");
    }

    #[test]
    fn the_sink_is_left_blocking_and_appending() {
        let tmp = tempfile::tempdir().expect("tmp");
        let fd = open(tmp.path(), WorkerKind::Flow, Some(own_gid())).expect("open");
        let flags = nix::fcntl::OFlag::from_bits_truncate(
            nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL).expect("F_GETFL"),
        );
        assert!(flags.contains(nix::fcntl::OFlag::O_APPEND));
        assert!(!flags.contains(nix::fcntl::OFlag::O_NONBLOCK));
    }
}
