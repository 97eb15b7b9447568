//! DNS names exactly as the kernel's domain policy sees them.
//!
//! The TC program matches the first QNAME of a query or answer by hash. It turns the wire name
//! into text (labels joined with `.`, no trailing dot, ASCII `A`-`Z` folded to `a`-`z`, every
//! other label byte kept as is except a `.` inside a label, which becomes `0x00`), then looks up
//! the FNV-1a 64 hash of that text and of each parent suffix. This module produces the same text
//! and the same hashes from a list entry, so that a rule's key is the hash the kernel computes
//! for the names it should match.
//!
//! # What [`normalize`] accepts
//!
//! - An optional single trailing dot, which is removed. The root (`""`, `"."`) is rejected: the
//!   kernel never matches it.
//! - 1 to [`DNS_SUFFIX_MAX`] (32) labels of 1 to [`DNS_LABEL_MAX`] (63) bytes, at most
//!   [`DNS_NAME_MAX`] (253) bytes in all, the most a 255-byte wire name can hold. The kernel only
//!   looks up suffixes of up to 32 labels (a deeper query name is still checked against its 32
//!   innermost suffixes), so a longer rule could never match and is rejected.
//! - Label bytes `0x21..=0x7e` (printable ASCII without space) except `.` (the separator) and
//!   `\` (master-file escapes such as `\.` or `\065` are not interpreted, so a name using them is
//!   rejected rather than misread). Upper case is folded. This covers host names, `_service`
//!   labels, and anything else a resolver is likely to be asked. Non-ASCII text is rejected:
//!   internationalized names must be given in their A-label (`xn--`) form, which is what
//!   clients put on the wire. Control bytes, space, DEL and `0x80..` are rejected; the kernel
//!   keeps such bytes of a query verbatim, so a name containing them can only be matched by a
//!   rule on one of its (printable) parent suffixes.
//! - Wildcard syntax is not interpreted: `*` is an ordinary byte, so `*.example.com` names the
//!   literal label `*`. A list parser should turn `*.example.com` into a suffix rule on
//!   `example.com`.
//!
//! # Hashing
//!
//! FNV-1a 64 (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`) over the bytes of the
//! normalized text, with no terminator. 64 bits leave the chance that any two of a million listed
//! names collide at about 2.7e-8 (n^2 / 2^65), and the chance that a given unlisted query name
//! (with its <= 32 suffixes) hits a listed hash by accident at about 1.7e-12 (32 * 10^6 / 2^64).

use std::fmt;

use crate::consts::{DNS_LABEL_MAX, DNS_NAME_MAX, DNS_SUFFIX_MAX, FNV64_OFFSET, FNV64_PRIME};

/// Why a name cannot be a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty, or the root (`.`): never matched.
    #[error("empty name (or the root)")]
    Empty,
    /// More than [`DNS_NAME_MAX`] bytes without the trailing dot.
    #[error("name is {len} bytes, at most {DNS_NAME_MAX} fit a DNS message")]
    TooLong {
        /// Length without the trailing dot.
        len: usize,
    },
    /// Two dots in a row, a leading dot, or more than one trailing dot.
    #[error("empty label")]
    EmptyLabel,
    /// A label longer than [`DNS_LABEL_MAX`] bytes.
    #[error("label of {len} bytes, at most {DNS_LABEL_MAX} allowed")]
    LabelTooLong {
        /// The label's length.
        len: usize,
    },
    /// More than [`DNS_SUFFIX_MAX`] labels: the kernel never looks such a suffix up.
    #[error("{count} labels, at most {DNS_SUFFIX_MAX} can be matched")]
    TooManyLabels {
        /// Labels in the name.
        count: usize,
    },
    /// A character outside the accepted set (see the module documentation).
    #[error("character {0} cannot be matched (printable ASCII except '\\\\' only)")]
    BadChar(BadChar),
}

/// A rejected character, shown escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadChar(pub char);

impl fmt::Display for BadChar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Whether the kernel-side text form of a query can contain `byte` inside a label and a list
/// entry may name it.
const fn is_label_byte(byte: u8) -> bool {
    matches!(byte, 0x21..=0x7e) && byte != b'.' && byte != b'\\'
}

