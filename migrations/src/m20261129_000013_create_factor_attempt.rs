//! Sign-in attempts reserved before they are evaluated, one row per account, factor and
//! source (every untrusted source together, or one browser holding the account's device
//! cookie): the attempts counted in the current window and when it started, the lock's end,
//! and how many locks in a row. Replaces `factor_lockout`, whose counts become the untrusted
//! source's; their window starts unknown, so they are forgotten at the next attempt.

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
                    .table(FactorAttempt::Table)
                    .col(integer(FactorAttempt::UserId))
                    // password, totp or backup_code.
                    .col(string_len(FactorAttempt::Factor, 16))
                    // '' for every untrusted source, `device:<id>` for one trusted browser.
                    .col(string_len(FactorAttempt::Source, 64))
                    // Attempts counted in the window, wrong or still being evaluated.
                    .col(integer(FactorAttempt::Attempts).default(0))
                    .col(timestamp_with_time_zone_null(
                        FactorAttempt::WindowStartedAt,
                    ))
                    .col(timestamp_with_time_zone_null(FactorAttempt::LockedUntil))
                    // Locks since the last sign-in.
                    .col(integer(FactorAttempt::Lockouts).default(0))
                    .primary_key(
                        Index::create()
                            .col(FactorAttempt::UserId)
                            .col(FactorAttempt::Factor)
                            .col(FactorAttempt::Source),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_factor_attempt_user")
                            .from(FactorAttempt::Table, FactorAttempt::UserId)
                            .to(UserAccount::Table, UserAccount::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO factor_attempt \
                 (user_id, factor, source, attempts, locked_until, lockouts) \
                 SELECT user_id, factor, '', failures, locked_until, lockouts \
                 FROM factor_lockout",
            )
            .await?;
        manager
            .drop_table(Table::drop().table(FactorLockout::Table).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(FactorLockout::Table)
                    .col(integer(FactorLockout::UserId))
                    .col(string_len(FactorLockout::Factor, 16))
                    .col(integer(FactorLockout::Failures).default(0))
                    .col(timestamp_with_time_zone_null(FactorLockout::LockedUntil))
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
                 SELECT user_id, factor, attempts, locked_until, lockouts \
                 FROM factor_attempt WHERE source = ''",
            )
            .await?;
        manager
            .drop_table(Table::drop().table(FactorAttempt::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum FactorAttempt {
    Table,
    UserId,
    Factor,
    Source,
    Attempts,
    WindowStartedAt,
    LockedUntil,
    Lockouts,
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
