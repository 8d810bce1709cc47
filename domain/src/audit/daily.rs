//! Backup-code use per organization and UTC day, counted as the events are written: each
//! `backup_code.redeemed` and `backup_code.refused` event adds one to its day's row of
//! `code_use_day` in the event's own transaction ([`count`], called by
//! [`super::chain::record`]), so the compliance chart reads one row a day however many
//! events there are. The events stay the record: [`recount`] counts an organization's days
//! from them again (after a restore, which writes events without recording them anew).

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, Statement,
    sea_query::{Expr, OnConflict},
};

use super::AuditAction;
use crate::entity::code_use_day;

/// The day an event at `at` counts on: `YYYY-MM-DD` in UTC.
fn day_of(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

/// Counts an event of `action` at `at` in organization `org_id`, if it is a redemption or a
/// refused code; anything else is not counted. `db` is the event's transaction.
pub(crate) async fn count(
    db: &impl ConnectionTrait,
    org_id: i32,
    action: AuditAction,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let (redeemed, refused) = match action {
        AuditAction::BackupCodeRedeemed => (1, 0),
        AuditAction::BackupCodeRefused => (0, 1),
        _ => return Ok(()),
    };
    let added = |column: code_use_day::Column| {
        Expr::col((code_use_day::Entity, column)).add(Expr::col((
            sea_orm::sea_query::Alias::new("excluded"),
            column,
        )))
    };
    code_use_day::Entity::insert(code_use_day::ActiveModel {
        org_id: sea_orm::Set(org_id),
        day: sea_orm::Set(day_of(at)),
        redeemed: sea_orm::Set(redeemed),
        refused: sea_orm::Set(refused),
    })
    .on_conflict(
        OnConflict::columns([code_use_day::Column::OrgId, code_use_day::Column::Day])
            .value(
                code_use_day::Column::Redeemed,
                added(code_use_day::Column::Redeemed),
            )
            .value(
                code_use_day::Column::Refused,
                added(code_use_day::Column::Refused),
            )
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Counts organization `org_id`'s days again from its events, replacing what was counted:
/// for a restore, and for events written in bulk without [`super::record`] (benchmarks).
pub async fn recount(db: &impl ConnectionTrait, org_id: i32) -> Result<(), DbErr> {
    code_use_day::Entity::delete_many()
        .filter(code_use_day::Column::OrgId.eq(org_id))
        .exec(db)
        .await?;
    let backend = db.get_database_backend();
    // The same day as `day_of`: the event's time in UTC (SQLite keeps RFC 3339 text in UTC).
    let (day, org) = match backend {
        DbBackend::Postgres => ("to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD')", "$1"),
        _ => ("substr(at, 1, 10)", "?"),
    };
    db.execute(Statement::from_sql_and_values(
        backend,
        format!(
            "INSERT INTO code_use_day (org_id, day, redeemed, refused) \
             SELECT org_id, {day}, \
             SUM(CASE WHEN action = '{redeemed}' THEN 1 ELSE 0 END), \
             SUM(CASE WHEN action = '{refused}' THEN 1 ELSE 0 END) \
             FROM audit_event WHERE org_id = {org} AND action IN ('{redeemed}', '{refused}') \
             GROUP BY org_id, {day}",
            redeemed = AuditAction::BackupCodeRedeemed.as_str(),
            refused = AuditAction::BackupCodeRefused.as_str(),
        ),
        [org_id.into()],
    ))
    .await?;
    Ok(())
}

/// Organization `org_id`'s redemptions and refused codes on each day from `first` on, as
/// `(day, redeemed, refused)`, days without either left out.
pub(crate) async fn since(
    db: &impl ConnectionTrait,
    org_id: i32,
    first: NaiveDate,
) -> Result<Vec<(NaiveDate, u32, u32)>, DbErr> {
    let rows = code_use_day::Entity::find()
        .filter(code_use_day::Column::OrgId.eq(org_id))
        .filter(code_use_day::Column::Day.gte(first.format("%Y-%m-%d").to_string()))
        .all(db)
        .await?;
    let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let day = NaiveDate::parse_from_str(&row.day, "%Y-%m-%d").ok()?;
            Some((day, count(row.redeemed), count(row.refused)))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn an_event_counts_on_its_utc_day() {
        let late = Utc.with_ymd_and_hms(2026, 11, 29, 23, 59, 59).unwrap();
        assert_eq!(day_of(late), "2026-11-29");
        assert_eq!(day_of(late + chrono::Duration::seconds(1)), "2026-11-30");
    }
}
