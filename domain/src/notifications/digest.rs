//! The daily digest of administrator alerts, for organizations that chose it
//! ([`super::AlertSettings::daily_digest`]): each alert is kept as an item in the event's
//! transaction instead of being sent, and once a day, at [`DIGEST_HOUR`] UTC, each
//! administrator gets one message listing what happened since the last.
//!
//! Any number of instances may run [`send_due`] at once: each administrator's items are
//! claimed by a conditional update (taken by whoever updates first), and the message is
//! written under a key naming the administrator and the day, so one digest goes out.

use chrono::{DateTime, Duration, NaiveTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
    sea_query::{Expr, OnConflict},
};

use super::{Message, Notice, Rendered, enqueue_once, render};
use crate::entity::alert_digest_item;

/// The hour (UTC) digests go out.
pub const DIGEST_HOUR: u32 = 7;
/// The longest digest: more items are counted, not listed.
const MAX_LISTED: usize = 200;

/// One alert kept for the digest of the administrator `user_id`.
#[derive(Debug, Clone)]
pub struct Item<'a> {
    pub org_id: i32,
    pub user_id: i32,
    pub recipient: &'a str,
    pub rendered: &'a Rendered,
    /// Set for an alert that must be kept once however often it is raised (see
    /// [`super::enqueue_once`]).
    pub dedupe_key: Option<&'a str>,
}

/// Keeps `item` for the next digest, in `txn` (the event's transaction).
pub async fn keep(
    txn: &impl ConnectionTrait,
    item: Item<'_>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    alert_digest_item::Entity::insert(alert_digest_item::ActiveModel {
        org_id: Set(item.org_id),
        user_id: Set(item.user_id),
        recipient: Set(item.recipient.to_owned()),
        subject: Set(item.rendered.subject.clone()),
        body_text: Set(item.rendered.text.clone()),
        dedupe_key: Set(item.dedupe_key.map(str::to_owned)),
        created_at: Set(now),
        digested_at: Set(None),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::column(alert_digest_item::Column::DedupeKey)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

/// The last digest moment at or before `now`: today's [`DIGEST_HOUR`], or yesterday's.
pub fn last_digest_time(now: DateTime<Utc>) -> DateTime<Utc> {
    let hour = NaiveTime::from_hms_opt(DIGEST_HOUR, 0, 0).unwrap_or_default();
    let today = now.date_naive().and_time(hour).and_utc();
    if today <= now {
        today
    } else {
        today - Duration::days(1)
    }
}

/// Sends the digests due at `now`: for each administrator with items kept before the last
/// digest moment, one message listing them, and the items marked. Returns how many digests
/// were written.
pub async fn send_due(
    db: &(impl ConnectionTrait + TransactionTrait),
    now: DateTime<Utc>,
) -> Result<u32, DbErr> {
    let cutoff = last_digest_time(now);
    let waiting: Vec<(i32, i32)> = alert_digest_item::Entity::find()
        .select_only()
        .column(alert_digest_item::Column::UserId)
        .column(alert_digest_item::Column::OrgId)
        .filter(alert_digest_item::Column::DigestedAt.is_null())
        .filter(alert_digest_item::Column::CreatedAt.lt(cutoff))
        .distinct()
        .into_tuple()
        .all(db)
        .await?;
    let mut written = 0;
    for (user_id, org_id) in waiting {
        let txn = db.begin().await?;
        // A write first: the items are this digest's once marked with its moment; another
        // instance marking them at the same time finds none left, and its message (same
        // key) is not written twice.
        alert_digest_item::Entity::update_many()
            .col_expr(alert_digest_item::Column::DigestedAt, Expr::value(cutoff))
            .filter(alert_digest_item::Column::UserId.eq(user_id))
            .filter(alert_digest_item::Column::DigestedAt.is_null())
            .filter(alert_digest_item::Column::CreatedAt.lt(cutoff))
            .exec(&txn)
            .await?;
        let items = alert_digest_item::Entity::find()
            .filter(alert_digest_item::Column::UserId.eq(user_id))
            .filter(alert_digest_item::Column::DigestedAt.eq(cutoff))
            .order_by_asc(alert_digest_item::Column::Id)
            .all(&txn)
            .await?;
        let Some(first) = items.first() else {
            continue;
        };
        let recipient = first.recipient.clone();
        let rendered = digest_message(&items, cutoff);
        let key = format!("alert-digest-{user_id}-{}", cutoff.format("%Y-%m-%d"));
        if enqueue_once(
            &txn,
            Message {
                org_id,
                user_id: Some(user_id),
                kind: "alert.digest",
                recipient: &recipient,
                rendered,
            },
            &key,
            now,
        )
        .await?
        {
            written += 1;
        }
        txn.commit().await?;
    }
    Ok(written)
}

/// One message listing `items`: each alert's subject and text, oldest first.
fn digest_message(items: &[alert_digest_item::Model], cutoff: DateTime<Utc>) -> Rendered {
    let count = items.len();
    let mut what = format!(
        "{count} {} for your organization in the day up to {}:",
        if count == 1 { "alert" } else { "alerts" },
        super::rendering::readable_time(cutoff)
    );
    for item in items.iter().take(MAX_LISTED) {
        what.push_str(&format!(
            "\n\n— {} ({})\n{}",
            item.subject,
            super::rendering::readable_time(item.created_at),
            item.body_text
                .split("\n\nAdministrators:")
                .next()
                .unwrap_or_default()
                .trim()
        ));
    }
    if count > MAX_LISTED {
        what.push_str(&format!(
            "\n\n… and {} more: read the audit log.",
            count - MAX_LISTED
        ));
    }
    render(&Notice {
        subject: format!(
            "Lifeline daily digest: {count} {}",
            if count == 1 { "alert" } else { "alerts" }
        ),
        what,
        facts: Vec::new(),
        status: None,
        if_you: "Each alert above says what to check.".to_owned(),
        if_not_you: "To get alerts at once instead, change the alerts page of your \
                     organization."
            .to_owned(),
        contacts: Vec::new(),
        not_me: None,
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn the_last_digest_moment_is_todays_seven_oclock_once_past_it() {
        let at = |h, m| Utc.with_ymd_and_hms(2026, 11, 29, h, m, 0).unwrap();
        assert_eq!(last_digest_time(at(7, 0)), at(7, 0));
        assert_eq!(last_digest_time(at(23, 59)), at(7, 0));
        assert_eq!(
            last_digest_time(at(6, 59)),
            Utc.with_ymd_and_hms(2026, 11, 28, 7, 0, 0).unwrap()
        );
    }
}
