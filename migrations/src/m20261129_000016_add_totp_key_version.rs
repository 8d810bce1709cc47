//! The version of the server's secret key that sealed each stored TOTP secret, so that
//! `lifeline rotate-key` can re-seal them under a new version while instances that still
//! meet the old one open it. Secrets sealed before key versions were sealed by version 1.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261127_000002_create_user_account::UserAccount;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(UserAccount::Table)
                    .add_column(integer(Sealing::TotpKeyVersion).default(1))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(UserAccount::Table)
                    .drop_column(Sealing::TotpKeyVersion)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Sealing {
    TotpKeyVersion,
}
