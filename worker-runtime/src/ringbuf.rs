//! The worker's BPF ring buffer, mapped from the FD the supervisor passed: a consumer only.
//!
//! A worker must not link anything that can load a program or write a map (invariant 1 of
//! ARCHITECTURE.md; `tests/tests/structure.rs` checks the dependency tree), so this is a small
//! reader of the kernel's ring-buffer layout rather than aya's `RingBuf`. It issues one bpf(2)
//! command, `BPF_OBJ_GET_INFO_BY_FD`, to learn the map's type and size, and two `mmap`s, all
//! before seccomp is installed; reading records afterwards is plain memory access.
//!
//! Layout (kernel/bpf/ringbuf.c, `struct bpf_ringbuf`): page 0 holds the consumer position,
//! the only page user space may write; page 1 the producer position; then the data area of
//! `max_entries` bytes (a power of two), mapped twice in a row so that a record that wraps
//! around the end is contiguous. Each record starts with an 8-byte header: `u32 len` whose top
//! two bits are BUSY (being written) and DISCARD (reserved then discarded), and `u32 pg_off`.
//! Records are padded to 8 bytes. The producer publishes with release semantics, so the
//! consumer reads the producer position and each header with acquire loads, and publishes its
//! own position with a release store once a record's bytes are no longer needed.
//!
//! Reading and releasing are separate: [`RingBuf::next_record`] moves a private read position,
//! and only [`RingBuf::commit`] hands the space back to the kernel. The worker commits after
//! the events of a batch are written to its sink, so a worker killed mid-batch loses nothing:
//! its successor reads the uncommitted records again (at-least-once: events already written
//! before the kill may be written twice, never lost).

use std::{
    io,
    ops::Deref,
    os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd},
    ptr::NonNull,
    sync::atomic::{AtomicU32, AtomicU64, Ordering},
};

/// `BPF_OBJ_GET_INFO_BY_FD` of `enum bpf_cmd` (UAPI, stable).
const BPF_OBJ_GET_INFO_BY_FD: libc::c_int = 15;
/// `BPF_MAP_TYPE_RINGBUF` of `enum bpf_map_type` (UAPI, stable).
const BPF_MAP_TYPE_RINGBUF: u32 = 27;
/// `BPF_RINGBUF_BUSY_BIT`: the producer has reserved the record and not yet committed it.
const BUSY_BIT: u32 = 1 << 31;
/// `BPF_RINGBUF_DISCARD_BIT`: the producer discarded the record; skip it.
const DISCARD_BIT: u32 = 1 << 30;
/// `BPF_RINGBUF_HDR_SZ`.
const HEADER_BYTES: u64 = 8;

/// Mapping the ring buffer failed.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    /// `BPF_OBJ_GET_INFO_BY_FD` failed. On kernels before 5.19 with unprivileged BPF
    /// disabled every bpf() call fails for a worker.
    #[error(
        "BPF_OBJ_GET_INFO_BY_FD on the ring buffer FD; kernels < 5.19 refuse bpf() to unprivileged processes"
    )]
    Info(#[source] io::Error),
    /// The FD is a map, but not a ring buffer (or one of an impossible size).
    #[error(
        "the FD passed as ring buffer is not a BPF ring buffer map (type {map_type}, {size} bytes)"
    )]
    NotRingBuf {
        /// `bpf_map_info.type`.
        map_type: u32,
        /// `bpf_map_info.max_entries`.
        size: u32,
    },
    /// One of the two `mmap` calls failed.
    #[error("mmap of the ring buffer's {what}")]
    Mmap {
        /// Which mapping.
        what: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// The first fields of `struct bpf_map_info`; the kernel copies at most `info_len` bytes.
#[repr(C)]
#[derive(Default)]
struct MapInfo {
    map_type: u32,
    id: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
}

/// The `info` member of `union bpf_attr`, zero-padded to the size the kernel reads for it.
#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

fn map_info(fd: BorrowedFd<'_>) -> io::Result<MapInfo> {
    let mut info = MapInfo::default();
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<MapInfo>() as u32,
        info: std::ptr::addr_of_mut!(info) as u64,
    };
    // SAFETY: `attr` is a valid `union bpf_attr` prefix for this command of the size passed;
    // the kernel writes at most `info_len` bytes into `info`, which outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            std::ptr::addr_of_mut!(attr),
            std::mem::size_of::<InfoAttr>() as libc::c_uint,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info)
}

/// One `mmap` of the ring's FD, unmapped on drop.
struct Mapping {
    ptr: NonNull<libc::c_void>,
    len: usize,
}

impl Mapping {
    fn new(
        fd: BorrowedFd<'_>,
        len: usize,
        prot: libc::c_int,
        offset: usize,
        what: &'static str,
    ) -> Result<Self, RingError> {
        // SAFETY: a fresh shared mapping of a file descriptor we hold; no existing memory is
        // affected (address chosen by the kernel).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(RingError::Mmap {
                what,
                source: io::Error::last_os_error(),
            });
        }
        let ptr = NonNull::new(ptr).ok_or(RingError::Mmap {
            what,
            source: io::Error::other("mmap returned NULL"),
        })?;
        Ok(Self { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned; no reference into the mapping
        // outlives `RingBuf` (records borrow it mutably).
        unsafe { libc::munmap(self.ptr.as_ptr(), self.len) };
    }
}

