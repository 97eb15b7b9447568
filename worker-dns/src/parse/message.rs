//! A whole message: header, then four sections (RFC 1035 §4.1).

use super::cursor::Cursor;
use super::edns::Edns;
use super::error::{ErrorKind, ParseError, Section};
use super::header::Header;
use super::name::Name;
use super::rdata::Rdata;
use super::types::{Class, Rcode, RrType};

/// Longest message any DNS transport carries (TCP's 16-bit length prefix).
pub const MAX_MESSAGE_LEN: usize = 65535;

/// Most records (questions included) the header counts may announce in
/// total; see the module docs for why 512.
pub const MAX_RECORDS: usize = 512;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    pub name: Name,
    pub qtype: RrType,
    pub qclass: Class,
}

impl Question {
    fn read(cur: &mut Cursor<'_>) -> Result<Self, ErrorKind> {
        Ok(Self {
            name: Name::read(cur)?,
            qtype: RrType(cur.u16()?),
            qclass: Class(cur.u16()?),
        })
    }
}

/// A resource record. For OPT, `class` and `ttl` hold the raw fields that
/// [`Edns`] decodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub name: Name,
    pub rtype: RrType,
    pub class: Class,
    pub ttl: u32,
    pub rdlength: u16,
    pub data: Rdata,
}

impl Record {
    fn read(cur: &mut Cursor<'_>) -> Result<Self, ErrorKind> {
        let name = Name::read(cur)?;
        let rtype = RrType(cur.u16()?);
        let class = Class(cur.u16()?);
        let ttl = cur.u32()?;
        let rdlength = cur.u16()?;
        let mut rdata = cur.sub(usize::from(rdlength), ErrorKind::RdataLengthMismatch)?;
        let data = Rdata::parse(rtype, class, ttl, &mut rdata)?;
        if !rdata.is_empty() {
            return Err(ErrorKind::RdataLengthMismatch);
        }
        Ok(Self {
            name,
            rtype,
            class,
            ttl,
            rdlength,
            data,
        })
    }
}

/// A parsed message. From [`parse_message_partial`], sections from the
/// failing one on are empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub questions: Vec<Question>,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additional: Vec<Record>,
}

impl Message {
    /// The first OPT record of the additional section, decoded.
    pub fn edns(&self) -> Option<&Edns> {
        self.additional
            .iter()
            .find_map(|record| match &record.data {
                Rdata::Opt(edns) => Some(edns),
                _ => None,
            })
    }

    /// The full response code: the header's 4 bits, under the OPT record's
    /// 8 extended bits when there is one (RFC 6891 §6.1.3).
    pub fn rcode(&self) -> Rcode {
        let high = self.edns().map_or(0, |edns| u16::from(edns.extended_rcode));
        Rcode(high << 4 | self.header.rcode.0)
    }
}

/// What best-effort parsing got: every section before `error.section`
/// complete, the rest empty. `error` is `None` when the message is well formed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartialMessage {
    pub message: Message,
    pub error: Option<ParseError>,
}

impl PartialMessage {
    pub fn is_complete(&self) -> bool {
        self.error.is_none()
    }
}

/// Strict: the whole message, or the first thing wrong with it.
pub fn parse_message(bytes: &[u8]) -> Result<Message, ParseError> {
    let partial = parse_message_partial(bytes)?;
    match partial.error {
        None => Ok(partial.message),
        Some(error) => Err(error),
    }
}

/// Best effort: fails only when there is no header to report (fewer than 12
/// bytes, or more than [`MAX_MESSAGE_LEN`]).
pub fn parse_message_partial(bytes: &[u8]) -> Result<PartialMessage, ParseError> {
    if bytes.len() > MAX_MESSAGE_LEN {
        return Err(ParseError::new(ErrorKind::MessageTooLong, Section::Header));
    }
    let mut cur = Cursor::new(bytes);
    let header = Header::parse(&mut cur).map_err(|kind| ParseError::new(kind, Section::Header))?;
    let mut message = Message {
        header,
        questions: Vec::new(),
        answers: Vec::new(),
        authority: Vec::new(),
        additional: Vec::new(),
    };
    let error = read_sections(&mut cur, &mut message).err();
    Ok(PartialMessage { message, error })
}

/// Fills the sections in order; each is stored only once complete.
fn read_sections(cur: &mut Cursor<'_>, message: &mut Message) -> Result<(), ParseError> {
    let h = message.header;
    let mut budget = MAX_RECORDS;
    message.questions = read_section(
        cur,
        Section::Question,
        h.qdcount,
        &mut budget,
        Question::read,
    )?;
    message.answers = read_section(cur, Section::Answer, h.ancount, &mut budget, Record::read)?;
    message.authority = read_section(
        cur,
        Section::Authority,
        h.nscount,
        &mut budget,
        Record::read,
    )?;
    message.additional = read_section(
        cur,
        Section::Additional,
        h.arcount,
        &mut budget,
        Record::read,
    )?;
    if !cur.is_empty() {
        return Err(ParseError::new(ErrorKind::TrailingBytes, Section::End));
    }
    Ok(())
}

fn read_section<T>(
    cur: &mut Cursor<'_>,
    section: Section,
    count: u16,
    budget: &mut usize,
    read: fn(&mut Cursor<'_>) -> Result<T, ErrorKind>,
) -> Result<Vec<T>, ParseError> {
    let count = usize::from(count);
    *budget = budget
        .checked_sub(count)
        .ok_or(ParseError::new(ErrorKind::TooManyRecords, section))?;
    // Grows with what was read, never with what the header claims beyond a few.
    let mut items = Vec::with_capacity(count.min(8));
    for _ in 0..count {
        items.push(read(cur).map_err(|kind| ParseError::new(kind, section))?);
    }
    Ok(items)
}
