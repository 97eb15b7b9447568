//! Wire enums as newtypes with named constants: unknown values are kept (and
//! rendered as numbers), never rejected. GREASE values (RFC 8701) are
//! recognised on every 16-bit code point that allows them.

/// Whether a 16-bit code point is a GREASE value (RFC 8701 section 2:
/// `0x0A0A`, `0x1A1A`, ... `0xFAFA`): both bytes equal, low nibble `0xA`.
pub const fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

/// Declares the named constants of a 16-bit wire newtype and its `mnemonic()`.
macro_rules! wire_names {
    ($ty:ident, { $($konst:ident = $val:literal => $text:literal,)* }) => {
        impl $ty {
            $(pub const $konst: $ty = $ty($val);)*

            /// The registered name, if this value has one (GREASE: `"GREASE"`).
            pub const fn mnemonic(self) -> Option<&'static str> {
                match self.0 {
                    $($val => Some($text),)*
                    v if is_grease(v) => Some("GREASE"),
                    _ => None,
                }
            }

            /// Whether this is a GREASE value (RFC 8701).
            pub const fn is_grease(self) -> bool {
                is_grease(self.0)
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                match self.mnemonic() {
                    Some(text) => f.write_str(text),
                    None => write!(f, "0x{:04x}", self.0),
                }
            }
        }

        impl From<u16> for $ty {
            fn from(value: u16) -> Self {
                Self(value)
            }
        }
    };
}

/// TLS ExtensionType (IANA "TLS ExtensionType Values").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExtensionType(pub u16);

wire_names!(ExtensionType, {
    SERVER_NAME = 0 => "server_name",
    MAX_FRAGMENT_LENGTH = 1 => "max_fragment_length",
    CLIENT_CERTIFICATE_URL = 2 => "client_certificate_url",
    TRUSTED_CA_KEYS = 3 => "trusted_ca_keys",
    TRUNCATED_HMAC = 4 => "truncated_hmac",
    STATUS_REQUEST = 5 => "status_request",
    USER_MAPPING = 6 => "user_mapping",
    CLIENT_AUTHZ = 7 => "client_authz",
    SERVER_AUTHZ = 8 => "server_authz",
    CERT_TYPE = 9 => "cert_type",
    SUPPORTED_GROUPS = 10 => "supported_groups",
    EC_POINT_FORMATS = 11 => "ec_point_formats",
    SRP = 12 => "srp",
    SIGNATURE_ALGORITHMS = 13 => "signature_algorithms",
    USE_SRTP = 14 => "use_srtp",
    HEARTBEAT = 15 => "heartbeat",
    ALPN = 16 => "application_layer_protocol_negotiation",
    STATUS_REQUEST_V2 = 17 => "status_request_v2",
    SIGNED_CERTIFICATE_TIMESTAMP = 18 => "signed_certificate_timestamp",
    CLIENT_CERTIFICATE_TYPE = 19 => "client_certificate_type",
    SERVER_CERTIFICATE_TYPE = 20 => "server_certificate_type",
    PADDING = 21 => "padding",
    ENCRYPT_THEN_MAC = 22 => "encrypt_then_mac",
    EXTENDED_MASTER_SECRET = 23 => "extended_master_secret",
    TOKEN_BINDING = 24 => "token_binding",
    CACHED_INFO = 25 => "cached_info",
    COMPRESS_CERTIFICATE = 27 => "compress_certificate",
    RECORD_SIZE_LIMIT = 28 => "record_size_limit",
    DELEGATED_CREDENTIAL = 34 => "delegated_credential",
    SESSION_TICKET = 35 => "session_ticket",
    PRE_SHARED_KEY = 41 => "pre_shared_key",
    EARLY_DATA = 42 => "early_data",
    SUPPORTED_VERSIONS = 43 => "supported_versions",
    COOKIE = 44 => "cookie",
    PSK_KEY_EXCHANGE_MODES = 45 => "psk_key_exchange_modes",
    CERTIFICATE_AUTHORITIES = 47 => "certificate_authorities",
    OID_FILTERS = 48 => "oid_filters",
    POST_HANDSHAKE_AUTH = 49 => "post_handshake_auth",
    SIGNATURE_ALGORITHMS_CERT = 50 => "signature_algorithms_cert",
    KEY_SHARE = 51 => "key_share",
    TRANSPARENCY_INFO = 52 => "transparency_info",
    CONNECTION_ID = 54 => "connection_id",
    EXTERNAL_ID_HASH = 55 => "external_id_hash",
    EXTERNAL_SESSION_ID = 56 => "external_session_id",
    QUIC_TRANSPORT_PARAMETERS = 57 => "quic_transport_parameters",
    TICKET_REQUEST = 58 => "ticket_request",
    APPLICATION_SETTINGS = 17513 => "application_settings",
    APPLICATION_SETTINGS_NEW = 17613 => "application_settings",
    ENCRYPTED_CLIENT_HELLO = 65037 => "encrypted_client_hello",
    RENEGOTIATION_INFO = 65281 => "renegotiation_info",
});

/// TLS NamedGroup, "supported_groups" (IANA "TLS Supported Groups"; RFC 8422 curves).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NamedGroup(pub u16);

