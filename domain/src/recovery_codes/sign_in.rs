//! The member's side of an issued recovery code: spending one of its uses at the backup-code
//! step, at the cost of one argon2 evaluation whether or not a code is waiting.

use chrono::{DateTime, Utc};
use rand::{RngCore, rngs::OsRng};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, TransactionTrait,
    sea_query::Expr,
};
use subtle::ConstantTimeEq;

use super::RecoveryError;
use crate::{
    audit::{AuditAction, Event},
    backup_codes::{BackupCodeError, IssuedCode, Scope, SpendFuture, sets_in_force},
    command::Command,
    entity::recovery_code,
    hashing::DigestParams,
    lookup_secret::{BackupCodeHasher, PlainCode},
};

/// The condition on the member's code that works at `now`: revealed, started, and open
/// ([`super::open_condition`]: not ended, uses left, not expired).
fn usable(member_id: i32, now: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(recovery_code::Column::UserId.eq(member_id))
        .add(recovery_code::Column::RevealedAt.is_not_null())
        .add(recovery_code::Column::StartsAt.lte(now))
        .add(super::open_condition(now))
}

/// The member's recovery code that works now, if any, and if the policy lets them use one.
/// The policy and the gate are asked whether or not a code is waiting, so that the answer
/// takes the same reads either way.
pub(crate) async fn usable_code(
    db: &impl ConnectionTrait,
    authz: &crate::authz::Authz,
    member: &crate::identity::Member,
    now: DateTime<Utc>,
) -> Result<Option<recovery_code::Model>, RecoveryError> {
    let rules = crate::org_policy::current(db, member.org_id)
        .await?
        .policy
        .recovery_codes;
    let allowed = super::policy_allows(authz, member, &rules).await?;
    let row = recovery_code::Entity::find()
        .filter(usable(member.id, now))
        .one(db)
        .await?;
    Ok(row.filter(|_| allowed))
}

/// Whether `code` is the command's actor's usable recovery code; if so one of its uses is
/// spent, with its audit event and `also_record` (the sign-in itself), in one transaction:
/// one conditional update, so a code with N uses signs in N times however many sign-ins
/// arrive at once. One argon2 evaluation whether or not a code is waiting.
pub async fn spend(
    cmd: &Command<'_>,
    hasher: &BackupCodeHasher,
    code: &PlainCode,
    also_record: &[Event<'_>],
) -> Result<bool, RecoveryError> {
    let (db, member, now) = (cmd.db, cmd.actor, cmd.now);
    let waiting = usable_code(db, cmd.authz, member, now).await?;
    let stored = waiting
        .as_ref()
        .and_then(|row| match (&row.salt, &row.digest, &row.params) {
            (Some(salt), Some(digest), Some(params)) => Some((row.id, salt, digest, params)),
            _ => None,
        });
    let Some((id, salt, stored, params)) = stored else {
        same_work(hasher, code).await?;
        return Ok(false);
    };
    let params = DigestParams::parse(params)
        .ok_or_else(|| DbErr::Type(format!("recovery_code {id}: bad params")))?;
    let digest = hasher.digest(code, salt, params).await?;
    if !bool::from(stored.as_slice().ct_eq(digest.as_slice())) {
        return Ok(false);
    }
    let txn = db.begin().await?;
    let claimed = recovery_code::Entity::update_many()
        .col_expr(recovery_code::Column::UsedAt, Expr::value(now))
        .col_expr(
            recovery_code::Column::Uses,
            Expr::col(recovery_code::Column::Uses).add(1),
        )
        .filter(recovery_code::Column::Id.eq(id))
        .filter(usable(member.id, now))
        .exec(&txn)
        .await?;
    if claimed.rows_affected != 1 {
        return Ok(false);
    }
    // Read in this transaction, after the update: other uses may have landed since the read.
    let uses_left = recovery_code::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .map_or(0, |row| (row.max_uses - row.uses).max(0));
    // The backup codes it leaves, for the member's notice: none that count once their
    // expiry is on the record.
    let remaining = sets_in_force(&txn, Scope::Member(member.id))
        .await?
        .first()
        .map_or(0, |set| {
            if set.expired_at.is_some() {
                0
            } else {
                set.remaining
            }
        });
    let details = serde_json::json!({
        "request": id,
        "remaining": remaining,
        "uses_left": uses_left,
    });
    cmd.record(
        &txn,
        cmd.event(AuditAction::RecoveryCodeUsed, Some(member), details),
    )
    .await?;
    for event in also_record {
        cmd.record(&txn, event.clone()).await?;
    }
    txn.commit().await?;
    Ok(true)
}

/// One argon2 evaluation of `code` with a throw-away salt: what checking an issued code
/// costs, for the answers that have none to check.
async fn same_work(hasher: &BackupCodeHasher, code: &PlainCode) -> Result<(), RecoveryError> {
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    hasher.digest(code, &salt, DigestParams::CURRENT).await?;
    Ok(())
}

/// The member's issued recovery code as the backup-code step tries it
/// ([`crate::backup_codes::redeem`]): spent with `also_record` (the sign-in, when signing in).
pub struct Issued<'a> {
    pub cmd: &'a Command<'a>,
    pub hasher: &'a BackupCodeHasher,
    pub also_record: Vec<Event<'a>>,
}

impl IssuedCode for Issued<'_> {
    fn spend<'s>(&'s self, code: &'s PlainCode) -> SpendFuture<'s> {
        Box::pin(async move {
            spend(self.cmd, self.hasher, code, &self.also_record)
                .await
                .map_err(as_backup_code_error)
        })
    }

    fn same_work<'s>(&'s self, code: &'s PlainCode) -> SpendFuture<'s> {
        Box::pin(async move {
            same_work(self.hasher, code)
                .await
                .map(|()| false)
                .map_err(as_backup_code_error)
        })
    }
}

fn as_backup_code_error(error: RecoveryError) -> BackupCodeError {
    match error {
        RecoveryError::Hash(cause) => BackupCodeError::Hash(cause),
        RecoveryError::Policy(cause) => BackupCodeError::Policy(cause),
        RecoveryError::Database(cause) => BackupCodeError::Database(cause),
        other => BackupCodeError::Database(DbErr::Custom(other.to_string())),
    }
}
