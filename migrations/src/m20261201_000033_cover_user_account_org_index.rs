//! The compliance counts and the members console walk one organization's members by id
//! (`org_id`, then `id`), and the counts read each member's MFA date, role and joining date.
//! With the index on `(org_id, id)` alone, SQLite fetched every member's row from the table
//! for those three columns: a row that also holds the email and the password hash. The index
//! now carries them too, so the walk reads the index alone: 9 % fewer instructions for the
//! counts of 100,000 members (callgrind on SQLite, `cargo bench -p domain --bench
//! admin_pages`'s seeded database).

use sea_orm_migration::prelude::*;

use crate::m20261127_000002_create_user_account::UserAccount;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// An organization's members, by id.
const ORG_INDEX: &str = "ix_user_account_org";

/// The index on `org_id, id`, and when `covering`, then the columns the counts read.
async fn replace(manager: &SchemaManager<'_>, covering: bool) -> Result<(), DbErr> {
    use UserAccount::{CreatedAt, Id, OrgId, Role, TotpEnabledAt};
    manager
        .drop_index(
            Index::drop()
                .name(ORG_INDEX)
                .table(UserAccount::Table)
                .to_owned(),
        )
        .await?;
    let columns = [OrgId, Id, TotpEnabledAt, Role, CreatedAt];
    let kept = if covering { columns.len() } else { 2 };
    let mut index = Index::create();
    index.name(ORG_INDEX).table(UserAccount::Table);
    for column in columns.into_iter().take(kept) {
        index.col(column);
    }
    manager.create_index(index).await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        replace(manager, true).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        replace(manager, false).await
    }
}
