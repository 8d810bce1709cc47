//! The compliance report's chart counts an organization's redemptions and refused codes per
//! day over 30 days. Without an index of its own, that read every event of the organization
//! (a million at the benchmark's scale); with this one it reads only the index entries of
//! those two actions in those days, never the events.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEX: &str = "ix_audit_event_org_action_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(AuditEvent::Table)
                    .col(AuditEvent::OrgId)
                    .col(AuditEvent::Action)
                    .col(AuditEvent::At)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(INDEX)
                    .table(AuditEvent::Table)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum AuditEvent {
    Table,
    OrgId,
    Action,
    At,
}