/// A mapped BPF ring buffer, read by one consumer.
pub struct RingBuf {
    /// Page 0: `consumer_pos`, read-write.
    consumer: Mapping,
    /// Page 1: `producer_pos`; then the data area, twice.
    producer: Mapping,
    page: usize,
    /// `max_entries - 1`.
    mask: u64,
    /// Read position: records before it were handed out, not yet necessarily committed.
    read: u64,
    fd: OwnedFd,
}

impl std::fmt::Debug for RingBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingBuf")
            .field("fd", &self.fd)
            .field("size", &(self.mask + 1))
            .finish_non_exhaustive()
    }
}

/// Maps the ring buffer. Must run before seccomp is installed (it needs `bpf` and `mmap`).
pub fn open(fd: OwnedFd) -> Result<RingBuf, RingError> {
    let info = map_info(fd.as_fd()).map_err(RingError::Info)?;
    let size = info.max_entries;
    if info.map_type != BPF_MAP_TYPE_RINGBUF || !size.is_power_of_two() {
        return Err(RingError::NotRingBuf {
            map_type: info.map_type,
            size,
        });
    }
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let consumer = Mapping::new(
        fd.as_fd(),
        page,
        libc::PROT_READ | libc::PROT_WRITE,
        0,
        "consumer page",
    )?;
    let producer = Mapping::new(
        fd.as_fd(),
        page + 2 * size as usize,
        libc::PROT_READ,
        page,
        "producer page and data",
    )?;
    let mut ring = RingBuf {
        consumer,
        producer,
        page,
        mask: u64::from(size) - 1,
        read: 0,
        fd,
    };
    // Where the previous worker committed: what it read after that is read again.
    ring.read = ring.consumer_pos().load(Ordering::Acquire);
    Ok(ring)
}

impl RingBuf {
    fn consumer_pos(&self) -> &AtomicU64 {
        // SAFETY: page 0 starts with the kernel's `unsigned long consumer_pos`, 8-byte aligned
        // (page aligned), shared with the kernel, which only reads it; AtomicU64 has the layout
        // of u64.
        unsafe { &*self.consumer.ptr.as_ptr().cast::<AtomicU64>() }
    }

    fn producer_pos(&self) -> &AtomicU64 {
        // SAFETY: as above, for `producer_pos` at the start of the second mapping.
        unsafe { &*self.producer.ptr.as_ptr().cast::<AtomicU64>() }
    }

    /// Address of byte `offset` (< 2 * size) of the data area.
    fn data(&self, offset: u64) -> *const u8 {
        // SAFETY: the data area follows the producer page and is 2 * size bytes long; callers
        // pass offsets below that.
        unsafe {
            self.producer
                .ptr
                .as_ptr()
                .cast::<u8>()
                .add(self.page + offset as usize)
        }
    }

    /// The next record the producer committed, or `None` when the ring is empty (or the next
    /// record is still being written). Its space stays reserved until [`RingBuf::commit`].
    pub fn next_record(&mut self) -> Option<RingItem<'_>> {
        loop {
            let prod = self.producer_pos().load(Ordering::Acquire);
            if self.read >= prod {
                return None;
            }
            let offset = self.read & self.mask;
            // SAFETY: every record starts 8-byte aligned inside the data area; its header is a
            // u32 the producer writes atomically (release) when it commits or discards.
            let header = unsafe { &*self.data(offset).cast::<AtomicU32>() };
            let len = header.load(Ordering::Acquire);
            if len & BUSY_BIT != 0 {
                return None;
            }
            let size = len & !(BUSY_BIT | DISCARD_BIT);
            let total = (u64::from(size) + HEADER_BYTES + 7) & !7;
            if len & DISCARD_BIT != 0 || u64::from(size) > self.mask {
                self.read += total;
                continue;
            }
            // SAFETY: the committed record's `size` bytes follow its header; the data area is
            // mapped twice, so they are contiguous even when the record wraps, and the kernel
            // does not reuse them until the consumer position moves past them ([`commit`],
            // which needs `&mut self`, so never while this borrow lives).
            let bytes = unsafe {
                std::slice::from_raw_parts(self.data(offset + HEADER_BYTES), size as usize)
            };
            self.read += total;
            return Some(RingItem { bytes });
        }
    }

    /// Hands the space of every record read so far back to the kernel.
    pub fn commit(&mut self) {
        self.consumer_pos().store(self.read, Ordering::Release);
    }
}

impl AsFd for RingBuf {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for RingBuf {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// One record of the ring, exactly as long as the program submitted it.
pub struct RingItem<'a> {
    bytes: &'a [u8],
}

impl std::fmt::Debug for RingItem<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingItem")
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl Deref for RingItem<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.bytes
    }
}
