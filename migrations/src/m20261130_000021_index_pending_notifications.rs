//! What the delivery workers read to claim a batch, in a small index per channel (security
//! mail; webhook deliveries): the messages not yet sent or given up on, in id order, with
//! the columns that decide whether each is due now.
//!
//! It replaces `ix_notification_outbox_due` (sent, failed, next attempt), and the webhook
//! index now holds webhook deliveries only. Before, SQLite answered a mail claim
//! (`webhook_id IS NULL`) through the webhook index:
//! it walked every mail row ever sent, each with its message bodies, while holding the one
//! write lock a member's sign-in waits for, so a redemption slowed as the outbox grew
//! (`cargo bench -p server --bench mail`). With this one a claim reads index entries in id
//! order and stops at its batch: the partial index holds only pending rows, so sent rows
//! (kept for the members' in-app notifications) never slow it down.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const DUE: &str = "ix_notification_outbox_due";
const WEBHOOK: &str = "ix_notification_outbox_webhook";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, webhook) in PENDING {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(NotificationOutbox::Table)
                        .col(NotificationOutbox::Id)
                        .col(NotificationOutbox::NextAttemptAt)
                        .col(NotificationOutbox::ClaimedUntil)
                        .and_where(Expr::col(NotificationOutbox::SentAt).is_null())
                        .and_where(Expr::col(NotificationOutbox::FailedAt).is_null())
                        .and_where(webhook())
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name(DUE)
                    .table(NotificationOutbox::Table)
                    .to_owned(),
            )
            .await?;
        // The webhook index holds webhook deliveries only, so that it is never the way to
        // security mail (`webhook_id IS NULL`).
        replace_webhook_index(manager, true).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        replace_webhook_index(manager, false).await?;
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
        for (name, _) in PENDING {
            manager
                .drop_index(
                    Index::drop()
                        .name(name)
                        .table(NotificationOutbox::Table)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

/// The condition that singles out one channel's messages.
type Channel = fn() -> SimpleExpr;

/// The pending messages of each channel: the index's name and its channel.
const PENDING: [(&str, Channel); 2] = [
    ("ix_notification_outbox_pending_mail", || {
        Expr::col(NotificationOutbox::WebhookId).is_null()
    }),
    ("ix_notification_outbox_pending_webhooks", || {
        Expr::col(NotificationOutbox::WebhookId).is_not_null()
    }),
];

/// Drops `ix_notification_outbox_webhook` and makes it again (webhook, id), over webhook
/// deliveries only when `deliveries_only`.
async fn replace_webhook_index(
    manager: &SchemaManager<'_>,
    deliveries_only: bool,
) -> Result<(), DbErr> {
    manager
        .drop_index(
            Index::drop()
                .name(WEBHOOK)
                .table(NotificationOutbox::Table)
                .to_owned(),
        )
        .await?;
    let mut index = Index::create();
    index
        .name(WEBHOOK)
        .table(NotificationOutbox::Table)
        .col(NotificationOutbox::WebhookId)
        .col(NotificationOutbox::Id);
    if deliveries_only {
        index.and_where(Expr::col(NotificationOutbox::WebhookId).is_not_null());
    }
    manager.create_index(index.to_owned()).await
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
