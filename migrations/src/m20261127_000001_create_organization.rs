//! Organizations: the tenant every member, policy and audit event belongs to.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Organization::Table)
                    .col(pk_auto(Organization::Id))
                    .col(string_len(Organization::Name, 200))
                    // The slug names the organization on the command line (`--org acme`).
                    .col(string_len_uniq(Organization::Slug, 64))
                    .col(timestamp_with_time_zone(Organization::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Organization::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum Organization {
    Table,
    Id,
    Name,
    Slug,
    CreatedAt,
}