/// The normalized form of `name`, or why it cannot be matched by the kernel.
pub fn try_normalize(name: &str) -> Result<String, NameError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some(bad) = name
        .chars()
        .find(|&c| !u8::try_from(c).is_ok_and(|b| b == b'.' || is_label_byte(b)))
    {
        return Err(NameError::BadChar(BadChar(bad)));
    }
    if name.len() > DNS_NAME_MAX {
        return Err(NameError::TooLong { len: name.len() });
    }
    let mut count = 0;
    for label in name.split('.') {
        count += 1;
        if label.is_empty() {
            return Err(NameError::EmptyLabel);
        }
        if label.len() > DNS_LABEL_MAX {
            return Err(NameError::LabelTooLong { len: label.len() });
        }
    }
    if count > DNS_SUFFIX_MAX {
        return Err(NameError::TooManyLabels { count });
    }
    Ok(name.to_ascii_lowercase())
}

/// [`name_hash`] of [`try_normalize`]`(name)` in one pass, without allocating: the key of a rule
/// for `name`. Accepts and rejects exactly what [`try_normalize`] does.
pub fn hash_name(name: &str) -> Result<u64, NameError> {
    let text = name.strip_suffix('.').unwrap_or(name).as_bytes();
    if text.is_empty() {
        return Err(NameError::Empty);
    }
    let mut hash = FNV64_OFFSET;
    let (mut labels, mut label_len) = (1_usize, 0_usize);
    let mut label_error = None;
    for &byte in text {
        if byte == b'.' {
            if label_len == 0 {
                label_error.get_or_insert(NameError::EmptyLabel);
            }
            labels += 1;
            label_len = 0;
        } else if is_label_byte(byte) {
            label_len += 1;
            if label_len > DNS_LABEL_MAX {
                label_error.get_or_insert(NameError::LabelTooLong { len: label_len });
            }
        } else {
            // The first offending character, as try_normalize() reports it.
            return Err(try_normalize(name).err().unwrap_or(NameError::Empty));
        }
        hash ^= u64::from(byte.to_ascii_lowercase());
        hash = hash.wrapping_mul(FNV64_PRIME);
    }
    if text.len() > DNS_NAME_MAX {
        return Err(NameError::TooLong { len: text.len() });
    }
    if label_len == 0 {
        label_error.get_or_insert(NameError::EmptyLabel);
    }
    if let Some(error) = label_error {
        // Same precedence as try_normalize(): the first bad label in order.
        return Err(try_normalize(name).err().unwrap_or(error));
    }
    if labels > DNS_SUFFIX_MAX {
        return Err(NameError::TooManyLabels { count: labels });
    }
    Ok(hash)
}

/// The normalized form of `name` (lower case, no trailing dot), or `None` if the kernel could
/// never match it. See the module documentation for the exact rules; [`try_normalize`] says why
/// a name is rejected.
pub fn normalize(name: &str) -> Option<String> {
    try_normalize(name).ok()
}

/// FNV-1a 64 of a normalized name: the key the kernel looks up for it.
pub fn name_hash(normalized: &str) -> u64 {
    fnv1a64(normalized.as_bytes())
}

/// FNV-1a 64 of raw bytes (the kernel hashes the bytes of its text form, which can contain bytes
/// [`normalize`] refuses).
pub const fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash = FNV64_OFFSET;
    let mut rest = bytes;
    while let Some((&byte, tail)) = rest.split_first() {
        hash ^= byte as u64;
        hash = hash.wrapping_mul(FNV64_PRIME);
        rest = tail;
    }
    hash
}

