//! DNS messages -> EVE `dns` events, in Suricata's DNS log format version 2
//! (`dns.version: 2`, `type` `query`/`answer`), written straight from the parsed message
//! into the sink's buffer ([`DnsEvent::write`]: no intermediate strings).
//!
//! Unlike Suricata, header flags are logged on queries and answers alike,
//! and every question is kept (`queries`), with the first one also flat as
//! `rrname`/`rrtype` for compatibility with simple pipelines. What Suricata's
//! `dns` object has no field for (AD/CD bits, the client's MAC, the RTT, the
//! policy's verdict, MX preferences, a malformed section) is written as the
//! event's `palisade.dns` ([`DnsVendor`]).

use palisade_worker_runtime::{
    eve::{Common, Mac, Timestamp},
    json::JsonWriter,
};

use crate::parse::{Header, Message, Name, Question, Rcode, Rdata, Record, RrType};

/// Suricata's DNS log format version these events follow.
pub const DNS_LOG_VERSION: u8 = 2;

/// `palisade.dns`: what Suricata's `dns` object has no field for (the AD and CD bits come
/// from the header, the MX preferences from the records, when written).
#[derive(Debug, Default, Clone)]
pub struct DnsVendor {
    /// Set when a later section was malformed: its snake_case reason.
    pub partial: Option<&'static str>,
    /// MAC address of the client (query sender / answer receiver).
    pub client_mac: Option<Mac>,
    /// Answers: when the matching query was seen.
    pub query_timestamp: Option<Timestamp>,
    /// Answers: milliseconds between query and answer, as seen here.
    pub rtt_ms: Option<f64>,
    /// Unanswered queries: how long we waited.
    pub timeout_ms: Option<u64>,
    /// What the domain policy did with this message, if anything.
    pub policy: Option<Policy>,
}

/// `palisade.dns.policy`.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// `blocked` (the kernel answered NXDOMAIN or dropped it),
    /// `rewritten` (an answer rewritten to NXDOMAIN by the kernel), or
    /// `block_requested` (a regex rule matched; the supervisor was asked to
    /// block the name from the next query on).
    pub action: &'static str,
    /// The regex rule that matched (`block_requested`).
    pub rule_id: Option<u32>,
}

/// The questions an event shows.
#[derive(Debug, Clone, Copy)]
enum Questions<'a> {
    /// A parsed message's.
    Wire(&'a [Question]),
    /// What was kept of a query that got no answer.
    Kept(&'a KeptQuery),
}

/// One `dns` event: a message (or a query left unanswered) and Palisade's extras.
#[derive(Debug)]
pub struct DnsEvent<'a> {
    kind: &'static str,
    header: Header,
    rcode: Option<Rcode>,
    questions: Questions<'a>,
    answers: &'a [Record],
    authorities: &'a [Record],
    /// Palisade's own fields.
    pub vendor: DnsVendor,
}

impl<'a> DnsEvent<'a> {
    /// The event of a (possibly partial) message.
    pub fn of_message(m: &'a Message, partial: Option<&'static str>, client_mac: Mac) -> Self {
        let h = &m.header;
        Self {
            kind: if h.qr { "answer" } else { "query" },
            header: *h,
            rcode: h.qr.then(|| m.rcode()),
            questions: Questions::Wire(&m.questions),
            answers: &m.answers,
            authorities: &m.authority,
            vendor: DnsVendor {
                partial,
                client_mac: Some(client_mac),
                ..DnsVendor::default()
            },
        }
    }

    /// The `unanswered` event of a query, from what was kept of it.
    pub fn unanswered(q: &'a KeptQuery, client_mac: Mac, timeout_ms: u64) -> Self {
        Self {
            kind: "unanswered",
            header: q.header,
            rcode: None,
            questions: Questions::Kept(q),
            answers: &[],
            authorities: &[],
            vendor: DnsVendor {
                client_mac: Some(client_mac),
                timeout_ms: Some(timeout_ms),
                ..DnsVendor::default()
            },
        }
    }

    /// The whole event object: `common`'s fields, `dns`, and `palisade`.
    pub fn write(&self, w: &mut JsonWriter<'_>, common: &Common) {
        let h = &self.header;
        w.begin_object();
        common.write(w);
        w.key("dns").begin_object();
        w.key("version").u64(u64::from(DNS_LOG_VERSION));
        w.key("type").str(self.kind);
        w.key("id").u64(u64::from(h.id));
        w.key("flags").str_with(|s| push_hex(s, h.flags));
        w.key("qr").bool(h.qr);
        w.key("aa").bool(h.aa);
        w.key("tc").bool(h.tc);
        w.key("rd").bool(h.rd);
        w.key("ra").bool(h.ra);
        w.key("opcode").u64(u64::from(h.opcode.0));
        match self.questions {
            Questions::Wire(questions) => {
                if let Some(first) = questions.first() {
                    w.key("rrname");
                    write_name(w, &first.name);
                    w.key("rrtype");
                    write_type(w, first.qtype);
                }
                if let Some(rcode) = self.rcode {
                    w.key("rcode").str(&rcode.name());
                }
                // Absent when the message has none: the schema wants at least one.
                if !questions.is_empty() {
                    w.key("queries").begin_array();
                    for q in questions {
                        w.begin_object();
                        w.key("rrname");
                        write_name(w, &q.name);
                        w.key("rrtype");
                        write_type(w, q.qtype);
                        w.end_object();
                    }
                    w.end_array();
                }
            }
            Questions::Kept(q) => {
                w.key("rrname");
                write_name(w, &q.rrname);
                w.key("rrtype");
                write_type(w, q.rrtype);
                w.key("queries").begin_array().begin_object();
                w.key("rrname");
                write_name(w, &q.rrname);
                w.key("rrtype");
                write_type(w, q.rrtype);
                w.end_object().end_array();
            }
        }
        write_records(w, "answers", self.answers);
        write_records(w, "authorities", self.authorities);
        w.end_object();

        w.key("palisade").begin_object();
        w.key("iface_direction").str(common.iface_direction);
        w.key("dns").begin_object();
        w.key("ad").bool(h.ad);
        w.key("cd").bool(h.cd);
        let v = &self.vendor;
        if let Some(partial) = v.partial {
            w.key("partial").str(partial);
        }
        if let Some(mac) = v.client_mac {
            w.key("client_mac").mac(mac);
        }
        if let Some(ts) = v.query_timestamp {
            w.key("query_timestamp").timestamp(ts);
        }
        if let Some(rtt) = v.rtt_ms {
            w.key("rtt_ms").f64(rtt);
        }
        if let Some(timeout) = v.timeout_ms {
            w.key("timeout_ms").u64(timeout);
        }
        if let Some(p) = v.policy {
            w.key("policy").begin_object();
            w.key("action").str(p.action);
            if let Some(id) = p.rule_id {
                w.key("rule_id").u64(u64::from(id));
            }
            w.end_object();
        }
        write_extras(w, "answers", self.answers);
        write_extras(w, "authorities", self.authorities);
        w.end_object();
        w.end_object();
        w.end_object();
    }
}

