//! The Certificate message of TLS <= 1.2 (RFC 5246 section 7.4.2): a list of
//! DER certificates, leaf first. (TLS 1.3 sends it encrypted.)

use palisade_worker_runtime::cursor::Cursor;

use super::error::TlsError;

/// Certificates kept per message at most (a real chain has 2-4).
pub const MAX_CERTIFICATES: usize = 16;

/// Reads `certificate_list`: 3-byte length, then 3-byte-length DER entries.
pub fn parse_certificate_list(body: &[u8]) -> Result<Vec<Vec<u8>>, TlsError> {
    let mut c = Cursor::new(body);
    let len = c.u24()? as usize;
    let mut list = c.sub(len)?;
    let mut out = Vec::new();
    while list.remaining() > 0 && out.len() < MAX_CERTIFICATES {
        let n = list.u24()? as usize;
        out.push(list.take(n)?.to_vec());
    }
    Ok(out)
}
