//! The one error a bad configuration file produces.

use std::fmt;

/// What is wrong with a configuration file, and exactly where.
///
/// A bad file is refused at start (and a reload with a bad file keeps the old
/// config running), so the operator must be able to fix it from this message
/// alone: it always names the file, the 1-based line and the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name as given to [`parse`](super::parse()) or [`load`](super::load).
    pub file: String,
    /// 1-based line of the offending key or value; 0 when the file could not
    /// be read at all.
    pub line: usize,
    /// The key that is wrong (the bare key, e.g. `weight`); empty for I/O errors.
    pub key: String,
    /// What is wrong, in words an operator can act on.
    pub message: String,
}

impl ConfigError {
    /// An error at `line` of `file` about `key`.
    pub fn new(
        file: impl Into<String>,
        line: usize,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            file: file.into(),
            line,
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    /// `file:line: key: message`, or `file: message` for I/O errors (line 0).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}: {}: {}",
                self.file, self.line, self.key, self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}
