//! Per-account lockout of every sign-in factor (password, authenticator code, backup code),
//! one row per account and factor: wrong attempts counted in the database so every instance
//! sees them, the lock's end, and how many locks in a row (each lasts twice the one before).
//! Replaces the backup-code-only columns of migration 8, carrying their state over.

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
                    .table(FactorLockout::Table)
                    .col(integer(FactorLockout::UserId))
                    // password, totp or backup_code.
                    .col(string_len(FactorLockout::Factor, 16))
                    .col(integer(FactorLockout::Failures).default(0))
                    .col(timestamp_with_time_zone_null(FactorLockout::LockedUntil))
                    // Locks since the last success with this factor.
                    .col(integer(FactorLockout::Lockouts).default(0))
                    .primary_key(
                        Index::create()
                            .col(FactorLockout::UserId)
                            .col(FactorLockout::Factor),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_factor_lockout_user")
                            .from(FactorLockout::Table, FactorLockout::UserId)
                            .to(UserAccount::Table, UserAccount::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO factor_lockout (user_id, factor, failures, locked_until, lockouts) \
                 SELECT id, 'backup_code', code_failures, codes_locked_until, \
                 CASE WHEN codes_locked_until IS NULL THEN 0 ELSE 1 END \
                 FROM user_account \
                 WHERE code_failures > 0 OR codes_locked_until IS NOT NULL",
            )
            .await?;
        for column in [Old::CodesLockedUntil, Old::CodeFailures] {
            manager
                .alter_table(
                    Table::alter()
                        .table(UserAccount::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(UserAccount::Table)
                    .add_column(integer(Old::CodeFailures).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(UserAccount::Table)
                    .add_column(timestamp_with_time_zone_null(Old::CodesLockedUntil))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE user_account SET \
                 code_failures = COALESCE((SELECT failures FROM factor_lockout f \
                   WHERE f.user_id = user_account.id AND f.factor = 'backup_code'), 0), \
                 codes_locked_until = (SELECT locked_until FROM factor_lockout f \
                   WHERE f.user_id = user_account.id AND f.factor = 'backup_code')",
            )
            .await?;
        manager
            .drop_table(Table::drop().table(FactorLockout::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum FactorLockout {
    Table,
    UserId,
    Factor,
    Failures,
    LockedUntil,
    Lockouts,
}

#[derive(DeriveIden)]
enum Old {
    CodeFailures,
    CodesLockedUntil,
}
