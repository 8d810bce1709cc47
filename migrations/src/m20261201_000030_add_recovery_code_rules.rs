//! Recovery codes with a policy (issue 16, item 3), replacing the fixed 24 hours and one use:
//! the organization bounds a code's lifetime (shortest, longest, default), the uses a code
//! may have, and who may issue them; each code gets a start time, its uses and the reason it
//! ended. Every policy saved before this keeps what was fixed: a day by default, one use,
//! issued by owners, administrators and the help desk. Every code issued before this started
//! when it was requested, had one use, and used it if it was used.

use sea_orm_migration::{prelude::*, schema::*};

use crate::{
    m20261128_000005_create_org_policy::OrgPolicy,
    m20261128_000006_create_recovery_code::RecoveryCode,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        for column in [
            integer(Rules::RecoveryCodeShortestMinutes)
                .default(60)
                .to_owned(),
            integer(Rules::RecoveryCodeLongestMinutes)
                .default(24 * 60)
                .to_owned(),
            integer(Rules::RecoveryCodeDefaultMinutes)
                .default(24 * 60)
                .to_owned(),
            integer(Rules::RecoveryCodeMaxUses).default(1).to_owned(),
            string(Rules::RecoveryCodeIssuers)
                .default("helpdesk")
                .to_owned(),
        ] {
            add(manager, OrgPolicy::Table, column).await?;
        }
        for column in [
            // A constant default, which SQLite needs to add a column that is not null; every
            // row gets its request time just below.
            timestamp_with_time_zone(Code::StartsAt)
                .default("1970-01-01 00:00:00+00:00")
                .to_owned(),
            integer(Code::MaxUses).default(1).to_owned(),
            integer(Code::Uses).default(0).to_owned(),
            string_null(Code::EndReason),
        ] {
            add(manager, RecoveryCode::Table, column).await?;
        }
        let db = manager.get_connection();
        db.execute_unprepared("UPDATE recovery_code SET starts_at = requested_at")
            .await?;
        db.execute_unprepared("UPDATE recovery_code SET uses = 1 WHERE used_at IS NOT NULL")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Code::EndReason, Code::Uses, Code::MaxUses, Code::StartsAt] {
            drop(manager, RecoveryCode::Table, column).await?;
        }
        for column in [
            Rules::RecoveryCodeIssuers,
            Rules::RecoveryCodeMaxUses,
            Rules::RecoveryCodeDefaultMinutes,
            Rules::RecoveryCodeLongestMinutes,
            Rules::RecoveryCodeShortestMinutes,
        ] {
            drop(manager, OrgPolicy::Table, column).await?;
        }
        Ok(())
    }
}

async fn add(
    manager: &SchemaManager<'_>,
    table: impl IntoIden + 'static,
    column: ColumnDef,
) -> Result<(), DbErr> {
    manager
        .alter_table(Table::alter().table(table).add_column(column).to_owned())
        .await
}

async fn drop(
    manager: &SchemaManager<'_>,
    table: impl IntoIden + 'static,
    column: impl IntoIden + 'static,
) -> Result<(), DbErr> {
    manager
        .alter_table(Table::alter().table(table).drop_column(column).to_owned())
        .await
}

/// The columns are named after the rules' subject, as the table's other columns are.
#[derive(DeriveIden)]
#[allow(clippy::enum_variant_names)]
enum Rules {
    RecoveryCodeShortestMinutes,
    RecoveryCodeLongestMinutes,
    RecoveryCodeDefaultMinutes,
    RecoveryCodeMaxUses,
    RecoveryCodeIssuers,
}

#[derive(DeriveIden)]
enum Code {
    StartsAt,
    MaxUses,
    Uses,
    EndReason,
}
