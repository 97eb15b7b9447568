//! Capture files: pcap and pcapng through the `pcap-file` crate, link types mapped to
//! [`Link`], timestamps to ns since the epoch.

use std::{fs::File, io::Read, path::Path};

use palisade_abi::{DIR_EGRESS, DIR_INGRESS};
use palisade_ipc::messages::InterfaceName;
use pcap_file::{
    DataLink,
    pcap::PcapReader,
    pcapng::{Block, PcapNgReader, blocks::interface_description::InterfaceDescriptionOption},
};

use crate::packet::{Frame, Link};

/// Why a file cannot be replayed.
#[derive(Debug)]
pub enum Error {
    /// Opening or reading it.
    Io(std::io::Error),
    /// Not a pcap or pcapng file, or a damaged one.
    Format(String),
    /// A link type replay does not read.
    Link(DataLink),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io(e) => write!(f, "{e}"),
            Error::Format(e) => write!(f, "not a readable pcap or pcapng file: {e}"),
            Error::Link(l) => write!(
                f,
                "link type {l:?} is not supported (Ethernet, Linux cooked v1/v2, raw IP and BSD loopback are)"
            ),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<pcap_file::PcapError> for Error {
    fn from(e: pcap_file::PcapError) -> Self {
        match e {
            pcap_file::PcapError::IoError(e) => Error::Io(e),
            other => Error::Format(other.to_string()),
        }
    }
}

/// The [`Link`] of a capture link type.
pub fn link(dl: DataLink) -> Result<Link, Error> {
    Ok(match dl {
        DataLink::ETHERNET => Link::Ethernet,
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => Link::RawIp,
        DataLink::LINUX_SLL => Link::Sll,
        DataLink::LINUX_SLL2 => Link::Sll2,
        DataLink::NULL => Link::Null,
        DataLink::LOOP => Link::Loop,
        // LINKTYPE_RAW is 101 in files, DLT_RAW 12 or 14 on some systems.
        DataLink::Unknown(12 | 14) => Link::RawIp,
        other => return Err(Error::Link(other)),
    })
}

/// The direction a cooked capture records: outgoing packets are egress.
fn direction(link: Link, data: &[u8]) -> u8 {
    let pkttype = match link {
        Link::Sll => data.get(1).map(|b| u16::from(*b)),
        Link::Sll2 => data.get(10).map(|b| u16::from(*b)),
        _ => None,
    };
    // PACKET_OUTGOING
    if pkttype == Some(4) {
        DIR_EGRESS
    } else {
        DIR_INGRESS
    }
}

/// One pcapng interface: link type and ns per timestamp unit (or a power-of-two divisor).
#[derive(Debug, Clone)]
struct Iface {
    link: Option<Link>,
    dl: DataLink,
    /// Timestamp units: 10^-n s (`pow2` false) or 2^-n s.
    resol: u8,
    offset_s: u64,
    name: String,
}

fn ts_ns(raw: u128, iface: &Iface) -> u64 {
    // pcap-file hands the raw count of units as "nanoseconds".
    let ns = if iface.resol & 0x80 != 0 {
        let shift = u32::from(iface.resol & 0x7f);
        (raw.saturating_mul(1_000_000_000)) >> shift.min(127)
    } else {
        let exp = u32::from(iface.resol);
        if exp <= 9 {
            raw.saturating_mul(10u128.pow(9 - exp))
        } else {
            raw / 10u128.pow((exp - 9).min(38))
        }
    };
    u64::try_from(ns.saturating_add(u128::from(iface.offset_s) * 1_000_000_000)).unwrap_or(u64::MAX)
}

enum Inner {
    Pcap {
        r: PcapReader<File>,
        link: Link,
    },
    Ng {
        r: PcapNgReader<File>,
        ifaces: Vec<Iface>,
    },
}

/// A capture file, frame by frame.
#[allow(missing_debug_implementations)]
pub struct Reader {
    inner: Inner,
    /// pcapng frames are copied here (the reader's block borrows it across the block loop).
    buf: Vec<u8>,
}

impl Reader {
    /// Opens `path`, pcap or pcapng by its magic number.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let mut f = File::open(path)?;
        let mut magic = [0u8; 4];
        f.read_exact(&mut magic)
            .map_err(|_| Error::Format("shorter than a file header".into()))?;
        let f = File::open(path)?;
        let inner = if magic == [0x0a, 0x0d, 0x0d, 0x0a] {
            Inner::Ng {
                r: PcapNgReader::new(f)?,
                ifaces: Vec::new(),
            }
        } else {
            let r = PcapReader::new(f)?;
            let link = link(r.header().datalink)?;
            Inner::Pcap { r, link }
        };
        Ok(Self {
            inner,
            buf: Vec::new(),
        })
    }

