//! What people type, checked: the one error type that anchors a message to a form field,
//! and the one rule for single-line text (names, reasons, searches, filters).
//!
//! The ground floor of the domain: this module imports nothing else from the crate.

use serde::{Deserialize, Serialize};

/// A problem with one input field, in words fit to show next to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    /// The form field the message belongs to (`email`, `password`, `name`, `code`, …).
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// Checks one line of text typed into `field`: trimmed, at most `max_chars` characters, and
/// no control characters (no stored name, email or reason holds one, and PostgreSQL refuses
/// a NUL in text outright). Returns the trimmed text, which may be empty: whether blank is
/// allowed is the caller's rule.
///
/// # Errors
/// [`FieldError`] on `field`: "Use at most N characters." or "Use one line of text, without
/// control characters."
pub fn single_line<'a>(
    field: &str,
    input: &'a str,
    max_chars: usize,
) -> Result<&'a str, FieldError> {
    let text = input.trim();
    if text.chars().count() > max_chars {
        return Err(FieldError::new(
            field,
            format!("Use at most {max_chars} characters."),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "Use one line of text, without control characters.",
        ));
    }
    Ok(text)
}

/// A moment as every page and message writes it: `28 Nov 2026, 09:15 UTC`.
pub fn readable_time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%-d %b %Y, %H:%M UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_trims_and_refuses_control_characters_and_overlong_text() {
        assert_eq!(single_line("q", "  acme  ", 10).unwrap(), "acme");
        assert_eq!(single_line("q", "", 10).unwrap(), "");
        for (bad, message) in [
            (
                "a\u{0}b",
                "Use one line of text, without control characters.",
            ),
            (
                "a\r\nb",
                "Use one line of text, without control characters.",
            ),
            (
                "tab\there",
                "Use one line of text, without control characters.",
            ),
            ("12345678901", "Use at most 10 characters."),
        ] {
            let error = single_line("q", bad, 10).unwrap_err();
            assert_eq!(
                (error.field.as_str(), error.message.as_str()),
                ("q", message)
            );
        }
    }
}
