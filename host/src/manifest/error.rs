//! Manifest errors that name the file, the line and the key, and say how to fix it.

use std::fmt;
use std::path::{Path, PathBuf};

/// A problem with a manifest, located as precisely as the file allows.
#[derive(Debug)]
pub struct ManifestError {
    /// The manifest file.
    pub file: PathBuf,
    /// The 1-based line the problem is on, when it is known.
    pub line: Option<usize>,
    /// The key (`component.hello.source`, `trigger.http[2].route`, ...) the problem is about.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
    /// What the user can do about it.
    pub fix: Option<String>,
}

impl ManifestError {
    /// An error about the whole file (unreadable, not TOML, ...).
    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line: None,
            key: None,
            message: message.into(),
            fix: None,
        }
    }

    /// An error about `key` in manifest `file`, on the line of `spanned` in its `source`.
    pub fn spanned<T>(
        file: &Path,
        source: &str,
        spanned: &toml::Spanned<T>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::file(file, message)
            .key(key)
            .at(source, spanned.span().start)
    }

    /// Points the error at a key.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Points the error at the line holding byte `offset` of `source`.
    pub fn at(mut self, source: &str, offset: usize) -> Self {
        self.line = Some(line_of(source, offset));
        self
    }

    /// Points the error at 1-based `line`.
    pub fn on_line(mut self, line: usize) -> Self {
        self.line = Some(line);
        self
    }

    /// Adds the way out.
    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// The manifest being read: its file and its text, so that every error names its line.
pub(super) struct Reader<'a> {
    /// The manifest file.
    pub(super) file: &'a Path,
    /// Its text.
    pub(super) source: &'a str,
}

impl Reader<'_> {
    /// An error about `key`, on the line of `spanned`.
    pub(super) fn error<T>(
        &self,
        spanned: &toml::Spanned<T>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ManifestError {
        ManifestError::spanned(self.file, self.source, spanned, key, message)
    }

    /// The 1-based line `spanned` starts on.
    pub(super) fn line<T>(&self, spanned: &toml::Spanned<T>) -> usize {
        line_of(self.source, spanned.span().start)
    }
}

/// The 1-based line number of byte `offset` in `source`.
pub fn line_of(source: &str, offset: usize) -> usize {
    let end = offset.min(source.len());
    source.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": `{key}`")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n  fix: {fix}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestError {}
