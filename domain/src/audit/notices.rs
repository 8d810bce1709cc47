//! Who hears of an event, decided where every event is written ([`super::record`]), in the
//! event's own transaction: the member it is about gets a notice (NIST SP 800-63B-4 §4.6),
//! and the organization's administrators an alert when they chose that kind
//! ([`AlertSettings`]). Both go to the outbox ([`crate::notifications`]): if the event
//! commits, they will be sent; if it rolls back, there is nothing to send.
//!
//! [`member_words`] and [`alert_words`] match every [`AuditAction`] without a wildcard, so a
//! new action does not compile until it says whether it notifies anyone.
//!
//! What depends on more than one event (a policy save stops some members' codes; it loosens
//! the policy or not) is told by its module through [`to_member`] and [`to_admins`].

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter};

use super::{AuditAction, Event, Outcome, Source, keys};
use crate::{
    entity::{audit_event, webhook},
    identity::{self, Member, Role},
    notifications::{
        self, AlertKind, AlertSettings, Message, NotMe, Notice, alerts, digest,
        rendering::readable_time,
    },
};

/// The words of one notice; the facts, contacts and link are added around them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Words {
    pub subject: String,
    pub what: String,
    pub status: Option<String>,
    pub if_you: String,
    pub if_not_you: String,
}

/// What the member does when a notice describes something they did not do.
const REPORT_IT: &str = "If this was not you, use \"This wasn't me\" below at once: it stops \
                         your backup codes and ends your sessions. Then contact an \
                         administrator of your organization.";

/// What telling of an event reads about its organization and the member it is about (the
/// organization's name, its owners and admins, its alert settings and webhooks, the member's
/// second address), read before the event's transaction. A sign-in reads it while the
/// secret is hashed ([`crate::backup_codes::redeem`]), so that the transaction recording the
/// outcome holds only its writes. It is what was true a moment before the event: an
/// administrator or webhook added in that moment hears of the next event.
#[derive(Debug, Clone)]
pub struct Audience {
    org_id: i32,
    member_id: i32,
    organization: String,
    admins: Vec<(i32, String)>,
    settings: AlertSettings,
    second_address: Option<(String, bool)>,
    webhooks: Vec<webhook::Model>,
}

impl Audience {
    /// Reads the audience of events in organization `org_id` about `member_id`: five reads.
    pub async fn read(
        db: &impl ConnectionTrait,
        org_id: i32,
        member_id: i32,
    ) -> Result<Self, DbErr> {
        Ok(Self {
            org_id,
            member_id,
            organization: read_organization_name(db, org_id).await?,
            admins: identity::admin_accounts(db, org_id).await?,
            settings: alerts::settings(db, org_id).await?,
            second_address: notifications::second_address(db, member_id).await?,
            webhooks: notifications::webhooks::of_organization(db, org_id).await?,
        })
    }

    /// The audience when it was read for `org_id`: one read for another organization is
    /// never used.
    fn of(ahead: Option<&Self>, org_id: i32) -> Option<&Self> {
        ahead.filter(|audience| audience.org_id == org_id)
    }

    /// The organization's webhooks, read ahead for `org_id`.
    pub(super) fn webhooks(ahead: Option<&Self>, org_id: i32) -> Option<&[webhook::Model]> {
        Self::of(ahead, org_id).map(|audience| audience.webhooks.as_slice())
    }
}

/// Tells whoever should hear of `event`, written in `txn` (the event's transaction) for the
/// organization `org_id`; what `ahead` holds is not read again.
pub(super) async fn follow(
    txn: &impl ConnectionTrait,
    org_id: i32,
    event: &Event<'_>,
    source: &Source,
    at: DateTime<Utc>,
    ahead: Option<&Audience>,
) -> Result<(), DbErr> {
    let facts = facts_of(event, source, at);
    if let (Some(target), Some(words)) = (event.target, member_words(event)) {
        // The report's own confirmation carries no second link.
        let link = event.action != AuditAction::IncidentReported;
        let notice = Notified {
            kind: event.action.as_str(),
            words,
            facts: facts.clone(),
        };
        deliver(txn, target, notice, Sending::Each { link }, at, ahead).await?;
    }
    let alert = alert_words(event);
    let refused = event.action == AuditAction::BackupCodeRefused;
    if alert.is_none() && !refused {
        // Most events alert nobody: no need to read the settings.
        return Ok(());
    }
    let settings = match Audience::of(ahead, org_id) {
        Some(audience) => audience.settings,
        None => alerts::settings(txn, org_id).await?,
    };
    if let Some((kind, words)) = alert
        && settings.wants(kind)
    {
        let skip = [event.actor, event.target];
        let notice = Notified {
            kind: event.action.as_str(),
            words,
            facts,
        };
        alert_admins(txn, org_id, &settings, &skip, notice, at, ahead).await?;
    }
    if refused && let Some(target) = event.target {
        failed_redemptions(txn, &settings, target, source, at, ahead).await?;
    }
    Ok(())
}

