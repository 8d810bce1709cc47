//! The audit log: one row per security event, written in the same transaction as the change
//! it records. Rows name their actor and target by id and by email at the time, so that they
//! still read correctly after a member is removed.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditEvent::Table)
                    .col(pk_auto(AuditEvent::Id))
                    .col(integer(AuditEvent::OrgId))
                    .col(timestamp_with_time_zone(AuditEvent::At))
                    .col(integer_null(AuditEvent::ActorId))
                    .col(string_len_null(AuditEvent::Actor, 254))
                    // e.g. `backup_code.redeemed`.
                    .col(string_len(AuditEvent::Action, 64))
                    .col(integer_null(AuditEvent::TargetId))
                    .col(string_len_null(AuditEvent::Target, 254))
                    // `success`, `failure` or `denied`.
                    .col(string_len(AuditEvent::Outcome, 16))
                    .col(string_len_null(AuditEvent::SourceIp, 64))
                    .col(string_len_null(AuditEvent::UserAgent, 256))
                    // A JSON object; never a secret.
                    .col(text(AuditEvent::Details))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_audit_event_org")
                    .table(AuditEvent::Table)
                    .col(AuditEvent::OrgId)
                    .col(AuditEvent::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditEvent::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum AuditEvent {
    Table,
    Id,
    OrgId,
    At,
    ActorId,
    Actor,
    Action,
    TargetId,
    Target,
    Outcome,
    SourceIp,
    UserAgent,
    Details,
}
