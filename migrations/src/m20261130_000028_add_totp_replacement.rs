//! A new authenticator set up beside the one in force (issue 16, item 6): its secret, sealed
//! like the one in force, waits here until a code from it confirms it, and only then takes
//! the in-force secret's place. MFA is never off in between.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261127_000002_create_user_account::UserAccount;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        for column in [
            blob_null(Replacement::TotpReplacementSecret),
            integer_null(Replacement::TotpReplacementKeyVersion),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(UserAccount::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            Replacement::TotpReplacementKeyVersion,
            Replacement::TotpReplacementSecret,
        ] {
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
enum Replacement {
    TotpReplacementSecret,
    TotpReplacementKeyVersion,
}
