//! Reading domain lists in the formats operators have.
//!
//! One rule per line, the format detected per line; `#` starts a comment
//! (to the end of the line), blank lines are ignored:
//!
//! | line | rule |
//! |---|---|
//! | `ads.example.com` | exact: that name only |
//! | `*.example.com` or `.example.com` | suffix: example.com and every name below it |
//! | `0.0.0.0 ads.example.com tracker.example.net` (hosts file; any address) | exact, each name |
//! | `\|\|example.com^` (AdBlock) | suffix |
//!
//! Hosts-file boilerplate (`localhost`, `broadcasthost`, ...) is skipped.
//! Any other line is an error naming the file and line: a list with one bad
//! line is rejected whole, so a reload never applies half a file.

use std::path::{Path, PathBuf};

/// How a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Match {
    /// The name itself only.
    Exact,
    /// The name and every subdomain.
    Suffix,
}

/// One parsed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Normalized name.
    pub name: String,
    /// Exact or suffix.
    pub kind: Match,
    /// 1-based line in its file.
    pub line: usize,
}

/// A list file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// Unreadable.
    #[error("{path}: cannot read")]
    Read { path: PathBuf, #[source] source: std::io::Error },
    /// A line is not a rule in any supported format.
    #[error("{path}:{line}: {problem}")]
    Line { path: PathBuf, line: usize, problem: String },
}

const HOSTS_BOILERPLATE: &[&str] = &[
    "localhost",
    "localhost.localdomain",
    "local",
    "broadcasthost",
    "ip6-localhost",
    "ip6-loopback",
    "ip6-localnet",
    "ip6-mcastprefix",
    "ip6-allnodes",
    "ip6-allrouters",
    "ip6-allhosts",
    "0.0.0.0",
];

/// A list entry must be a host name: letters, digits, `-` and `_` in
/// labels (stricter than what the kernel can match, which is any byte).
fn name(raw: &str) -> Result<String, String> {
    let host_like = raw.trim_end_matches('.').split('.').all(|label| {
        !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    host_like
        .then(|| palisade_ebpf::dns_name::normalize(raw))
        .flatten()
        .ok_or_else(|| format!("{raw:?} is not a valid domain name"))
}

/// Parses one line; `Ok(vec![])` for comments and blank lines.
pub fn parse_line(line: &str) -> Result<Vec<(String, Match)>, String> {
    let content = line.split('#').next().unwrap_or("").trim();
    if content.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(rest) = content.strip_prefix("||") {
        let domain = rest.strip_suffix('^').ok_or_else(|| format!("AdBlock rule {content:?} must end with ^"))?;
        if domain.contains(['/', '$', '*', '|']) {
            return Err(format!("AdBlock rule {content:?}: only ||domain^ is supported"));
        }
        return Ok(vec![(name(domain)?, Match::Suffix)]);
    }
    let fields: Vec<&str> = content.split_whitespace().collect();
    match fields.as_slice() {
        [single] => {
            let (raw, kind) = match single.strip_prefix("*.").or_else(|| single.strip_prefix('.')) {
                Some(d) => (d, Match::Suffix),
                None => (*single, Match::Exact),
            };
            Ok(vec![(name(raw)?, kind)])
        }
        [addr, names @ ..] if addr.parse::<std::net::IpAddr>().is_ok() => names
            .iter()
            .filter(|n| !HOSTS_BOILERPLATE.contains(&n.to_ascii_lowercase().as_str()))
            .map(|n| name(n).map(|n| (n, Match::Exact)))
            .collect(),
        _ => Err(format!("{content:?} is neither a domain, a hosts line nor an ||domain^ rule")),
    }
}

/// Reads a whole list file.
pub fn read(path: &Path) -> Result<Vec<Entry>, ListError> {
    let text = std::fs::read_to_string(path).map_err(|source| ListError::Read { path: path.to_owned(), source })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let parsed =
            parse_line(line).map_err(|problem| ListError::Line { path: path.to_owned(), line: i + 1, problem })?;
        out.extend(parsed.into_iter().map(|(name, kind)| Entry { name, kind, line: i + 1 }));
    }
    Ok(out)
}

/// Reads a regex list: one pattern per line, `#` comments (at line start),
/// blank lines ignored. Returns (line, pattern).
pub fn read_regexes(path: &Path) -> Result<Vec<(usize, String)>, ListError> {
    let text = std::fs::read_to_string(path).map_err(|source| ListError::Read { path: path.to_owned(), source })?;
    Ok(text
        .lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let t = l.trim();
            (!t.is_empty() && !t.starts_with('#')).then(|| (i + 1, t.to_owned()))
        })
        .collect())
}

#[cfg(test)]
#[expect(clippy::indexing_slicing, reason = "a panic is a test failure")]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(parse_line("Ads.Example.COM."), Ok(vec![("ads.example.com".into(), Match::Exact)]));
        assert_eq!(parse_line("*.example.com"), Ok(vec![("example.com".into(), Match::Suffix)]));
        assert_eq!(parse_line(".example.com # trailing"), Ok(vec![("example.com".into(), Match::Suffix)]));
        assert_eq!(parse_line("||tracker.example^"), Ok(vec![("tracker.example".into(), Match::Suffix)]));
        assert_eq!(
            parse_line("0.0.0.0 a.example b.example"),
            Ok(vec![("a.example".into(), Match::Exact), ("b.example".into(), Match::Exact)])
        );
        assert_eq!(parse_line("127.0.0.1 localhost"), Ok(vec![]));
        assert_eq!(parse_line(":: ip6-localhost"), Ok(vec![]));
        assert_eq!(parse_line("   # comment only"), Ok(vec![]));
        assert_eq!(parse_line(""), Ok(vec![]));
    }

    #[test]
    fn bad_lines() {
        assert!(parse_line("||example.com").is_err());
        assert!(parse_line("||example.com/path^").is_err());
        assert!(parse_line("two words").is_err());
        assert!(parse_line("bad_name!.example").is_err());
        assert!(parse_line(&format!("{}.example", "a".repeat(64))).is_err());
    }

    #[test]
    fn file_errors_name_the_line() {
        let dir = std::env::temp_dir().join(format!("palisade-lists-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join("l.txt");
        std::fs::write(&p, "# list\nok.example\n\nnot a rule line\n").expect("write");
        let e = read(&p).expect_err("bad line");
        assert!(e.to_string().ends_with("l.txt:4: \"not a rule line\" is neither a domain, a hosts line nor an ||domain^ rule"), "{e}");
        std::fs::write(&p, "# list\nok.example\n0.0.0.0 x.example\n").expect("write");
        let entries = read(&p).expect("valid");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].line, 3);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
