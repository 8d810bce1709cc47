//! Redemptions and refused backup codes counted per organization and UTC day, written with
//! each such audit event in its transaction (`domain::audit::daily`). The compliance chart
//! reads 30 rows here instead of counting the events of 30 days (about 170,000 index entries
//! at 100,000 members). The events stay the record; this is counted from them, once here for
//! the events already written, and again for an organization a restore writes.

use sea_orm_migration::{prelude::*, schema::*, sea_orm::DbBackend};

use crate::m20261127_000001_create_organization::Organization;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CodeUseDay::Table)
                    .col(integer(CodeUseDay::OrgId))
                    // `YYYY-MM-DD`, in UTC.
                    .col(string_len(CodeUseDay::Day, 10))
                    .col(big_integer(CodeUseDay::Redeemed).default(0))
                    .col(big_integer(CodeUseDay::Refused).default(0))
                    .primary_key(Index::create().col(CodeUseDay::OrgId).col(CodeUseDay::Day))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_code_use_day_org")
                            .from(CodeUseDay::Table, CodeUseDay::OrgId)
                            .to(Organization::Table, Organization::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The same day as `domain::audit::daily` counts it: the event's time in UTC.
        let day = match manager.get_database_backend() {
            DbBackend::Postgres => "to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
            _ => "substr(at, 1, 10)",
        };
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "INSERT INTO code_use_day (org_id, day, redeemed, refused) \
                 SELECT org_id, {day}, \
                 SUM(CASE WHEN action = 'backup_code.redeemed' THEN 1 ELSE 0 END), \
                 SUM(CASE WHEN action = 'backup_code.refused' THEN 1 ELSE 0 END) \
                 FROM audit_event \
                 WHERE action IN ('backup_code.redeemed', 'backup_code.refused') \
                 GROUP BY org_id, {day}"
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CodeUseDay::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum CodeUseDay {
    Table,
    OrgId,
    Day,
    Redeemed,
    Refused,
}
