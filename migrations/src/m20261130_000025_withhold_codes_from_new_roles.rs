//! The help-desk and auditor roles arrive. An organization whose policy is "Not allowed"
//! holds deny rules for backup codes for each role it knew (`casbin_rule`, subject the role,
//! in its own domain); without the same rules for the new roles, the baseline would let a
//! help-desk member or an auditor generate and redeem codes there. This writes them, copied
//! from the `member` role's, and raises the rules' revision so every gate reloads.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The roles this migration brings, as Casbin subjects.
const NEW_ROLES: [&str; 2] = ["helpdesk", "auditor"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for role in NEW_ROLES {
            db.execute_unprepared(&format!(
                "INSERT INTO casbin_rule (ptype, v0, v1, v2, v3, v4, v5) \
                 SELECT ptype, '{role}', v1, v2, v3, v4, v5 FROM casbin_rule \
                 WHERE ptype = 'p' AND v0 = 'member' AND v1 LIKE 'org:%' \
                 AND v2 = 'backup_codes'"
            ))
            .await?;
        }
        db.execute_unprepared("UPDATE policy_revision SET revision = revision + 1")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for role in NEW_ROLES {
            db.execute_unprepared(&format!(
                "DELETE FROM casbin_rule WHERE ptype = 'p' AND v0 = '{role}' \
                 AND v1 LIKE 'org:%'"
            ))
            .await?;
        }
        db.execute_unprepared("UPDATE policy_revision SET revision = revision + 1")
            .await?;
        Ok(())
    }
}
