//! A grace period for "Required" (issue 16, item 4): the date from which the policy limits
//! the sessions of members who do not comply, and the days a member who joins later has
//! before it binds them. Every version saved before this has no date: "Required" is
//! reported there, as it always was, and limits no session.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261128_000005_create_org_policy::OrgPolicy;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        for column in [
            timestamp_with_time_zone_null(Grace::RequiredFrom),
            integer(Grace::GraceDays).default(0).to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(OrgPolicy::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Grace::GraceDays, Grace::RequiredFrom] {
            manager
                .alter_table(
                    Table::alter()
                        .table(OrgPolicy::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Grace {
    RequiredFrom,
    GraceDays,
}
