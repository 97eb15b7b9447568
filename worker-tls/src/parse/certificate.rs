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

/// What Palisade logs of a certificate, formatted as Suricata's `tls` fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CertInfo {
    /// Subject DN, RFC 4514 attributes in certificate order joined by `, `.
    pub subject: Option<String>,
    /// Issuer DN, same form.
    pub issuerdn: Option<String>,
    /// Serial number, upper-case hex bytes joined by `:`.
    pub serial: Option<String>,
    /// SHA-1 of the DER, lower-case hex bytes joined by `:`.
    pub fingerprint: String,
    /// notBefore, `YYYY-MM-DDTHH:MM:SS` (UTC).
    pub notbefore: Option<String>,
    /// notAfter.
    pub notafter: Option<String>,
}

fn colon_hex(bytes: &[u8], upper: bool) -> String {
    bytes
        .iter()
        .map(|b| {
            if upper {
                format!("{b:02X}")
            } else {
                format!("{b:02x}")
            }
        })
        .collect::<Vec<_>>()
        .join(":")
}

/// `YYYY-MM-DDTHH:MM:SS` of Unix seconds (before 1970 too: X.509 allows 1950 on).
pub fn tls_date(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let sod = unix.rem_euclid(86_400);
    let (year, month, day) = palisade_worker_runtime::eve::civil_date(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Reads the fields of one DER certificate. The fingerprint is always there
/// (it is a hash of the bytes); the rest is `None` when the DER does not
/// parse as X.509 (then `Err` says why, for the counter).
pub fn cert_info(der: &[u8]) -> (CertInfo, Result<(), &'static str>) {
    use sha1::{Digest as _, Sha1};
    use x509_parser::prelude::{FromDer as _, X509Certificate};

    let mut info = CertInfo {
        fingerprint: colon_hex(&Sha1::digest(der), false),
        ..CertInfo::default()
    };
    match X509Certificate::from_der(der) {
        Ok((_, cert)) => {
            info.subject = Some(cert.subject().to_string());
            info.issuerdn = Some(cert.issuer().to_string());
            info.serial = Some(colon_hex(cert.raw_serial(), true));
            info.notbefore = Some(tls_date(cert.validity().not_before.timestamp()));
            info.notafter = Some(tls_date(cert.validity().not_after.timestamp()));
            (info, Ok(()))
        }
        Err(_) => (info, Err("tls_certificate_unreadable")),
    }
}
