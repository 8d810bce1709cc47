//! The words of each security message, as plain text and as HTML: what happened, when, from
//! where, what it leaves, what to do next and who the organization's administrators are.
//!
//! Every message is a [`Notice`]; [`render`] lays one out the same way for every event, so a
//! new event only says its own words. Nothing secret goes in: no code, no digest, no link that
//! signs anyone in. Every value is cleaned first, the request's (the browser's name) above
//! all: control characters go, length is bounded, and no run of digits long enough to read as
//! a code survives ([`no_code_like_runs`]), whatever a client sends as its user agent.

use chrono::{DateTime, Utc};

/// The longest run of digits a message keeps from a value; longer runs are cut. A code is 12
/// digits; 8 leaves room for versions and ports.
const MAX_DIGIT_RUN: usize = 8;
/// The most characters of one value (a fact, a sentence) a message shows.
const MAX_VALUE_CHARS: usize = 600;

/// A message ready for the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// One security message, in words: the same layout for every event.
#[derive(Debug, Clone, Default)]
pub struct Notice {
    pub subject: String,
    /// What happened, in a sentence or two.
    pub what: String,
    /// Labelled facts, e.g. `("When", "Sunday 29 November 2026, 18:51:10 UTC")`.
    pub facts: Vec<(&'static str, String)>,
    /// Where the account stands now (codes left, sign-in locked until …), when worth saying.
    pub status: Option<String>,
    /// What to do if the reader did this or expected it.
    pub if_you: String,
    /// What to do if they did not.
    pub if_not_you: String,
    /// The organization's owners and admins, to contact.
    pub contacts: Vec<String>,
    /// The "This wasn't me" link ([`super::not_me`]); absent in messages to administrators.
    pub not_me: Option<String>,
}

/// A time as the messages show it: `Sunday 29 November 2026, 18:51:10 UTC`.
pub fn readable_time(at: DateTime<Utc>) -> String {
    at.format("%A %-d %B %Y, %H:%M:%S UTC").to_string()
}

/// `value` with control characters dropped, at most `max_chars` characters, and every run of
/// more than [`MAX_DIGIT_RUN`] digits cut short with `…`: nothing in it reads as a code.
pub fn no_code_like_runs(value: &str, max_chars: usize) -> String {
    let mut out = String::new();
    let mut run = 0usize;
    let mut cut = false;
    for c in value.chars().filter(|c| !c.is_control()).take(max_chars) {
        if c.is_ascii_digit() {
            run += 1;
            if run > MAX_DIGIT_RUN {
                if !cut {
                    out.push('…');
                    cut = true;
                }
                continue;
            }
        } else {
            run = 0;
            cut = false;
        }
        out.push(c);
    }
    out
}

/// The closing line of every message.
const SIGNATURE: &str = "This message was sent by Lifeline. It contains no code and asks for \
                         none: never send a code to anyone.";

/// `notice` as a multipart message's parts. Every value is cleaned ([`no_code_like_runs`])
/// and, in the HTML part, escaped.
pub fn render(notice: &Notice) -> Rendered {
    let clean = |value: &str| no_code_like_runs(value, MAX_VALUE_CHARS);
    let subject = clean(&notice.subject);
    let what = clean(&notice.what);
    let facts: Vec<(&str, String)> = notice
        .facts
        .iter()
        .map(|(label, value)| (*label, clean(value)))
        .collect();
    let status = notice.status.as_deref().map(clean);
    let if_you = clean(&notice.if_you);
    let if_not_you = clean(&notice.if_not_you);
    let contacts: Vec<String> = notice.contacts.iter().map(|c| clean(c)).collect();
    let contact_line = if contacts.is_empty() {
        "your organization's administrators".to_owned()
    } else {
        contacts.join(", ")
    };
    // The link is ours, not a request's: a token of hex and dots, no long digit run.
    let not_me = notice.not_me.as_deref();

    let mut text = format!("{what}\n\n");
    for (label, value) in &facts {
        text.push_str(&format!("{label}: {value}\n"));
    }
    if !facts.is_empty() {
        text.push('\n');
    }
    if let Some(status) = &status {
        text.push_str(&format!("{status}\n\n"));
    }
    text.push_str(&format!("{if_you}\n\n{if_not_you}\n"));
    if let Some(link) = not_me {
        text.push_str(&format!(
            "\nThis wasn't me: {link}\n(The link asks for nothing secret. It stops your backup \
             codes and ends your sessions, and works once, for 7 days.)\n"
        ));
    }
    text.push_str(&format!(
        "\nAdministrators: {contact_line}\n\n{SIGNATURE}\n"
    ));

    let e = |value: &str| html_escape::encode_text(value).into_owned();
    let a = |value: &str| html_escape::encode_double_quoted_attribute(value).into_owned();
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head>\
         <body>\n<p>{}</p>\n",
        e(&subject),
        e(&what)
    );
    if !facts.is_empty() {
        html.push_str("<table>\n");
        for (label, value) in &facts {
            html.push_str(&format!(
                "<tr><th align=\"left\">{}</th><td>{}</td></tr>\n",
                e(label),
                e(value)
            ));
        }
        html.push_str("</table>\n");
    }
    if let Some(status) = &status {
        html.push_str(&format!("<p>{}</p>\n", e(status)));
    }
    html.push_str(&format!(
        "<p>{}</p>\n<p><strong>{}</strong></p>\n",
        e(&if_you),
        e(&if_not_you)
    ));
    if let Some(link) = not_me {
        html.push_str(&format!(
            "<p><a href=\"{}\">This wasn't me</a> (asks for nothing secret; stops your backup \
             codes and ends your sessions; works once, for 7 days)</p>\n",
            a(link)
        ));
    }
    let contact_items: String = if contacts.is_empty() {
        format!("<li>{}</li>", e(&contact_line))
    } else {
        contacts
            .iter()
            .map(|contact| format!("<li>{}</li>", e(contact)))
            .collect()
    };
    html.push_str(&format!(
        "<p>Administrators:</p>\n<ul>{contact_items}</ul>\n<p>{SIGNATURE}</p>\n</body></html>\n"
    ));
    Rendered {
        subject,
        text,
        html,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has_code_like_run(text: &str) -> bool {
        let mut run = 0;
        text.chars().any(|c| {
            run = if c.is_ascii_digit() { run + 1 } else { 0 };
            run >= 12
        })
    }

    #[test]
    fn values_carrying_a_code_lose_its_digits_and_markup_is_escaped() {
        let notice = Notice {
            subject: "Subject 482109375516".into(),
            what: "Backup code number 3 of your set was used.".into(),
            facts: vec![
                ("When", "Sunday 29 November 2026, 18:51:10 UTC".into()),
                ("Browser", "Mozilla/5.0 482109375516 <script>\u{7}".into()),
            ],
            status: Some("You have 9 unused backup codes left.".into()),
            if_you: "Nothing more is needed.".into(),
            if_not_you: "Contact an administrator.".into(),
            contacts: vec!["owner123456789012@example.com".into()],
            not_me: Some("http://127.0.0.1:3000/not-me?t=ab.cd".into()),
        };
        let message = render(&notice);
        for part in [&message.subject, &message.text, &message.html] {
            assert!(!has_code_like_run(part), "{part}");
        }
        assert!(message.text.contains("Backup code number 3"));
        assert!(
            message
                .text
                .contains("When: Sunday 29 November 2026, 18:51:10 UTC")
        );
        assert!(message.text.contains("9 unused backup codes"));
        assert!(
            message
                .text
                .contains("This wasn't me: http://127.0.0.1:3000/not-me?t=ab.cd")
        );
        assert!(message.html.contains("&lt;script&gt;"));
        assert!(!message.html.contains("<script>"));
        assert!(!message.text.contains('\u{7}'));
    }

    #[test]
    fn short_digit_runs_are_kept() {
        assert_eq!(
            no_code_like_runs("Chrome/131.0.6778.85", 200),
            "Chrome/131.0.6778.85"
        );
        assert_eq!(no_code_like_runs("a123456789012b", 200), "a12345678…b");
    }
}
