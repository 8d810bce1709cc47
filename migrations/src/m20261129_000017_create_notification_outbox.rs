//! The notification outbox: messages to send (security mail to a member, for now), each
//! written in the transaction of the audit event it belongs to, and claimed, sent, retried
//! and marked by the delivery worker on every server instance.

use sea_orm_migration::{prelude::*, schema::*};

use crate::{
    m20261127_000001_create_organization::Organization,
    m20261127_000002_create_user_account::UserAccount,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(NotificationOutbox::Table)
                    .col(pk_auto(NotificationOutbox::Id))
                    .col(integer(NotificationOutbox::OrgId))
                    // The member it is about and sent to; kept when they are removed, so
                    // that the message about their removal still goes out.
                    .col(integer_null(NotificationOutbox::UserId))
                    // e.g. `backup_code.redeemed`.
                    .col(string_len(NotificationOutbox::Kind, 64))
                    .col(string_len(NotificationOutbox::Recipient, 254))
                    .col(string_len(NotificationOutbox::Subject, 200))
                    .col(text(NotificationOutbox::BodyText))
                    .col(text(NotificationOutbox::BodyHtml))
                    // The message's Message-ID: a resend after a crash is the same message.
                    .col(string_len_uniq(NotificationOutbox::IdempotencyKey, 128))
                    .col(timestamp_with_time_zone(NotificationOutbox::CreatedAt))
                    .col(integer(NotificationOutbox::Attempts).default(0))
                    .col(timestamp_with_time_zone(NotificationOutbox::NextAttemptAt))
                    // A worker holds the row until then; after, another may take it.
                    .col(timestamp_with_time_zone_null(
                        NotificationOutbox::ClaimedUntil,
                    ))
                    .col(timestamp_with_time_zone_null(NotificationOutbox::SentAt))
                    .col(timestamp_with_time_zone_null(NotificationOutbox::FailedAt))
                    // The transport's last answer; never a secret.
                    .col(text_null(NotificationOutbox::LastError))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_notification_outbox_org")
                            .from(NotificationOutbox::Table, NotificationOutbox::OrgId)
                            .to(Organization::Table, Organization::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_notification_outbox_user")
                            .from(NotificationOutbox::Table, NotificationOutbox::UserId)
                            .to(UserAccount::Table, UserAccount::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        // What the worker looks for: unsent, not failed, due.
        manager
            .create_index(
                Index::create()
                    .name("ix_notification_outbox_due")
                    .table(NotificationOutbox::Table)
                    .col(NotificationOutbox::SentAt)
                    .col(NotificationOutbox::FailedAt)
                    .col(NotificationOutbox::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_notification_outbox_user")
                    .table(NotificationOutbox::Table)
                    .col(NotificationOutbox::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(NotificationOutbox::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum NotificationOutbox {
    Table,
    Id,
    OrgId,
    UserId,
    Kind,
    Recipient,
    Subject,
    BodyText,
    BodyHtml,
    IdempotencyKey,
    CreatedAt,
    Attempts,
    NextAttemptAt,
    ClaimedUntil,
    SentAt,
    FailedAt,
    LastError,
}
