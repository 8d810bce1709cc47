//! A number each of an account's sessions must match to stay valid: raising it ends every
//! session of that account at once, on every instance (sign-out everywhere, an admin's MFA
//! reset), without having to find the sessions in the store.

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
                    .add_column(integer(Sessions::SessionEpoch).default(0))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(UserAccount::Table)
                    .drop_column(Sessions::SessionEpoch)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Sessions {
    SessionEpoch,
}