wire_names!(NamedGroup, {
    SECP256R1 = 23 => "secp256r1",
    SECP384R1 = 24 => "secp384r1",
    SECP521R1 = 25 => "secp521r1",
    X25519 = 29 => "x25519",
    X448 = 30 => "x448",
    FFDHE2048 = 256 => "ffdhe2048",
    FFDHE3072 = 257 => "ffdhe3072",
    FFDHE4096 = 258 => "ffdhe4096",
    FFDHE6144 = 259 => "ffdhe6144",
    FFDHE8192 = 260 => "ffdhe8192",
    MLKEM512 = 512 => "MLKEM512",
    MLKEM768 = 513 => "MLKEM768",
    MLKEM1024 = 514 => "MLKEM1024",
    SECP256R1_MLKEM768 = 4587 => "SecP256r1MLKEM768",
    X25519_MLKEM768 = 4588 => "X25519MLKEM768",
    SECP384R1_MLKEM1024 = 4589 => "SecP384r1MLKEM1024",
    X25519_KYBER768_DRAFT00 = 25497 => "X25519Kyber768Draft00",
});

/// TLS SignatureScheme (RFC 8446 section 4.2.3; TLS 1.2 hash/signature pairs
/// read as the same 16 bits).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SignatureScheme(pub u16);

wire_names!(SignatureScheme, {
    RSA_PKCS1_SHA1 = 0x0201 => "rsa_pkcs1_sha1",
    ECDSA_SHA1 = 0x0203 => "ecdsa_sha1",
    RSA_PKCS1_SHA256 = 0x0401 => "rsa_pkcs1_sha256",
    ECDSA_SECP256R1_SHA256 = 0x0403 => "ecdsa_secp256r1_sha256",
    RSA_PKCS1_SHA384 = 0x0501 => "rsa_pkcs1_sha384",
    ECDSA_SECP384R1_SHA384 = 0x0503 => "ecdsa_secp384r1_sha384",
    RSA_PKCS1_SHA512 = 0x0601 => "rsa_pkcs1_sha512",
    ECDSA_SECP521R1_SHA512 = 0x0603 => "ecdsa_secp521r1_sha512",
    RSA_PSS_RSAE_SHA256 = 0x0804 => "rsa_pss_rsae_sha256",
    RSA_PSS_RSAE_SHA384 = 0x0805 => "rsa_pss_rsae_sha384",
    RSA_PSS_RSAE_SHA512 = 0x0806 => "rsa_pss_rsae_sha512",
    ED25519 = 0x0807 => "ed25519",
    ED448 = 0x0808 => "ed448",
    RSA_PSS_PSS_SHA256 = 0x0809 => "rsa_pss_pss_sha256",
    RSA_PSS_PSS_SHA384 = 0x080a => "rsa_pss_pss_sha384",
    RSA_PSS_PSS_SHA512 = 0x080b => "rsa_pss_pss_sha512",
});

/// ProtocolVersion (legacy_version, supported_versions, record versions).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProtocolVersion(pub u16);

wire_names!(ProtocolVersion, {
    SSL2 = 0x0002 => "SSLv2",
    SSL3 = 0x0300 => "SSLv3",
    TLS10 = 0x0301 => "TLS 1.0",
    TLS11 = 0x0302 => "TLS 1.1",
    TLS12 = 0x0303 => "TLS 1.2",
    TLS13 = 0x0304 => "TLS 1.3",
    DTLS10 = 0xfeff => "DTLS 1.0",
    DTLS12 = 0xfefd => "DTLS 1.2",
    DTLS13 = 0xfefc => "DTLS 1.3",
});

impl ProtocolVersion {
    /// The version as Suricata's `tls.version` writes it: the names above, a
    /// TLS 1.3 draft as `TLS 1.3 draft-NN` (`0x7fNN`), anything else as hex.
    pub fn eve_name(self) -> String {
        match self.0 {
            v @ 0x7f00..=0x7fff if !is_grease(v) => format!("TLS 1.3 draft-{}", v & 0xff),
            _ => self.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grease_is_the_sixteen_values_of_rfc_8701() {
        let all: Vec<u16> = (0..=u16::MAX).filter(|v| is_grease(*v)).collect();
        let expected: Vec<u16> = (0..16u16).map(|i| (i << 12) | 0x0a0a | (i << 4)).collect();
        assert_eq!(all, expected);
        assert!(ExtensionType(0x3a3a).is_grease());
        assert_eq!(NamedGroup(0xfafa).to_string(), "GREASE");
    }

    #[test]
    fn unknown_values_are_kept_and_rendered() {
        assert_eq!(ExtensionType(0x4469).to_string(), "application_settings");
        assert_eq!(ExtensionType(0x1234).to_string(), "0x1234");
        assert_eq!(ExtensionType(0x1234).mnemonic(), None);
        assert_eq!(NamedGroup::X25519_MLKEM768.to_string(), "X25519MLKEM768");
        assert_eq!(ProtocolVersion(0x7f1c).eve_name(), "TLS 1.3 draft-28");
        assert_eq!(ProtocolVersion(0x0303).eve_name(), "TLS 1.2");
        assert_eq!(ProtocolVersion(0x0a0a).eve_name(), "GREASE");
    }
}
