//! Security notifications: messages to members about what happened to their account,
//! written to an outbox in the same transaction as the audit event they belong to, and
//! delivered later by a worker on every server instance.
//!
//! - [`enqueue`] writes a message in the caller's transaction: if the event commits, the
//!   message will be sent; if it rolls back, there is nothing to send. The request never
//!   waits for a mail server.
//! - What each event says, and to whom, is decided where every event is written
//!   ([`crate::audit`]'s notices), so that no event is forgotten; [`rendering`] lays the words
//!   out and [`not_me`] signs the "This wasn't me" link each member notice carries.
//! - [`claim_due`], [`mark_sent`] and [`mark_failed_attempt`] are the worker's side: a row is
//!   claimed for a while (a batch in one statement, `FOR UPDATE SKIP LOCKED` on PostgreSQL),
//!   sent, and marked; a failed attempt is tried again later, each wait twice the
//!   one before, until the last attempt marks it failed.
//! - Each row has an idempotency key, sent as the message's `Message-ID`: a message sent
//!   again after a crash between sending and marking is the same message, not a second one.
//!
//! Rendering (the words, text and HTML) is in [`rendering`]; no message holds a secret.

pub mod alerts;
pub mod digest;
pub mod not_me;
pub mod rendering;
pub mod webhooks;

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::{RngCore, rngs::OsRng};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Set,
    sea_query::{
        Alias, CommonTableExpression, Expr, LockBehavior, LockType, OnConflict, Query, WithClause,
    },
};
use sha2::Digest;

pub use self::{
    alerts::{AlertKind, AlertSettings},
    not_me::{LinkError, NotMe},
    rendering::{Notice, Rendered, render},
};
use crate::entity::notification_outbox;

/// The longest transport error kept on a row.
const MAX_ERROR_CHARS: usize = 500;

/// One message to write to the outbox.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    pub org_id: i32,
    /// The account it is sent to (the member a notice is about, or the administrator an
    /// alert goes to): whose in-app list shows it.
    pub user_id: Option<i32>,
    /// What happened: the audit action's name, e.g. `backup_code.redeemed`.
    pub kind: &'a str,
    pub recipient: &'a str,
    pub rendered: Rendered,
}

/// Writes `message` to the outbox in `txn`, the transaction that records the event it is
/// about, due at once. Returns its idempotency key.
pub async fn enqueue(
    txn: &impl ConnectionTrait,
    message: Message<'_>,
    now: DateTime<Utc>,
) -> Result<String, DbErr> {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    let key = idempotency_key(bytes);
    insert(txn, message, &key, now, None).await?;
    Ok(key)
}

/// Writes `message` unless a message was written before for the same `dedupe` (any text,
/// e.g. naming an alert, its member, its window and its recipient): whether this one was.
/// For an alert that must go out once however many requests cross its threshold at the
/// same moment. Its idempotency key is derived from `dedupe` (SHA-256), in the same shape as
/// every other key.
pub async fn enqueue_once(
    txn: &impl ConnectionTrait,
    message: Message<'_>,
    dedupe: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    insert(txn, message, &dedupe_key(dedupe), now, None).await
}

/// Whether a message was written for `dedupe` ([`enqueue_once`]): one lookup by its key, so
/// that work done again and again (a periodic reminder) skips what it wrote already before
/// rendering anything.
pub async fn written_once(db: &impl ConnectionTrait, dedupe: &str) -> Result<bool, DbErr> {
    Ok(notification_outbox::Entity::find()
        .select_only()
        .column(notification_outbox::Column::Id)
        .filter(notification_outbox::Column::IdempotencyKey.eq(dedupe_key(dedupe)))
        .into_tuple::<i32>()
        .one(db)
        .await?
        .is_some())
}

