//! An in-memory kernel behind the bpf(2) seam, for unit tests of the supervisor's policy
//! transactions without root and without a kernel (feature `fake-kernel`; never in a release
//! build).
//!
//! Like aya's `sys` test override, the seam is the one function that issues bpf(2)
//! ([`super::bpf`]): while a [`FakeKernel`] is installed on the current thread, every command
//! is answered here instead, through the same typed attribute structs, so the code under test
//! (rule-set builders, batch fallbacks, map-of-maps swaps, LPM tries) runs unchanged. Map
//! descriptors are real descriptors (`/dev/null`), so they can be owned and closed as usual;
//! the fake keys its maps by descriptor number.
//!
//! What it models: `BPF_MAP_CREATE`; element lookup, update (`BPF_ANY`, `BPF_NOEXIST`,
//! `BPF_EXIST`), delete and `GET_NEXT_KEY` for hash, LRU hash, array and LPM-trie maps (LPM
//! lookups return the longest matching prefix); `ARRAY_OF_MAPS` slots holding map ids
//! (update takes a descriptor, lookup returns the id, `MAP_GET_FD_BY_ID` opens it);
//! `OBJ_GET_INFO_BY_FD` for maps; `E2BIG` when a hash map is full. Batch commands answer
//! `EINVAL` (the code under test falls back to element calls, as on kernels without batch
//! support). Faults: [`FakeKernel::fail`] makes the n-th next call of a command fail with an
//! errno, to exercise rollback paths.

use std::{
    cell::RefCell,
    collections::{BTreeMap, HashMap},
    io,
    os::fd::{AsRawFd, IntoRawFd, OwnedFd},
};

use super::{GetFdById, MapBatch, MapCreate, MapElem, ObjInfo, RawMapInfo, c};

const MAP_TYPE_HASH: u32 = 1;
const MAP_TYPE_ARRAY: u32 = 2;
const MAP_TYPE_PERCPU_ARRAY: u32 = 6;
const MAP_TYPE_LRU_HASH: u32 = 9;
const MAP_TYPE_LRU_PERCPU_HASH: u32 = 10;
const MAP_TYPE_LPM_TRIE: u32 = 11;
const MAP_TYPE_ARRAY_OF_MAPS: u32 = 12;
const BPF_EXIST: u64 = 2;

