//! What the delivery worker reads to claim a batch, in one small index: the messages not yet
//! sent or given up on, in id order, with the columns that decide whether each is due now.
//!
//! It replaces `ix_notification_outbox_due` (sent, failed, next attempt), with which a claim
//! read every pending row of the table, each with its message bodies, and sorted them, to
//! take ten: a cost that grew with the backlog and held SQLite's one write lock while a
//! member's sign-in waited for it. With this one a claim reads index entries in id order
//! and stops at its batch: the partial index holds only pending rows, so sent rows (kept for
//! the members' in-app notifications) never slow it down.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const PENDING: &str = "ix_notification_outbox_pending";
const DUE: &str = "ix_notification_outbox_due";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(PENDING)
                    .table(NotificationOutbox::Table)
                    .col(NotificationOutbox::Id)
                    .col(NotificationOutbox::NextAttemptAt)
                    .col(NotificationOutbox::ClaimedUntil)
                    .col(NotificationOutbox::WebhookId)
                    .and_where(Expr::col(NotificationOutbox::SentAt).is_null())
                    .and_where(Expr::col(NotificationOutbox::FailedAt).is_null())
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name(DUE)
                    .table(NotificationOutbox::Table)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(DUE)
                    .table(NotificationOutbox::Table)
                    .col(NotificationOutbox::SentAt)
                    .col(NotificationOutbox::FailedAt)
                    .col(NotificationOutbox::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name(PENDING)
                    .table(NotificationOutbox::Table)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum NotificationOutbox {
    Table,
    Id,
    NextAttemptAt,
    ClaimedUntil,
    WebhookId,
    SentAt,
    FailedAt,
}
