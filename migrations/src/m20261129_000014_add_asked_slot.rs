//! The numbered code a sign-in page asked for, kept with the set until it is answered or
//! the set is replaced, so that starting the sign-in again does not draw another number.

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
                    .add_column(integer_null(Challenge::AskedSlot))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(BackupCodeSet::Table)
                    .drop_column(Challenge::AskedSlot)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Challenge {
    AskedSlot,
}
