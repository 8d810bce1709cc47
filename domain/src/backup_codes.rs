//! Backup verification codes: a set of one-time 12-digit codes a member generates once MFA
//! is on, saves or prints, and signs in with when the authenticator is lost.
//!
//! - Codes come from the operating system's CSPRNG and leave the server once, in the answer to
//!   [`generate`]. The database holds only argon2id digests.
//! - The codes of a set share one salt, so checking a guess costs one argon2 evaluation
//!   however many codes the set holds: the guess is digested once and compared, in constant
//!   time, with every code of the set. The digests are also keyed with a pepper derived from
//!   the server's secret key, so a copy of the database alone is no help in guessing.
//! - Spending a code is a conditional update (`used_at IS NULL`, set still in force) in one
//!   transaction with its audit event: two attempts with one code cannot both succeed.
//! - Regenerating ends the old set and stores the new one in one transaction; a partial
//!   unique index keeps at most one set in force per member.
//! - Every generate, redeem and status read asks the authorization gate first.

use std::{collections::HashSet, fmt, sync::Arc};

use chrono::{DateTime, Utc};
use rand::{Rng, RngCore, rngs::OsRng};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, Set, SqlErr, TransactionTrait,
    sea_query::{Expr, Query},
};
use serde::{Deserialize, Serialize};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::{
    accounts::{FieldError, Member},
    audit::{self, Event, Outcome, Source},
    authz::{Action, Authz, AuthzError, PolicyError},
    entity::{backup_code, backup_code_set, user_account},
    hashing::{DigestParams, HashError, PasswordHasher},
    lockout::{self, Factor, Limits},
    secrets::SecretKey,
};

/// Digits per code: about 40 bits, enough for a one-time code behind argon2 and lockouts.
pub const CODE_DIGITS: usize = 12;
/// Inputs longer than this are not looked at: no code written with spaces or dashes is.
const MAX_INPUT_CHARS: usize = 64;
const SALT_BYTES: usize = 16;
/// What the pepper is derived for, from the server's secret key.
const PEPPER_PURPOSE: &str = "lifeline/backup-code-pepper/v1";

/// Why a set stopped working.
const ENDED_REPLACED: &str = "replaced";
pub(crate) const ENDED_MFA_OFF: &str = "mfa_disabled";

/// The organization's rules for backup codes that this module applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodePolicy {
    /// Codes in a new set.
    pub codes_per_set: u8,
    /// At or below this many unused codes the member is warned.
    pub low_codes_threshold: u8,
    /// A set this many days old stops working; 0: sets never expire.
    pub max_set_age_days: u16,
    /// Wrong codes (counted on the account) that lock backup-code sign-in.
    pub lockout_attempts: u8,
    /// How long that lock lasts.
    pub lockout_minutes: u16,
}

impl Default for CodePolicy {
    fn default() -> Self {
        Self {
            codes_per_set: 10,
            low_codes_threshold: 3,
            max_set_age_days: 0,
            lockout_attempts: 5,
            lockout_minutes: 15,
        }
    }
}

impl CodePolicy {
    /// When a set generated at `generated_at` stops working, if it ever does.
    pub fn expires_at(&self, generated_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        (self.max_set_age_days > 0)
            .then(|| generated_at + chrono::Duration::days(self.max_set_age_days.into()))
    }

    /// The numbers that lock sign-in factors.
    pub fn limits(&self) -> Limits {
        Limits {
            attempts: self.lockout_attempts,
            minutes: self.lockout_minutes,
        }
    }

    fn expired(&self, generated_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        self.expires_at(generated_at).is_some_and(|at| at <= now)
    }
}

/// One backup code in plaintext: 12 ASCII digits. No `Serialize`, and a `Debug` that hides
/// it; [`PlainCode::grouped`] is the one way to read it, for showing it to its owner once.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PlainCode(String);

impl PlainCode {
    pub(crate) fn random() -> Self {
        // gen_range samples uniformly (rejection sampling), so every code is equally likely.
        let number = OsRng.gen_range(0..10u64.pow(CODE_DIGITS as u32));
        Self(format!("{number:0width$}", width = CODE_DIGITS))
    }