    /// Interface names for the events' `in_iface`: `pcap` (ifindex 1) for a pcap file;
    /// for pcapng, each interface's `if_name` (or `pcapN`), ifindex = its id + 1.
    pub fn interfaces(&self) -> Vec<InterfaceName> {
        let mut v = vec![InterfaceName {
            ifindex: 1,
            name: "pcap".into(),
        }];
        if let Inner::Ng { r, .. } = &self.inner {
            v.clear();
            for (i, idb) in r.interfaces().iter().enumerate() {
                let name = idb
                    .options
                    .iter()
                    .find_map(|o| match o {
                        InterfaceDescriptionOption::IfName(n) => Some(n.to_string()),
                        _ => None,
                    })
                    .unwrap_or_else(|| format!("pcap{i}"));
                v.push(InterfaceName {
                    ifindex: u32::try_from(i).unwrap_or(u32::MAX).saturating_add(1),
                    name,
                });
            }
            // Interfaces declared later are named `if<N>` by the events.
            for i in r.interfaces().len()..64 {
                v.push(InterfaceName {
                    ifindex: i as u32 + 1,
                    name: format!("pcap{i}"),
                });
            }
        }
        v
    }

    /// The next frame, `None` at the end of the file.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, Error> {
        let buf = &mut self.buf;
        match &mut self.inner {
            Inner::Pcap { r, link } => {
                let Some(pkt) = r.next_packet() else {
                    return Ok(None);
                };
                let pkt = pkt?;
                let ts = u64::try_from(pkt.timestamp.as_nanos()).unwrap_or(u64::MAX);
                let data: &[u8] = match pkt.data {
                    std::borrow::Cow::Borrowed(d) => d,
                    std::borrow::Cow::Owned(_) => return Err(Error::Format("owned packet".into())),
                };
                Ok(Some(Frame {
                    ts_ns: ts,
                    data,
                    wire_len: pkt.orig_len,
                    link: *link,
                    ifindex: 1,
                    direction: direction(*link, data),
                }))
            }
            Inner::Ng { r, ifaces } => {
                let meta = loop {
                    let Some(block) = r.next_block() else {
                        return Ok(None);
                    };
                    match block? {
                        Block::InterfaceDescription(idb) => {
                            let mut iface = Iface {
                                link: link(idb.linktype).ok(),
                                dl: idb.linktype,
                                resol: 6,
                                offset_s: 0,
                                name: String::new(),
                            };
                            for o in &idb.options {
                                match o {
                                    InterfaceDescriptionOption::IfTsResol(r) => iface.resol = *r,
                                    InterfaceDescriptionOption::IfTsOffset(o) => {
                                        iface.offset_s = *o
                                    }
                                    InterfaceDescriptionOption::IfName(n) => {
                                        iface.name = n.to_string()
                                    }
                                    _ => {}
                                }
                            }
                            ifaces.push(iface);
                        }
                        Block::SectionHeader(_) => ifaces.clear(),
                        Block::EnhancedPacket(epb) => {
                            let iface = ifaces.get(epb.interface_id as usize).ok_or_else(|| {
                                Error::Format("packet of an undeclared interface".into())
                            })?;
                            let link = iface.link.ok_or(Error::Link(iface.dl))?;
                            let ts = ts_ns(epb.timestamp.as_nanos(), iface);
                            buf.clear();
                            buf.extend_from_slice(&epb.data);
                            break (
                                ts,
                                epb.original_len,
                                link,
                                epb.interface_id.saturating_add(1),
                            );
                        }
                        Block::SimplePacket(spb) => {
                            let iface = ifaces.first().ok_or_else(|| {
                                Error::Format("packet of an undeclared interface".into())
                            })?;
                            let link = iface.link.ok_or(Error::Link(iface.dl))?;
                            buf.clear();
                            buf.extend_from_slice(&spb.data);
                            break (0, spb.original_len, link, 1);
                        }
                        _ => {}
                    }
                };
                let (ts_ns, wire_len, link, ifindex) = meta;
                Ok(Some(Frame {
                    ts_ns,
                    data: buf,
                    wire_len,
                    link,
                    ifindex,
                    direction: direction(link, buf),
                }))
            }
        }
    }
}
