//! The audit chain under the server's key: each event and each chain head name the version
//! of the secret key whose derived MAC key linked them (`NULL`: a plain SHA-256 link from
//! before this migration, re-linked by the server at its first start with a key), and signed
//! checkpoints record where a chain's head stood, so that a copy held outside the database
//! shows a truncation or a rewrite.
//!
//! `down` drops the checkpoints and the version columns; the links stay MACs, which the
//! plain verifier of older builds reports as altered.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261128_000004_create_audit_event::{AuditChainHead, AuditEvent};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(AuditEvent::Table)
                    .add_column(integer_null(Keyed::KeyVersion))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(AuditChainHead::Table)
                    .add_column(integer_null(Keyed::KeyVersion))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditCheckpoint::Table)
                    .col(pk_auto(AuditCheckpoint::Id))
                    .col(integer(AuditCheckpoint::OrgId))
                    // The chain's head when signed: its event number and link (hex).
                    .col(big_integer(AuditCheckpoint::Seq))
                    .col(string_len(AuditCheckpoint::Hash, 64))
                    .col(timestamp_with_time_zone(AuditCheckpoint::At))
                    // The key version whose derived Ed25519 key signed it.
                    .col(integer(AuditCheckpoint::KeyVersion))
                    // Hex Ed25519 public key (32 bytes) and signature (64 bytes).
                    .col(string_len(AuditCheckpoint::PublicKey, 64))
                    .col(string_len(AuditCheckpoint::Signature, 128))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_audit_checkpoint_org_seq")
                    .table(AuditCheckpoint::Table)
                    .col(AuditCheckpoint::OrgId)
                    .col(AuditCheckpoint::Seq)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditCheckpoint::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(AuditChainHead::Table)
                    .drop_column(Keyed::KeyVersion)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(AuditEvent::Table)
                    .drop_column(Keyed::KeyVersion)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Keyed {
    KeyVersion,
}

#[derive(DeriveIden)]
enum AuditCheckpoint {
    Table,
    Id,
    OrgId,
    Seq,
    Hash,
    At,
    KeyVersion,
    PublicKey,
    Signature,
}
