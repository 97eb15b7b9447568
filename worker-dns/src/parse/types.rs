//! Wire enums as newtypes with named constants: unknown values are kept and
//! rendered (RFC 3597 `TYPE65534` style), never rejected.

/// Declares the named constants of a wire newtype and its `mnemonic()`.
macro_rules! wire_names {
    ($ty:ident($int:ty), unknown = $prefix:literal, { $($konst:ident = $val:literal => $text:literal,)* }) => {
        impl $ty {
            $(pub const $konst: $ty = $ty($val);)*

            /// The registered mnemonic, if this value has one.
            pub const fn mnemonic(self) -> Option<&'static str> {
                match self.0 {
                    $($val => Some($text),)*
                    _ => None,
                }
            }

            /// The mnemonic, or the prefix and the number when unknown.
            pub fn name(self) -> ::std::borrow::Cow<'static, str> {
                match self.mnemonic() {
                    Some(text) => ::std::borrow::Cow::Borrowed(text),
                    None => ::std::borrow::Cow::Owned(format!(concat!($prefix, "{}"), self.0)),
                }
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                match self.mnemonic() {
                    Some(text) => f.write_str(text),
                    None => write!(f, concat!($prefix, "{}"), self.0),
                }
            }
        }

        impl From<$int> for $ty {
            fn from(value: $int) -> Self {
                Self(value)
            }
        }
    };
}
pub(crate) use wire_names;

/// Resource record type (IANA "Resource Record (RR) TYPEs").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RrType(pub u16);

wire_names!(RrType(u16), unknown = "TYPE", {
    A = 1 => "A",
    NS = 2 => "NS",
    MD = 3 => "MD",
    MF = 4 => "MF",
    CNAME = 5 => "CNAME",
    SOA = 6 => "SOA",
    MB = 7 => "MB",
    MG = 8 => "MG",
    MR = 9 => "MR",
    NULL = 10 => "NULL",
    WKS = 11 => "WKS",
    PTR = 12 => "PTR",
    HINFO = 13 => "HINFO",
    MINFO = 14 => "MINFO",
    MX = 15 => "MX",
    TXT = 16 => "TXT",
    RP = 17 => "RP",
    AFSDB = 18 => "AFSDB",
    X25 = 19 => "X25",
    ISDN = 20 => "ISDN",
    RT = 21 => "RT",
    NSAP = 22 => "NSAP",
    NSAP_PTR = 23 => "NSAP-PTR",
    SIG = 24 => "SIG",
    KEY = 25 => "KEY",
    PX = 26 => "PX",
    GPOS = 27 => "GPOS",
    AAAA = 28 => "AAAA",
    LOC = 29 => "LOC",
    NXT = 30 => "NXT",
    SRV = 33 => "SRV",
    NAPTR = 35 => "NAPTR",
    KX = 36 => "KX",
    CERT = 37 => "CERT",
    A6 = 38 => "A6",
    DNAME = 39 => "DNAME",
    OPT = 41 => "OPT",
    APL = 42 => "APL",
    DS = 43 => "DS",
    SSHFP = 44 => "SSHFP",
    IPSECKEY = 45 => "IPSECKEY",
    RRSIG = 46 => "RRSIG",
    NSEC = 47 => "NSEC",
    DNSKEY = 48 => "DNSKEY",
    DHCID = 49 => "DHCID",
    NSEC3 = 50 => "NSEC3",
    NSEC3PARAM = 51 => "NSEC3PARAM",
    TLSA = 52 => "TLSA",
    SMIMEA = 53 => "SMIMEA",
    HIP = 55 => "HIP",
    CDS = 59 => "CDS",
    CDNSKEY = 60 => "CDNSKEY",
    OPENPGPKEY = 61 => "OPENPGPKEY",
    CSYNC = 62 => "CSYNC",
    ZONEMD = 63 => "ZONEMD",
    SVCB = 64 => "SVCB",
    HTTPS = 65 => "HTTPS",
    SPF = 99 => "SPF",
    EUI48 = 108 => "EUI48",
    EUI64 = 109 => "EUI64",
    TKEY = 249 => "TKEY",
    TSIG = 250 => "TSIG",
    IXFR = 251 => "IXFR",
    AXFR = 252 => "AXFR",
    MAILB = 253 => "MAILB",
    MAILA = 254 => "MAILA",
    ANY = 255 => "ANY",
    URI = 256 => "URI",
    CAA = 257 => "CAA",
    TA = 32768 => "TA",
    DLV = 32769 => "DLV",
});

/// Record class (RFC 1035 §3.2.4, RFC 2136 NONE).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Class(pub u16);

wire_names!(Class(u16), unknown = "CLASS", {
    IN = 1 => "IN",
    CH = 3 => "CH",
    HS = 4 => "HS",
    NONE = 254 => "NONE",
    ANY = 255 => "ANY",
});

/// Header opcode (4 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Opcode(pub u8);

wire_names!(Opcode(u8), unknown = "OPCODE", {
    QUERY = 0 => "QUERY",
    IQUERY = 1 => "IQUERY",
    STATUS = 2 => "STATUS",
    NOTIFY = 4 => "NOTIFY",
    UPDATE = 5 => "UPDATE",
    DSO = 6 => "DSO",
});

/// Response code: the header's 4 bits, widened to 12 by the EDNS extended
/// rcode (see [`super::Message::rcode`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rcode(pub u16);

wire_names!(Rcode(u16), unknown = "RCODE", {
    NOERROR = 0 => "NOERROR",
    FORMERR = 1 => "FORMERR",
    SERVFAIL = 2 => "SERVFAIL",
    NXDOMAIN = 3 => "NXDOMAIN",
    NOTIMP = 4 => "NOTIMP",
    REFUSED = 5 => "REFUSED",
    YXDOMAIN = 6 => "YXDOMAIN",
    YXRRSET = 7 => "YXRRSET",
    NXRRSET = 8 => "NXRRSET",
    NOTAUTH = 9 => "NOTAUTH",
    NOTZONE = 10 => "NOTZONE",
    DSOTYPENI = 11 => "DSOTYPENI",
    BADVERS = 16 => "BADVERS",
    BADKEY = 17 => "BADKEY",
    BADTIME = 18 => "BADTIME",
    BADMODE = 19 => "BADMODE",
    BADNAME = 20 => "BADNAME",
    BADALG = 21 => "BADALG",
    BADTRUNC = 22 => "BADTRUNC",
    BADCOOKIE = 23 => "BADCOOKIE",
});

impl Rcode {
    /// 16 in a TSIG error field (RFC 8945); named `BADVERS` elsewhere, which
    /// is the only meaning an rcode in a header + OPT can have.
    pub const BADSIG: Rcode = Rcode(16);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_names() {
        assert_eq!(RrType::A.name(), "A");
        assert_eq!(RrType(65).name(), "HTTPS");
        assert_eq!(RrType(65534).name(), "TYPE65534");
        assert_eq!(RrType(65534).to_string(), "TYPE65534");
        assert_eq!(RrType::NSAP_PTR.to_string(), "NSAP-PTR");
        assert_eq!(Class::IN.name(), "IN");
        assert_eq!(Class(1472).name(), "CLASS1472");
        assert_eq!(Opcode::UPDATE.name(), "UPDATE");
        assert_eq!(Opcode(9).name(), "OPCODE9");
        assert_eq!(Rcode::NXDOMAIN.name(), "NXDOMAIN");
        assert_eq!(Rcode::BADSIG.name(), "BADVERS");
        assert_eq!(Rcode(3841).to_string(), "RCODE3841");
        assert_eq!(RrType::from(28), RrType::AAAA);
    }
}
