//! The bearer token of the API over TCP (`[control] token_file`).
//!
//! The file must belong to root and give nothing to its group or others (0600 or 0400):
//! whoever reads it has the API's rights over TCP. Its content, trimmed of surrounding
//! white space, is the token: at least [`MIN_LEN`] characters of RFC 6750's `b64token`
//! alphabet (`openssl rand -hex 32` makes one). It is read at start and at every reload
//! (rotation without a restart), and compared in constant time.

use std::{os::unix::fs::MetadataExt, path::Path};

/// Shortest token accepted.
pub const MIN_LEN: usize = 32;
/// Longest token accepted (and the largest file read).
pub const MAX_LEN: usize = 1024;

/// A token read from its file.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// RFC 6750 section 2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

impl Token {
    /// Reads and checks the token file; the error says what is wrong and how to fix it.
    pub fn read(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        let meta = std::fs::metadata(path).map_err(|e| {
            format!("{shown}: {e} (make one: openssl rand -hex 32 > {shown}; chmod 600 {shown})")
        })?;
        if !meta.is_file() {
            return Err(format!("{shown} is not a regular file"));
        }
        if meta.uid() != 0 {
            return Err(format!(
                "{shown} belongs to uid {}, not root: chown root {shown}",
                meta.uid()
            ));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(format!(
                "{shown} has mode {:o}: its group or others may read it; chmod 600 {shown}",
                meta.mode() & 0o7777
            ));
        }
        if meta.len() > MAX_LEN as u64 + 2 {
            return Err(format!(
                "{shown} is longer than a token ({MAX_LEN} characters)"
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
        let token = text.trim();
        if token.len() < MIN_LEN || !b64token(token) {
            return Err(format!(
                "{shown} holds no token: {MIN_LEN} to {MAX_LEN} characters of A-Z a-z 0-9 - . _ ~ + / (then =), such as the output of openssl rand -hex 32"
            ));
        }
        Ok(Self(token.to_owned()))
    }

    /// Whether the `Authorization` header carries this token (`Bearer <token>`, the scheme
    /// case-insensitive), in time independent of where the two differ.
    pub fn admits(&self, authorization: Option<&str>) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        let Some((scheme, given)) = value.trim().split_once(' ') else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return false;
        }
        let (a, b) = (given.trim().as_bytes(), self.0.as_bytes());
        let mut diff = a.len() ^ b.len();
        for (i, x) in b.iter().enumerate() {
            diff |= usize::from(x ^ a.get(i).copied().unwrap_or(0));
        }
        diff == 0
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_file_is_checked_and_the_header_compared() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        let good = "0123456789abcdef0123456789abcdef";
        std::fs::write(&path, format!("{good}\n")).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let uid = nix::unistd::geteuid().as_raw();
        let e = Token::read(&path).expect_err("0644 is refused");
        if uid == 0 {
            assert!(e.contains("chmod 600"), "{e}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        if uid != 0 {
            // Not root: the file cannot belong to root; the owner check is what refuses it.
            assert!(
                Token::read(&path)
                    .expect_err("not root's")
                    .contains("not root")
            );
            return;
        }
        let t = Token::read(&path).expect("a good token");
        assert!(!format!("{t:?}").contains(good), "never printed");
        assert!(t.admits(Some(&format!("Bearer {good}"))));
        assert!(t.admits(Some(&format!("bearer  {good} "))));
        assert!(!t.admits(None));
        assert!(!t.admits(Some(good)));
        assert!(!t.admits(Some(&format!("Basic {good}"))));
        assert!(!t.admits(Some(&format!("Bearer {good}0"))));
        assert!(!t.admits(Some(&format!("Bearer {}", &good[1..]))));
        assert!(!t.admits(Some("Bearer ")));
        std::fs::write(&path, "short\n").expect("write");
        assert!(
            Token::read(&path)
                .expect_err("short")
                .contains("holds no token")
        );
        std::fs::write(&path, "has spaces in it and is long enough to pass\n").expect("write");
        assert!(Token::read(&path).is_err());
    }
}