/// Lower-case hex without leading zeros (as `{:x}`).
fn push_hex(s: &mut palisade_worker_runtime::json::StrOut<'_>, v: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut started = false;
    for shift in [12u16, 8, 4, 0] {
        let digit = usize::from((v >> shift) & 0xf);
        if digit != 0 || started || shift == 0 {
            started = true;
            s.push(HEX.get(digit..=digit).unwrap_or(b"0"));
        }
    }
}

/// A name's presentation text: labels joined by dots when no label needs a presentation
/// escape (the common case), else rendered on the stack first.
fn write_name(w: &mut JsonWriter<'_>, name: &Name) {
    if name.is_plain() {
        w.str_join(name.labels(), b'.');
        return;
    }
    write_name_escaped(w, name);
}

#[cold]
fn write_name_escaped(w: &mut JsonWriter<'_>, name: &Name) {
    // At most 4 characters per wire byte (`\DDD`).
    let mut text = [0u8; 4 * 256];
    let mut len = 0;
    name.write_text(|piece| {
        if let Some(slot) = text.get_mut(len..len + piece.len()) {
            slot.copy_from_slice(piece);
            len += piece.len();
        }
    });
    w.str_bytes(text.get(..len).unwrap_or_default());
}

fn write_type(w: &mut JsonWriter<'_>, t: RrType) {
    w.str(&t.name());
}

/// Suricata's `answers` / `authorities`: owner, type, TTL, rdata; absent when empty.
fn write_records(w: &mut JsonWriter<'_>, key: &str, records: &[Record]) {
    if records.is_empty() {
        return;
    }
    w.key(key).begin_array();
    for r in records {
        w.begin_object();
        w.key("rrname");
        write_name(w, &r.name);
        w.key("rrtype");
        write_type(w, r.rtype);
        w.key("ttl").u64(u64::from(r.ttl));
        w.key("rdata");
        write_rdata(w, &r.data);
        w.end_object();
    }
    w.end_array();
}

/// Presentation format (MX: the exchange only, as Suricata writes it): the common types
/// written in place, the others through [`Rdata::to_presentation`].
fn write_rdata(w: &mut JsonWriter<'_>, data: &Rdata) {
    match data {
        Rdata::A(addr) => {
            w.ipv4(*addr);
        }
        Rdata::Aaaa(addr) => {
            w.display(addr);
        }
        Rdata::Cname(name)
        | Rdata::Ns(name)
        | Rdata::Ptr(name)
        | Rdata::Dname(name)
        | Rdata::Mx { exchange: name, .. } => write_name(w, name),
        other => {
            w.str(&other.to_presentation());
        }
    }
}

/// `palisade.dns.answers` / `.authorities`: parallel to Suricata's lists, what each record
/// has beyond its fields (the preference of an MX, `{}` for the others); absent when no
/// record has any.
fn write_extras(w: &mut JsonWriter<'_>, key: &str, records: &[Record]) {
    let preference = |r: &Record| match r.data {
        Rdata::Mx { preference, .. } => Some(preference),
        _ => None,
    };
    if records.iter().all(|r| preference(r).is_none()) {
        return;
    }
    w.key(key).begin_array();
    for r in records {
        w.begin_object();
        if let Some(p) = preference(r) {
            w.key("preference").u64(u64::from(p));
        }
        w.end_object();
    }
    w.end_array();
}

/// What the worker keeps of a query until its answer: the header and the first question.
#[derive(Debug, Clone)]
pub struct KeptQuery {
    /// The query's header.
    pub header: Header,
    /// First question's name (the root when the query had none).
    pub rrname: Name,
    /// First question's type.
    pub rrtype: RrType,
}

impl KeptQuery {
    /// Keeps what an `unanswered` event needs.
    pub fn of(m: &Message) -> Self {
        let first = m.questions.first();
        Self {
            header: m.header,
            rrname: first.map(|q| q.name.clone()).unwrap_or_default(),
            rrtype: first.map_or(RrType(0), |q| q.qtype),
        }
    }
}
