//! The audit log: one row per security event, written in the same transaction as the change
//! it records. Rows name their actor and target by id and by email at the time, so that they
//! still read correctly after a member is removed.
//!
//! Each organization's events form a hash chain: event `seq` carries the SHA-256 of its own
//! content and of the event before it, so altering, deleting or reordering any row shows.
//! `audit_chain_head` holds each chain's last link; appending takes its row lock, so appends
//! to one organization's chain happen one at a time.

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
                    // 1, 2, 3, … per organization: the event's place in its chain.
                    .col(big_integer(AuditEvent::Seq))
                    // Hex SHA-256 of the previous event (64 zeros for the first).
                    .col(string_len(AuditEvent::PrevHash, 64))
                    // Hex SHA-256 of this event's content and `prev_hash`.
                    .col(string_len(AuditEvent::Hash, 64))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_audit_event_org_seq")
                    .table(AuditEvent::Table)
                    .col(AuditEvent::OrgId)
                    .col(AuditEvent::Seq)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditChainHead::Table)
                    .col(integer(AuditChainHead::OrgId).primary_key())
                    .col(big_integer(AuditChainHead::Seq))
                    .col(string_len(AuditChainHead::Hash, 64))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditChainHead::Table).to_owned())
            .await?;
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
    Seq,
    PrevHash,
    Hash,
}

#[derive(DeriveIden)]
pub enum AuditChainHead {
    Table,
    OrgId,
    Seq,
    Hash,
}