/// One fake map.
#[derive(Debug, Clone)]
struct Map {
    id: u32,
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    name: String,
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Map {
    fn is_array(&self) -> bool {
        matches!(
            self.map_type,
            MAP_TYPE_ARRAY | MAP_TYPE_PERCPU_ARRAY | MAP_TYPE_ARRAY_OF_MAPS
        )
    }

    fn array_index(&self, key: &[u8]) -> Result<u32, i32> {
        let index = u32::from_ne_bytes(key.try_into().map_err(|_| libc::EINVAL)?);
        if index >= self.max_entries {
            return Err(libc::E2BIG);
        }
        Ok(index)
    }

    /// LPM trie key: `u32 prefixlen` then the address bytes; the longest stored prefix that
    /// covers `key`.
    fn lpm_lookup(&self, key: &[u8]) -> Option<&Vec<u8>> {
        let (len, data) = key.split_at(4);
        let want = u32::from_ne_bytes(len.try_into().ok()?);
        self.entries
            .iter()
            .filter(|(k, _)| {
                let (l, d) = k.split_at(4);
                let have = u32::from_ne_bytes(l.try_into().unwrap_or_default());
                have <= want && prefix_eq(d, data, have)
            })
            .max_by_key(|(k, _)| {
                k.get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_ne_bytes)
            })
            .map(|(_, v)| v)
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u32) -> bool {
    let bits = bits as usize;
    let (bytes, rest) = (bits / 8, bits % 8);
    if a.get(..bytes) != b.get(..bytes) {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xff_u8 << (8 - rest);
    matches!((a.get(bytes), b.get(bytes)), (Some(x), Some(y)) if x & mask == y & mask)
}

#[derive(Debug, Default)]
struct State {
    maps: HashMap<u32, Map>,
    /// descriptor -> map id
    fds: HashMap<i32, u32>,
    next_id: u32,
    /// command name -> (map name it applies to or any, successful calls still to allow, errno)
    faults: HashMap<&'static str, (Option<String>, usize, i32)>,
    calls: HashMap<&'static str, usize>,
}

thread_local! {
    static FAKE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// The fake kernel of the current thread; uninstalled on drop.
#[derive(Debug)]
pub struct FakeKernel(());

/// Installs an empty fake kernel on the current thread: every bpf(2) command of this crate made
/// by this thread is answered in memory until the returned handle is dropped.
pub fn install() -> FakeKernel {
    FAKE.with(|f| *f.borrow_mut() = Some(State::default()));
    FakeKernel(())
}

impl Drop for FakeKernel {
    fn drop(&mut self) {
        FAKE.with(|f| *f.borrow_mut() = None);
    }
}

impl FakeKernel {
    /// Lets `successes` more calls of `call` (e.g. `"BPF_MAP_UPDATE_ELEM"`) through, then
    /// fails the next one with `errno` (once).
    pub fn fail(&self, call: &'static str, successes: usize, errno: i32) {
        with_state(|s| s.faults.insert(call, (None, successes, errno)));
    }

    /// Fails the next element call `call` (`BPF_MAP_*_ELEM`) on the map named `map` with
    /// `errno` (once); calls on other maps go through.
    pub fn fail_on(&self, call: &'static str, map: &str, errno: i32) {
        with_state(|s| s.faults.insert(call, (Some(map.to_owned()), 0, errno)));
    }

    /// How many times `call` was issued (failed calls included).
    pub fn calls(&self, call: &'static str) -> usize {
        with_state(|s| s.calls.get(call).copied().unwrap_or(0))
    }

    /// Creates a map shaped like one of the object's (`BPF_MAP_CREATE` through the seam).
    pub fn create_map(
        &self,
        name: &str,
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
    ) -> io::Result<OwnedFd> {
        super::map_create(map_type, key_size, value_size, max_entries, 0, name)
    }

    /// Every entry of the map behind `fd` (key bytes, value bytes), for assertions.
    pub fn entries(&self, fd: &impl AsRawFd) -> Vec<(Vec<u8>, Vec<u8>)> {
        with_state(|s| {
            s.fds
                .get(&fd.as_raw_fd())
                .and_then(|id| s.maps.get(id))
                .map(|m| m.entries.clone().into_iter().collect())
                .unwrap_or_default()
        })
    }
}

fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    FAKE.with(|cell| {
        let mut guard = cell.borrow_mut();
        let state = guard
            .as_mut()
            .unwrap_or_else(|| panic!("no fake kernel installed on this thread"));
        f(state)
    })
}

/// Answers `cmd` if a fake kernel is installed on this thread (`None`: go to the real kernel).
///
/// # Safety
/// `attr` must point to the attribute struct [`super::bpf`] was called with for `cmd`, and every
/// pointer inside it must be valid for the sizes of the map it names.
pub(super) unsafe fn dispatch(
    cmd: u32,
    attr: *mut u8,
    call: &'static str,
) -> Option<io::Result<i64>> {
    FAKE.with(|cell| {
        let mut guard = cell.borrow_mut();
        let state = guard.as_mut()?;
        *state.calls.entry(call).or_default() += 1;
        let element_call = matches!(
            cmd,
            c::KERNEL_BPF_MAP_LOOKUP_ELEM
                | c::KERNEL_BPF_MAP_UPDATE_ELEM
                | c::KERNEL_BPF_MAP_DELETE_ELEM
                | c::KERNEL_BPF_MAP_GET_NEXT_KEY
        );
        // SAFETY: for element commands `attr` is a `MapElem` (caller).
        let target = element_call
            .then(|| map_of(state, unsafe { &*attr.cast::<MapElem>() }.map_fd).ok())
            .flatten()
            .map(|m| m.name.clone());
        if let Some((only, left, errno)) = state.faults.get_mut(call)
            && only
                .as_ref()
                .is_none_or(|name| Some(name) == target.as_ref())
        {
            if *left == 0 {
                let errno = *errno;
                state.faults.remove(call);
                return Some(Err(super::call_error(
                    call,
                    io::Error::from_raw_os_error(errno),
                )));
            }
            *left -= 1;
        }
        // SAFETY: forwarded from the caller.
        let result = unsafe { answer(state, cmd, attr) };
        Some(result.map_err(|errno| super::call_error(call, io::Error::from_raw_os_error(errno))))
    })
}

/// A fresh real descriptor for a fake object.
fn new_fd() -> Result<i32, i32> {
    std::fs::File::open("/dev/null")
        .map(|f| OwnedFd::from(f).into_raw_fd())
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EMFILE))
}

