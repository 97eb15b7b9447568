//! Every raw bpf(2) call this crate makes, in one place.
//!
//! aya covers maps it loaded itself; the DNS rule sets are maps the supervisor creates on its
//! own and swaps into `pal_dns_policy`, and aya 0.14 has no public call for creating a bare map
//! or for batch updates. Each `union bpf_attr` variant used here is a `#[repr(C)]` struct whose
//! field offsets are asserted at compile time against `<linux/bpf.h>` (the build-time probe of
//! `build.rs`), and every error names its command (e.g. `BPF_MAP_UPDATE_BATCH: ...`).

use std::{
    fmt, io,
    mem::offset_of,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd},
};

use crate::c;

#[cfg(feature = "fake-kernel")]
pub mod fake;

/// A failed bpf(2) command: which one, and the kernel's error (`errno` kept).
#[derive(Debug)]
pub struct BpfCallError {
    /// The command, e.g. `"BPF_MAP_UPDATE_BATCH"`.
    pub call: &'static str,
    /// What the kernel returned.
    pub source: io::Error,
}

impl fmt::Display for BpfCallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.call, self.source)
    }
}

// No `source()`: the kernel's error is already part of the message (and kept for `errno`);
// reporting it again as a source would print it twice in an error chain.
impl std::error::Error for BpfCallError {}

/// Wraps an OS error into an `io::Error` of the same kind whose message names `call`.
pub(crate) fn call_error(call: &'static str, source: io::Error) -> io::Error {
    io::Error::new(source.kind(), BpfCallError { call, source })
}

/// The errno of an error made by this module, if any.
pub(crate) fn errno(error: &io::Error) -> Option<i32> {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<BpfCallError>())
        .and_then(|call| call.source.raw_os_error())
        .or_else(|| error.raw_os_error())
}

/// A `union bpf_attr` variant.
///
/// # Safety
/// Implementors must be `#[repr(C)]` plain data whose layout is a prefix of the kernel's
/// `union bpf_attr` for the commands they are used with.
unsafe trait Attr: Sized {}

/// Runs one bpf(2) command; `Ok` holds the non-negative return value.
fn bpf<A: Attr>(cmd: u32, attr: &mut A, call: &'static str) -> io::Result<i64> {
    let size = u32::try_from(size_of::<A>())
        .map_err(|_| call_error(call, io::Error::from(io::ErrorKind::InvalidInput)))?;
    // The test seam: a fake kernel installed on this thread answers instead (unit tests only).
    #[cfg(feature = "fake-kernel")]
    // SAFETY: `attr` is the typed struct of `cmd`, built by this module's wrappers with
    // pointers valid for the sizes of the map they name.
    if let Some(result) =
        unsafe { fake::dispatch(cmd, std::ptr::from_mut(attr).cast::<u8>(), call) }
    {
        return result;
    }
    // SAFETY: `attr` is a valid, exclusively borrowed `union bpf_attr` prefix of `size` bytes
    // (trait `Attr`), alive for the whole call; the kernel reads (and for some commands writes)
    // at most `size` bytes of it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr).cast::<u8>(),
            size,
        )
    };
    if ret < 0 {
        return Err(call_error(call, io::Error::last_os_error()));
    }
    Ok(ret)
}

/// Owns the descriptor a bpf(2) command returned.
fn owned_fd(ret: i64, call: &'static str) -> io::Result<OwnedFd> {
    let raw = RawFd::try_from(ret)
        .map_err(|_| call_error(call, io::Error::from(io::ErrorKind::InvalidData)))?;
    // SAFETY: the kernel just returned `raw` as a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// `BPF_MAP_CREATE` attributes (the prefix up to `map_name`).
#[repr(C)]
#[derive(Default)]
struct MapCreate {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; c::KERNEL_BPF_OBJ_NAME_LEN],
}
// SAFETY: repr(C) plain data; offsets asserted below.
unsafe impl Attr for MapCreate {}

