//! Backup verification codes: one set per member in force at a time, each code stored only
//! as a digest (argon2id), and spent at most once.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261127_000002_create_user_account::UserAccount;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(BackupCodeSet::Table)
                    .col(pk_auto(BackupCodeSet::Id))
                    .col(integer(BackupCodeSet::UserId))
                    .col(timestamp_with_time_zone(BackupCodeSet::GeneratedAt))
                    // Set when the set stops working: replaced, revoked, or MFA turned off.
                    .col(timestamp_with_time_zone_null(BackupCodeSet::EndedAt))
                    .col(string_len_null(BackupCodeSet::EndReason, 32))
                    // The argon2id salt shared by the set's codes, so that checking a guess
                    // costs one argon2 evaluation however many codes the set holds.
                    .col(blob(BackupCodeSet::Salt))
                    // The argon2id parameters the digests were made with, e.g.
                    // `argon2id,v=19,m=19456,t=2,p=1`: stronger settings later still verify.
                    .col(string_len(BackupCodeSet::Params, 64))
                    .col(integer(BackupCodeSet::CodeCount))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_backup_code_set_user")
                            .from(BackupCodeSet::Table, BackupCodeSet::UserId)
                            .to(UserAccount::Table, UserAccount::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // At most one set in force per member: two regenerations racing cannot both win.
        // A partial index, written the same for SQLite and PostgreSQL.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX ux_backup_code_set_in_force \
                 ON backup_code_set (user_id) WHERE ended_at IS NULL",
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(BackupCode::Table)
                    .col(pk_auto(BackupCode::Id))
                    .col(integer(BackupCode::SetId))
                    // 1..=N, as printed next to the code.
                    .col(integer(BackupCode::Slot))
                    // argon2id(code, set salt, server pepper): 32 bytes, never the code.
                    .col(blob(BackupCode::Digest))
                    .col(timestamp_with_time_zone_null(BackupCode::UsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_backup_code_set")
                            .from(BackupCode::Table, BackupCode::SetId)
                            .to(BackupCodeSet::Table, BackupCodeSet::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_backup_code_slot")
                    .table(BackupCode::Table)
                    .col(BackupCode::SetId)
                    .col(BackupCode::Slot)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(BackupCode::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(BackupCodeSet::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum BackupCodeSet {
    Table,
    Id,
    UserId,
    GeneratedAt,
    EndedAt,
    EndReason,
    Salt,
    Params,
    CodeCount,
}

#[derive(DeriveIden)]
pub enum BackupCode {
    Table,
    Id,
    SetId,
    Slot,
    Digest,
    UsedAt,
}
