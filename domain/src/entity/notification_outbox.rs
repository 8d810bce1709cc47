//! A message waiting in the outbox, or sent, or given up on.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notification_outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub org_id: i32,
    /// The account it is sent to (whose in-app list shows it); `None` once removed.
    pub user_id: Option<i32>,
    /// What happened, e.g. `backup_code.redeemed`.
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    /// Unique; the message's Message-ID, so that a resend is the same message.
    #[sea_orm(unique)]
    pub idempotency_key: String,
    pub created_at: DateTimeUtc,
    /// Sending attempts made so far.
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    /// A worker holds the row until then.
    pub claimed_until: Option<DateTimeUtc>,
    pub sent_at: Option<DateTimeUtc>,
    /// Set after the last attempt failed: it is not tried again.
    pub failed_at: Option<DateTimeUtc>,
    /// The transport's last answer; never a secret.
    pub last_error: Option<String>,
    /// When the member marked it read in the app.
    pub read_at: Option<DateTimeUtc>,
    /// Set for a webhook delivery: the webhook it is POSTed to (`body_text` is the JSON).
    pub webhook_id: Option<i32>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