/// `BPF_MAP_*_ELEM` and `BPF_MAP_GET_NEXT_KEY` attributes.
#[repr(C)]
#[derive(Default)]
struct MapElem {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64, // `next_key` for BPF_MAP_GET_NEXT_KEY
    flags: u64,
}
// SAFETY: repr(C) plain data; offsets asserted below.
unsafe impl Attr for MapElem {}

/// `BPF_MAP_*_BATCH` attributes.
#[repr(C)]
#[derive(Default)]
struct MapBatch {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}
// SAFETY: repr(C) plain data; offsets asserted below.
unsafe impl Attr for MapBatch {}

/// `BPF_PROG_TEST_RUN` attributes (the prefix up to `duration`).
#[repr(C)]
#[derive(Default)]
struct TestRun {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
}
// SAFETY: repr(C) plain data; offsets asserted below.
unsafe impl Attr for TestRun {}

/// `BPF_OBJ_GET_INFO_BY_FD` attributes.
#[repr(C)]
#[derive(Default)]
struct ObjInfo {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}
// SAFETY: repr(C) plain data; offsets asserted below.
unsafe impl Attr for ObjInfo {}

/// `BPF_MAP_GET_FD_BY_ID` attributes.
#[repr(C)]
#[derive(Default)]
struct GetFdById {
    map_id: u32,
    _next_id: u32,
    open_flags: u32,
}
// SAFETY: repr(C) plain data; offsets asserted below.
unsafe impl Attr for GetFdById {}

/// The prefix of `struct bpf_map_info` this crate reads.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RawMapInfo {
    pub map_type: u32,
    pub id: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub name: [u8; c::KERNEL_BPF_OBJ_NAME_LEN],
}

/// `BPF_OBJ_GET` attributes.
#[repr(C)]
#[derive(Default)]
struct ObjGet {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}
// SAFETY: repr(C) plain data; offsets asserted below.
unsafe impl Attr for ObjGet {}

/// `BPF_LINK_DETACH` attributes.
#[repr(C)]
#[derive(Default)]
struct LinkDetach {
    link_fd: u32,
}
// SAFETY: repr(C) plain data; offset asserted below.
unsafe impl Attr for LinkDetach {}

/// `BPF_PROG_QUERY` attributes, up to `revision` (kernel 6.6; Debian 12's header ends at
/// `prog_attach_flags`, so only the fields up to `prog_cnt` are asserted). The fields this
/// crate does not ask for stay zero, which older kernels accept past their own size.
#[repr(C)]
#[derive(Default)]
struct ProgQuery {
    target: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
    prog_attach_flags: u64,
    link_ids: u64,
    link_attach_flags: u64,
    revision: u64,
}
// SAFETY: repr(C) plain data; offsets asserted below.
unsafe impl Attr for ProgQuery {}

/// The prefix of `struct bpf_link_info` this crate reads: `xdp.ifindex` is the first field
/// of the union (so is `tcx.ifindex` on kernels >= 6.6, whose UAPI headers Debian 12 lacks).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RawLinkInfo {
    pub link_type: u32,
    pub id: u32,
    pub prog_id: u32,
    _pad: u32,
    pub ifindex: u32,
    _rest: [u32; 7],
}

