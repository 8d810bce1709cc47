//! The gate reads one organization's rules by domain (`v1 = 'org:<id>'` for its rules, `v2`
//! for its grouping rows), and the rule writes delete by domain too. SQLite's planner,
//! without statistics, preferred the adapter's unique index (`ptype, v0, …`, which covers
//! every column) on `ptype` alone over the two-column domain indexes, which did not: every
//! such read scanned all the rules of its kind (80 ms for one organization's enforcer at
//! 10,000 organizations with groups, `cargo bench -p domain --bench gate`). The domain
//! indexes now cover every column too, so the planner takes the one that pins the domain.

use sea_orm_migration::prelude::*;

use crate::m20261128_000005_create_org_policy::CasbinRule;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// An organization's rules, by domain (`v1`).
const DOMAIN_INDEX: &str = "ix_casbin_rule_domain";
/// An organization's grouping rows, by domain (`v2`).
const GROUPING_INDEX: &str = "ix_casbin_rule_grouping_domain";

/// The two domain indexes: each on its domain column then `ptype`, and when `covering`, then
/// every other column.
async fn replace(manager: &SchemaManager<'_>, covering: bool) -> Result<(), DbErr> {
    use CasbinRule::{Ptype, V0, V1, V2, V3, V4, V5};
    for (name, columns) in [
        (DOMAIN_INDEX, [V1, Ptype, V0, V2, V3, V4, V5]),
        (GROUPING_INDEX, [V2, Ptype, V0, V1, V3, V4, V5]),
    ] {
        manager
            .drop_index(Index::drop().name(name).table(CasbinRule::Table).to_owned())
            .await?;
        let mut index = Index::create();
        index.name(name).table(CasbinRule::Table);
        let kept = if covering { columns.len() } else { 2 };
        for column in columns.into_iter().take(kept) {
            index.col(column);
        }
        manager.create_index(index).await?;
    }
    Ok(())
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
