//! A grace period for "Required": the date from which the policy binds, and the days a member
//! who joins later has before it binds them (issue 16, item 4; Google Workspace's enrolment
//! period for new users and JumpCloud's 1–365 days are the models).
//!
//! "Required" binds a member who has MFA on and may use backup codes: they must hold a
//! working code ([`crate::backup_codes::compliant`]). With a date set
//! ([`OrgPolicy::required_from`]), such a member who does not comply has a deadline, the
//! later of that date (00:00 UTC) and the day they joined plus
//! [`OrgPolicy::grace_days`]:
//!
//! - before it they are *in grace*: every page shows a countdown, and a reminder goes out
//!   7 days and 1 day before ([`REMINDER_DAYS`]; `members::reminders` sends them, once each,
//!   however many instances run it);
//! - from it (the moment itself included) their session reaches only their MFA settings
//!   until they comply ([`crate::sign_in::SessionLimit::CodesRequired`]), which the server
//!   checks on every request, so it binds sessions signed in before the deadline too.
//!
//! Without a date, "Required" is reported (the compliance report, the account page) and
//! limits no session, as it did before the setting existed.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use sea_orm::ConnectionTrait;
use serde::{Deserialize, Serialize};

use super::{CodesMode, OrgPolicy, current};
use crate::{authz::Authz, backup_codes::BackupCodeError, identity::Member};

/// How many days before a member's deadline each reminder goes out, the earliest first.
pub const REMINDER_DAYS: [u32; 2] = [7, 1];

/// The first moment of `day`, in UTC: when a date chosen in the policy form takes effect.
pub fn start_of(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(NaiveTime::MIN).and_utc()
}

/// When "Required" starts limiting the session of a member who joined at `joined`, if they
/// do not comply: the later of the policy's date and `joined` plus its grace days. `None`
/// when the policy is not "Required" or sets no date.
pub fn deadline(policy: &OrgPolicy, joined: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if policy.codes != CodesMode::Required {
        return None;
    }
    let from = start_of(policy.required_from?);
    Some(from.max(joined + Duration::days(policy.grace_days.into())))
}

/// Where a member who joined at `joined` and does not comply stands against their deadline
/// under `policy` at `now`; `None` when the policy sets none ([`deadline`]).
pub fn deadline_at(
    policy: &OrgPolicy,
    joined: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<Deadline> {
    deadline(policy, joined).map(|at| Deadline::at(at, now))
}

/// Where a member who does not comply with "Required" stands against their deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Deadline {
    /// Before it: in grace, with whole days left (rounded up, so the last day reads "1").
    Ahead { at: DateTime<Utc>, days_left: u32 },
    /// At it or after: the session reaches only the member's MFA settings until they comply.
    Passed { at: DateTime<Utc> },
}

impl Deadline {
    /// The deadline `at` as it stands at `now`.
    pub fn at(at: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        if now >= at {
            return Self::Passed { at };
        }
        let seconds = u64::try_from((at - now).num_seconds()).unwrap_or(1).max(1);
        let days = seconds.div_ceil(86_400);
        Self::Ahead {
            at,
            days_left: u32::try_from(days).unwrap_or(u32::MAX),
        }
    }

    /// When it is.
    pub fn when(self) -> DateTime<Utc> {
        match self {
            Self::Ahead { at, .. } | Self::Passed { at } => at,
        }
    }

    /// Whether it has passed.
    pub fn passed(self) -> bool {
        matches!(self, Self::Passed { .. })
    }

    /// The reminder due at `now`, in days before the deadline ([`REMINDER_DAYS`]): the
    /// nearest one whose moment has come. `None` once the deadline has passed, or while it
    /// is more than a week away.
    pub fn reminder_due(self) -> Option<u32> {
        let Self::Ahead { at: _, days_left } = self else {
            return None;
        };
        REMINDER_DAYS
            .into_iter()
            .filter(|days| days_left <= *days)
            .min()
    }
}

/// `member`'s deadline under "Required", if they do not comply and the policy sets a date;
/// `None` when they comply, are not bound, or the policy limits no session.
pub async fn member_deadline(
    db: &impl ConnectionTrait,
    authz: &Authz,
    member: &Member,
    now: DateTime<Utc>,
) -> Result<Option<Deadline>, BackupCodeError> {
    let policy = current(db, member.org_id).await?.policy;
    if deadline(&policy, member.created_at).is_none() {
        return Ok(None);
    }
    // Only now the set and the gate: an organization without a date pays one read.
    Ok(super::member_codes_under(db, authz, member, &policy, now)
        .await?
        .deadline)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, day, hour, 0, 0).unwrap()
    }

    fn required(from: Option<NaiveDate>, grace_days: u16) -> OrgPolicy {
        OrgPolicy {
            codes: CodesMode::Required,
            required_from: from,
            grace_days,
            ..OrgPolicy::default()
        }
    }

    #[test]
    fn the_deadline_is_the_later_of_the_date_and_joining_plus_the_grace_days() {
        let day = |d| NaiveDate::from_ymd_opt(2026, 12, d);
        // (policy, joined, deadline), written out.
        let cases = [
            (required(day(10), 0), at(1, 9), Some(at(10, 0))),
            (required(day(10), 5), at(1, 9), Some(at(10, 0))),
            (required(day(10), 5), at(8, 9), Some(at(13, 9))),
            (required(day(10), 0), at(20, 9), Some(at(20, 9))),
            (required(None, 5), at(1, 9), None),
            (
                OrgPolicy {
                    codes: CodesMode::Allowed,
                    ..required(day(10), 5)
                },
                at(1, 9),
                None,
            ),
        ];
        for (policy, joined, expected) in cases {
            assert_eq!(deadline(&policy, joined), expected, "{policy:?} {joined}");
        }
    }

    #[test]
    fn before_at_and_after_the_deadline_with_the_reminder_due() {
        let deadline = at(10, 0);
        // (now, what it is, the reminder due), written out.
        let cases = [
            (
                at(1, 0),
                Deadline::Ahead {
                    at: deadline,
                    days_left: 9,
                },
                None,
            ),
            (
                at(2, 23),
                Deadline::Ahead {
                    at: deadline,
                    days_left: 8,
                },
                None,
            ),
            (
                at(3, 0),
                Deadline::Ahead {
                    at: deadline,
                    days_left: 7,
                },
                Some(7),
            ),
            (
                at(8, 1),
                Deadline::Ahead {
                    at: deadline,
                    days_left: 2,
                },
                Some(7),
            ),
            (
                at(9, 0),
                Deadline::Ahead {
                    at: deadline,
                    days_left: 1,
                },
                Some(1),
            ),
            (
                deadline - Duration::seconds(1),
                Deadline::Ahead {
                    at: deadline,
                    days_left: 1,
                },
                Some(1),
            ),
            (deadline, Deadline::Passed { at: deadline }, None),
            (at(11, 0), Deadline::Passed { at: deadline }, None),
        ];
        for (now, expected, reminder) in cases {
            let found = Deadline::at(deadline, now);
            assert_eq!(found, expected, "at {now}");
            assert_eq!(found.reminder_due(), reminder, "at {now}");
            assert_eq!(found.passed(), now >= deadline, "at {now}");
        }
    }
}