/// The name and each parent domain, longest first: `a.b.example.com`, `b.example.com`,
/// `example.com`, `com`. These are the names whose rules can decide a query for `normalized`
/// (subject to the kernel's limit of [`DNS_SUFFIX_MAX`] labels per suffix).
pub fn suffixes(normalized: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(normalized).filter(|name| !name.is_empty());
    std::iter::from_fn(move || {
        let current = next?;
        next = current.split_once('.').map(|(_, parent)| parent);
        Some(current)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_the_published_vectors() {
        // From the FNV reference test suite (draft-eastlake-fnv, test vectors for FNV-1a 64).
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(name_hash("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn normalizes_case_and_one_trailing_dot() {
        assert_eq!(
            normalize("WWW.Example.COM."),
            Some("www.example.com".into())
        );
        assert_eq!(normalize("example.com"), Some("example.com".into()));
        assert_eq!(
            normalize("_dmarc.Example.com"),
            Some("_dmarc.example.com".into())
        );
        assert_eq!(
            normalize("xn--bcher-kva.de"),
            Some("xn--bcher-kva.de".into())
        );
        assert_eq!(normalize("*.example.com"), Some("*.example.com".into()));
        assert_eq!(normalize("com"), Some("com".into()));
    }

    #[test]
    fn rejects_what_the_kernel_cannot_match() {
        assert_eq!(try_normalize(""), Err(NameError::Empty));
        assert_eq!(try_normalize("."), Err(NameError::Empty));
        assert_eq!(try_normalize("example.com.."), Err(NameError::EmptyLabel));
        assert_eq!(try_normalize(".example.com"), Err(NameError::EmptyLabel));
        assert_eq!(try_normalize("a..b"), Err(NameError::EmptyLabel));
        assert_eq!(
            try_normalize("a b.com"),
            Err(NameError::BadChar(BadChar(' ')))
        );
        assert_eq!(
            try_normalize("bücher.de"),
            Err(NameError::BadChar(BadChar('ü')))
        );
        assert_eq!(
            try_normalize("a\\.b.com"),
            Err(NameError::BadChar(BadChar('\\')))
        );
        assert_eq!(
            try_normalize("tab\t.com"),
            Err(NameError::BadChar(BadChar('\t')))
        );
        let label63 = "a".repeat(63);
        assert!(normalize(&format!("{label63}.com")).is_some());
        assert_eq!(
            try_normalize(&format!("{label63}b.com")),
            Err(NameError::LabelTooLong { len: 64 })
        );
        // 253 bytes is the most a name can have; 254 is too long.
        let longest = [label63.as_str(); 4].join(".")[..253].to_owned();
        assert_eq!(longest.len(), 253);
        assert!(normalize(&longest).is_some());
        assert!(normalize(&format!("{longest}.")).is_some());
        assert_eq!(
            try_normalize(&format!("x{longest}")),
            Err(NameError::TooLong { len: 254 })
        );
        assert_eq!(
            try_normalize(&format!("x.{longest}")),
            Err(NameError::TooLong { len: 255 })
        );
        // 32 labels fit, 33 do not (although 33 short labels fit in 253 bytes).
        let labels32 = vec!["a"; 32].join(".");
        assert!(normalize(&labels32).is_some());
        assert_eq!(
            try_normalize(&format!("a.{labels32}")),
            Err(NameError::TooManyLabels { count: 33 })
        );
    }

    #[test]
    fn suffixes_walk_up_to_the_tld() {
        let all: Vec<&str> = suffixes("a.b.example.com").collect();
        assert_eq!(
            all,
            ["a.b.example.com", "b.example.com", "example.com", "com"]
        );
        assert_eq!(suffixes("com").collect::<Vec<_>>(), ["com"]);
        assert_eq!(suffixes("").count(), 0);
    }

    #[test]
    fn one_pass_hash_agrees_with_normalize() {
        let label63 = "a".repeat(63);
        let longest = [label63.as_str(); 4].join(".")[..253].to_owned();
        let samples = [
            "Example.COM.",
            "example.com",
            "_dmarc.x-y.test",
            "!#$%&'()*+,-/:;<=>?@[]^_`{|}~.test",
            longest.as_str(),
            "",
            ".",
            "a..b",
            ".a",
            "a.b..",
            "a b.c",
            "bücher.de",
            "a\\.b",
        ];
        let many = vec!["a"; 33].join(".");
        let overlong = format!("x.{longest}");
        let long_label = format!("{label63}b.com");
        let both = format!("{long_label}.a..b");
        for name in samples.iter().copied().chain([
            many.as_str(),
            overlong.as_str(),
            long_label.as_str(),
            both.as_str(),
        ]) {
            assert_eq!(
                hash_name(name),
                try_normalize(name).map(|n| name_hash(&n)),
                "{name:?}"
            );
        }
    }

    #[test]
    fn hashes_are_of_the_normalized_text() {
        let name = normalize("Ads.Example.COM.").unwrap_or_default();
        assert_eq!(name_hash(&name), fnv1a64(b"ads.example.com"));
        assert_ne!(name_hash("ads.example.com"), name_hash("ads.example.co"));
    }
}
