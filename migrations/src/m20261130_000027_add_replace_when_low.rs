//! "Running low means replacing": an organization may require a new set of backup codes
//! before anything else when a backup-code sign-in leaves a member at or below the low-codes
//! threshold (NIST SP 800-63B-4 asks for a replacement once a recovery code is used).
//! Every version saved before this keeps today's behaviour, a warning.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261128_000005_create_org_policy::OrgPolicy;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(OrgPolicy::Table)
                    .add_column(boolean(ReplaceWhenLow::ReplaceWhenLow).default(false))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(OrgPolicy::Table)
                    .drop_column(ReplaceWhenLow::ReplaceWhenLow)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum ReplaceWhenLow {
    ReplaceWhenLow,
}
