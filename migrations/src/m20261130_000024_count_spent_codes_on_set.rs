//! Each set keeps its own count of spent codes and the time of the last one, written in the
//! same transaction that spends a code. The members console's standings, the compliance
//! counts and the policy impact preview then read one row per member (the set in force)
//! instead of aggregating every code of the organization (900,000 rows at 100,000 members).
//!
//! Existing sets are counted from their codes once, here.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261128_000003_create_backup_codes::BackupCodeSet;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        manager
            .alter_table(
                Table::alter()
                    .table(BackupCodeSet::Table)
                    .add_column(integer(Spent::CodesUsed).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(BackupCodeSet::Table)
                    .add_column(timestamp_with_time_zone_null(Spent::LastUsedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE backup_code_set SET \
                 codes_used = (SELECT COUNT(used_at) FROM backup_code \
                               WHERE backup_code.set_id = backup_code_set.id), \
                 last_used_at = (SELECT MAX(used_at) FROM backup_code \
                                 WHERE backup_code.set_id = backup_code_set.id)",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Spent::LastUsedAt, Spent::CodesUsed] {
            manager
                .alter_table(
                    Table::alter()
                        .table(BackupCodeSet::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Spent {
    CodesUsed,
    LastUsedAt,
}