/// When, by whom and from where, as every notice of `event` lists them.
fn facts_of(event: &Event<'_>, source: &Source, at: DateTime<Utc>) -> Vec<(&'static str, String)> {
    let mut facts = vec![("When", readable_time(at))];
    match (event.actor, event.target) {
        (Some(actor), Some(target)) if actor.id != target.id => {
            facts.push(("By", format!("{} ({})", actor.email, actor.role.as_str())));
            facts.push(("Account", target.email.clone()));
        }
        (Some(actor), _) => facts.push(("Account", actor.email.clone())),
        (None, Some(target)) => {
            facts.push(("By", "Lifeline, automatically".to_owned()));
            facts.push(("Account", target.email.clone()));
        }
        (None, None) => {}
    }
    if let Some(ip) = &source.ip {
        facts.push(("From address", ip.clone()));
    }
    if let Some(agent) = &source.user_agent {
        facts.push(("Browser", agent.clone()));
    }
    facts
}

/// Writes a notice to `member`, with the organization's administrators to contact and, when
/// `link`, a "This wasn't me" link (signed with the installed key) good for 7 days.
pub async fn to_member(
    txn: &impl ConnectionTrait,
    member: &Member,
    kind: &str,
    words: Words,
    facts: Vec<(&'static str, String)>,
    link: bool,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let notice = Notified { kind, words, facts };
    deliver(txn, member, notice, Sending::Each { link }, at, None).await?;
    Ok(())
}

/// Like [`to_member`] without the "This wasn't me" link (nothing happened to report), unless
/// a notice was written before for the same `dedupe`: whether this one was. For a reminder
/// that must go out once however often, and on however many instances, it is sent. Each
/// address's message is written once for `{dedupe}:{address}` ([`once_key`]).
pub async fn to_member_once(
    txn: &impl ConnectionTrait,
    member: &Member,
    kind: &str,
    words: Words,
    facts: Vec<(&'static str, String)>,
    dedupe: &str,
    at: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let notice = Notified { kind, words, facts };
    deliver(txn, member, notice, Sending::Once(dedupe), at, None).await
}

/// What a notice written once for `dedupe` to `address` is deduplicated by.
pub fn once_key(dedupe: &str, address: &str) -> String {
    format!("{dedupe}:{address}")
}

/// How a notice is written.
enum Sending<'a> {
    /// Each time, with a "This wasn't me" link when `link`.
    Each { link: bool },
    /// Once per `dedupe` and address, without a link.
    Once(&'a str),
}

/// One notice's kind (an event's action, or another name), words and facts.
struct Notified<'a> {
    kind: &'a str,
    words: Words,
    facts: Vec<(&'static str, String)>,
}

/// A notice to `member` at every address on record, as `sending` says; whether any was
/// written. What `ahead` holds about `member` is not read again.
async fn deliver(
    txn: &impl ConnectionTrait,
    member: &Member,
    notice: Notified<'_>,
    sending: Sending<'_>,
    at: DateTime<Utc>,
    ahead: Option<&Audience>,
) -> Result<bool, DbErr> {
    let Notified {
        kind,
        words,
        mut facts,
    } = notice;
    let known = Audience::of(ahead, member.org_id);
    facts.push((
        "Organization",
        organization_name(txn, member.org_id, ahead).await?,
    ));
    let not_me = if matches!(sending, Sending::Each { link: true }) {
        Some(NotMe::new(member.org_id, member.id, at).link(&keys::installed()?))
    } else {
        None
    };
    let notice = Notice {
        subject: words.subject,
        what: words.what,
        facts,
        status: words.status,
        if_you: words.if_you,
        if_not_you: words.if_not_you,
        contacts: match known {
            Some(audience) => audience
                .admins
                .iter()
                .map(|(_, email)| email.clone())
                .collect(),
            None => identity::admin_contacts(txn, member.org_id).await?,
        },
        not_me,
    };
    let rendered = notifications::render(&notice);
    // Every address on record: the sign-in address, and the second one once verified.
    let second = match known.filter(|audience| audience.member_id == member.id) {
        Some(audience) => audience.second_address.clone(),
        None => notifications::second_address(txn, member.id).await?,
    }
    .and_then(|(address, verified)| verified.then_some(address));
    let mut written = false;
    for recipient in std::iter::once(member.email.as_str()).chain(second.as_deref()) {
        let message = Message {
            org_id: member.org_id,
            user_id: Some(member.id),
            kind,
            recipient,
            rendered: rendered.clone(),
        };
        written |= match sending {
            Sending::Once(dedupe) => {
                notifications::enqueue_once(txn, message, &once_key(dedupe, recipient), at).await?
            }
            Sending::Each { .. } => {
                notifications::enqueue(txn, message, at).await?;
                true
            }
        };
    }
    Ok(written)
}

/// Writes an alert to each owner and admin of `org_id` but those in `skip` (who acted, or
/// who got the member's notice); `kind` names the event. Each alert is its own message, so
/// that one address failing holds up no other; under a daily digest
/// ([`AlertSettings::daily_digest`]) each is kept for the digest instead.
#[allow(clippy::too_many_arguments)]
pub async fn to_admins(
    txn: &impl ConnectionTrait,
    org_id: i32,
    settings: &AlertSettings,
    skip: &[Option<&Member>],
    kind: &str,
    words: Words,
    facts: Vec<(&'static str, String)>,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let notice = Notified { kind, words, facts };
    alert_admins(txn, org_id, settings, skip, notice, at, None).await
}

/// [`to_admins`], with what `ahead` holds not read again.
async fn alert_admins(
    txn: &impl ConnectionTrait,
    org_id: i32,
    settings: &AlertSettings,
    skip: &[Option<&Member>],
    notice: Notified<'_>,
    at: DateTime<Utc>,
    ahead: Option<&Audience>,
) -> Result<(), DbErr> {
    let Notified { kind, words, facts } = notice;
    for (admin, recipient, rendered) in
        alert_messages(txn, org_id, skip, words, facts, ahead).await?
    {
        let message = Message {
            org_id,
            user_id: Some(admin),
            kind,
            recipient: &recipient,
            rendered,
        };
        send_or_keep(txn, settings, message, None, at).await?;
    }
    Ok(())
}

/// Writes an alert to the outbox, or keeps it for the daily digest when the organization
/// chose one; with `once`, under that key, once however often it is raised.
async fn send_or_keep(
    txn: &impl ConnectionTrait,
    settings: &AlertSettings,
    message: Message<'_>,
    once: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    if settings.daily_digest {
        let item = digest::Item {
            org_id: message.org_id,
            user_id: message.user_id.unwrap_or_default(),
            recipient: message.recipient,
            rendered: &message.rendered,
            dedupe_key: once,
        };
        return digest::keep(txn, item, at).await;
    }
    match once {
        Some(key) => notifications::enqueue_once(txn, message, key, at)
            .await
            .map(drop),
        None => notifications::enqueue(txn, message, at).await.map(drop),
    }
}

/// Each recipient of an alert (id and address) and its message.
async fn alert_messages(
    txn: &impl ConnectionTrait,
    org_id: i32,
    skip: &[Option<&Member>],
    words: Words,
    mut facts: Vec<(&'static str, String)>,
    ahead: Option<&Audience>,
) -> Result<Vec<(i32, String, notifications::Rendered)>, DbErr> {
    let admins = match Audience::of(ahead, org_id) {
        Some(audience) => audience.admins.clone(),
        None => identity::admin_accounts(txn, org_id).await?,
    };
    let contacts: Vec<String> = admins.iter().map(|(_, email)| email.clone()).collect();
    facts.push(("Organization", organization_name(txn, org_id, ahead).await?));
    let notice = Notice {
        subject: format!("Alert: {}", words.subject),
        what: words.what,
        facts,
        status: words.status,
        if_you: words.if_you,
        if_not_you: words.if_not_you,
        contacts,
        not_me: None,
    };
    let rendered = notifications::render(&notice);
    Ok(admins
        .into_iter()
        .filter(|(id, _)| !skip.iter().flatten().any(|m| m.id == *id))
        .map(|(id, email)| (id, email, rendered.clone()))
        .collect())
}

async fn organization_name(
    txn: &impl ConnectionTrait,
    org_id: i32,
    ahead: Option<&Audience>,
) -> Result<String, DbErr> {
    match Audience::of(ahead, org_id) {
        Some(audience) => Ok(audience.organization.clone()),
        None => read_organization_name(txn, org_id).await,
    }
}

async fn read_organization_name(db: &impl ConnectionTrait, org_id: i32) -> Result<String, DbErr> {
    Ok(identity::organization(db, org_id)
        .await?
        .map(|org| org.name)
        .unwrap_or_default())
}

/// One alert when refused backup codes against `target` reach the organization's count within
/// its window: written under a key naming the member and the window, so however many refusals
/// cross the count at once, administrators hear of it once per window.
async fn failed_redemptions(
    txn: &impl ConnectionTrait,
    settings: &AlertSettings,
    target: &Member,
    source: &Source,
    at: DateTime<Utc>,
    ahead: Option<&Audience>,
) -> Result<(), DbErr> {
    if !settings.failed_redemptions {
        return Ok(());
    }
    let minutes = i64::from(settings.failed_redemptions_minutes);
    let refused = audit_event::Entity::find()
        .filter(audit_event::Column::OrgId.eq(target.org_id))
        .filter(audit_event::Column::TargetId.eq(target.id))
        .filter(audit_event::Column::Action.eq(AuditAction::BackupCodeRefused.as_str()))
        .filter(audit_event::Column::At.gt(at - Duration::minutes(minutes)))
        .count(txn)
        .await?;
    if refused < u64::from(settings.failed_redemptions_count) {
        return Ok(());
    }
    let window = at.timestamp().div_euclid(minutes * 60);
    let key = format!(
        "alert-refused-{}-{}-{minutes}m-{window}",
        target.org_id, target.id
    );
    let words = Words {
        subject: format!("wrong backup codes for {}", target.email),
        what: format!(
            "{refused} wrong backup codes were entered for {} within {minutes} minutes.",
            target.email
        ),
        status: None,
        if_you: "Someone may be guessing this member's backup codes. Check the audit log for \
                 where the attempts came from, and confirm with the member."
            .to_owned(),
        if_not_you: "If the member did not make these attempts, revoke their backup codes from \
                     the members page."
            .to_owned(),
    };
    let mut facts = vec![("When", readable_time(at))];
    if let Some(ip) = &source.ip {
        facts.push(("Last attempt from", ip.clone()));
    }
    for (admin, recipient, rendered) in
        alert_messages(txn, target.org_id, &[Some(target)], words, facts, ahead).await?
    {
        let message = Message {
            org_id: target.org_id,
            user_id: Some(admin),
            kind: "alert.failed_redemptions",
            recipient: &recipient,
            rendered,
        };
        let once = format!("{key}-{recipient}");
        send_or_keep(txn, settings, message, Some(&once), at).await?;
    }
    Ok(())
}

/// A detail of `event` as a number, if it holds one.
fn number(event: &Event<'_>, key: &str) -> Option<u64> {
    event.details.get(key).and_then(serde_json::Value::as_u64)
}

/// A detail of `event` as text, if it holds it.
fn text<'e>(event: &'e Event<'_>, key: &str) -> Option<&'e str> {
    event.details.get(key).and_then(serde_json::Value::as_str)
}

/// A requested sign-in code's terms, from its event, for after "…backup codes":
/// `, from … until …, 2 times`; empty for an event recorded before codes had terms.
fn code_terms(event: &Event<'_>) -> String {
    let moment = |key| {
        text(event, key)
            .and_then(|at| at.parse::<DateTime<Utc>>().ok())
            .map(readable_time)
    };
    let uses = event
        .details
        .get("uses")
        .and_then(serde_json::Value::as_u64);
    match (moment("starts_at"), moment("expires_at"), uses) {
        (Some(from), Some(until), Some(uses)) => format!(
            ", from {from} until {until}, {}",
            if uses == 1 {
                "once".to_owned()
            } else {
                format!("{uses} times")
            }
        ),
        _ => String::new(),
    }
}

/// Who acted, for a sentence: `an administrator (a@b.c)` when someone other than the member.
fn by_whom(event: &Event<'_>) -> String {
    match (event.actor, event.target) {
        (Some(actor), Some(target)) if actor.id != target.id => {
            format!("an administrator ({})", actor.email)
        }
        (Some(_), _) => "you".to_owned(),
        (None, _) => "Lifeline".to_owned(),
    }
}

/// How many backup codes are left, in a sentence.
fn codes_left(remaining: u64) -> String {
    match remaining {
        0 => "You have no unused backup codes left. Generate a new set once you are signed in."
            .to_owned(),
        1 => "You have 1 unused backup code left. Generate a new set soon.".to_owned(),
        n => format!("You have {n} unused backup codes left."),
    }
}

/// What the member `event` is about is told, if anything.
pub fn member_words(event: &Event<'_>) -> Option<Words> {
    use AuditAction as A;
    let success = event.outcome == Outcome::Success;
    let by = by_whom(event);
    let words = match event.action {
        A::BackupCodeRedeemed if success => {
            let remaining = number(event, "remaining").unwrap_or(0);
            let low = number(event, "low_codes_threshold").unwrap_or(0);
            let subject = match remaining {
                0 => "A backup code was used to sign in: none are left".to_owned(),
                n if n <= low => format!("A backup code was used to sign in: {n} left"),
                _ => "A backup code was used to sign in to your account".to_owned(),
            };
            Words {
                subject,
                what: format!(
                    "Backup code number {} of your set was used to sign in to your account.",
                    number(event, "slot").unwrap_or(0)
                ),
                status: Some(codes_left(remaining)),
                if_you: "If this was you, nothing more is needed. Each code works once.".to_owned(),
                if_not_you: format!("Someone else holds one of your codes. {REPORT_IT}"),
            }
        }
        A::RecoveryCodeUsed if success => Words {
            subject: "A sign-in code your administrator issued was used".to_owned(),
            what: "A sign-in code your administrator issued for you was used to sign in to \
                   your account."
                .to_owned(),
            status: number(event, "remaining").map(codes_left),
            if_you: "If this was you, set up your authenticator again or generate new backup \
                     codes while you are signed in."
                .to_owned(),
            if_not_you: format!("Someone else had your sign-in code. {REPORT_IT}"),
        },
        A::BackupCodesGenerated | A::BackupCodesReplaced if success => {
            let codes = number(event, "codes").unwrap_or(0);
            let replaced = event.action == A::BackupCodesReplaced;
            Words {
                subject: "New backup codes were generated for your account".to_owned(),
                what: format!(
                    "A new set of {codes} backup codes was generated for your account by \
                     {by}.{}",
                    if replaced {
                        " Your previous codes stopped working."
                    } else {
                        ""
                    }
                ),
                status: None,
                if_you: "Keep the new codes somewhere safe, apart from your authenticator. \
                         Each works once."
                    .to_owned(),
                if_not_you: format!("Someone who can sign in as you made new codes. {REPORT_IT}"),
            }
        }
        A::BackupCodesRevoked if success => Words {
            subject: "Your backup codes were revoked".to_owned(),
            what: format!(
                "Your backup codes were revoked by {by}: they no longer work.{}",
                if event.details.get("recovery_code_ended") == Some(&true.into()) {
                    " The sign-in code issued for you was cancelled too."
                } else {
                    ""
                }
            ),
            status: None,
            if_you: "Generate a new set once you are signed in, if your organization allows \
                     backup codes."
                .to_owned(),
            if_not_you: "If you did not expect this, ask your administrators why.".to_owned(),
        },
        A::BackupCodesExpired if success => Words {
            subject: "Your backup codes expired".to_owned(),
            what: format!(
                "Your backup codes expired: your set is older than the {} days your \
                 organization allows.",
                number(event, "max_set_age_days").unwrap_or(0)
            ),
            status: Some("Your old codes no longer work.".to_owned()),
            if_you: "Generate a new set once you are signed in.".to_owned(),
            if_not_you: "Nothing was done on your account; the codes reached their age.".to_owned(),
        },
        A::MfaEnabled if success => Words {
            subject: "Multi-factor authentication was turned on".to_owned(),
            what: "Multi-factor authentication was turned on for your account.".to_owned(),
            status: None,
            if_you: "Generate backup codes and keep them somewhere safe, in case you lose \
                     your authenticator."
                .to_owned(),
            if_not_you: format!(
                "Someone who can sign in as you set up an authenticator. {REPORT_IT}"
            ),
        },
        A::MfaReplaced if success => Words {
            subject: "Your authenticator was replaced".to_owned(),
            what: format!(
                "A new authenticator replaced the one your account used: codes from the old one \
                 no longer sign in.{}",
                if event.details.get("backup_codes_ended") == Some(&true.into()) {
                    " Your backup codes stopped working, as asked."
                } else {
                    " Your backup codes still work."
                }
            ),
            status: None,
            if_you: "Nothing more is needed.".to_owned(),
            if_not_you: format!(
                "Someone who can sign in as you set up their own authenticator. {REPORT_IT}"
            ),
        },
        A::MfaDisabled if success => Words {
            subject: "Multi-factor authentication was turned off".to_owned(),
            what: format!(
                "Multi-factor authentication was turned off for your account.{}",
                if event.details.get("backup_codes_ended") == Some(&true.into()) {
                    " Your backup codes stopped working."
                } else {
                    ""
                }
            ),
            status: None,
            if_you: "Your account is protected by your password alone until you turn it on \
                     again."
                .to_owned(),
            if_not_you: format!("Someone who can sign in as you turned it off. {REPORT_IT}"),
        },
        A::BackupCreated if success => Words {
            subject: "Your data backup is ready".to_owned(),
            what: "The backup of your organization's data you requested is ready: download it \
                   from the Data backup page while it is kept."
                .to_owned(),
            status: Some(
                "Only you can download it, and only your passphrase opens it; it is deleted \
                 after a week."
                    .to_owned(),
            ),
            if_you: "Download it, and keep the file and its passphrase in different places."
                .to_owned(),
            if_not_you: format!(
                "Someone who can sign in as you asked for a copy of your organization's data. \
                 {REPORT_IT}"
            ),
        },
        A::BackupFailed => Words {
            subject: "Your data backup could not be made".to_owned(),
            what: format!(
                "The backup of your organization's data you requested could not be made: {}",
                text(event, "reason").unwrap_or("the server's log says why.")
            ),
            status: None,
            if_you: "Request it again from the Data backup page; if it fails again, tell your \
                     operator."
                .to_owned(),
            if_not_you: format!(
                "Someone who can sign in as you asked for a copy of your organization's data. \
                 {REPORT_IT}"
            ),
        },
        A::MfaReset if success => Words {
            subject: "Multi-factor authentication was reset on your account".to_owned(),
            what: format!(
                "Multi-factor authentication on your account was reset by {by}: your \
                 authenticator and backup codes no longer work."
            ),
            status: Some("You will set up an authenticator again at your next sign-in.".to_owned()),
            if_you: "If you asked for this, sign in and set it up again.".to_owned(),
            if_not_you: "If you did not ask for this, contact your administrators at once."
                .to_owned(),
        },
        A::PasswordLocked | A::TotpLocked | A::BackupCodeLocked => {
            let factor = match event.action {
                A::PasswordLocked => "password",
                A::TotpLocked => "authenticator code",
                _ => "backup codes",
            };
            let until = text(event, "until")
                .and_then(|until| until.parse::<DateTime<Utc>>().ok())
                .map(readable_time);
            Words {
                subject: format!("Sign-in with your {factor} was locked"),
                what: format!(
                    "Sign-in with your {factor} was locked after {} wrong attempts.",
                    number(event, "attempts").unwrap_or(0)
                ),
                status: until.map(|until| format!("It unlocks on {until}.")),
                if_you: "If these were your attempts, wait until then, or ask an administrator \
                         to unlock it."
                    .to_owned(),
                if_not_you: format!("Someone may be trying to sign in as you. {REPORT_IT}"),
            }
        }
        A::RecoveryCodeRequested if success => Words {
            subject: "An administrator requested a sign-in code for you".to_owned(),
            what: format!(
                "A sign-in code for your account was requested by {by}. It lets \
                 someone sign in without your authenticator or backup codes{}.",
                code_terms(event)
            ),
            status: None,
            if_you: "If you asked your administrators for help signing in, they will give you \
                     the code in person or by a channel you trust."
                .to_owned(),
            if_not_you: format!(
                "If you did not ask for help signing in, {}",
                lower(REPORT_IT)
            ),
        },
        A::RecoveryCodeApproved if success => Words {
            subject: "A sign-in code for you was approved".to_owned(),
            what: format!("A sign-in code for your account was approved by {by}."),
            status: None,
            if_you: "Your administrators will give you the code in person or by a channel you \
                     trust."
                .to_owned(),
            if_not_you: format!(
                "If you did not ask for help signing in, {}",
                lower(REPORT_IT)
            ),
        },
        A::RecoveryCodeRevealed if success => Words {
            subject: "A sign-in code for you was shown to an administrator".to_owned(),
            what: format!(
                "The sign-in code for your account was shown to {by}, who requested \
                 it."
            ),
            status: None,
            if_you: "Expect it from them in person or by a channel you trust. Never give a \
                     code to anyone."
                .to_owned(),
            if_not_you: format!(
                "If you did not ask for help signing in, {}",
                lower(REPORT_IT)
            ),
        },
        // Ended because codes were revoked or MFA reset: that event's notice says so.
        A::RecoveryCodeEnded if success && text(event, "reason") == Some("cancelled") => Words {
            subject: "The sign-in code issued for you was cancelled".to_owned(),
            what: format!(
                "The sign-in code issued for your account was cancelled by {by}: it \
                 no longer works."
            ),
            status: None,
            if_you: "Ask your administrators if you still need help signing in.".to_owned(),
            if_not_you: "Nothing more is needed: the code can no longer be used.".to_owned(),
        },
        A::MemberUnlocked if success => Words {
            subject: "Sign-in to your account was unlocked".to_owned(),
            what: format!("A locked sign-in on your account was unlocked by {by}."),
            status: None,
            if_you: "You can sign in again.".to_owned(),
            if_not_you: "If you did not ask for this, contact your administrators.".to_owned(),
        },
        A::IncidentReported if success => Words {
            subject: "You reported that something on your account wasn't you".to_owned(),
            what: "You reported that something on your account wasn't you. Your backup codes \
                   and any sign-in code issued for you stopped working, and every session of \
                   your account was ended."
                .to_owned(),
            status: Some("Your administrators were told.".to_owned()),
            if_you: "Sign in again, change your password if someone may know it, and generate \
                     new backup codes."
                .to_owned(),
            if_not_you: "If you did not report this, someone has your notification email: \
                         contact your administrators."
                .to_owned(),
        },
        A::NotificationAddressAdded if success => Words {
            subject: "A second address for your security notifications was added".to_owned(),
            what: format!(
                "{} was added as a second address for your security notifications. It gets \
                 them once the link sent to it is followed.",
                text(event, "address").unwrap_or("An address")
            ),
            status: None,
            if_you: "Follow the link in the message sent to that address.".to_owned(),
            if_not_you: format!(
                "Someone who can sign in as you wants your notifications. {REPORT_IT}"
            ),
        },
        A::NotificationAddressVerified if success => Words {
            subject: "A second address now gets your security notifications".to_owned(),
            what: format!(
                "{} was confirmed: it now gets a copy of every security notification.",
                text(event, "address").unwrap_or("An address")
            ),
            status: None,
            if_you: "Nothing more is needed.".to_owned(),
            if_not_you: format!(
                "Someone who can sign in as you now gets your notifications. {REPORT_IT}"
            ),
        },
        A::NotificationAddressRemoved if success => Words {
            subject: "Your second notification address was removed".to_owned(),
            what: format!(
                "{} no longer gets your security notifications.",
                text(event, "address").unwrap_or("Your second address")
            ),
            status: None,
            if_you: "Nothing more is needed.".to_owned(),
            if_not_you: format!("Someone who can sign in as you removed it. {REPORT_IT}"),
        },
        A::ApiTokenCreated if success => Words {
            subject: "A personal access token was created for your account".to_owned(),
            what: format!(
                "A personal access token named \"{}\" was created for your account by {by}. \
                 Programs holding it can call Lifeline's API as you, within its scopes ({}).",
                text(event, "name").unwrap_or("(unnamed)"),
                text(event, "scopes").unwrap_or("none")
            ),
            status: None,
            if_you: "Nothing more is needed. Revoke it on the API tokens page when it is no \
                     longer used."
                .to_owned(),
            if_not_you: format!(
                "Someone who can sign in as you can now reach the API. {REPORT_IT}"
            ),
        },
        // Told by the module that knows who is affected, or not a notice for the member:
        // - policy.saved: org_policy tells the members whose codes stop working.
        // - sign-ins and refusals: too many to tell one by one; locks and alerts cover them.
        A::BackupCodesGenerated
        | A::BackupCodesReplaced
        | A::BackupCodesRevoked
        | A::BackupCodesExpired
        | A::BackupCodeRedeemed
        | A::RecoveryCodeUsed
        | A::MfaEnabled
        | A::MfaDisabled
        | A::MfaReplaced
        | A::MfaReset
        | A::RecoveryCodeRequested
        | A::RecoveryCodeApproved
        | A::RecoveryCodeRevealed
        | A::RecoveryCodeEnded
        | A::MemberUnlocked
        | A::IncidentReported
        | A::OrganizationCreated
        | A::MemberAdded
        | A::MemberRemoved
        | A::MemberRoleChanged
        | A::SignInSucceeded
        | A::SignInFailed
        | A::BackupCodesGenerateRefused
        | A::BackupCodeRefused
        | A::PolicySaved
        | A::PolicyExceptionAdded
        | A::PolicyExceptionRemoved
        | A::NotificationAddressAdded
        | A::NotificationAddressVerified
        | A::NotificationAddressRemoved
        | A::AlertsSaved
        | A::WebhookAdded
        | A::WebhookRemoved
        | A::WebhookDeliveryFailed
        | A::BackupRequested
        | A::BackupCreated
        | A::BackupDownloaded
        | A::BackupExpired
        | A::BackupDeleted
        | A::BackupRestored
        | A::ApiTokenCreated
        | A::ApiTokenRevoked
        | A::ApiTokenUsed
        | A::GroupCreated
        | A::GroupDeleted
        | A::GroupMembersAdded
        | A::GroupMemberRemoved
        | A::GroupExceptionSet
        | A::GroupScopeSet => return None,
    };
    Some(words)
}

/// `sentence` with its first letter in lower case, to follow "If …, ".
fn lower(sentence: &str) -> String {
    let mut chars = sentence.chars();
    chars
        .next()
        .map(|first| first.to_lowercase().chain(chars).collect())
        .unwrap_or_default()
}

/// What the administrators are alerted to about `event`, if anything, and its kind.
pub fn alert_words(event: &Event<'_>) -> Option<(AlertKind, Words)> {
    use AuditAction as A;
    let success = event.outcome == Outcome::Success;
    let target = event.target.map_or("a member", |t| t.email.as_str());
    let actor = event.actor.map_or("Lifeline", |a| a.email.as_str());
    let privileged = event
        .target
        .is_some_and(|t| matches!(t.role, Role::Owner | Role::Admin));
    let alert = match event.action {
        A::RecoveryCodeRequested if success => (
            AlertKind::IssuedCode,
            Words {
                subject: format!("a sign-in code was requested for {target}"),
                what: format!("{actor} requested a sign-in code for {target}."),
                status: None,
                if_you: "If this was agreed with the member, nothing more is needed.".to_owned(),
                if_not_you: "If nobody asked for it, cancel the code from the members page."
                    .to_owned(),
            },
        ),
        A::RecoveryCodeUsed if success => (
            AlertKind::IssuedCode,
            Words {
                subject: format!("{target} signed in with an issued sign-in code"),
                what: format!("{target} signed in with a sign-in code an administrator issued."),
                status: None,
                if_you: "If this was expected, nothing more is needed.".to_owned(),
                if_not_you: "If not, reset the member's MFA from the members page.".to_owned(),
            },
        ),
        A::BackupCodeRedeemed if success && privileged => (
            AlertKind::PrivilegedBackupSignIn,
            Words {
                subject: format!("{target} signed in with a backup code"),
                what: format!(
                    "{target}, an owner or admin of your organization, signed in with backup \
                     code number {}.",
                    number(event, "slot").unwrap_or(0)
                ),
                status: None,
                if_you: "If this was expected, nothing more is needed.".to_owned(),
                if_not_you: "If not, revoke their backup codes from the members page.".to_owned(),
            },
        ),
        A::PasswordLocked | A::TotpLocked | A::BackupCodeLocked => (
            AlertKind::Lock,
            Words {
                subject: format!("sign-in locked for {target}"),
                what: format!(
                    "{} of {target} was locked after {} wrong attempts.",
                    match event.action {
                        A::PasswordLocked => "Password sign-in",
                        A::TotpLocked => "Authenticator sign-in",
                        _ => "Backup-code sign-in",
                    },
                    number(event, "attempts").unwrap_or(0)
                ),
                status: None,
                if_you: "If the member is locked out by mistake, unlock them from the members \
                         page."
                    .to_owned(),
                if_not_you: "If the member did not make these attempts, someone may be \
                             guessing: check the audit log."
                    .to_owned(),
            },
        ),
        A::IncidentReported if success => (
            AlertKind::Incident,
            Words {
                subject: format!("{target} reported \"This wasn't me\""),
                what: format!(
                    "{target} reported that something on their account wasn't them. Their \
                     backup codes and any sign-in code issued for them were stopped, and \
                     their sessions ended."
                ),
                status: None,
                if_you: "Contact the member by a channel you trust and read their history in \
                         the audit log."
                    .to_owned(),
                if_not_you: "Consider resetting their MFA until the member confirms who they \
                             are."
                    .to_owned(),
            },
        ),
        // The policy save alerts itself (it knows whether it loosened); refused codes count
        // towards an alert of their own ([`failed_redemptions`]).
        A::RecoveryCodeRequested
        | A::RecoveryCodeUsed
        | A::BackupCodeRedeemed
        | A::IncidentReported
        | A::RecoveryCodeApproved
        | A::RecoveryCodeRevealed
        | A::RecoveryCodeEnded
        | A::OrganizationCreated
        | A::MemberAdded
        | A::MemberRemoved
        | A::MemberRoleChanged
        | A::MemberUnlocked
        | A::MfaEnabled
        | A::MfaDisabled
        | A::MfaReplaced
        | A::MfaReset
        | A::SignInSucceeded
        | A::SignInFailed
        | A::BackupCodesGenerated
        | A::BackupCodesReplaced
        | A::BackupCodesRevoked
        | A::BackupCodesExpired
        | A::BackupCodesGenerateRefused
        | A::BackupCodeRefused
        | A::PolicySaved
        | A::PolicyExceptionAdded
        | A::PolicyExceptionRemoved
        | A::NotificationAddressAdded
        | A::NotificationAddressVerified
        | A::NotificationAddressRemoved
        | A::AlertsSaved
        | A::WebhookAdded
        | A::WebhookRemoved
        | A::WebhookDeliveryFailed
        | A::BackupRequested
        | A::BackupCreated
        | A::BackupFailed
        | A::BackupDownloaded
        | A::BackupExpired
        | A::BackupDeleted
        | A::BackupRestored
        | A::ApiTokenCreated
        | A::ApiTokenRevoked
        | A::ApiTokenUsed
        | A::GroupCreated
        | A::GroupDeleted
        | A::GroupMembersAdded
        | A::GroupMemberRemoved
        | A::GroupExceptionSet
        | A::GroupScopeSet => return None,
    };
    Some(alert)
}
