//! Reminders of "Required"'s deadline ([`crate::org_policy::grace`]): 7 days and 1 day
//! before it, to each member in grace, once each however often (and on however many
//! instances) the server's periodic job runs. A reminder is a notice in the member's list and
//! at their addresses, not a security event: nothing goes on the audit record.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ColumnTrait, EntityTrait, JoinType, QueryFilter, QuerySelect};

use super::report::{Standing, Standings};
use crate::{
    accounts::AccountError,
    audit::notices::{self, Words},
    authz::Authz,
    backup_codes::standing::set_in_force_join,
    entity::user_account,
    identity::{self, Member},
    notifications::{self, rendering::readable_time},
    org_policy::{
        CodesMode, current,
        grace::{Deadline, REMINDER_DAYS, deadline_at, start_of},
    },
};

/// What a reminder's notification is filed under in the member's list.
pub const REMINDER_KIND: &str = "codes.required_reminder";

/// Sends each member in grace the reminder due now ([`Deadline::reminder_due`]), across all
/// organizations, at most once per member, deadline and reminder however often (and on
/// however many instances) it runs: the outbox's idempotency key is derived from the three.
/// The server runs this periodically. Returns how many reminders it wrote.
pub async fn send_reminders(
    db: &sea_orm::DatabaseConnection,
    authz: &Authz,
    now: DateTime<Utc>,
) -> Result<u32, AccountError> {
    let mut sent = 0;
    for org_id in identity::organization_ids(db).await? {
        let policy = current(db, org_id).await?.policy;
        let Some(from) = policy.required_from.map(start_of) else {
            continue;
        };
        let earliest = Duration::days(REMINDER_DAYS[0].into());
        if policy.codes != CodesMode::Required || from > now + earliest {
            continue;
        }
        let standings = Standings::new(authz, org_id, &policy, now).await?;
        // In grace, with a deadline within the earliest reminder: joined early enough.
        let grace = Duration::days(policy.grace_days.into());
        let due: Vec<user_account::Model> = user_account::Entity::find()
            .join(JoinType::LeftJoin, set_in_force_join())
            .filter(user_account::Column::OrgId.eq(org_id))
            .filter(standings.condition(Standing::InGrace))
            .filter(user_account::Column::CreatedAt.lte(now + earliest - grace))
            .all(db)
            .await?;
        for row in due {
            let member = Member::try_from(row)?;
            let Some(standing) = deadline_at(&policy, member.created_at, now) else {
                continue;
            };
            let (Deadline::Ahead { at, days_left }, Some(days)) =
                (standing, standing.reminder_due())
            else {
                continue;
            };
            let dedupe = format!("required-reminder:{}:{}:{days}", member.id, at.timestamp());
            // Sent by an earlier run (or another instance): one lookup, nothing rendered.
            if notifications::written_once(db, &notices::once_key(&dedupe, &member.email)).await? {
                continue;
            }
            let words = reminder_words(at, days_left);
            let facts = vec![("Deadline", readable_time(at))];
            if notices::to_member_once(db, &member, REMINDER_KIND, words, facts, &dedupe, now)
                .await?
            {
                sent += 1;
            }
        }
    }
    Ok(sent)
}

/// What a reminder with `days` left (rounded up) before the deadline `at` says.
fn reminder_words(at: DateTime<Utc>, days: u32) -> Words {
    let left = if days == 1 {
        "a day".to_owned()
    } else {
        format!("{days} days")
    };
    Words {
        subject: format!("Generate your backup codes within {left}"),
        what: format!(
            "Your organization requires every member with MFA to hold backup codes. You hold \
             none that work. From {}, until you generate a set, you will be able to use only \
             your MFA settings.",
            readable_time(at)
        ),
        status: Some("Sign in and open Backup codes on your account page.".to_owned()),
        if_you: "Generate a set now and keep it somewhere safe: it takes a minute.".to_owned(),
        if_not_you: "If you think you should not be asked, contact your administrators.".to_owned(),
    }
}
