//! The pin tree: `<pin_root>/v<ABI>/` holds the maps (pinned by name by the
//! loader) and `links/<ifname>_<direction>` for every attachment.
//!
//! Pins are written in two phases: under a `.staging-` name, then renamed
//! into place once the kernel accepted them; start-up removes staging
//! debris a crash left behind.

use std::{
    fs, io,
    os::unix::fs::DirBuilderExt,
    path::{Path, PathBuf},
};

use crate::paths;

/// bpffs magic (statfs f_type).
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Pin tree errors.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// The pin root is not on a bpf filesystem and could not be made one.
    #[error(
        "{path} is not on a bpf filesystem (mount bpffs there, or set paths.pin_root below /sys/fs/bpf)"
    )]
    NotBpffs { path: PathBuf },
    /// mount(2) of bpffs failed.
    #[error("mount(\"bpf\", {path}, \"bpf\")")]
    Mount {
        path: PathBuf,
        #[source]
        source: nix::errno::Errno,
    },
    /// A filesystem operation in the pin tree failed.
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> PinError + 'a {
    move |source| PinError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

fn is_bpffs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type().0 == BPF_FS_MAGIC)
        .unwrap_or(false)
}

/// Makes sure `pin_root` is on bpffs, mounting /sys/fs/bpf if the root is
/// below it and nothing is mounted there yet.
pub fn ensure_bpffs(pin_root: &Path) -> Result<(), PinError> {
    let mut probe = pin_root;
    while !probe.exists() {
        probe = probe.parent().unwrap_or(Path::new("/"));
    }
    if is_bpffs(probe) {
        return Ok(());
    }
    let mount_point = Path::new(paths::BPFFS_MOUNT);
    if pin_root.starts_with(mount_point) && mount_point.is_dir() {
        nix::mount::mount(
            Some("bpf"),
            mount_point,
            Some("bpf"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|source| PinError::Mount {
            path: mount_point.to_owned(),
            source,
        })?;
        tracing::info!(path = %mount_point.display(), "mounted bpffs");
        if is_bpffs(mount_point) {
            return Ok(());
        }
    }
    Err(PinError::NotBpffs {
        path: pin_root.to_owned(),
    })
}

/// The versioned pin directory and its layout.
#[derive(Debug, Clone)]
pub struct PinTree {
    /// `<pin_root>`.
    pub root: PathBuf,
    /// `<pin_root>/v<ABI>`.
    pub dir: PathBuf,
}

impl PinTree {
    /// Creates the directories (0700) and removes staging debris.
    pub fn open(pin_root: &Path) -> Result<Self, PinError> {
        let dir = pin_root.join(paths::pin_dir_name());
        for d in [dir.clone(), dir.join("maps"), dir.join("links")] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(paths::PIN_DIR_MODE)
                .create(&d)
                .map_err(io_err("mkdir", &d))?;
        }
        let tree = Self {
            root: pin_root.to_owned(),
            dir,
        };
        tree.remove_staging_debris()?;
        Ok(tree)
    }

    /// Directory of the maps (pinned by name by the loader).
    pub fn maps(&self) -> PathBuf {
        self.dir.join("maps")
    }

    /// Pin path of one attachment: `links/<ifname>_<direction>`. bpffs
    /// refuses dots in names, so a dot in the interface name (VLAN devices
    /// like `eth0.100`) becomes `%`, which no final interface name contains.
    pub fn link(&self, ifname: &str, direction: &str) -> PathBuf {
        self.dir
            .join("links")
            .join(format!("{}_{direction}", ifname.replace('.', "%")))
    }

    /// Staging path for a final pin path.
    pub fn staging(path: &Path) -> PathBuf {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        path.with_file_name(format!("{}{name}", paths::STAGING_PREFIX))
    }

    /// Moves a staged pin into place.
    pub fn commit(staged: &Path, path: &Path) -> Result<(), PinError> {
        fs::rename(staged, path).map_err(io_err("rename", staged))
    }

    fn remove_staging_debris(&self) -> Result<(), PinError> {
        let links = self.dir.join("links");
        for entry in fs::read_dir(&links).map_err(io_err("readdir", &links))? {
            let entry = entry.map_err(io_err("readdir", &links))?;
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(paths::STAGING_PREFIX)
            {
                tracing::warn!(pin = %entry.path().display(), "removing staging debris from an interrupted run");
                fs::remove_file(entry.path()).map_err(io_err("unlink", &entry.path()))?;
            }
        }
        Ok(())
    }

    /// Pin directories of other ABI versions below the root, with their version.
    pub fn other_versions(&self) -> Vec<(u16, PathBuf)> {
        let mut out = versions(&self.root);
        out.retain(|(_, dir)| *dir != self.dir);
        out
    }

    /// Detaches the programs of other ABI versions (an upgrade, once this version is
    /// attached): their flow tables stop changing. Failures are logged; their pins go later.
    pub fn detach_other_versions(&self) {
        for (_, dir) in self.other_versions() {
            if let Err(e) = detach_links(&dir) {
                tracing::warn!(pins = %dir.display(), error = %crate::error_chain(&e), "detaching another ABI version's programs");
            }
        }
    }

    /// Removes pin directories of other ABI versions (their programs stay attached until
    /// their link pins go). The open flows of a table not carried over (`carried`: the
    /// directories whose flows this start took over) go without a record: counted, logged.
    pub fn remove_other_versions(&self, carried: &[PathBuf]) -> Vec<PathBuf> {
        let mut removed = Vec::new();
        for (_, dir) in self.other_versions() {
            let flows = if carried.contains(&dir) {
                0
            } else {
                open_flows(&dir)
            };
            if fs::remove_dir_all(&dir).is_ok() {
                if flows > 0 {
                    tracing::warn!(
                        pins = %dir.display(),
                        open_flows = flows,
                        "the flow table of another ABI version (a layout this one cannot read) went with its pins: its open flows end without a record"
                    );
                }
                removed.push(dir);
            }
        }
        removed
    }
}