const _: () = {
    assert!(offset_of!(RawLinkInfo, ifindex) == c::KERNEL_LINK_INFO_XDP_IFINDEX);
    assert!(offset_of!(ObjGet, pathname) == c::KERNEL_ATTR_PATHNAME);
    assert!(offset_of!(LinkDetach, link_fd) == c::KERNEL_ATTR_LINK_DETACH_FD);
    assert!(offset_of!(ObjGet, file_flags) == c::KERNEL_ATTR_FILE_FLAGS);
    assert!(offset_of!(ProgQuery, target) == c::KERNEL_ATTR_QUERY_TARGET);
    assert!(offset_of!(ProgQuery, attach_type) == c::KERNEL_ATTR_QUERY_ATTACH_TYPE);
    assert!(offset_of!(ProgQuery, prog_ids) == c::KERNEL_ATTR_QUERY_PROG_IDS);
    assert!(offset_of!(ProgQuery, prog_cnt) == c::KERNEL_ATTR_QUERY_PROG_CNT);
    assert!(offset_of!(MapCreate, map_type) == c::KERNEL_ATTR_MAP_TYPE);
    assert!(offset_of!(MapCreate, key_size) == c::KERNEL_ATTR_KEY_SIZE);
    assert!(offset_of!(MapCreate, value_size) == c::KERNEL_ATTR_VALUE_SIZE);
    assert!(offset_of!(MapCreate, max_entries) == c::KERNEL_ATTR_MAX_ENTRIES);
    assert!(offset_of!(MapCreate, map_flags) == c::KERNEL_ATTR_MAP_FLAGS);
    assert!(offset_of!(MapCreate, inner_map_fd) == c::KERNEL_ATTR_INNER_MAP_FD);
    assert!(offset_of!(MapCreate, numa_node) == c::KERNEL_ATTR_NUMA_NODE);
    assert!(offset_of!(MapCreate, map_name) == c::KERNEL_ATTR_MAP_NAME);
    assert!(offset_of!(MapElem, map_fd) == c::KERNEL_ATTR_ELEM_MAP_FD);
    assert!(offset_of!(MapElem, key) == c::KERNEL_ATTR_ELEM_KEY);
    assert!(offset_of!(MapElem, value) == c::KERNEL_ATTR_ELEM_VALUE);
    assert!(offset_of!(MapElem, flags) == c::KERNEL_ATTR_ELEM_FLAGS);
    assert!(offset_of!(MapBatch, in_batch) == c::KERNEL_ATTR_BATCH_IN_BATCH);
    assert!(offset_of!(MapBatch, out_batch) == c::KERNEL_ATTR_BATCH_OUT_BATCH);
    assert!(offset_of!(MapBatch, keys) == c::KERNEL_ATTR_BATCH_KEYS);
    assert!(offset_of!(MapBatch, values) == c::KERNEL_ATTR_BATCH_VALUES);
    assert!(offset_of!(MapBatch, count) == c::KERNEL_ATTR_BATCH_COUNT);
    assert!(offset_of!(MapBatch, map_fd) == c::KERNEL_ATTR_BATCH_MAP_FD);
    assert!(offset_of!(MapBatch, elem_flags) == c::KERNEL_ATTR_BATCH_ELEM_FLAGS);
    assert!(offset_of!(MapBatch, flags) == c::KERNEL_ATTR_BATCH_FLAGS);
    assert!(offset_of!(ObjInfo, bpf_fd) == c::KERNEL_ATTR_INFO_BPF_FD);
    assert!(offset_of!(ObjInfo, info_len) == c::KERNEL_ATTR_INFO_INFO_LEN);
    assert!(offset_of!(ObjInfo, info) == c::KERNEL_ATTR_INFO_INFO);
    assert!(offset_of!(GetFdById, map_id) == c::KERNEL_ATTR_MAP_ID);
    assert!(offset_of!(GetFdById, open_flags) == c::KERNEL_ATTR_OPEN_FLAGS);
    assert!(offset_of!(RawMapInfo, map_type) == c::KERNEL_MAP_INFO_TYPE);
    assert!(offset_of!(RawMapInfo, id) == c::KERNEL_MAP_INFO_ID);
    assert!(offset_of!(RawMapInfo, key_size) == c::KERNEL_MAP_INFO_KEY_SIZE);
    assert!(offset_of!(RawMapInfo, value_size) == c::KERNEL_MAP_INFO_VALUE_SIZE);
    assert!(offset_of!(RawMapInfo, max_entries) == c::KERNEL_MAP_INFO_MAX_ENTRIES);
    assert!(offset_of!(RawMapInfo, map_flags) == c::KERNEL_MAP_INFO_MAP_FLAGS);
    assert!(offset_of!(RawMapInfo, name) == c::KERNEL_MAP_INFO_NAME);
};

