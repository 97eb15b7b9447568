//! The privileged side of the device inventory: the state file the DHCP worker keeps its
//! inventory in (opened here, written by the worker through the FD it is given), the IEEE
//! registries handed to the worker as a sealed memfd, and the pieces of the inventory file
//! `palisade devices` asks for (handed over as bytes, never parsed here: the worker wrote
//! them from what it saw on the wire).
//!
//! The registry files are Debian's `ieee-data` (root-owned system files, not attacker
//! input): `oui.csv` (MA-L), `mam.csv` (MA-M) and `oui36.csv` (MA-S). They are reduced to
//! `HEX<TAB>Organization` lines (about 1.5 MB), more than an IPC frame holds, hence the
//! memfd. Without the package the worker gets no registry and reports every vendor as
//! `unknown`; the log says why.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    os::{
        fd::{FromRawFd, OwnedFd},
        unix::fs::{FileExt, OpenOptionsExt},
    },
    path::{Path, PathBuf},
};

use palisade_ipc::messages::{DEVICES_CHUNK, DevicesChunk};
use sha2::{Digest, Sha256};

use crate::paths;

/// Why the state file or the registry could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum DevicesError {
    /// Opening or reading the state file failed.
    #[error("{call} {}", path.display())]
    State {
        call: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// memfd_create / write / F_ADD_SEALS failed.
    #[error("{call} (IEEE registry memfd)")]
    Memfd {
        call: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// The registry files, with the length of their assignments in hex digits.
const REGISTRY_FILES: [(&str, usize); 3] = [("oui.csv", 6), ("mam.csv", 7), ("oui36.csv", 9)];

/// Splits one CSV line into fields (RFC 4180 quoting, `""` inside quotes).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

/// The registries of `dir` in compact form, and how many assignments; `None` when no
/// registry file could be read.
pub fn compact_registry(dir: &Path) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut count = 0;
    let mut any = false;
    for (name, digits) in REGISTRY_FILES {
        let Ok(text) = std::fs::read_to_string(dir.join(name)) else {
            continue;
        };
        any = true;
        for line in text.lines().skip(1) {
            let f = csv_fields(line);
            let (Some(hex), Some(org)) = (f.get(1), f.get(2)) else {
                continue;
            };
            let org = org.trim();
            if hex.len() != digits
                || !hex.bytes().all(|b| b.is_ascii_hexdigit())
                || org.is_empty()
                || org.contains(['\t', '\n'])
            {
                continue;
            }
            out.push_str(hex);
            out.push('\t');
            out.push_str(org);
            out.push('\n');
            count += 1;
        }
    }
    any.then_some((out, count))
}

/// A sealed memfd (no write, grow, shrink or further seals) holding `text`.
pub fn sealed_memfd(text: &str) -> Result<OwnedFd, DevicesError> {
    let memfd_err = |call| move |source| DevicesError::Memfd { call, source };
    // SAFETY: memfd_create takes a NUL-terminated name and flags; it returns a new FD or -1.
    let fd = unsafe {
        libc::memfd_create(
            c"palisade-ieee-registry".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(memfd_err("memfd_create")(std::io::Error::last_os_error()));
    }
    // SAFETY: fd was just returned by memfd_create and is owned by nobody else.
    let mut file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    file.write_all(text.as_bytes())
        .map_err(memfd_err("write"))?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl(F_ADD_SEALS) on an FD we own, with an integer argument.
    if unsafe {
        libc::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            libc::F_ADD_SEALS,
            seals,
        )
    } < 0
    {
        return Err(memfd_err("fcntl(F_ADD_SEALS)")(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(OwnedFd::from(file))
}

/// The registries of `dir` handed to the DHCP worker: a sealed memfd, and the SHA-256 of
/// its content (a reload hands over a new one only when the content changed).
#[derive(Debug)]
pub struct RegistryFd {
    /// The sealed memfd (`FdRole::Registry`).
    pub fd: OwnedFd,
    /// SHA-256 of the compact text it holds.
    pub sha256: [u8; 32],
}

/// The registry memfd for the DHCP worker from `dir`, or `None` (logged) without
/// `ieee-data`.
pub fn registry_fd(dir: &Path) -> Option<RegistryFd> {
    let Some((text, count)) = compact_registry(dir) else {
        tracing::warn!(
            dir = %dir.display(),
            "IEEE registries not found (install the ieee-data package): device vendors will be \"unknown\""
        );
        return None;
    };
    match sealed_memfd(&text) {
        Ok(fd) => {
            tracing::info!(assignments = count, dir = %dir.display(), "IEEE registries read from ieee-data");
            Some(RegistryFd {
                fd,
                sha256: Sha256::digest(text.as_bytes()).into(),
            })
        }
        Err(e) => {
            tracing::warn!(error = %crate::error_chain(&e), "IEEE registries not handed to the DHCP worker");
            None
        }
    }
}

/// `<state_dir>/devices.jsonl`, opened read-write (created 0600 if missing) for the DHCP
/// worker.
pub fn open_state(state_dir: &Path) -> Result<OwnedFd, DevicesError> {
    let path = state_dir.join(paths::DEVICES_FILE);
    let err = |call| {
        let path = path.clone();
        move |source| DevicesError::State { call, path, source }
    };
    std::fs::create_dir_all(state_dir).map_err(err("mkdir"))?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(paths::DEVICES_FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(err("open"))?;
    Ok(OwnedFd::from(file))
}

/// The piece of the inventory file at `offset` (bytes as they are).
pub fn chunk(state_dir: &Path, offset: u64) -> Result<DevicesChunk, DevicesError> {
    let path = state_dir.join(paths::DEVICES_FILE);
    let err = |call| {
        let path = path.clone();
        move |source| DevicesError::State { call, path, source }
    };
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(DevicesChunk {
                total: 0,
                offset,
                bytes: Vec::new(),
            });
        }
        Err(e) => return Err(err("open")(e)),
    };
    let total = file.metadata().map_err(err("fstat"))?.len();
    let mut bytes = vec![0u8; DEVICES_CHUNK];
    let n = file.read_at(&mut bytes, offset).map_err(err("pread"))?;
    bytes.truncate(n);
    Ok(DevicesChunk {
        total,
        offset,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_compact_form() {
        assert_eq!(
            csv_fields(r#"MA-S,70B3D5F2F,"Foo, ""Bar"" Inc.",addr"#),
            vec!["MA-S", "70B3D5F2F", r#"Foo, "Bar" Inc."#, "addr"]
        );
        let dir = std::env::temp_dir().join(format!("palisade-ieee-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(
            dir.join("oui.csv"),
            "Registry,Assignment,Organization Name,Organization Address\n\
             MA-L,001132,Synology Incorporated,addr\nMA-L,XYZ,bad,\n",
        )
        .expect("write");
        let (text, n) = compact_registry(&dir).expect("registry");
        assert_eq!(n, 1);
        assert_eq!(text, "001132\tSynology Incorporated\n");
        let fd = sealed_memfd(&text).expect("memfd");
        let f = File::from(fd);
        let mut buf = [0u8; 64];
        let n = f.read_at(&mut buf, 0).expect("pread");
        assert_eq!(buf.get(..n), Some(text.as_bytes()));
        assert!(f.write_at(b"x", 0).is_err(), "sealed");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(compact_registry(Path::new("/nonexistent")).is_none());
    }
}
