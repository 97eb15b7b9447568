//! IP block list files: one CIDR or bare address per line, in the format of
//! common drop lists (Spamhaus DROP/EDROP, FireHOL, blocklist.de exports):
//!
//! ```text
//! # a comment line; `;` starts one too
//! 192.0.2.0/24 ; SBL123        <- trailing comment after whitespace, kept as the comment
//! 2001:db8:bad::/48
//! 198.51.100.7                 <- a bare address is a host prefix (/32, /128)
//! ```
//!
//! Host bits set (`10.1.2.3/8`) are cleared (the rule is `10.0.0.0/8`) and
//! counted in [`ParsedList::normalised`]; anything else that is not a prefix
//! is an error naming the file and line (every bad line is found, see
//! [`BadLines`]). Parsing does no I/O beyond reading the file.

use std::path::{Path, PathBuf};

use palisade_ebpf::ip_policy::Prefix;

use super::bad_lines::BadLines;

/// An error in a list file, located.
#[derive(Debug, thiserror::Error)]
pub enum IpListError {
    /// The file could not be read.
    #[error("{path}: cannot read")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Lines that are not prefixes (every one is counted, the first few named).
    #[error(transparent)]
    Lines(BadLines),
    /// Several list files failed, in configuration order.
    #[error("{}", several(.0))]
    Several(Vec<IpListError>),
}

/// One error per line of text, each with its causes.
fn several(errors: &[IpListError]) -> String {
    let lines: Vec<String> = errors.iter().map(|e| crate::error_chain(e)).collect();
    lines.join("\n")
}

/// One entry of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    /// The prefix.
    pub prefix: Prefix,
    /// 1-based line number.
    pub line: usize,
    /// Trailing comment, if any (without the marker).
    pub comment: Option<String>,
}

/// A parsed list file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedList {
    /// Entries in file order.
    pub entries: Vec<ListEntry>,
    /// Entries whose host bits were cleared.
    pub normalised: usize,
}

/// Parses list text; `path` names it in errors. A bad line does not stop the parse: every
/// one is reported.
pub fn parse(path: &Path, text: &str) -> Result<ParsedList, IpListError> {
    let mut list = ParsedList::default();
    let mut bad = BadLines::new(path.to_owned());
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let (token, rest) = line
            .split_once(char::is_whitespace)
            .map_or((line, ""), |(t, r)| (t, r.trim()));
        let comment = rest
            .strip_prefix('#')
            .or_else(|| rest.strip_prefix(';'))
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
        if !(rest.is_empty() || rest.starts_with('#') || rest.starts_with(';')) {
            bad.push(index + 1, || {
                format!(
                    "{line:?}: {}",
                    palisade_ebpf::ip_policy::PrefixError::Address
                )
            });
            continue;
        }
        // `1.2.3.0/24;SBL1` (no space before the comment) is common too.
        let (token, comment) = match token.split_once(';') {
            Some((t, c)) => (t, Some(c.trim().to_owned()).filter(|c| !c.is_empty())),
            None => (token, comment),
        };
        let (prefix, normalised) = match Prefix::parse(token) {
            Ok(p) => p,
            Err(problem) => {
                bad.push(index + 1, || format!("{token:?}: {problem}"));
                continue;
            }
        };
        if normalised {
            list.normalised += 1;
        }
        list.entries.push(ListEntry {
            prefix,
            line: index + 1,
            comment,
        });
    }
    if bad.is_empty() {
        Ok(list)
    } else {
        Err(IpListError::Lines(bad))
    }
}

/// Reads and parses one list file.
pub fn load(path: &Path) -> Result<ParsedList, IpListError> {
    let text = crate::paths::read_input_file(path).map_err(|source| IpListError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text)
}

#[cfg(test)]
#[expect(clippy::indexing_slicing, reason = "a panic is a test failure")]
mod tests {
    use super::*;

    #[test]
    fn drop_list_formats() {
        let text = "; Spamhaus DROP List\n# comment\n\n1.2.3.0/24 ; SBL123\n5.6.7.0/24;SBL9\n2001:db8::/32 # doc\n198.51.100.7\n  10.1.2.3/8  \n";
        let list = parse(Path::new("/l.txt"), text).expect("valid");
        let shown: Vec<(String, usize, Option<&str>)> = list
            .entries
            .iter()
            .map(|e| (e.prefix.to_string(), e.line, e.comment.as_deref()))
            .collect();
        assert_eq!(
            shown,
            vec![
                ("1.2.3.0/24".into(), 4, Some("SBL123")),
                ("5.6.7.0/24".into(), 5, Some("SBL9")),
                ("2001:db8::/32".into(), 6, Some("doc")),
                ("198.51.100.7/32".into(), 7, None),
                ("10.0.0.0/8".into(), 8, None),
            ]
        );
        assert_eq!(list.normalised, 1);
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = parse(Path::new("/l.txt"), "1.2.3.0/24\n\n1.2.3.0/33\n").expect_err("bad");
        assert_eq!(
            e.to_string(),
            "/l.txt:3: \"1.2.3.0/33\": prefix length out of range (0-32 for IPv4, 0-128 for IPv6)"
        );
        let e = parse(Path::new("/l.txt"), "example.com\n").expect_err("bad");
        assert_eq!(
            e.to_string(),
            "/l.txt:1: \"example.com\": not an IPv4 or IPv6 address"
        );
        let e = parse(Path::new("/l.txt"), "1.2.3.4 5.6.7.8\n").expect_err("bad");
        assert!(e.to_string().starts_with("/l.txt:1:"), "{e}");
        // Every bad line, not only the first.
        let e = parse(
            Path::new("/l.txt"),
            "x\n1.2.3.0/24\n1.2.3.0/99\n# fine\n::/0\nnope ; c\n",
        )
        .expect_err("bad");
        assert_eq!(
            e.to_string(),
            "/l.txt:1: \"x\": not an IPv4 or IPv6 address\n/l.txt:3: \"1.2.3.0/99\": prefix length out of range (0-32 for IPv4, 0-128 for IPv6)\n/l.txt:6: \"nope\": not an IPv4 or IPv6 address"
        );
        assert_eq!(
            parse(Path::new("/l"), "# only\n")
                .map(|l| l.entries.len())
                .ok(),
            Some(0)
        );
        let _ = &parse(Path::new("/l"), "::/0\n").expect("valid").entries[0];
    }
}