/// `BPF_MAP_TYPE_HASH`.
pub(crate) const MAP_TYPE_HASH: u32 = c::KERNEL_BPF_MAP_TYPE_HASH;
/// `BPF_MAP_TYPE_ARRAY_OF_MAPS`.
pub(crate) const MAP_TYPE_ARRAY_OF_MAPS: u32 = c::KERNEL_BPF_MAP_TYPE_ARRAY_OF_MAPS;

/// `BPF_MAP_TYPE_LPM_TRIE`.
pub(crate) const MAP_TYPE_LPM_TRIE: u32 = c::KERNEL_BPF_MAP_TYPE_LPM_TRIE;
/// `BPF_F_NO_PREALLOC` (required for LPM tries).
pub(crate) const F_NO_PREALLOC: u32 = c::KERNEL_BPF_F_NO_PREALLOC;

/// Update flags.
pub(crate) const ANY: u64 = c::KERNEL_BPF_ANY;
/// Update flags: create only.
pub(crate) const NOEXIST: u64 = c::KERNEL_BPF_NOEXIST;

fn fd_u32(fd: BorrowedFd<'_>) -> u32 {
    // Descriptors are never negative.
    fd.as_raw_fd().unsigned_abs()
}

fn addr<T: ?Sized>(value: &T) -> u64 {
    std::ptr::from_ref(value).cast::<u8>() as u64
}

/// `BPF_MAP_CREATE` of a plain map (no BTF, no inner map). `name` is cut at 15 bytes.
pub(crate) fn map_create(
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    name: &str,
) -> io::Result<OwnedFd> {
    let mut attr = MapCreate {
        map_type,
        key_size,
        value_size,
        max_entries,
        map_flags,
        ..MapCreate::default()
    };
    let room = attr.map_name.len() - 1; // NUL-terminated
    for (slot, byte) in attr.map_name.iter_mut().zip(name.bytes().take(room)) {
        *slot = byte;
    }
    let ret = bpf(c::KERNEL_BPF_MAP_CREATE, &mut attr, "BPF_MAP_CREATE")?;
    owned_fd(ret, "BPF_MAP_CREATE")
}

/// `BPF_MAP_UPDATE_ELEM`: `key` and `value` must be exactly the map's key and value size.
pub(crate) fn map_update(
    map: BorrowedFd<'_>,
    key: &[u8],
    value: &[u8],
    flags: u64,
) -> io::Result<()> {
    let mut attr = MapElem {
        map_fd: fd_u32(map),
        key: addr(key),
        value: addr(value),
        flags,
        ..MapElem::default()
    };
    bpf(
        c::KERNEL_BPF_MAP_UPDATE_ELEM,
        &mut attr,
        "BPF_MAP_UPDATE_ELEM",
    )
    .map(drop)
}

/// `BPF_MAP_LOOKUP_ELEM` into `value` (exactly the map's value size); `Ok(false)` if absent.
pub(crate) fn map_lookup(map: BorrowedFd<'_>, key: &[u8], value: &mut [u8]) -> io::Result<bool> {
    let mut attr = MapElem {
        map_fd: fd_u32(map),
        key: addr(key),
        value: std::ptr::from_mut(value).cast::<u8>() as u64,
        ..MapElem::default()
    };
    match bpf(
        c::KERNEL_BPF_MAP_LOOKUP_ELEM,
        &mut attr,
        "BPF_MAP_LOOKUP_ELEM",
    ) {
        Ok(_) => Ok(true),
        Err(error) if errno(&error) == Some(libc::ENOENT) => Ok(false),
        Err(error) => Err(error),
    }
}

/// `BPF_MAP_DELETE_ELEM`; `Ok(false)` if the key was absent.
pub(crate) fn map_delete(map: BorrowedFd<'_>, key: &[u8]) -> io::Result<bool> {
    let mut attr = MapElem {
        map_fd: fd_u32(map),
        key: addr(key),
        ..MapElem::default()
    };
    match bpf(
        c::KERNEL_BPF_MAP_DELETE_ELEM,
        &mut attr,
        "BPF_MAP_DELETE_ELEM",
    ) {
        Ok(_) => Ok(true),
        Err(error) if errno(&error) == Some(libc::ENOENT) => Ok(false),
        Err(error) => Err(error),
    }
}

