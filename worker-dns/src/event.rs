//! DNS messages -> EVE `dns` event bodies, in Suricata's DNS log format version 2
//! (`dns.version: 2`, `type` `query`/`answer`).
//!
//! Unlike Suricata, header flags are logged on queries and answers alike,
//! and every question is kept (`queries`), with the first one also flat as
//! `rrname`/`rrtype` for compatibility with simple pipelines. What Suricata's
//! `dns` object has no field for (AD/CD bits, the client's MAC, the RTT, the
//! policy's verdict, MX preferences, a malformed section) is in [`DnsVendor`],
//! written as the event's `palisade.dns`.

use palisade_worker_runtime::eve::{Mac, Timestamp};
use serde::Serialize;

use crate::parse::{Message, Rdata, Record};

/// One question.
#[derive(Debug, Serialize)]
pub struct Query {
    /// Name, presentation format.
    pub rrname: String,
    /// Type mnemonic.
    pub rrtype: String,
}

/// One resource record.
#[derive(Debug, Serialize)]
pub struct Answer {
    /// Owner name.
    pub rrname: String,
    /// Type mnemonic.
    pub rrtype: String,
    /// TTL in seconds.
    pub ttl: u32,
    /// Data in presentation format (MX: the exchange only, as Suricata writes it; the
    /// preference is in `palisade.dns.answers`).
    pub rdata: String,
}

/// What a record has beyond Suricata's answer fields; `{}` for most.
#[derive(Debug, Default, Serialize)]
pub struct AnswerExtra {
    /// MX preference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preference: Option<u16>,
}

impl AnswerExtra {
    fn is_empty(&self) -> bool {
        self.preference.is_none()
    }
}

/// Suricata's DNS log format version this body follows.
pub const DNS_LOG_VERSION: u8 = 2;

/// The `dns` object of an event.
#[derive(Debug, Serialize)]
pub struct DnsBody {
    /// [`DNS_LOG_VERSION`].
    pub version: u8,
    /// `query`, `answer`, or `unanswered` (a query that got no answer
    /// within the correlation timeout).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Transaction id.
    pub id: u16,
    /// Header flags word, hex (as Suricata's `flags`).
    pub flags: String,
    /// Response bit.
    pub qr: bool,
    /// Authoritative answer.
    pub aa: bool,
    /// Truncated.
    pub tc: bool,
    /// Recursion desired.
    pub rd: bool,
    /// Recursion available.
    pub ra: bool,
    /// Opcode number.
    pub opcode: u8,
    /// First question's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rrname: Option<String>,
    /// First question's type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rrtype: Option<String>,
    /// Response code mnemonic (answers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rcode: Option<String>,
    /// Every question (absent when the message has none: the schema wants at least one).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub queries: Vec<Query>,
    /// Answer section.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub answers: Vec<Answer>,
    /// Authority section.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub authorities: Vec<Answer>,
    /// Palisade's fields, written as `palisade.dns` ([`DnsBody::take_vendor`]).
    #[serde(skip)]
    pub vendor: DnsVendor,
}

/// `palisade.dns`: what Suricata's `dns` object has no field for.
#[derive(Debug, Default, Serialize)]
pub struct DnsVendor {
    /// Authentic data.
    pub ad: bool,
    /// Checking disabled.
    pub cd: bool,
    /// Set when a later section was malformed: its snake_case reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial: Option<&'static str>,
    /// MAC address of the client (query sender / answer receiver).
    pub client_mac: Option<Mac>,
    /// Answers: when the matching query was seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_timestamp: Option<Timestamp>,
    /// Answers: milliseconds between query and answer, as seen here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    /// Unanswered queries: how long we waited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// What the domain policy did with this message, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    /// Per record of `dns.answers`, in the same order, what it has beyond Suricata's
    /// fields (MX preference); absent when no record has any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answers: Option<Vec<AnswerExtra>>,
    /// Idem for `dns.authorities`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorities: Option<Vec<AnswerExtra>>,
}