    /// The code in groups of four for reading: `4821 0937 5516`.
    pub fn grouped(&self) -> String {
        let digits = self.0.as_bytes();
        digits
            .chunks(4)
            .map(|group| String::from_utf8_lossy(group).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl fmt::Debug for PlainCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainCode(…)")
    }
}

/// Reads a code as a person types it: 12 ASCII digits, with any spaces and dashes between.
pub fn parse_code(input: &str) -> Result<PlainCode, FieldError> {
    let malformed = || {
        FieldError::new(
            "code",
            "A backup verification code is 12 digits, like 4821 0937 5516.",
        )
    };
    if input.trim().is_empty() {
        return Err(FieldError::new(
            "code",
            "Enter one of your backup verification codes.",
        ));
    }
    if input.len() > MAX_INPUT_CHARS * 4 || input.chars().count() > MAX_INPUT_CHARS {
        return Err(malformed());
    }
    let digits: String = input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    // ASCII digits only: other scripts' digits (٤٨٢١…) and full-width ones are refused
    // rather than guessed at.
    if digits.len() != CODE_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    Ok(PlainCode(digits))
}

/// Digests backup codes: argon2id at the password parameters, keyed with a pepper derived
/// from the server's secret key, behind the password hasher's bound on concurrency.
#[derive(Clone)]
pub struct BackupCodeHasher {
    hasher: PasswordHasher,
    pepper: Arc<[u8; 32]>,
}

impl BackupCodeHasher {
    pub fn new(hasher: PasswordHasher, key: &SecretKey) -> Self {
        Self {
            hasher,
            pepper: Arc::new(key.derive(PEPPER_PURPOSE)),
        }
    }

    pub(crate) async fn digest(
        &self,
        code: &PlainCode,
        salt: &[u8],
        params: DigestParams,
    ) -> Result<[u8; 32], HashError> {
        self.hasher
            .digest(
                code.0.as_bytes().to_vec(),
                salt.to_vec(),
                Arc::clone(&self.pepper),
                params,
            )
            .await
    }
}

/// A set just generated: the one time its codes are readable.
#[derive(Debug, Clone)]
pub struct FreshCodes {
    pub generated_at: DateTime<Utc>,
    /// Slot 1 first.
    pub codes: Vec<PlainCode>,
}

/// How a member's set stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeStatus {
    pub generated_at: DateTime<Utc>,
    pub total: u32,
    pub remaining: u32,
    pub last_used_at: Option<DateTime<Utc>>,
    /// At or below the organization's low-codes threshold.
    pub low: bool,
    /// When the set stops working under the organization's maximum set age.
    pub expires_at: Option<DateTime<Utc>>,
    /// Past its maximum age: no code of it works any more.
    pub expired: bool,
}

/// A successful sign-in with a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redeemed {
    /// The number printed next to the code that was spent; 0 for a recovery code an admin
    /// issued.
    pub slot: u32,
    /// Unused codes left in the set.
    pub remaining: u32,
}

