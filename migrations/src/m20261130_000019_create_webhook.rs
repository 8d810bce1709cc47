//! Webhooks: an organization's own endpoints (a SIEM, a chat) that receive its audit events,
//! signed, through the notification outbox. A delivery is an outbox row that names its
//! webhook; removing the webhook removes what it had still to deliver.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261127_000001_create_organization::Organization;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Webhook::Table)
                    .col(pk_auto(Webhook::Id))
                    .col(integer(Webhook::OrgId))
                    .col(string_len(Webhook::Name, 80))
                    .col(string_len(Webhook::Url, 2048))
                    // The signing secret, sealed with the server key (never in plaintext).
                    .col(blob(Webhook::Secret))
                    .col(integer(Webhook::KeyVersion))
                    // A JSON array of event families (`backup_code`, `mfa`, …); empty: all.
                    .col(text(Webhook::Events))
                    .col(timestamp_with_time_zone(Webhook::CreatedAt))
                    .col(string_len(Webhook::CreatedBy, 254))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_webhook_org")
                            .from(Webhook::Table, Webhook::OrgId)
                            .to(Organization::Table, Organization::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_org")
                    .table(Webhook::Table)
                    .col(Webhook::OrgId)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(NotificationOutbox::Table)
                    .add_column(integer_null(NotificationOutbox::WebhookId))
                    .to_owned(),
            )
            .await?;
        // SQLite cannot add a foreign key to an existing table: removing a webhook deletes
        // its deliveries in `domain::notifications::webhooks::remove`, on both databases.
        manager
            .create_index(
                Index::create()
                    .name("ix_notification_outbox_webhook")
                    .table(NotificationOutbox::Table)
                    .col(NotificationOutbox::WebhookId)
                    .col(NotificationOutbox::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_notification_outbox_webhook")
                    .table(NotificationOutbox::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(NotificationOutbox::Table)
                    .drop_column(NotificationOutbox::WebhookId)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Webhook::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Webhook {
    Table,
    Id,
    OrgId,
    Name,
    Url,
    Secret,
    KeyVersion,
    Events,
    CreatedAt,
    CreatedBy,
}

#[derive(DeriveIden)]
enum NotificationOutbox {
    Table,
    Id,
    WebhookId,
}