/// The `dns.policy` object.
#[derive(Debug, Clone, Serialize)]
pub struct Policy {
    /// `blocked` (the kernel answered NXDOMAIN or dropped it),
    /// `rewritten` (an answer rewritten to NXDOMAIN by the kernel), or
    /// `block_requested` (a regex rule matched; the supervisor was asked to
    /// block the name from the next query on).
    pub action: &'static str,
    /// The regex rule that matched (`block_requested`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<u32>,
}

fn answer(r: &Record) -> Answer {
    Answer {
        rrname: r.name.to_string(),
        rrtype: r.rtype.name().into_owned(),
        ttl: r.ttl,
        rdata: r.data.to_presentation(),
    }
}

/// The extras of a section's records, `None` when none has any.
fn extras(records: &[Record]) -> Option<Vec<AnswerExtra>> {
    let extras: Vec<AnswerExtra> = records
        .iter()
        .map(|r| AnswerExtra {
            preference: match r.data {
                Rdata::Mx { preference, .. } => Some(preference),
                _ => None,
            },
        })
        .collect();
    (!extras.iter().all(AnswerExtra::is_empty)).then_some(extras)
}

impl DnsBody {
    /// Builds the body from a (possibly partial) message.
    pub fn new(m: &Message, partial: Option<&'static str>, client_mac: Mac) -> Self {
        let h = &m.header;
        let first = m.questions.first();
        Self {
            version: DNS_LOG_VERSION,
            kind: if h.qr { "answer" } else { "query" },
            id: h.id,
            flags: format!("{:x}", h.flags),
            qr: h.qr,
            aa: h.aa,
            tc: h.tc,
            rd: h.rd,
            ra: h.ra,
            opcode: h.opcode.0,
            rrname: first.map(|q| q.name.to_string()),
            rrtype: first.map(|q| q.qtype.name().into_owned()),
            rcode: h.qr.then(|| m.rcode().name().into_owned()),
            queries: m
                .questions
                .iter()
                .map(|q| Query {
                    rrname: q.name.to_string(),
                    rrtype: q.qtype.name().into_owned(),
                })
                .collect(),
            answers: m.answers.iter().map(answer).collect(),
            authorities: m.authority.iter().map(answer).collect(),
            vendor: DnsVendor {
                ad: h.ad,
                cd: h.cd,
                partial,
                client_mac: Some(client_mac),
                answers: extras(&m.answers),
                authorities: extras(&m.authority),
                ..DnsVendor::default()
            },
        }
    }

    /// Moves Palisade's fields out, for the event's `palisade.dns`.
    pub fn take_vendor(&mut self) -> DnsVendor {
        std::mem::take(&mut self.vendor)
    }

    /// The body of an `unanswered` event, from what was kept of the query.
    pub fn unanswered(q: &KeptQuery, client_mac: Mac, timeout_ms: u64) -> Self {
        let message = Message {
            header: q.header,
            questions: Vec::new(),
            answers: Vec::new(),
            authority: Vec::new(),
            additional: Vec::new(),
        };
        let mut body = Self::new(&message, None, client_mac);
        body.kind = "unanswered";
        body.rrname = Some(q.rrname.to_string());
        body.rrtype = Some(q.rrtype.to_string());
        body.queries = vec![Query {
            rrname: q.rrname.to_string(),
            rrtype: q.rrtype.to_string(),
        }];
        body.vendor.timeout_ms = Some(timeout_ms);
        body
    }
}

/// What the worker keeps of a query until its answer: the header and the
/// first question (about 100 bytes instead of a whole event body).
#[derive(Debug, Clone)]
pub struct KeptQuery {
    /// The query's header.
    pub header: crate::parse::Header,
    /// First question's name.
    pub rrname: Box<str>,
    /// First question's type mnemonic.
    pub rrtype: Box<str>,
}

impl KeptQuery {
    /// Keeps what an `unanswered` event needs.
    pub fn of(m: &Message) -> Self {
        let first = m.questions.first();
        Self {
            header: m.header,
            rrname: first
                .map(|q| q.name.to_string())
                .unwrap_or_default()
                .into_boxed_str(),
            rrtype: first
                .map(|q| q.qtype.name().into_owned())
                .unwrap_or_default()
                .into_boxed_str(),
        }
    }
}
