//! Per-account lockout of backup-code sign-in: wrong codes are counted on the account (so
//! every server instance sees them), and enough of them lock the factor for a while.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261127_000002_create_user_account::UserAccount;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        manager
            .alter_table(
                Table::alter()
                    .table(UserAccount::Table)
                    .add_column(integer(Lockout::CodeFailures).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(UserAccount::Table)
                    .add_column(timestamp_with_time_zone_null(Lockout::CodesLockedUntil))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Lockout::CodesLockedUntil, Lockout::CodeFailures] {
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
}

#[derive(DeriveIden)]
enum Lockout {
    CodeFailures,
    CodesLockedUntil,
}
