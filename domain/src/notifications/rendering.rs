//! The words of each security message, as plain text and as HTML: what happened, when, from
//! where, what it leaves, what to do next and who the organization's administrators are.
//!
//! Nothing secret goes in: no code, no digest, no link that signs anyone in. Values the
//! request brought (the browser's name) and addresses are cleaned first: control characters
//! go, length is bounded, and no run of digits long enough to read as a code survives
//! ([`no_code_like_runs`]), whatever a client sends as its user agent.

use chrono::{DateTime, Utc};

/// The longest run of digits a message keeps from a value it did not write itself; longer
/// runs are cut. A code is 12 digits; 8 leaves room for versions and ports.
const MAX_DIGIT_RUN: usize = 8;
/// The most characters of a browser's name a message shows.
const MAX_AGENT_CHARS: usize = 160;

/// A message ready for the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Which code was used to sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsedCode {
    /// A numbered code of the member's backup code set.
    Backup { slot: u32 },
    /// A one-time sign-in code an administrator issued for the member.
    Issued,
}

/// The facts of one sign-in with a code.
#[derive(Debug, Clone)]
pub struct CodeUsed<'a> {
    pub code: UsedCode,
    pub organization: &'a str,
    pub at: DateTime<Utc>,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    /// Unused backup codes left in the member's set in force.
    pub remaining: u32,
    /// The organization's owners and admins.
    pub contacts: &'a [String],
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

/// The message telling a member that a code was used to sign in to their account.
pub fn code_used(facts: &CodeUsed<'_>) -> Rendered {
    let organization = no_code_like_runs(facts.organization, 120);
    let (subject, what) = match facts.code {
        UsedCode::Backup { slot } => (
            "A backup code was used to sign in to your account".to_owned(),
            format!("Backup code number {slot} of your set was used to sign in to your account."),
        ),
        UsedCode::Issued => (
            "A sign-in code your administrator issued was used".to_owned(),
            "A sign-in code your administrator issued for you was used to sign in to your account."
                .to_owned(),
        ),
    };
    let when = readable_time(facts.at);
    let address = facts
        .ip
        .map_or_else(|| "unknown".to_owned(), |ip| no_code_like_runs(ip, 64));
    let browser = facts.user_agent.map_or_else(
        || "unknown".to_owned(),
        |agent| no_code_like_runs(agent, MAX_AGENT_CHARS),
    );
    let remaining = match facts.remaining {
        0 => "You have no unused backup codes left. Generate a new set once you are signed in."
            .to_owned(),
        1 => "You have 1 unused backup code left.".to_owned(),
        n => format!("You have {n} unused backup codes left."),
    };
    let contacts: Vec<String> = facts
        .contacts
        .iter()
        .map(|contact| no_code_like_runs(contact, 254))
        .collect();
    let contact_line = if contacts.is_empty() {
        "your organization's administrators".to_owned()
    } else {
        contacts.join(", ")
    };
    let if_not_you = "If this was not you, someone else holds one of your codes: contact an \
                      administrator of your organization at once, so that they revoke your \
                      codes and end your sessions.";
    let if_you = "If this was you, nothing more is needed. Each code works once.";

    let text = format!(
        "{what}\n\n\
         When: {when}\n\
         From address: {address}\n\
         Browser: {browser}\n\
         Organization: {organization}\n\n\
         {remaining}\n\n\
         {if_you}\n\n\
         {if_not_you}\n\
         Administrators: {contact_line}\n\n\
         This message was sent by Lifeline. It contains no code and asks for none: \
         never send a code to anyone.\n"
    );
    let e = |value: &str| html_escape::encode_text(value).into_owned();
    let contact_items: String = if contacts.is_empty() {
        format!("<li>{}</li>", e(&contact_line))
    } else {
        contacts
            .iter()
            .map(|contact| format!("<li>{}</li>", e(contact)))
            .collect()
    };
    let html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{subject}</title></head>\
         <body>\n<p>{what}</p>\n<table>\n\
         <tr><th align=\"left\">When</th><td>{when}</td></tr>\n\
         <tr><th align=\"left\">From address</th><td>{address}</td></tr>\n\
         <tr><th align=\"left\">Browser</th><td>{browser}</td></tr>\n\
         <tr><th align=\"left\">Organization</th><td>{organization}</td></tr>\n\
         </table>\n<p>{remaining}</p>\n<p>{if_you}</p>\n<p><strong>{if_not_you}</strong></p>\n\
         <p>Administrators:</p>\n<ul>{contact_items}</ul>\n\
         <p>This message was sent by Lifeline. It contains no code and asks for none: never \
         send a code to anyone.</p>\n</body></html>\n",
        subject = e(&subject),
        what = e(&what),
        when = e(&when),
        address = e(&address),
        browser = e(&browser),
        organization = e(&organization),
        remaining = e(&remaining),
        if_you = e(if_you),
        if_not_you = e(if_not_you),
    );
    Rendered {
        subject,
        text,
        html,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn has_code_like_run(text: &str) -> bool {
        let mut run = 0;
        text.chars().any(|c| {
            run = if c.is_ascii_digit() { run + 1 } else { 0 };
            run >= 12
        })
    }

    #[test]
    fn a_user_agent_carrying_a_code_loses_its_digits() {
        let contacts = vec!["owner123456789012@example.com".to_owned()];
        let facts = CodeUsed {
            code: UsedCode::Backup { slot: 3 },
            organization: "Acme 482109375516",
            at: Utc.with_ymd_and_hms(2026, 11, 29, 18, 51, 10).unwrap(),
            ip: Some("203.0.113.9"),
            user_agent: Some("Mozilla/5.0 482109375516 <script>\u{7}"),
            remaining: 9,
            contacts: &contacts,
        };
        let message = code_used(&facts);
        for part in [&message.subject, &message.text, &message.html] {
            assert!(!has_code_like_run(part), "{part}");
        }
        assert!(message.text.contains("Backup code number 3"));
        assert!(
            message
                .text
                .contains("Sunday 29 November 2026, 18:51:10 UTC")
        );
        assert!(message.text.contains("203.0.113.9"));
        assert!(message.text.contains("9 unused backup codes"));
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