/// The idempotency key of the message written once for `dedupe`: its SHA-256, shaped as
/// every other key.
fn dedupe_key(dedupe: &str) -> String {
    let digest = sha2::Sha256::digest(dedupe.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    idempotency_key(bytes)
}

/// Inserts `message` under `key` (for `webhook`, a delivery to it) unless that key is taken;
/// whether it was inserted.
async fn insert(
    txn: &impl ConnectionTrait,
    message: Message<'_>,
    key: &str,
    now: DateTime<Utc>,
    webhook: Option<i32>,
) -> Result<bool, DbErr> {
    let row = notification_outbox::ActiveModel {
        org_id: Set(message.org_id),
        user_id: Set(message.user_id),
        kind: Set(message.kind.to_owned()),
        recipient: Set(message.recipient.to_owned()),
        subject: Set(message.rendered.subject),
        body_text: Set(message.rendered.text),
        body_html: Set(message.rendered.html),
        idempotency_key: Set(key.to_owned()),
        created_at: Set(now),
        attempts: Set(0),
        next_attempt_at: Set(now),
        claimed_until: Set(None),
        sent_at: Set(None),
        failed_at: Set(None),
        last_error: Set(None),
        read_at: Set(None),
        webhook_id: Set(webhook),
        ..Default::default()
    };
    let inserted = notification_outbox::Entity::insert(row)
        .on_conflict(
            OnConflict::column(notification_outbox::Column::IdempotencyKey)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
    Ok(inserted == 1)
}

/// `member_id`'s second address for notices, if they added one, and whether it is verified
/// (only a verified one gets their notices).
pub async fn second_address(
    db: &impl ConnectionTrait,
    member_id: i32,
) -> Result<Option<(String, bool)>, DbErr> {
    Ok(crate::entity::notification_address::Entity::find()
        .filter(crate::entity::notification_address::Column::UserId.eq(member_id))
        .one(db)
        .await?
        .map(|row| (row.email, row.verified_at.is_some())))
}

/// 128 bits as hex in four groups of eight joined by `-`: a message's Message-ID and, for the
/// file transport, its file name; in the headers, never a run of 12 digits that could be
/// taken for a code.
fn idempotency_key(bytes: [u8; 16]) -> String {
    bytes
        .chunks(4)
        .map(hex::encode)
        .collect::<Vec<_>>()
        .join("-")
}

/// How often and how patiently a message is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; after the last failure the row is marked failed.
    pub max_attempts: u32,
    /// The wait after the first failure; each later wait is twice the one before.
    pub first_delay: Duration,
    /// The longest wait between two attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            first_delay: Duration::from_secs(30),
            max_delay: Duration::from_secs(6 * 60 * 60),
        }
    }
}

impl RetryPolicy {
    /// The wait after the `failures`-th failed attempt (1 for the first).
    pub fn delay_after(&self, failures: u32) -> Duration {
        let doubled = 2u32.saturating_pow(failures.saturating_sub(1).min(30));
        self.first_delay
            .checked_mul(doubled)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }
}

/// A claimed message, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub id: i32,
    pub org_id: i32,
    /// A delivery to this webhook ([`webhooks`]): `text` is the JSON body; else an email.
    pub webhook_id: Option<i32>,
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Sent as the Message-ID: the same message however often it is sent.
    pub idempotency_key: String,
    pub created_at: DateTime<Utc>,
    /// Attempts made before this one.
    pub attempts: i32,
}

impl From<notification_outbox::Model> for Pending {
    fn from(row: notification_outbox::Model) -> Self {
        Self {
            id: row.id,
            org_id: row.org_id,
            webhook_id: row.webhook_id,
            kind: row.kind,
            recipient: row.recipient,
            subject: row.subject,
            text: row.body_text,
            html: row.body_html,
            idempotency_key: row.idempotency_key,
            created_at: row.created_at,
            attempts: row.attempts,
        }
    }
}

/// Unsent, not given up on, due, and held by no worker (or by one whose claim ran out).
fn due(now: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(notification_outbox::Column::SentAt.is_null())
        .add(notification_outbox::Column::FailedAt.is_null())
        .add(notification_outbox::Column::NextAttemptAt.lte(now))
        .add(
            Condition::any()
                .add(notification_outbox::Column::ClaimedUntil.is_null())
                .add(notification_outbox::Column::ClaimedUntil.lt(now)),
        )
}

/// Claims up to `batch` due messages (security mail, not webhook deliveries) for `lease`,
/// oldest first: no other worker takes them until the lease runs out (a worker that dies
/// holding them gives them back that way).
///
/// One statement claims the whole batch, `WITH claimable AS MATERIALIZED (the oldest due …)
/// UPDATE … WHERE id IN claimable RETURNING`:
/// - on PostgreSQL the inner select locks its rows `FOR UPDATE SKIP LOCKED`, so workers on
///   several instances take different rows without waiting on each other;
/// - on SQLite the statement runs under the database's one write lock.
///
/// One commit per batch matters on SQLite: every commit syncs the log to disk while holding
/// the write lock that a member's sign-in waits for (measured in `cargo bench -p server
/// --bench mail`).
pub async fn claim_due(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    batch: u64,
    lease: Duration,
) -> Result<Vec<Pending>, DbErr> {
    claim(db, now, batch, lease, Channel::Mail).await
}

