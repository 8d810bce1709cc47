//! The gate builds one enforcer per organization from that organization's rules
//! (`casbin_rule.v1 = 'org:<id>'`): an index on the domain makes that a range read however
//! many organizations share the table.

use sea_orm_migration::prelude::*;

use crate::m20261128_000005_create_org_policy::CasbinRule;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEX: &str = "ix_casbin_rule_domain";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(CasbinRule::Table)
                    .col(CasbinRule::V1)
                    .col(CasbinRule::Ptype)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(INDEX)
                    .table(CasbinRule::Table)
                    .to_owned(),
            )
            .await
    }
}
