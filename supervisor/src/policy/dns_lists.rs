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
//! line is rejected whole, so a reload never applies half a file. Every bad
//! line of a file is found (see [`BadLines`]).

use std::path::{Path, PathBuf};

use super::bad_lines::BadLines;

/// How a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Match {
    /// The name itself only.
    Exact,
    /// The name and every subdomain.
    Suffix,
}

/// One parsed entry.
#[cfg(test)]
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
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Lines that are not rules in any supported format (every one is counted, the first
    /// few named).
    #[error(transparent)]
    Lines(BadLines),
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

/// Normalizes a list entry into `out`: a host name (letters, digits, `-`
/// and `_` in labels; stricter than what the kernel can match, which is any
/// byte), lowercased, without a trailing dot, labels <= 63 and the name <=
/// 253 bytes. For such names this is exactly `palisade_abi::dns_name::
/// normalize` (a test checks it), without an allocation per line.
fn name_into(raw: &str, out: &mut String) -> Result<(), String> {
    let trimmed = raw.strip_suffix('.').unwrap_or(raw);
    let ok = !trimmed.is_empty()
        && trimmed.len() <= palisade_abi::DNS_NAME_MAX
        && trimmed.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= palisade_abi::DNS_LABEL_MAX
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !ok {
        return Err(format!("{raw:?} is not a valid domain name"));
    }
    out.clear();
    out.extend(trimmed.chars().map(|c| c.to_ascii_lowercase()));
    Ok(())
}

/// Parses one line, calling `f` for each rule on it (none for comments and
/// blank lines). `buf` is scratch space for the normalized name.
pub fn parse_line_with(
    line: &str,
    buf: &mut String,
    mut f: impl FnMut(&str, Match),
) -> Result<(), String> {
    let content = line.split('#').next().unwrap_or("").trim();
    if content.is_empty() {
        return Ok(());
    }
    if let Some(rest) = content.strip_prefix("||") {
        let domain = rest
            .strip_suffix('^')
            .ok_or_else(|| format!("AdBlock rule {content:?} must end with ^"))?;
        if domain.contains(['/', '$', '*', '|']) {
            return Err(format!(
                "AdBlock rule {content:?}: only ||domain^ is supported"
            ));
        }
        name_into(domain, buf)?;
        f(buf, Match::Suffix);
        return Ok(());
    }
    let mut fields = content.split_whitespace();
    let first = fields.next().unwrap_or_default();
    let Some(second) = fields.next() else {
        let (raw, kind) = match first.strip_prefix("*.").or_else(|| first.strip_prefix('.')) {
            Some(d) => (d, Match::Suffix),
            None => (first, Match::Exact),
        };
        name_into(raw, buf)?;
        f(buf, kind);
        return Ok(());
    };
    if first.parse::<std::net::IpAddr>().is_err() {
        return Err(format!(
            "{content:?} is neither a domain, a hosts line nor an ||domain^ rule"
        ));
    }
    for host in std::iter::once(second).chain(fields) {
        if HOSTS_BOILERPLATE
            .iter()
            .any(|b| b.eq_ignore_ascii_case(host))
        {
            continue;
        }
        name_into(host, buf)?;
        f(buf, Match::Exact);
    }
    Ok(())
}

/// Parses one line into owned rules.
#[cfg(test)]
pub fn parse_line(line: &str) -> Result<Vec<(String, Match)>, String> {
    let mut out = Vec::new();
    let mut buf = String::new();
    parse_line_with(line, &mut buf, |name, kind| {
        out.push((name.to_owned(), kind))
    })?;
    Ok(out)
}

/// Reads a whole list file, calling `f(name, kind, line)` for every rule. A bad line does
/// not stop the reading: every one is reported.
pub fn for_each_entry(path: &Path, mut f: impl FnMut(&str, Match, usize)) -> Result<(), ListError> {
    let text = crate::paths::read_input_file(path).map_err(|source| ListError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut buf = String::with_capacity(256);
    let mut bad = BadLines::new(path.to_owned());
    for (i, line) in text.lines().enumerate() {
        if let Err(problem) = parse_line_with(line, &mut buf, |name, kind| f(name, kind, i + 1)) {
            bad.push(i + 1, || problem);
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(ListError::Lines(bad))
    }
}

/// Reads a whole list file into entries.
#[cfg(test)]
pub fn read(path: &Path) -> Result<Vec<Entry>, ListError> {
    let mut out = Vec::new();
    for_each_entry(path, |name, kind, line| {
        out.push(Entry {
            name: name.to_owned(),
            kind,
            line,
        })
    })?;
    Ok(out)
}

/// Reads a regex list: one pattern per line, `#` comments (at line start),
/// blank lines ignored. Returns (line, pattern).
pub fn read_regexes(path: &Path) -> Result<Vec<(usize, String)>, ListError> {
    let text = crate::paths::read_input_file(path).map_err(|source| ListError::Read {
        path: path.to_owned(),
        source,
    })?;
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
        assert_eq!(
            parse_line("Ads.Example.COM."),
            Ok(vec![("ads.example.com".into(), Match::Exact)])
        );
        assert_eq!(
            parse_line("*.example.com"),
            Ok(vec![("example.com".into(), Match::Suffix)])
        );
        assert_eq!(
            parse_line(".example.com # trailing"),
            Ok(vec![("example.com".into(), Match::Suffix)])
        );
        assert_eq!(
            parse_line("||tracker.example^"),
            Ok(vec![("tracker.example".into(), Match::Suffix)])
        );
        assert_eq!(
            parse_line("0.0.0.0 a.example b.example"),
            Ok(vec![
                ("a.example".into(), Match::Exact),
                ("b.example".into(), Match::Exact)
            ])
        );
        assert_eq!(parse_line("127.0.0.1 localhost"), Ok(vec![]));
        assert_eq!(parse_line(":: ip6-localhost"), Ok(vec![]));
        assert_eq!(parse_line("   # comment only"), Ok(vec![]));
        assert_eq!(parse_line(""), Ok(vec![]));
    }

    #[test]
    fn normalization_matches_the_kernel_crate() {
        for raw in [
            "Ads.Example.COM.",
            "a-b_c.example",
            "x.y.z",
            &format!("{}.example", "a".repeat(63)),
        ] {
            let mut buf = String::new();
            name_into(raw, &mut buf).expect("valid");
            assert_eq!(Some(buf), palisade_abi::dns_name::normalize(raw), "{raw}");
        }
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
        std::fs::write(
            &p,
            "bad!\nok.example\n||x.example\n*.fine.example\nworse!\n",
        )
        .expect("write");
        let e = read(&p).expect_err("bad lines");
        let lines: Vec<String> = e.to_string().lines().map(str::to_owned).collect();
        assert_eq!(lines.len(), 3, "every bad line: {e}");
        for (text, n) in lines.iter().zip([1, 3, 5]) {
            assert!(text.contains(&format!("l.txt:{n}: ")), "{e}");
        }
        std::fs::write(&p, "# list\nok.example\n0.0.0.0 x.example\n").expect("write");
        let entries = read(&p).expect("valid");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].line, 3);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
