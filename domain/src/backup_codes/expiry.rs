//! Putting expiries on the record: once a set in force passes its organization's maximum
//! set age, `backup_codes.expired` is written once (by the system), whichever notices first:
//! a redemption, a regeneration, or the server's periodic sweep.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    TransactionTrait, sea_query::Expr,
};

use super::CodePolicy;
use crate::{
    audit::{self, AuditAction, Event, Outcome, Source},
    entity::{backup_code, backup_code_set, user_account},
    identity::Member,
};

/// Records in the audit log, once per set, that sets in force in organization `org_id` have
/// passed the organization's maximum set age (`backup_codes.expired`, by the system); only
/// `member_id`'s set when given. Returns how many it recorded.
///
/// Whether a set works is decided at each use from its age and from this record: once
/// written, the expiry stands even if the maximum age is raised or removed later. The
/// conditional update on `expired_at` makes each expiry appear once however many instances
/// notice it at the same moment. `db` may be a transaction (each set is then a nested one).
pub async fn record_expiries<C>(
    db: &C,
    org_id: i32,
    member_id: Option<i32>,
    policy: &CodePolicy,
    now: DateTime<Utc>,
) -> Result<u32, DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    if policy.max_set_age_days == 0 {
        return Ok(0);
    }
    let cutoff = now - chrono::Duration::days(policy.max_set_age_days.into());
    let mut due = backup_code_set::Entity::find()
        .find_also_related(user_account::Entity)
        .filter(user_account::Column::OrgId.eq(org_id))
        .filter(backup_code_set::Column::EndedAt.is_null())
        .filter(backup_code_set::Column::ExpiredAt.is_null())
        .filter(backup_code_set::Column::GeneratedAt.lte(cutoff));
    if let Some(member_id) = member_id {
        due = due.filter(backup_code_set::Column::UserId.eq(member_id));
    }
    let mut recorded = 0;
    for (set, account) in due.all(db).await? {
        let Some(account) = account else {
            continue;
        };
        let member = Member::try_from(account)?;
        let txn = db.begin().await?;
        let noted = backup_code_set::Entity::update_many()
            .col_expr(backup_code_set::Column::ExpiredAt, Expr::value(now))
            .filter(backup_code_set::Column::Id.eq(set.id))
            .filter(backup_code_set::Column::ExpiredAt.is_null())
            .filter(backup_code_set::Column::EndedAt.is_null())
            .exec(&txn)
            .await?;
        if noted.rows_affected == 1 {
            let unused = backup_code::Entity::find()
                .filter(backup_code::Column::SetId.eq(set.id))
                .filter(backup_code::Column::UsedAt.is_null())
                .count(&txn)
                .await?;
            audit::record(
                &txn,
                org_id,
                Event {
                    action: AuditAction::BackupCodesExpired,
                    actor: None,
                    target: Some(&member),
                    outcome: Outcome::Success,
                    details: serde_json::json!({
                        "set": set.id,
                        "generated_at": set.generated_at,
                        "expires_at": policy.expires_at((&set).into()),
                        "max_set_age_days": policy.max_set_age_days,
                        "unused": unused,
                    }),
                },
                &Source::default(),
                now,
            )
            .await?;
            recorded += 1;
        }
        txn.commit().await?;
    }
    Ok(recorded)
}