/// Pin directories of every ABI version below `pin_root`, with their version, oldest
/// first: only `v<N>` directories (anything else below the root is not ours).
pub fn versions(pin_root: &Path) -> Vec<(u16, PathBuf)> {
    let Ok(rd) = fs::read_dir(pin_root) else {
        return Vec::new();
    };
    let mut out: Vec<(u16, PathBuf)> = rd
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix('v')?;
            (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .then(|| n.parse().ok())
                .flatten()
                .map(|v| (v, e.path()))
        })
        .collect();
    out.sort();
    out
}

/// Open flows in the flow table pinned below `version_dir` (`<root>/v<N>`), whatever the
/// version's layout: the entries of its `maps/pal_flow_shard_*` maps. 0 when there is none.
pub fn open_flows(version_dir: &Path) -> u64 {
    flow_shard_pins(version_dir)
        .iter()
        .filter_map(|p| palisade_ebpf::flow_table::open_shard(p).ok())
        .filter_map(|fd| palisade_ebpf::flow_table::count(&fd).ok())
        .sum()
}

/// The pins of the flow table's shards below `version_dir` (`maps/pal_flow_shard_*`).
pub fn flow_shard_pins(version_dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(version_dir.join("maps")) else {
        return Vec::new();
    };
    rd.filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("pal_flow_shard_")
        })
        .map(|e| e.path())
        .collect()
}

/// What existed below a pin root before a start: every directory, and every pin with its
/// inode (a pin replaced since has a new one). A start that fails hands it back
/// ([`Snapshot::roll_back`]) to remove what the start created, and only that: pins of a
/// previous run that still enforce (links adopted, maps reused) stay.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    root: PathBuf,
    dirs: std::collections::BTreeSet<PathBuf>,
    pins: std::collections::BTreeMap<PathBuf, u64>,
}

impl Snapshot {
    /// Records the tree below `pin_root` (nothing when it does not exist).
    pub fn take(pin_root: &Path) -> Self {
        let mut snap = Self {
            root: pin_root.to_owned(),
            ..Self::default()
        };
        let (dirs, files) = walk(pin_root);
        snap.dirs = dirs.into_iter().collect();
        snap.pins = files.into_iter().collect();
        snap
    }

    /// Removes what appeared since [`Snapshot::take`]: link pins detached and removed (a link
    /// pin is one in a `links` directory), other pins removed, then the directories that did
    /// not exist, deepest first, when empty. Returns what was removed.
    pub fn roll_back(&self) -> Vec<PathBuf> {
        let (dirs, files) = walk(&self.root);
        let mut removed = Vec::new();
        let new: Vec<PathBuf> = files
            .into_iter()
            .filter(|(path, ino)| self.pins.get(path) != Some(ino))
            .map(|(path, _)| path)
            .collect();
        let in_links = |p: &Path| {
            p.parent()
                .and_then(Path::file_name)
                .is_some_and(|n| n == "links")
        };
        // Links first: the programs stop running before their maps go.
        for path in new.iter().filter(|p| in_links(p)) {
            match unpin_link(path) {
                Ok(()) => removed.push(path.clone()),
                Err(e) => {
                    tracing::error!(pin = %path.display(), error = %e, "rolling back a link pin")
                }
            }
        }
        for path in new.iter().filter(|p| !in_links(p)) {
            match fs::remove_file(path) {
                Ok(()) => removed.push(path.clone()),
                Err(e) => tracing::error!(pin = %path.display(), error = %e, "rolling back a pin"),
            }
        }
        let mut created: Vec<PathBuf> = dirs
            .into_iter()
            .filter(|d| !self.dirs.contains(d))
            .collect();
        created.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for dir in created {
            if fs::remove_dir(&dir).is_ok() {
                removed.push(dir);
            }
        }
        removed
    }
}

