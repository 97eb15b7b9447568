//! Checks shared by every section: each failure becomes a
//! [`ConfigError::Invalid`] naming the file, the line of the value and its key.

use std::path::{Path, PathBuf};

use toml::Spanned;

use super::{ConfigError, group::NamedGroup};

/// The text being validated, to locate errors in.
pub(super) struct Checker<'a> {
    pub(super) origin: &'a str,
    pub(super) text: &'a str,
}

impl Checker<'_> {
    pub(super) fn line(&self, offset: usize) -> usize {
        self.text
            .get(..offset)
            .map_or(1, |t| t.bytes().filter(|b| *b == b'\n').count() + 1)
    }

    pub(super) fn invalid<T>(
        &self,
        key: &str,
        span: std::ops::Range<usize>,
        problem: impl Into<String>,
    ) -> Result<T, ConfigError> {
        Err(ConfigError::Invalid {
            origin: self.origin.to_owned(),
            line: self.line(span.start),
            key: key.to_owned(),
            problem: problem.into(),
        })
    }

    pub(super) fn abs_path(
        &self,
        key: &str,
        value: Option<Spanned<String>>,
        default: &str,
    ) -> Result<PathBuf, ConfigError> {
        let Some(v) = value else {
            return Ok(PathBuf::from(default));
        };
        let path = Path::new(v.get_ref());
        if !path.is_absolute() {
            return self.invalid(
                key,
                v.span(),
                format!("{:?} is not an absolute path", v.get_ref()),
            );
        }
        Ok(path.to_owned())
    }

    /// A directory the daemon takes over (it sets its group and mode): an absolute path that
    /// is not a directory other software shares ([`crate::paths::is_shared_dir`]).
    pub(super) fn own_dir(
        &self,
        key: &str,
        value: Option<Spanned<String>>,
        default: &str,
    ) -> Result<PathBuf, ConfigError> {
        let span = value.as_ref().map(Spanned::span);
        let path = self.abs_path(key, value, default)?;
        match span {
            Some(span) if crate::paths::is_shared_dir(&path) => self.invalid(
                key,
                span,
                format!(
                    "{} is a directory other software shares; the daemon sets the group and mode of this one: give it a directory of its own (such as {})",
                    path.display(),
                    crate::paths::LOG_DIR
                ),
            ),
            _ => Ok(path),
        }
    }

    /// A group name (checked as [`Checker::name`] checks it), kept with its line so that
    /// [`NamedGroup::resolve`] can report an unknown group there.
    pub(super) fn group(
        &self,
        key: &'static str,
        value: Option<Spanned<String>>,
    ) -> Result<Option<NamedGroup>, ConfigError> {
        let Some(v) = value else { return Ok(None) };
        let line = self.line(v.span().start);
        let name = self.name(key, Some(v), String::new())?;
        Ok(Some(NamedGroup::new(name, self.origin, line, key)))
    }

    /// A list of absolute paths (list files).
    pub(super) fn abs_paths(
        &self,
        key: &str,
        list: Vec<Spanned<String>>,
    ) -> Result<Vec<PathBuf>, ConfigError> {
        list.into_iter()
            .map(|v| self.abs_path(key, Some(v), ""))
            .collect()
    }

    pub(super) fn name(
        &self,
        key: &str,
        value: Option<Spanned<String>>,
        default: String,
    ) -> Result<String, ConfigError> {
        let Some(v) = value else { return Ok(default) };
        let s = v.get_ref();
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
            && !s.starts_with('-');
        if !ok {
            return self.invalid(
                key,
                v.span(),
                format!("{s:?} is not a valid user or group name"),
            );
        }
        Ok(s.clone())
    }

    /// A whole number of seconds within `range`, or `default`.
    pub(super) fn seconds(
        &self,
        key: &str,
        value: Option<Spanned<i64>>,
        default: u32,
        range: std::ops::RangeInclusive<u32>,
    ) -> Result<u32, ConfigError> {
        self.whole(key, value, default, range, "seconds")
    }

    /// A whole number of `unit` within `range`, or `default`.
    pub(super) fn whole(
        &self,
        key: &str,
        value: Option<Spanned<i64>>,
        default: u32,
        range: std::ops::RangeInclusive<u32>,
        unit: &str,
    ) -> Result<u32, ConfigError> {
        let Some(v) = value else { return Ok(default) };
        match u32::try_from(*v.get_ref()) {
            Ok(s) if range.contains(&s) => Ok(s),
            _ => self.invalid(
                key,
                v.span(),
                format!(
                    "{} is outside {}..={} ({unit})",
                    v.get_ref(),
                    range.start(),
                    range.end()
                ),
            ),
        }
    }
}
