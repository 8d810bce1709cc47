//! When a set's expiry under the organization's maximum set age was recorded in the audit
//! log: the conditional update on this column is what makes `backup_codes.expired` appear
//! exactly once per set, however many instances notice the expiry at the same moment.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261128_000003_create_backup_codes::BackupCodeSet;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(BackupCodeSet::Table)
                    .add_column(timestamp_with_time_zone_null(Expiry::ExpiredAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(BackupCodeSet::Table)
                    .drop_column(Expiry::ExpiredAt)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Expiry {
    ExpiredAt,
}