/// Why a backup-code operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum BackupCodeError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// A wrong code, a used code, or no codes at all: one answer for all three.
    #[error("That backup verification code is not valid, or it has been used already.")]
    Rejected,
    #[error(
        "Backup verification codes are not available for your account, per your organization's policy."
    )]
    NotAllowed,
    #[error("Turn on multi-factor authentication before generating backup verification codes.")]
    MfaOff,
    #[error(
        "New codes were generated for your account at the same moment in another window. \
         Generate again to get a set you can see."
    )]
    Conflict,
    #[error("That account does not exist.")]
    UnknownAccount,
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// Generates a new set of `policy.codes_per_set` codes for `member`, replacing the set in
/// force (whose codes stop working at once).
pub async fn generate(
    db: &DatabaseConnection,
    authz: &Authz,
    hasher: &BackupCodeHasher,
    member: &Member,
    policy: &CodePolicy,
    source: &Source,
    now: DateTime<Utc>,
) -> Result<FreshCodes, BackupCodeError> {
    gate(db, authz, member, Action::GenerateBackupCodes, source, now).await?;
    let account = user_account::Entity::find_by_id(member.id)
        .one(db)
        .await?
        .ok_or(BackupCodeError::UnknownAccount)?;
    if account.totp_enabled_at.is_none() {
        return Err(BackupCodeError::MfaOff);
    }

    let count = usize::from(policy.codes_per_set.max(1));
    // Distinct codes, so that a code identifies its slot.
    let mut seen = HashSet::with_capacity(count);
    let mut codes = Vec::with_capacity(count);
    while codes.len() < count {
        let code = PlainCode::random();
        if seen.insert(code.clone()) {
            codes.push(code);
        }
    }
    let mut salt = [0u8; SALT_BYTES];
    OsRng.fill_bytes(&mut salt);
    let params = DigestParams::CURRENT;

    // Digest the codes in parallel; the hasher bounds how many run at once.
    let mut digests = tokio::task::JoinSet::new();
    for (index, code) in codes.iter().enumerate() {
        let (hasher, code) = (hasher.clone(), code.clone());
        digests.spawn(async move { (index, hasher.digest(&code, &salt, params).await) });
    }
    let mut by_slot = vec![[0u8; 32]; count];
    while let Some(joined) = digests.join_next().await {
        let (index, digest) =
            joined.map_err(|e| HashError::from_message(format!("digest task: {e}")))?;
        by_slot[index] = digest?;
    }

    // An expired set being replaced goes on the record as expired first.
    record_expiries(db, member.org_id, Some(member.id), policy, now).await?;
    let txn = db.begin().await?;
    let replaced = end_set_in_force(&txn, member.id, ENDED_REPLACED, now).await?;
    let set = backup_code_set::ActiveModel {
        user_id: Set(member.id),
        generated_at: Set(now),
        ended_at: Set(None),
        end_reason: Set(None),
        salt: Set(salt.to_vec()),
        params: Set(params.to_string()),
        code_count: Set(i32::from(policy.codes_per_set.max(1))),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .map_err(|error| match error.sql_err() {
        // Another generation for this member committed between our update and insert.
        Some(SqlErr::UniqueConstraintViolation(_)) => BackupCodeError::Conflict,
        _ => BackupCodeError::Database(error),
    })?;
    let rows = by_slot
        .iter()
        .zip(1..)
        .map(|(digest, slot)| backup_code::ActiveModel {
            set_id: Set(set.id),
            slot: Set(slot),
            digest: Set(digest.to_vec()),
            used_at: Set(None),
            ..Default::default()
        });
    backup_code::Entity::insert_many(rows).exec(&txn).await?;
    audit::record(
        &txn,
        member.org_id,
        Event {
            action: if replaced {
                "backup_codes.replaced"
            } else {
                "backup_codes.generated"
            },
            actor: Some(member),
            target: Some(member),
            outcome: Outcome::Success,
            details: serde_json::json!({ "set": set.id, "codes": count }),
        },
        source,
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(FreshCodes {
        generated_at: now,
        codes,
    })
}

/// The status of `member`'s set in force, or `None` when they have none.
pub async fn status(
    db: &DatabaseConnection,
    authz: &Authz,
    member: &Member,
    policy: &CodePolicy,
    now: DateTime<Utc>,
) -> Result<Option<CodeStatus>, BackupCodeError> {
    authz
        .require(member, member.org_id, Action::ViewBackupCodes)
        .await
        .map_err(refusal)?;
    let Some((set, codes)) = set_in_force(db, member.id).await? else {
        return Ok(None);
    };
    let remaining = count_u32(codes.iter().filter(|c| c.used_at.is_none()).count());
    Ok(Some(CodeStatus {
        generated_at: set.generated_at,
        total: count_u32(codes.len()),
        remaining,
        last_used_at: codes.iter().filter_map(|c| c.used_at).max(),
        low: remaining <= u32::from(policy.low_codes_threshold),
        expires_at: policy.expires_at(set.generated_at),
        expired: policy.expired(set.generated_at, now),
    }))
}

/// A code as typed at sign-in, and the numbered slot the page asked for when the
/// organization wants "a specific numbered code" (`None`: any unused code).
#[derive(Debug, Clone, Copy)]
pub struct CodeEntry<'a> {
    pub typed: &'a str,
    pub slot: Option<u32>,
}

impl<'a> CodeEntry<'a> {
    /// Any unused code of the set.
    pub fn any(typed: &'a str) -> Self {
        Self { typed, slot: None }
    }
}

/// A random unused slot of `member`'s set in force, for the sign-in page to ask for
/// (NIST SP 800-63B's look-up secrets); `None` when they hold no usable code.
pub async fn slot_to_ask(
    db: &DatabaseConnection,
    member: &Member,
    policy: &CodePolicy,
    now: DateTime<Utc>,
) -> Result<Option<u32>, BackupCodeError> {
    let Some((set, codes)) = set_in_force(db, member.id).await? else {
        return Ok(None);
    };
    if policy.expired(set.generated_at, now) {
        return Ok(None);
    }
    let unused: Vec<u32> = codes
        .iter()
        .filter(|code| code.used_at.is_none())
        .filter_map(|code| u32::try_from(code.slot).ok())
        .collect();
    if unused.is_empty() {
        return Ok(None);
    }
    Ok(unused.get(OsRng.gen_range(0..unused.len())).copied())
}

/// Whether `member` may use backup codes at all under the organization's rules (generate,
/// and so redeem): what their account page says and offers.
pub async fn usable(authz: &Authz, member: &Member) -> Result<bool, BackupCodeError> {
    Ok(authz
        .allows(member, member.org_id, Action::GenerateBackupCodes)
        .await?)
}

/// Signs `member` in with one of their codes, as typed (`input`), spending it.
///
/// A wrong code, a used code and an account without codes get the same answer
/// ([`BackupCodeError::Rejected`]) after the same work: one argon2 evaluation and one audit
/// event. Malformed input is refused without an argon2 evaluation (the format is no secret).
#[allow(clippy::too_many_arguments)]
pub async fn redeem(
    db: &DatabaseConnection,
    authz: &Authz,
    hasher: &BackupCodeHasher,
    member: &Member,
    policy: &CodePolicy,
    entry: &CodeEntry<'_>,
    source: &Source,
    now: DateTime<Utc>,
) -> Result<Redeemed, BackupCodeError> {
    let input = entry.typed;
    gate(db, authz, member, Action::RedeemBackupCode, source, now).await?;
    let locked = lockout::locked_until(db, member.id, Factor::BackupCode, now)
        .await?
        .is_some();
    let failed = Failure {
        member,
        policy,
        source,
        now,
    };
    let code = match parse_code(input) {
        Ok(code) => code,
        Err(error) => {
            // Blank input is no attempt; anything else typed is one, and is recorded.
            if !input.trim().is_empty() {
                failed.record(db, "malformed").await?;
            }
            return Err(error.into());
        }
    };

    let in_force = set_in_force(db, member.id).await?;
    let (salt, params) = match &in_force {
        Some((set, _)) => (
            set.salt.clone(),
            DigestParams::parse(&set.params)
                .ok_or_else(|| DbErr::Type(format!("backup code set {}: bad params", set.id)))?,
        ),
        // No set: digest anyway with a throw-away salt, so that the answer takes as long.
        None => {
            let mut salt = vec![0u8; SALT_BYTES];
            OsRng.fill_bytes(&mut salt);
            (salt, DigestParams::CURRENT)
        }
    };
    let digest = hasher.digest(&code, &salt, params).await?;
    let codes = in_force
        .as_ref()
        .map_or(&[][..], |(_, codes)| codes.as_slice());
    let matched = find_in_constant_time(codes, &digest);
    let expired = in_force
        .as_ref()
        .is_some_and(|(set, _)| policy.expired(set.generated_at, now));
    // Under "a specific numbered code", only the slot the sign-in page asked for counts.
    let wrong_slot = matched.is_some_and(|code| {
        entry
            .slot
            .is_some_and(|slot| u32::try_from(code.slot).ok() != Some(slot))
    });
    // Locked: the same answer, after the same work, whether or not the code was right.
    if locked {
        failed.record(db, "locked").await?;
        return Err(BackupCodeError::Rejected);
    }
    let Some(matched) = matched.filter(|code| code.used_at.is_none() && !expired && !wrong_slot)
    else {
        // Not a code of the set: it may be the recovery code an admin issued (that costs a
        // second argon2 evaluation, only while such a code is waiting to be used).
        if matched.is_none()
            && crate::recovery_codes::spend(db, hasher, member, &code, source, now)
                .await
                .map_err(|error| match error {
                    crate::recovery_codes::RecoveryError::Hash(cause) => {
                        BackupCodeError::Hash(cause)
                    }
                    crate::recovery_codes::RecoveryError::Policy(cause) => {
                        BackupCodeError::Policy(cause)
                    }
                    other => BackupCodeError::Database(DbErr::Custom(other.to_string())),
                })?
        {
            clear_failures(db, member.id).await?;
            let remaining = codes.iter().filter(|c| c.used_at.is_none()).count();
            return Ok(Redeemed {
                slot: 0,
                remaining: if expired { 0 } else { count_u32(remaining) },
            });
        }
        if expired {
            record_expiries(db, member.org_id, Some(member.id), policy, now).await?;
        }
        let reason = match (&in_force, matched) {
            (None, _) => "no_codes",
            (Some(_), Some(_)) if expired => "expired",
            (Some(_), Some(_)) if wrong_slot => "wrong_slot",
            (Some(_), Some(_)) => "used",
            (Some(_), None) => "wrong",
        };
        failed.record(db, reason).await?;
        return Err(BackupCodeError::Rejected);
    };

    let txn = db.begin().await?;
    // Spend it only if nobody did meanwhile and its set is still in force.
    let claimed = backup_code::Entity::update_many()
        .col_expr(backup_code::Column::UsedAt, Expr::value(now))
        .filter(backup_code::Column::Id.eq(matched.id))
        .filter(backup_code::Column::UsedAt.is_null())
        .filter(
            backup_code::Column::SetId.in_subquery(
                Query::select()
                    .column(backup_code_set::Column::Id)
                    .from(backup_code_set::Entity)
                    .and_where(backup_code_set::Column::Id.eq(matched.set_id))
                    .and_where(backup_code_set::Column::EndedAt.is_null())
                    .to_owned(),
            ),
        )
        .exec(&txn)
        .await?
        .rows_affected
        == 1;
    if !claimed {
        failed.record(&txn, "used").await?;
        txn.commit().await?;
        return Err(BackupCodeError::Rejected);
    }
    clear_failures(&txn, member.id).await?;
    audit::record(
        &txn,
        member.org_id,
        Event {
            action: "backup_code.redeemed",
            actor: Some(member),
            target: Some(member),
            outcome: Outcome::Success,
            details: serde_json::json!({ "set": matched.set_id, "slot": matched.slot }),
        },
        source,
        now,
    )
    .await?;
    let remaining = backup_code::Entity::find()
        .filter(backup_code::Column::SetId.eq(matched.set_id))
        .filter(backup_code::Column::UsedAt.is_null())
        .all(&txn)
        .await?
        .len();
    txn.commit().await?;
    Ok(Redeemed {
        slot: u32::try_from(matched.slot).unwrap_or(0),
        remaining: count_u32(remaining),
    })
}

/// A refused redemption: recorded in the audit log, and counted on the account, which it
/// locks once the organization's number of wrong codes is reached.
struct Failure<'a> {
    member: &'a Member,
    policy: &'a CodePolicy,
    source: &'a Source,
    now: DateTime<Utc>,
}