/// Every directory (`root` included, when it exists) and every other file with its inode
/// below `root`.
fn walk(root: &Path) -> (Vec<PathBuf>, Vec<(PathBuf, u64)>) {
    use std::os::unix::fs::MetadataExt;
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    let mut todo = vec![root.to_owned()];
    while let Some(dir) = todo.pop() {
        let Ok(rd) = fs::read_dir(&dir) else {
            continue;
        };
        dirs.push(dir);
        for entry in rd.filter_map(Result::ok) {
            let Ok(meta) = fs::symlink_metadata(entry.path()) else {
                continue;
            };
            if meta.is_dir() {
                todo.push(entry.path());
            } else {
                files.push((entry.path(), meta.ino()));
            }
        }
    }
    (dirs, files)
}

/// Detaches a pinned link now and removes its pin. Removing the pin alone
/// detaches the program only after an RCU grace period and a kernel work
/// item; whoever unpins (cleanup, `--detach-on-exit`, a change of XDP mode)
/// must find the hook empty when this returns. `NotFound` if there is no pin.
pub fn unpin_link(path: &Path) -> io::Result<()> {
    match palisade_ebpf::links::open_pinned(path).and_then(palisade_ebpf::links::detach) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(e),
        // Still unpinned below: the kernel detaches it when the pin goes.
        Err(e) => tracing::warn!(pin = %path.display(), error = %e, "detaching a pinned link"),
    }
    fs::remove_file(path)
}

/// Detaches every link pinned below `pin_root`, of every ABI version, and removes its pin
/// (`palisade cleanup`, before it reads the flow tables: no packet changes them after).
pub fn detach_all(pin_root: &Path) -> Result<(), PinError> {
    versions(pin_root)
        .iter()
        .try_for_each(|(_, dir)| detach_links(dir))
}

/// Detaches the links pinned below one version directory and removes their pins.
fn detach_links(version_dir: &Path) -> Result<(), PinError> {
    let links = version_dir.join("links");
    for link in fs::read_dir(&links)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
    {
        match unpin_link(&link.path()) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("unpin", &link.path())(e)),
        }
    }
    Ok(())
}

/// Removes every Palisade pin below `pin_root` (`palisade cleanup`): links
/// are detached before their pins go ([`detach_all`]), maps are freed when no process
/// holds them. Returns the version directories removed.
pub fn remove_all(pin_root: &Path) -> Result<Vec<PathBuf>, PinError> {
    match fs::read_dir(pin_root) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("readdir", pin_root)(e)),
    }
    detach_all(pin_root)?;
    let mut removed = Vec::new();
    for (_, dir) in versions(pin_root) {
        fs::remove_dir_all(&dir).map_err(io_err("rm -r", &dir))?;
        removed.push(dir);
    }
    // The root itself, if now empty.
    let _ = fs::remove_dir(pin_root);
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roll_back_removes_only_what_appeared_or_was_replaced() {
        let root = tempfile::tempdir().expect("tempdir");
        let v1 = root.path().join("v1");
        fs::create_dir_all(v1.join("maps")).expect("mkdir");
        fs::write(v1.join("maps/kept"), "old").expect("pin");
        fs::write(v1.join("maps/replaced"), "old").expect("pin");
        let before = Snapshot::take(root.path());

        fs::write(v1.join("maps/new"), "new").expect("pin");
        // A replacement gets a new inode (written aside, then renamed over the old one).
        fs::write(v1.join("maps/tmp"), "new").expect("pin");
        fs::rename(v1.join("maps/tmp"), v1.join("maps/replaced")).expect("rename");
        fs::create_dir_all(root.path().join("v2/links")).expect("mkdir");
        fs::write(root.path().join("v2/links/eth0_ingress"), "link").expect("pin");

        let removed = before.roll_back();
        assert!(v1.join("maps/kept").exists(), "a previous run's pin stays");
        assert!(!v1.join("maps/new").exists());
        assert!(!v1.join("maps/replaced").exists(), "replaced by this start");
        assert!(!root.path().join("v2").exists(), "directories it made go");
        assert!(root.path().exists() && v1.join("maps").exists());
        assert_eq!(removed.len(), 5, "{removed:?}");

        // A root that did not exist goes entirely.
        let fresh = root.path().join("fresh");
        let before = Snapshot::take(&fresh);
        fs::create_dir_all(fresh.join("v1/maps")).expect("mkdir");
        fs::write(fresh.join("v1/maps/m"), "").expect("pin");
        before.roll_back();
        assert!(!fresh.exists());
    }
}