/// [`claim_due`] for webhook deliveries ([`webhooks`]), which their own worker sends: a
/// receiver that is slow or down never holds up security mail.
pub async fn claim_due_webhooks(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    batch: u64,
    lease: Duration,
) -> Result<Vec<Pending>, DbErr> {
    claim(db, now, batch, lease, Channel::Webhooks).await
}

/// Which rows of the outbox a worker sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Channel {
    Mail,
    Webhooks,
}

/// The statement that claims up to `batch` due messages of `channel` at `now` ([`claim`]).
fn claim_statement(
    now: DateTime<Utc>,
    batch: u64,
    lease: Duration,
    channel: Channel,
) -> sea_orm::sea_query::WithQuery {
    use notification_outbox::Column;

    let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(5));
    // SQLite's query builder leaves the lock out: it has no row locks, and needs none.
    let oldest_due = notification_outbox::Entity::find()
        .select_only()
        .column(Column::Id)
        .filter(due(now))
        .filter(match channel {
            Channel::Mail => Column::WebhookId.is_null(),
            Channel::Webhooks => Column::WebhookId.is_not_null(),
        })
        .order_by_asc(Column::Id)
        .limit(batch)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .into_query();
    // The oldest due rows are chosen once, in a materialized common table: as a plain
    // `IN (subquery)`, PostgreSQL may run the locking subquery again for every row it
    // updates, and claim far more than `batch` (seen: 3,000 rows in one claim).
    let claimable = Alias::new("claimable");
    let chosen = CommonTableExpression::new()
        .query(oldest_due)
        .table_name(claimable.clone())
        .materialized(true)
        .to_owned();
    Query::update()
        .table(notification_outbox::Entity)
        .value(Column::ClaimedUntil, until)
        .and_where(
            Expr::col(Column::Id).in_subquery(
                Query::select()
                    .column(Column::Id)
                    .from(claimable)
                    .to_owned(),
            ),
        )
        // Checked again where the row is written, whatever the inner select saw.
        .cond_where(due(now))
        .returning_all()
        .to_owned()
        .with(WithClause::new().cte(chosen).to_owned())
}

async fn claim(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    batch: u64,
    lease: Duration,
    channel: Channel,
) -> Result<Vec<Pending>, DbErr> {
    let statement = claim_statement(now, batch, lease, channel);
    let mut rows =
        notification_outbox::Model::find_by_statement(db.get_database_backend().build(&statement))
            .all(db)
            .await?;
    // RETURNING gives the rows in no promised order.
    rows.sort_unstable_by_key(|row| row.id);
    Ok(rows.into_iter().map(Pending::from).collect())
}

/// Marks a claimed message sent: it is never sent again.
pub async fn mark_sent(
    db: &impl ConnectionTrait,
    id: i32,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    mark_all_sent(db, &[id], now).await
}

/// Marks the claimed messages `ids` sent, in one statement: a worker that sent a batch
/// commits once for it (on SQLite every commit is a sync to disk, and the one writer at a
/// time waits for it), not once per message. Nothing to do for no ids.
pub async fn mark_all_sent(
    db: &impl ConnectionTrait,
    ids: &[i32],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    notification_outbox::Entity::update_many()
        .col_expr(notification_outbox::Column::SentAt, Expr::value(now))
        .col_expr(
            notification_outbox::Column::Attempts,
            Expr::col(notification_outbox::Column::Attempts).add(1),
        )
        .col_expr(
            notification_outbox::Column::ClaimedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            notification_outbox::Column::LastError,
            Expr::value(Option::<String>::None),
        )
        .filter(notification_outbox::Column::Id.is_in(ids.iter().copied()))
        .exec(db)
        .await?;
    Ok(())
}

/// What became of a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// It will be tried again at this time.
    RetryAt(DateTime<Utc>),
    /// That was the last attempt: it is marked failed.
    GaveUp,
    /// The row is gone (its webhook was removed meanwhile) or was marked sent: nothing to do.
    Gone,
}

