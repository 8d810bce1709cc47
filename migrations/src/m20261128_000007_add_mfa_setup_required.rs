//! A member whose MFA an admin reset must set it up again at their next sign-in.

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
                    .add_column(boolean(MfaSetup::MfaSetupRequired).default(false))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(UserAccount::Table)
                    .drop_column(MfaSetup::MfaSetupRequired)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum MfaSetup {
    MfaSetupRequired,
}