/// # Safety
/// As [`dispatch`].
unsafe fn answer(state: &mut State, cmd: u32, attr: *mut u8) -> Result<i64, i32> {
    // SAFETY (every block below): `attr` is the typed struct of `cmd` (caller), and the
    // key/value pointers in it are valid for the named map's key and value sizes.
    match cmd {
        c::KERNEL_BPF_MAP_CREATE => {
            let a = unsafe { &*attr.cast::<MapCreate>() };
            state.next_id += 1;
            let end = a
                .map_name
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(a.map_name.len());
            let map = Map {
                id: state.next_id,
                map_type: a.map_type,
                key_size: a.key_size,
                value_size: a.value_size,
                max_entries: a.max_entries,
                map_flags: a.map_flags,
                name: String::from_utf8_lossy(a.map_name.get(..end).unwrap_or_default())
                    .into_owned(),
                entries: BTreeMap::new(),
            };
            if map.key_size == 0 || map.value_size == 0 || map.max_entries == 0 {
                return Err(libc::EINVAL);
            }
            let fd = new_fd()?;
            state.fds.insert(fd, map.id);
            state.maps.insert(map.id, map);
            Ok(i64::from(fd))
        }
        c::KERNEL_BPF_MAP_GET_FD_BY_ID => {
            let a = unsafe { &*attr.cast::<GetFdById>() };
            if !state.maps.contains_key(&a.map_id) {
                return Err(libc::ENOENT);
            }
            let fd = new_fd()?;
            state.fds.insert(fd, a.map_id);
            Ok(i64::from(fd))
        }
        c::KERNEL_BPF_OBJ_GET_INFO_BY_FD => {
            let a = unsafe { &*attr.cast::<ObjInfo>() };
            let map = map_of(state, a.bpf_fd)?;
            let mut info = RawMapInfo {
                map_type: map.map_type,
                id: map.id,
                key_size: map.key_size,
                value_size: map.value_size,
                max_entries: map.max_entries,
                map_flags: map.map_flags,
                ..RawMapInfo::default()
            };
            for (slot, byte) in info.name.iter_mut().zip(map.name.bytes().take(15)) {
                *slot = byte;
            }
            let len = (a.info_len as usize).min(size_of::<RawMapInfo>());
            unsafe {
                std::ptr::copy_nonoverlapping(
                    std::ptr::from_ref(&info).cast::<u8>(),
                    a.info as *mut u8,
                    len,
                );
            }
            Ok(0)
        }
        c::KERNEL_BPF_MAP_LOOKUP_BATCH | c::KERNEL_BPF_MAP_UPDATE_BATCH => {
            let a = unsafe { &mut *attr.cast::<MapBatch>() };
            a.count = 0;
            Err(libc::EINVAL)
        }
        c::KERNEL_BPF_MAP_LOOKUP_ELEM
        | c::KERNEL_BPF_MAP_UPDATE_ELEM
        | c::KERNEL_BPF_MAP_DELETE_ELEM
        | c::KERNEL_BPF_MAP_GET_NEXT_KEY => {
            let a = unsafe { &*attr.cast::<MapElem>() };
            let (key_size, value_size, map_type) = {
                let m = map_of(state, a.map_fd)?;
                (m.key_size as usize, m.value_size as usize, m.map_type)
            };
            let key = (a.key != 0).then(|| {
                unsafe { std::slice::from_raw_parts(a.key as *const u8, key_size) }.to_vec()
            });
            match cmd {
                c::KERNEL_BPF_MAP_LOOKUP_ELEM => {
                    let key = key.ok_or(libc::EINVAL)?;
                    let map = map_of(state, a.map_fd)?;
                    let found = if map_type == MAP_TYPE_LPM_TRIE {
                        map.lpm_lookup(&key).cloned()
                    } else if map.is_array() && map_type != MAP_TYPE_ARRAY_OF_MAPS {
                        map.array_index(&key).map_err(|_| libc::ENOENT)?;
                        Some(
                            map.entries
                                .get(&key)
                                .cloned()
                                .unwrap_or(vec![0; value_size]),
                        )
                    } else {
                        map.entries.get(&key).cloned()
                    };
                    let value = found.ok_or(libc::ENOENT)?;
                    // ARRAY_OF_MAPS: user space reads the inner map's id (4 bytes).
                    let out = value.len().min(value_size);
                    unsafe {
                        std::ptr::copy_nonoverlapping(value.as_ptr(), a.value as *mut u8, out)
                    };
                    Ok(0)
                }
                c::KERNEL_BPF_MAP_UPDATE_ELEM => {
                    let key = key.ok_or(libc::EINVAL)?;
                    let mut value =
                        unsafe { std::slice::from_raw_parts(a.value as *const u8, value_size) }
                            .to_vec();
                    if map_type == MAP_TYPE_ARRAY_OF_MAPS {
                        let fd = i32::from_ne_bytes(
                            value.as_slice().try_into().map_err(|_| libc::EINVAL)?,
                        );
                        let id = *state.fds.get(&fd).ok_or(libc::EBADF)?;
                        value = id.to_ne_bytes().to_vec();
                    }
                    let map = map_of_mut(state, a.map_fd)?;
                    if map.is_array() {
                        map.array_index(&key)?;
                        if a.flags == c::KERNEL_BPF_NOEXIST {
                            return Err(libc::EEXIST);
                        }
                    } else {
                        let exists = map.entries.contains_key(&key);
                        if a.flags == c::KERNEL_BPF_NOEXIST && exists {
                            return Err(libc::EEXIST);
                        }
                        if a.flags == BPF_EXIST && !exists {
                            return Err(libc::ENOENT);
                        }
                        if !exists && map.entries.len() >= map.max_entries as usize {
                            if matches!(map_type, MAP_TYPE_LRU_HASH | MAP_TYPE_LRU_PERCPU_HASH) {
                                let oldest = map.entries.keys().next().cloned();
                                oldest.map(|k| map.entries.remove(&k));
                            } else {
                                return Err(libc::E2BIG);
                            }
                        }
                    }
                    map.entries.insert(key, value);
                    Ok(0)
                }
                c::KERNEL_BPF_MAP_DELETE_ELEM => {
                    let key = key.ok_or(libc::EINVAL)?;
                    let map = map_of_mut(state, a.map_fd)?;
                    if map.is_array() && map_type != MAP_TYPE_ARRAY_OF_MAPS {
                        return Err(libc::EINVAL);
                    }
                    map.entries.remove(&key).map(|_| 0).ok_or(libc::ENOENT)
                }
                _ => {
                    // GET_NEXT_KEY: entries in key order; a missing key restarts at the first.
                    let map = map_of(state, a.map_fd)?;
                    let next = match &key {
                        Some(k) if map.entries.contains_key(k) => map
                            .entries
                            .range::<Vec<u8>, _>((
                                std::ops::Bound::Excluded(k),
                                std::ops::Bound::Unbounded,
                            ))
                            .next(),
                        _ => map.entries.iter().next(),
                    };
                    let (next, _) = next.ok_or(libc::ENOENT)?;
                    unsafe {
                        std::ptr::copy_nonoverlapping(next.as_ptr(), a.value as *mut u8, key_size)
                    };
                    Ok(0)
                }
            }
        }
        _ => Err(libc::ENOSYS),
    }
}