/// Counts a failed attempt at a claimed message (`error`: the transport's answer, never a
/// secret) and releases it: due again after the policy's wait, or failed after the last
/// attempt.
pub async fn mark_failed_attempt(
    db: &impl ConnectionTrait,
    message: &Pending,
    error: &str,
    retry: &RetryPolicy,
    now: DateTime<Utc>,
) -> Result<AfterFailure, DbErr> {
    let failures = u32::try_from(message.attempts)
        .unwrap_or(0)
        .saturating_add(1);
    let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
    let after = if failures >= retry.max_attempts {
        AfterFailure::GaveUp
    } else {
        let wait = chrono::Duration::from_std(retry.delay_after(failures))
            .unwrap_or(chrono::Duration::hours(6));
        AfterFailure::RetryAt(now + wait)
    };
    let mut update = notification_outbox::Entity::update_many()
        .col_expr(
            notification_outbox::Column::Attempts,
            Expr::value(i32::try_from(failures).unwrap_or(i32::MAX)),
        )
        .col_expr(notification_outbox::Column::LastError, Expr::value(error))
        .col_expr(
            notification_outbox::Column::ClaimedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        );
    update = match after {
        AfterFailure::RetryAt(at) => {
            update.col_expr(notification_outbox::Column::NextAttemptAt, Expr::value(at))
        }
        AfterFailure::GaveUp | AfterFailure::Gone => {
            update.col_expr(notification_outbox::Column::FailedAt, Expr::value(now))
        }
    };
    let updated = update
        .filter(notification_outbox::Column::Id.eq(message.id))
        .filter(notification_outbox::Column::SentAt.is_null())
        .exec(db)
        .await?;
    Ok(if updated.rows_affected == 0 {
        AfterFailure::Gone
    } else {
        after
    })
}

/// A message given up on after its last attempt, as administrators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedDelivery {
    pub recipient: String,
    /// What happened: the audit action's name, or an alert's kind.
    pub kind: String,
    pub subject: String,
    pub created_at: DateTime<Utc>,
    pub failed_at: DateTime<Utc>,
    pub attempts: i32,
    /// The transport's last answer.
    pub last_error: Option<String>,
}

/// The organization's messages that were given up on, newest first, at most `limit`.
pub async fn failed(
    db: &impl ConnectionTrait,
    org_id: i32,
    limit: u64,
) -> Result<Vec<FailedDelivery>, DbErr> {
    Ok(notification_outbox::Entity::find()
        .filter(notification_outbox::Column::OrgId.eq(org_id))
        .filter(notification_outbox::Column::FailedAt.is_not_null())
        // Webhook deliveries are listed on the webhooks page, for its owners.
        .filter(notification_outbox::Column::WebhookId.is_null())
        .order_by_desc(notification_outbox::Column::FailedAt)
        .order_by_desc(notification_outbox::Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .filter_map(|row| {
            Some(FailedDelivery {
                failed_at: row.failed_at?,
                recipient: row.recipient,
                kind: row.kind,
                subject: row.subject,
                created_at: row.created_at,
                attempts: row.attempts,
                last_error: row.last_error,
            })
        })
        .collect())
}

/// One notification in a member's in-app list: the same words as the email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxItem {
    pub id: i32,
    pub subject: String,
    /// The message's text part.
    pub text: String,
    pub created_at: DateTime<Utc>,
    pub read: bool,
}

/// The messages to `member_id` at `address` (their sign-in email), newest first, at most
/// `limit`: what the notifications page lists.
pub async fn inbox(
    db: &impl ConnectionTrait,
    member_id: i32,
    address: &str,
    limit: u64,
) -> Result<Vec<InboxItem>, DbErr> {
    Ok(notification_outbox::Entity::find()
        .filter(notification_outbox::Column::UserId.eq(member_id))
        .filter(notification_outbox::Column::Recipient.eq(address))
        .order_by_desc(notification_outbox::Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(|row| InboxItem {
            id: row.id,
            subject: row.subject,
            text: row.body_text,
            created_at: row.created_at,
            read: row.read_at.is_some(),
        })
        .collect())
}

/// How many of [`inbox`]'s messages are unread.
pub async fn unread(
    db: &impl ConnectionTrait,
    member_id: i32,
    address: &str,
) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    notification_outbox::Entity::find()
        .filter(notification_outbox::Column::UserId.eq(member_id))
        .filter(notification_outbox::Column::Recipient.eq(address))
        .filter(notification_outbox::Column::ReadAt.is_null())
        .count(db)
        .await
}