/// `BPF_MAP_GET_NEXT_KEY`: the key after `key` (the first key for `None`), `Ok(false)` at the end.
pub(crate) fn map_next_key(
    map: BorrowedFd<'_>,
    key: Option<&[u8]>,
    next: &mut [u8],
) -> io::Result<bool> {
    let mut attr = MapElem {
        map_fd: fd_u32(map),
        key: key.map_or(0, addr),
        value: std::ptr::from_mut(next).cast::<u8>() as u64,
        ..MapElem::default()
    };
    match bpf(
        c::KERNEL_BPF_MAP_GET_NEXT_KEY,
        &mut attr,
        "BPF_MAP_GET_NEXT_KEY",
    ) {
        Ok(_) => Ok(true),
        Err(error) if errno(&error) == Some(libc::ENOENT) => Ok(false),
        Err(error) => Err(error),
    }
}

/// `BPF_MAP_UPDATE_BATCH` of `count` elements laid out back to back in `keys` and `values`.
/// Returns how many the kernel stored (all of them on success; on error, the error together
/// with that count).
pub(crate) fn map_update_batch(
    map: BorrowedFd<'_>,
    keys: &[u8],
    values: &[u8],
    count: u32,
    elem_flags: u64,
) -> Result<(), (io::Error, u32)> {
    let mut attr = MapBatch {
        keys: addr(keys),
        values: addr(values),
        count,
        map_fd: fd_u32(map),
        elem_flags,
        ..MapBatch::default()
    };
    match bpf(
        c::KERNEL_BPF_MAP_UPDATE_BATCH,
        &mut attr,
        "BPF_MAP_UPDATE_BATCH",
    ) {
        Ok(_) => Ok(()),
        Err(error) => Err((error, attr.count)),
    }
}

/// `BPF_MAP_LOOKUP_BATCH`: up to `count` elements after the opaque position `in_batch`
/// (`None` = from the start) into `keys` / `values`. Returns (elements read, next position,
/// whether the map is exhausted).
pub(crate) fn map_lookup_batch(
    map: BorrowedFd<'_>,
    in_batch: Option<&[u8]>,
    out_batch: &mut [u8],
    keys: &mut [u8],
    values: &mut [u8],
    count: u32,
) -> io::Result<(u32, bool)> {
    let mut attr = MapBatch {
        in_batch: in_batch.map_or(0, addr),
        out_batch: std::ptr::from_mut(out_batch).cast::<u8>() as u64,
        keys: std::ptr::from_mut(keys).cast::<u8>() as u64,
        values: std::ptr::from_mut(values).cast::<u8>() as u64,
        count,
        map_fd: fd_u32(map),
        ..MapBatch::default()
    };
    match bpf(
        c::KERNEL_BPF_MAP_LOOKUP_BATCH,
        &mut attr,
        "BPF_MAP_LOOKUP_BATCH",
    ) {
        Ok(_) => Ok((attr.count, false)),
        // ENOENT: the last batch (possibly empty) was returned.
        Err(error) if errno(&error) == Some(libc::ENOENT) => Ok((attr.count, true)),
        Err(error) => Err(error),
    }
}

/// Writes `value` to slot 0 of a one-entry array (the config maps the supervisor writes).
pub(crate) fn set_slot0(map: BorrowedFd<'_>, value: &[u8]) -> io::Result<()> {
    map_update(map, &0_u32.to_ne_bytes(), value, ANY)
}

/// Elements per `BPF_MAP_UPDATE_BATCH` call in [`map_fill`].
const FILL_BATCH: usize = 1 << 14;