fn map_of(state: &State, fd: u32) -> Result<&Map, i32> {
    let id = state.fds.get(&(fd as i32)).ok_or(libc::EBADF)?;
    state.maps.get(id).ok_or(libc::EBADF)
}

fn map_of_mut(state: &mut State, fd: u32) -> Result<&mut Map, i32> {
    let id = *state.fds.get(&(fd as i32)).ok_or(libc::EBADF)?;
    state.maps.get_mut(&id).ok_or(libc::EBADF)
}

/// `BPF_MAP_TYPE_*` numbers for [`FakeKernel::create_map`].
pub mod map_type {
    /// `BPF_MAP_TYPE_HASH`.
    pub const HASH: u32 = super::MAP_TYPE_HASH;
    /// `BPF_MAP_TYPE_ARRAY`.
    pub const ARRAY: u32 = super::MAP_TYPE_ARRAY;
    /// `BPF_MAP_TYPE_LRU_HASH`.
    pub const LRU_HASH: u32 = super::MAP_TYPE_LRU_HASH;
    /// `BPF_MAP_TYPE_LPM_TRIE`.
    pub const LPM_TRIE: u32 = super::MAP_TYPE_LPM_TRIE;
    /// `BPF_MAP_TYPE_ARRAY_OF_MAPS`.
    pub const ARRAY_OF_MAPS: u32 = super::MAP_TYPE_ARRAY_OF_MAPS;
}