/// Marks every unread message of [`inbox`] read at `now`; how many were.
pub async fn mark_read(
    db: &impl ConnectionTrait,
    member_id: i32,
    address: &str,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    Ok(notification_outbox::Entity::update_many()
        .col_expr(notification_outbox::Column::ReadAt, Expr::value(now))
        .filter(notification_outbox::Column::UserId.eq(member_id))
        .filter(notification_outbox::Column::Recipient.eq(address))
        .filter(notification_outbox::Column::ReadAt.is_null())
        .exec(db)
        .await?
        .rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite's plan for a claim, on a table of many sent messages and a few pending: it
    /// must read the pending index, never walk the table (whose rows carry the message bodies
    /// before the columns a claim tests). Without statistics SQLite may otherwise walk the
    /// table in id order, reading every sent message first.
    #[tokio::test]
    async fn a_claim_reads_the_pending_index_not_the_table() {
        use sea_orm::{ConnectionTrait, Statement};

        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        crate::db::migrate(&db).await.unwrap();
        let backend = db.get_database_backend();
        for sql in [
            "INSERT INTO organization (name, slug, created_at) VALUES ('Acme', 'acme', '2026-11-30T08:00:00+00:00')",
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) \
             INSERT INTO notification_outbox (org_id, kind, recipient, subject, body_text, \
             body_html, idempotency_key, created_at, attempts, next_attempt_at, sent_at) \
             SELECT 1, 'k', 'r@acme.test', 's', printf('%.5000c', 'x'), '', 'key-' || i, \
             '2026-11-30T08:00:00+00:00', 1, '2026-11-30T08:00:00+00:00', \
             CASE WHEN i > 2990 THEN NULL ELSE '2026-11-30T08:00:01+00:00' END FROM n",
        ] {
            db.execute(Statement::from_string(backend, sql))
                .await
                .unwrap();
        }
        for channel in [Channel::Mail, Channel::Webhooks] {
            let claim = backend.build(&claim_statement(
                "2026-11-30T09:00:00Z".parse().unwrap(),
                10,
                Duration::from_secs(60),
                channel,
            ));
            let plan: Vec<String> = db
                .query_all(Statement::from_sql_and_values(
                    backend,
                    format!("EXPLAIN QUERY PLAN {}", claim.sql),
                    claim.values.map(|values| values.0).unwrap_or_default(),
                ))
                .await
                .unwrap()
                .iter()
                .map(|row| row.try_get::<String>("", "detail").unwrap())
                .collect();
            assert!(
                plan.iter().any(|step| step.contains(match channel {
                    Channel::Mail => "ix_notification_outbox_pending_mail",
                    Channel::Webhooks => "ix_notification_outbox_pending_webhooks",
                })),
                "{channel:?}: {plan:?}"
            );
            assert!(
                !plan
                    .iter()
                    .any(|step| step.trim() == "SCAN notification_outbox"),
                "{channel:?}: a claim walks the table: {plan:?}"
            );
            // And it claims what is due, at most its batch.
            let claimed = claim_due(
                &db,
                "2026-11-30T09:00:00Z".parse().unwrap(),
                4,
                Duration::from_secs(60),
            )
            .await
            .unwrap();
            if channel == Channel::Mail {
                assert_eq!(
                    claimed.iter().map(|p| p.id).collect::<Vec<_>>(),
                    [2991, 2992, 2993, 2994]
                );
            }
        }
    }

    #[test]
    fn each_wait_is_twice_the_one_before_up_to_the_longest() {
        let retry = RetryPolicy {
            max_attempts: 100,
            first_delay: Duration::from_secs(30),
            max_delay: Duration::from_secs(3600),
        };
        let waits: Vec<u64> = (1..=9)
            .map(|failures| retry.delay_after(failures).as_secs())
            .collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(retry.delay_after(u32::MAX).as_secs(), 3600);
    }

    #[test]
    fn an_idempotency_key_never_reads_as_a_code() {
        for _ in 0..1000 {
            let mut bytes = [0u8; 16];
            OsRng.fill_bytes(&mut bytes);
            let key = idempotency_key(bytes);
            assert_eq!(key.len(), 35);
            assert!(key.split('-').all(|group| group.len() == 8));
        }
    }
}