/// Stores `elements` in `map`, each written as key bytes by `key` and value bytes by
/// `value` (the map's sizes): `BPF_MAP_UPDATE_BATCH` in chunks (the kernel loops over them
/// itself), or one `BPF_MAP_UPDATE_ELEM` per element where the kernel has no batch operation
/// for the map type.
pub(crate) fn map_fill<T>(
    map: BorrowedFd<'_>,
    elements: &[T],
    key: impl Fn(&T, &mut Vec<u8>),
    value: impl Fn(&T, &mut Vec<u8>),
) -> io::Result<()> {
    let (mut keys, mut values) = (Vec::new(), Vec::new());
    for chunk in elements.chunks(FILL_BATCH) {
        keys.clear();
        values.clear();
        for e in chunk {
            key(e, &mut keys);
            value(e, &mut values);
        }
        // At most FILL_BATCH elements: fits u32.
        let count = chunk.len() as u32;
        match map_update_batch(map, &keys, &values, count, ANY) {
            Ok(()) => {}
            Err((error, 0))
                if matches!(
                    errno(&error),
                    Some(
                        libc::EINVAL | libc::EOPNOTSUPP | libc::ENOSYS | 524 /* ENOTSUPP */
                    )
                ) =>
            {
                let (key_size, value_size) = (keys.len() / chunk.len(), values.len() / chunk.len());
                for (k, v) in keys
                    .chunks_exact(key_size)
                    .zip(values.chunks_exact(value_size))
                {
                    map_update(map, k, v, ANY)?;
                }
            }
            Err((error, done)) => {
                return Err(io::Error::new(
                    error.kind(),
                    format!("{error} (after {done} of {count} elements of a batch)"),
                ));
            }
        }
    }
    Ok(())
}

/// `BPF_OBJ_GET_INFO_BY_FD` into `T` (`RawMapInfo`, `RawLinkInfo`: repr(C) plain data).
fn obj_info<T: Default>(fd: BorrowedFd<'_>) -> io::Result<T> {
    let mut info = T::default();
    let mut attr = ObjInfo {
        bpf_fd: fd_u32(fd),
        // A small struct: cannot truncate.
        info_len: size_of::<T>() as u32,
        info: std::ptr::from_mut(&mut info).cast::<u8>() as u64,
    };
    bpf(
        c::KERNEL_BPF_OBJ_GET_INFO_BY_FD,
        &mut attr,
        "BPF_OBJ_GET_INFO_BY_FD",
    )?;
    Ok(info)
}

/// `BPF_OBJ_GET_INFO_BY_FD` for a map.
pub(crate) fn map_info(map: BorrowedFd<'_>) -> io::Result<RawMapInfo> {
    obj_info(map)
}

/// `BPF_OBJ_GET`: a descriptor of a pinned object.
pub(crate) fn obj_get(path: &std::path::Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| call_error("BPF_OBJ_GET", io::Error::from(io::ErrorKind::InvalidInput)))?;
    let mut attr = ObjGet {
        pathname: c_path.as_ptr() as u64,
        ..ObjGet::default()
    };
    let ret = bpf(c::KERNEL_BPF_OBJ_GET, &mut attr, "BPF_OBJ_GET")?;
    owned_fd(ret, "BPF_OBJ_GET")
}

/// `BPF_OBJ_PIN`: pins `object` at `path` (in a bpffs).
pub(crate) fn obj_pin(object: BorrowedFd<'_>, path: &std::path::Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| call_error("BPF_OBJ_PIN", io::Error::from(io::ErrorKind::InvalidInput)))?;
    let mut attr = ObjGet {
        pathname: c_path.as_ptr() as u64,
        bpf_fd: fd_u32(object),
        ..ObjGet::default()
    };
    bpf(c::KERNEL_BPF_OBJ_PIN, &mut attr, "BPF_OBJ_PIN").map(|_| ())
}

/// `BPF_OBJ_GET_INFO_BY_FD` for an XDP or TCX link.
pub(crate) fn link_info(link: BorrowedFd<'_>) -> io::Result<RawLinkInfo> {
    obj_info(link)
}

/// `BPF_LINK_DETACH`: detaches the link's program from its hook now (the link object lives on,
/// defunct, until its last reference goes). Dropping the last reference instead detaches
/// only after an RCU grace period and a work item, so whoever must see the hook empty when
/// the call returns detaches explicitly.
pub(crate) fn link_detach(link: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = LinkDetach {
        link_fd: fd_u32(link),
    };
    bpf(c::KERNEL_BPF_LINK_DETACH, &mut attr, "BPF_LINK_DETACH").map(|_| ())
}

