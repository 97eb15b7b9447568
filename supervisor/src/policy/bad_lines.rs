//! The bad lines of one list file. A list is read to its end even after a bad line, so that
//! `check-config`, `reload` and start-up name every bad line at once (the first
//! [`MAX_SHOWN`], with the count of the rest), not one per attempt.

use std::{fmt, path::PathBuf};

/// Bad lines named per file; the others are counted.
pub const MAX_SHOWN: usize = 20;

/// One bad line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub problem: String,
}

/// The bad lines of one file, in file order: the first [`MAX_SHOWN`], and how many in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLines {
    /// The file.
    pub path: PathBuf,
    /// The first bad lines.
    pub shown: Vec<BadLine>,
    /// Every bad line, shown or not.
    pub total: usize,
}

impl BadLines {
    /// No bad line yet.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            shown: Vec::new(),
            total: 0,
        }
    }

    /// Counts a bad line; names it while fewer than [`MAX_SHOWN`] are (the problem text is
    /// made only then: a file of a million bad lines costs no million strings).
    pub fn push(&mut self, line: usize, problem: impl FnOnce() -> String) {
        self.total += 1;
        if self.shown.len() < MAX_SHOWN {
            self.shown.push(BadLine {
                line,
                problem: problem(),
            });
        }
    }

    /// Whether no line was bad.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Bad lines counted but not named.
    pub fn not_shown(&self) -> usize {
        self.total - self.shown.len()
    }
}

/// One `FILE:LINE: problem` per line, then how many more were not shown.
impl fmt::Display for BadLines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, bad) in self.shown.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}:{}: {}", self.path.display(), bad.line, bad.problem)?;
        }
        if self.not_shown() > 0 {
            write!(
                f,
                "\n{}: {} more bad lines not shown ({} in all)",
                self.path.display(),
                self.not_shown(),
                self.total
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for BadLines {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_counted() {
        let mut bad = BadLines::new(PathBuf::from("/l.txt"));
        assert!(bad.is_empty());
        bad.push(3, || "x".into());
        assert_eq!(bad.to_string(), "/l.txt:3: x");
        for line in 4..(4 + MAX_SHOWN + 5) {
            bad.push(line, || format!("line {line}"));
        }
        assert_eq!(bad.shown.len(), MAX_SHOWN);
        assert_eq!(bad.total, MAX_SHOWN + 6);
        let text = bad.to_string();
        assert_eq!(text.lines().count(), MAX_SHOWN + 1);
        assert!(
            text.ends_with(&format!(
                "/l.txt: 6 more bad lines not shown ({} in all)",
                MAX_SHOWN + 6
            )),
            "{text}"
        );
    }
}