impl Failure<'_> {
    async fn record(
        &self,
        db: &(impl ConnectionTrait + TransactionTrait),
        reason: &'static str,
    ) -> Result<(), DbErr> {
        let (member, now) = (self.member, self.now);
        audit::record(
            db,
            member.org_id,
            Event {
                action: "backup_code.refused",
                actor: Some(member),
                target: Some(member),
                outcome: Outcome::Failure,
                details: serde_json::json!({ "reason": reason }),
            },
            self.source,
            now,
        )
        .await?;
        if reason == "locked" {
            return Ok(());
        }
        // Counted on the account, so every instance and every session sees the same count.
        lockout::record_failure(
            db,
            member,
            Factor::BackupCode,
            self.policy.limits(),
            self.source,
            now,
        )
        .await?;
        Ok(())
    }
}

/// Records in the audit log, once per set, that sets in force in organization `org_id` have
/// passed the organization's maximum set age (`backup_codes.expired`, by the system); only
/// `member_id`'s set when given. Returns how many it recorded.
///
/// Whether a set works is decided from its age at each use; this only puts the moment it
/// stopped working on the record. The conditional update on `expired_at` makes each expiry
/// appear once however many instances notice it at the same moment.
pub async fn record_expiries(
    db: &DatabaseConnection,
    org_id: i32,
    member_id: Option<i32>,
    policy: &CodePolicy,
    now: DateTime<Utc>,
) -> Result<u32, DbErr> {
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
                    action: "backup_codes.expired",
                    actor: None,
                    target: Some(&member),
                    outcome: Outcome::Success,
                    details: serde_json::json!({
                        "set": set.id,
                        "generated_at": set.generated_at,
                        "expires_at": policy.expires_at(set.generated_at),
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

/// A successful sign-in with a code starts the count of wrong ones again.
async fn clear_failures(db: &impl ConnectionTrait, member_id: i32) -> Result<(), DbErr> {
    lockout::clear(db, member_id, Factor::BackupCode).await
}

/// Ends `member_id`'s set in force, if any, for `reason`; returns whether there was one.
pub(crate) async fn end_set_in_force(
    db: &impl ConnectionTrait,
    member_id: i32,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let ended = backup_code_set::Entity::update_many()
        .col_expr(backup_code_set::Column::EndedAt, Expr::value(now))
        .col_expr(backup_code_set::Column::EndReason, Expr::value(reason))
        .filter(backup_code_set::Column::UserId.eq(member_id))
        .filter(backup_code_set::Column::EndedAt.is_null())
        .exec(db)
        .await?;
    Ok(ended.rows_affected > 0)
}

/// Asks the gate; a refusal is recorded in the audit log and becomes
/// [`BackupCodeError::NotAllowed`].
async fn gate(
    db: &DatabaseConnection,
    authz: &Authz,
    member: &Member,
    action: Action,
    source: &Source,
    now: DateTime<Utc>,
) -> Result<(), BackupCodeError> {
    if authz.allows(member, member.org_id, action).await? {
        return Ok(());
    }
    let name = match action {
        Action::GenerateBackupCodes => "backup_codes.generate_refused",
        _ => "backup_code.refused",
    };
    audit::record(
        db,
        member.org_id,
        Event {
            action: name,
            actor: Some(member),
            target: Some(member),
            outcome: Outcome::Denied,
            details: serde_json::json!({ "reason": "not_allowed" }),
        },
        source,
        now,
    )
    .await?;
    Err(BackupCodeError::NotAllowed)
}

fn refusal(error: AuthzError) -> BackupCodeError {
    match error {
        AuthzError::Denied(_) => BackupCodeError::NotAllowed,
        AuthzError::Policy(cause) => BackupCodeError::Policy(cause),
        AuthzError::Database(cause) => BackupCodeError::Database(cause),
    }
}

/// The member's set in force and its codes, slot 1 first.
async fn set_in_force(
    db: &impl ConnectionTrait,
    member_id: i32,
) -> Result<Option<(backup_code_set::Model, Vec<backup_code::Model>)>, DbErr> {
    let Some(set) = backup_code_set::Entity::find()
        .filter(backup_code_set::Column::UserId.eq(member_id))
        .filter(backup_code_set::Column::EndedAt.is_null())
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let codes = backup_code::Entity::find()
        .filter(backup_code::Column::SetId.eq(set.id))
        .order_by_asc(backup_code::Column::Slot)
        .all(db)
        .await?;
    Ok(Some((set, codes)))
}

/// The code whose digest equals `digest`, used or not. Every code is compared, and the
/// comparison and selection do not branch on the data, so the time taken does not say which
/// slot matched or whether one did.
fn find_in_constant_time<'a>(
    codes: &'a [backup_code::Model],
    digest: &[u8; 32],
) -> Option<&'a backup_code::Model> {
    let mut found = subtle::Choice::from(0);
    let mut index = 0u32;
    for (i, code) in codes.iter().enumerate() {
        let hit = code.digest.as_slice().ct_eq(digest.as_slice());
        index = u32::conditional_select(&index, &count_u32(i), hit);
        found |= hit;
    }
    bool::from(found)
        .then(|| codes.get(index as usize))
        .flatten()
}

fn count_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn random_codes_are_twelve_ascii_digits() {
        for _ in 0..1000 {
            let code = PlainCode::random();
            assert_eq!(code.0.len(), CODE_DIGITS);
            assert!(code.0.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn codes_are_grouped_in_fours_and_hidden_from_debug() {
        let code = PlainCode("482109375516".into());
        assert_eq!(code.grouped(), "4821 0937 5516");
        assert_eq!(format!("{code:?}"), "PlainCode(…)");
    }

    #[test]
    fn parse_accepts_spaces_and_dashes() {
        for input in [
            "482109375516",
            "4821 0937 5516",
            "4821-0937-5516",
            "  4821 - 0937 - 5516  ",
            "4 8 2 1 0 9 3 7 5 5 1 6",
            "4821\t0937\u{a0}5516",
        ] {
            assert_eq!(parse_code(input).unwrap().0, "482109375516", "{input:?}");
        }
    }

    #[test]
    fn parse_refuses_everything_else_with_a_message_for_the_code_field() {
        let long = "1".repeat(10 * 1024);
        for input in [
            "",
            "   ",
            "48210937551",
            "4821093755161",
            "4821 0937 551a",
            "abcdefghijkl",
            "٤٨٢١٠٩٣٧٥٥١٦",
            "４８２１０９３７５５１６",
            "4821_0937_5516",
            "4821.0937.5516",
            "<script>1</script>",
            "' OR 1=1 --",
            &long,
        ] {
            let error = parse_code(input).unwrap_err();
            assert_eq!(error.field, "code", "{input:?}");
            assert!(!error.message.is_empty());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn every_code_formats_and_parses_back(number in 0u64..1_000_000_000_000) {
            let code = PlainCode(format!("{number:012}"));
            prop_assert_eq!(parse_code(&code.grouped()).unwrap(), code.clone());
            prop_assert_eq!(parse_code(&code.grouped().replace(' ', "-")).unwrap(), code);
        }

        #[test]
        fn separators_anywhere_are_ignored(
            number in 0u64..1_000_000_000_000,
            separators in proptest::collection::vec(prop::sample::select(vec!["", " ", "-", " - "]), 13),
        ) {
            let digits = format!("{number:012}");
            let mut typed = String::new();
            for (digit, separator) in digits.chars().zip(&separators) {
                typed.push_str(separator);
                typed.push(digit);
            }
            typed.push_str(separators[12]);
            prop_assert_eq!(parse_code(&typed).unwrap().0, digits);
        }

        #[test]
        fn anything_without_exactly_twelve_ascii_digits_is_refused(input in "\\PC{0,80}") {
            let digits: String = input
                .chars()
                .filter(|c| !c.is_whitespace() && *c != '-')
                .collect();
            let is_code = digits.len() == CODE_DIGITS
                && digits.bytes().all(|b| b.is_ascii_digit())
                && input.chars().count() <= MAX_INPUT_CHARS;
            prop_assert_eq!(parse_code(&input).is_ok(), is_code);
        }
    }

    fn row(slot: i32, digest: [u8; 32], used: bool) -> backup_code::Model {
        backup_code::Model {
            id: slot,
            set_id: 1,
            slot,
            digest: digest.to_vec(),
            used_at: used.then(Utc::now),
        }
    }

    #[test]
    fn the_constant_time_search_finds_the_matching_slot() {
        let codes = [
            row(1, [1; 32], false),
            row(2, [2; 32], true),
            row(3, [3; 32], false),
        ];
        assert_eq!(
            find_in_constant_time(&codes, &[3; 32]).map(|c| c.slot),
            Some(3)
        );
        assert_eq!(
            find_in_constant_time(&codes, &[1; 32]).map(|c| c.slot),
            Some(1)
        );
        let used = find_in_constant_time(&codes, &[2; 32]).unwrap();
        assert_eq!((used.slot, used.used_at.is_some()), (2, true));
        assert_eq!(find_in_constant_time(&codes, &[4; 32]), None);
        assert_eq!(find_in_constant_time(&[], &[1; 32]), None);
    }
}