/// `BPF_PROG_QUERY` on an interface's hook of `attach_type`: the ids of the programs
/// attached there, in the order they run (TCX). Asks again with a larger buffer when more
/// programs are attached than it first had room for (`ENOSPC` reports how many).
pub(crate) fn prog_query(ifindex: u32, attach_type: u32) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 16];
    loop {
        let mut attr = ProgQuery {
            target: ifindex,
            attach_type,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: u32::try_from(ids.len()).unwrap_or(u32::MAX),
            ..ProgQuery::default()
        };
        match bpf(c::KERNEL_BPF_PROG_QUERY, &mut attr, "BPF_PROG_QUERY") {
            Ok(_) => {
                ids.truncate(attr.prog_cnt as usize);
                return Ok(ids);
            }
            Err(e) if errno(&e) == Some(libc::ENOSPC) && attr.prog_cnt as usize > ids.len() => {
                ids = vec![0; attr.prog_cnt as usize];
            }
            Err(e) => return Err(e),
        }
    }
}

/// `BPF_MAP_GET_FD_BY_ID`.
pub(crate) fn map_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetFdById {
        map_id: id,
        ..GetFdById::default()
    };
    let ret = bpf(
        c::KERNEL_BPF_MAP_GET_FD_BY_ID,
        &mut attr,
        "BPF_MAP_GET_FD_BY_ID",
    )?;
    owned_fd(ret, "BPF_MAP_GET_FD_BY_ID")
}

/// Current `CLOCK_BOOTTIME` in nanoseconds: the clock of `bpf_ktime_get_boot_ns()`.
pub(crate) fn boot_time_ns() -> io::Result<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    Ok(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
}

/// Runs a program `repeat` times on `data` with `BPF_PROG_TEST_RUN`; returns the program's
/// return value, the kernel's mean duration of one run in ns, and how many bytes of the
/// packet as the program left it were written to `out` (0 without `out`).
pub(crate) fn prog_test_run(
    prog: BorrowedFd<'_>,
    data: &[u8],
    repeat: u32,
    out: Option<&mut [u8]>,
) -> io::Result<(u32, u32, usize)> {
    let len = |n: usize| u32::try_from(n).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
    let (data_out, data_size_out) = match out {
        Some(buf) => (buf.as_mut_ptr() as u64, len(buf.len())?),
        None => (0, 0),
    };
    let mut attr = TestRun {
        prog_fd: fd_u32(prog),
        data_size_in: len(data.len())?,
        data_size_out,
        data_in: addr(data),
        data_out,
        repeat: repeat.max(1),
        ..TestRun::default()
    };
    bpf(c::KERNEL_BPF_PROG_TEST_RUN, &mut attr, "BPF_PROG_TEST_RUN")?;
    Ok((attr.retval, attr.duration, attr.data_size_out as usize))
}

const _: () = {
    assert!(offset_of!(TestRun, prog_fd) == c::KERNEL_ATTR_TEST_PROG_FD);
    assert!(offset_of!(TestRun, retval) == c::KERNEL_ATTR_TEST_RETVAL);
    assert!(offset_of!(TestRun, data_size_in) == c::KERNEL_ATTR_TEST_DATA_SIZE_IN);
    assert!(offset_of!(TestRun, data_in) == c::KERNEL_ATTR_TEST_DATA_IN);
    assert!(offset_of!(TestRun, repeat) == c::KERNEL_ATTR_TEST_REPEAT);
    assert!(offset_of!(TestRun, duration) == c::KERNEL_ATTR_TEST_DURATION);
    assert!(offset_of!(TestRun, data_size_out) == c::KERNEL_ATTR_TEST_DATA_SIZE_OUT);
    assert!(offset_of!(TestRun, data_out) == c::KERNEL_ATTR_TEST_DATA_OUT);
};
