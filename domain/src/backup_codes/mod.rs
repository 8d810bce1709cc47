//! Backup verification codes: a set of one-time 12-digit codes a member generates once MFA
//! is on, saves or prints, and signs in with when the authenticator is lost.
//!
//! - Codes leave the server once, in the answer to [`generate`]. The database holds only
//!   argon2id digests ([`crate::lookup_secret`]).
//! - The codes of a set share one salt, so checking a guess costs one argon2 evaluation
//!   however many codes the set holds: the guess is digested once and compared, in constant
//!   time, with every code of the set.
//! - Spending a code is a conditional update (`used_at IS NULL`, set still in force) in one
//!   transaction with its audit event: two attempts with one code cannot both succeed.
//! - Regenerating ends the old set and stores the new one in one transaction; a partial
//!   unique index keeps at most one set in force per member.
//! - Every generate, redeem and status read asks the authorization gate first.
//!
//! [`standing`] holds the one rule for how a set stands and the one query for sets in force;
//! [`expiry`] puts expiries on the record.

pub mod expiry;
pub mod standing;

use std::{collections::HashSet, future::Future, pin::Pin};

use chrono::{DateTime, Utc};
use rand::{Rng, RngCore, rngs::OsRng};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    Set, SqlErr, TransactionTrait,
    sea_query::{Expr, Query},
};

pub use self::{
    expiry::record_expiries,
    standing::{CodePolicy, CodeStatus, Scope, SetDates, SetInForce, compliant, sets_in_force},
};
use crate::{
    audit::{Audience, AuditAction, Event, Outcome},
    authz::{Action, Authz, PolicyError},
    command::Command,
    entity::{backup_code, backup_code_set, user_account},
    hashing::{DigestParams, HashError},
    identity::Member,
    input::FieldError,
    lockout::{self, Attempter, Factor, Limits, Ticket},
    lookup_secret::{BackupCodeHasher, PlainCode, SALT_BYTES, find_in_constant_time, parse_code},
};

/// Why a set stopped working.
const ENDED_REPLACED: &str = "replaced";

/// A set just generated: the one time its codes are readable.
#[derive(Debug, Clone)]
pub struct FreshCodes {
    pub generated_at: DateTime<Utc>,
    /// Slot 1 first.
    pub codes: Vec<PlainCode>,
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
    /// The form named a set that is no longer in force: it was posted again (a browser's
    /// "resend", Back and submit) after its codes were generated and shown.
    #[error(
        "These codes were already shown: the set generated then is the one in force. \
         If you did not save it, generate a new set on purpose (the codes shown before stop \
         working)."
    )]
    AlreadyShown,
    #[error("That account does not exist.")]
    UnknownAccount,
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Database(#[from] DbErr),
}

impl From<crate::authz::AuthzError> for BackupCodeError {
    fn from(error: crate::authz::AuthzError) -> Self {
        use crate::authz::AuthzError;
        match error {
            AuthzError::Denied(_) => Self::NotAllowed,
            AuthzError::Policy(cause) => Self::Policy(cause),
            AuthzError::Database(cause) => Self::Database(cause),
        }
    }
}

/// Which set a generate request means to replace: the set in force when the member's form
/// was drawn, carried by the form. It makes the form good for one generation: posted again
/// (a browser's "resend", Back and submit, a second tab), it names a set that is no longer
/// in force and is refused with [`BackupCodeError::AlreadyShown`], so the set the member
/// has just saved is not silently replaced (issue 19, item 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replacing {
    /// The member had no set in force.
    Nothing,
    /// This set (its id) was in force.
    Set(i32),
    /// Whatever is in force: for callers that are not answering a form (tests, tools).
    InForce,
}

impl Replacing {
    /// Reads a generate form's `replaces` field: a set id, or `none` (also when absent).
    pub fn from_form(field: Option<&str>) -> Result<Self, FieldError> {
        match field.map(str::trim) {
            None | Some("" | "none") => Ok(Self::Nothing),
            Some(id) => id.parse().map(Self::Set).map_err(|_| {
                FieldError::new("replaces", "This form is out of date: open the page again.")
            }),
        }
    }

    /// The form field's value for the set in force (`None`: no set).
    pub fn form_value(set_id: Option<i32>) -> String {
        set_id.map_or_else(|| "none".to_owned(), |id| id.to_string())
    }
}

/// Generates a new set of `policy.codes_per_set` codes for the command's actor, replacing
/// the set in force (whose codes stop working at once).
pub async fn generate(
    cmd: &Command<'_>,
    hasher: &BackupCodeHasher,
    policy: &CodePolicy,
) -> Result<FreshCodes, BackupCodeError> {
    generate_replacing(cmd, hasher, policy, Replacing::InForce).await
}

/// [`generate`], only if the set in force is still the one `replacing` names; otherwise
/// [`BackupCodeError::AlreadyShown`] and nothing is written. The check and the replacement
/// are one transaction, so of many posts of one form at once, one generates.
pub async fn generate_replacing(
    cmd: &Command<'_>,
    hasher: &BackupCodeHasher,
    policy: &CodePolicy,
    replacing: Replacing,
) -> Result<FreshCodes, BackupCodeError> {
    let (db, member, now) = (cmd.db, cmd.actor, cmd.now);
    gate(cmd, Action::GenerateBackupCodes).await?;
    let account = user_account::Entity::find_by_id(member.id)
        .one(db)
        .await?
        .ok_or(BackupCodeError::UnknownAccount)?;
    if account.totp_enabled_at.is_none() {
        return Err(BackupCodeError::MfaOff);
    }
    // A form posted again is refused before any digest is made; the transaction below
    // decides for posts that arrive together.
    let in_force = backup_code_set::Entity::find()
        .filter(backup_code_set::Column::UserId.eq(member.id))
        .filter(backup_code_set::Column::EndedAt.is_null())
        .one(db)
        .await?
        .map(|set| set.id);
    let stale = match replacing {
        Replacing::InForce => false,
        Replacing::Nothing => in_force.is_some(),
        Replacing::Set(id) => in_force != Some(id),
    };
    if stale {
        return Err(BackupCodeError::AlreadyShown);
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

    // The set is one caller of the hasher (one place in its queue): digested in parallel
    // up to its bound, or refused whole at once when it is busy.
    let by_slot = hasher.digest_all(&codes, &salt, params).await?;

    // An expired set being replaced goes on the record as expired first.
    record_expiries(db, member.org_id, Some(member.id), policy, now).await?;
    let txn = db.begin().await?;
    let replaced = match replacing {
        Replacing::InForce => end_set_in_force(&txn, member.id, ENDED_REPLACED, now).await?,
        // A set made meanwhile makes the insert below fail: one set in force per member.
        Replacing::Nothing => false,
        Replacing::Set(id) => {
            if !end_set(&txn, member.id, id, ENDED_REPLACED, now).await? {
                // Nothing is written: the transaction is dropped.
                return Err(BackupCodeError::AlreadyShown);
            }
            true
        }
    };
    let set = backup_code_set::ActiveModel {
        user_id: Set(member.id),
        generated_at: Set(now),
        ended_at: Set(None),
        end_reason: Set(None),
        asked_slot: Set(None),
        salt: Set(salt.to_vec()),
        params: Set(params.to_string()),
        code_count: Set(i32::from(policy.codes_per_set.max(1))),
        codes_used: Set(0),
        last_used_at: Set(None),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .map_err(|error| match error.sql_err() {
        // Another generation for this member committed between our update and insert.
        Some(SqlErr::UniqueConstraintViolation(_)) if replacing == Replacing::InForce => {
            BackupCodeError::Conflict
        }
        Some(SqlErr::UniqueConstraintViolation(_)) => BackupCodeError::AlreadyShown,
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
    let action = if replaced {
        AuditAction::BackupCodesReplaced
    } else {
        AuditAction::BackupCodesGenerated
    };
    let details = serde_json::json!({ "set": set.id, "codes": count });
    cmd.record(&txn, cmd.event(action, Some(member), details))
        .await?;
    txn.commit().await?;
    Ok(FreshCodes {
        generated_at: now,
        codes,
    })
}

/// How `member`'s set in force stands, or `None` when they have none.
pub async fn status(
    db: &impl ConnectionTrait,
    authz: &Authz,
    member: &Member,
    policy: &CodePolicy,
    now: DateTime<Utc>,
) -> Result<Option<CodeStatus>, BackupCodeError> {
    authz
        .require(member, member.org_id, Action::ViewBackupCodes)
        .await?;
    let set = sets_in_force(db, Scope::Member(member.id)).await?;
    Ok(set.first().map(|set| policy.standing(set, now)))
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

/// Whether `member` may use backup codes at all under the organization's rules (generate,
/// and so redeem): what their account page says and offers.
pub async fn usable(authz: &Authz, member: &Member) -> Result<bool, BackupCodeError> {
    Ok(authz
        .allows(member, member.org_id, Action::GenerateBackupCodes)
        .await?)
}

/// A future that answers whether an issued code was spent.
pub type SpendFuture<'a> = Pin<Box<dyn Future<Output = Result<bool, BackupCodeError>> + Send + 'a>>;

/// An administrator-issued code that the member may type where backup codes are typed,
/// tried when the typed code is no code of their set. Implemented above this module (the
/// sign-in path, with [`crate::recovery_codes`]), so that backup codes know nothing of how
/// issued codes are kept.
///
/// Both methods cost one argon2 evaluation whether or not a code is waiting, so that every
/// refusal of the backup-code step takes the same work.
pub trait IssuedCode: Sync {
    /// Whether `code` is the member's issued code; when it is, it is spent (once, with its
    /// events) and `true` returned.
    fn spend<'a>(&'a self, code: &'a PlainCode) -> SpendFuture<'a>;

    /// The work of [`IssuedCode::spend`], spending nothing: for a refusal that may not
    /// spend one (the factor locked, or the code is one of the set's).
    fn same_work<'a>(&'a self, code: &'a PlainCode) -> SpendFuture<'a>;
}

/// Signs the command's actor in with one of their codes, as typed, spending it; `issued` is
/// tried when the code is none of the set's, and `also_record` is written in the same
/// transaction as the spent code (the sign-in itself).
///
/// A wrong code, a used code and an account without codes get the same answer
/// ([`BackupCodeError::Rejected`]) after the same work: one argon2 evaluation and one audit
/// event. Malformed input is refused without an argon2 evaluation (the format is no secret).
pub async fn redeem(
    cmd: &Command<'_>,
    hasher: &BackupCodeHasher,
    policy: &CodePolicy,
    entry: &CodeEntry<'_>,
    issued: Option<&dyn IssuedCode>,
    also_record: &[Event<'_>],
) -> Result<Redeemed, BackupCodeError> {
    let (db, member, now) = (cmd.db, cmd.actor, cmd.now);
    let input = entry.typed;
    gate(cmd, Action::RedeemBackupCode).await?;
    let limits = policy.limits();
    let attempter = Attempter::of(cmd.source, member.id);
    let failed = Failure { cmd, limits };
    let code = match parse_code(input) {
        Ok(code) => code,
        Err(error) => {
            // Input that can never be a code is recorded, but is no guess at one: it counts
            // towards no lock. Blank input is not even recorded.
            if !input.trim().is_empty() {
                failed.record(db, "malformed", None, None).await?;
            }
            return Err(error.into());
        }
    };
    // A place with the hasher first: a busy server turns the attempt away before it counts.
    let admission = hasher.admit()?;
    // The set's salt is read first; then, while the code is digested, the attempt is
    // reserved, the set's codes read and who hears of the outcome read (on other
    // connections), so that none of it adds to the argon2 evaluation's time and the
    // transaction recording the outcome holds only its writes. Only a reserved attempt is
    // compared with the set: past the organization's number of attempts in the window, or
    // while locked, none is evaluated, however many arrive at once. The digest is made either
    // way, so that a locked answer takes the same work.
    let set = set_in_force_of(db, member.id).await?;
    let (salt, params) = match &set {
        Some(set) => (
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
    let (ticket, digest, codes, audience) = tokio::try_join!(
        async {
            lockout::reserve(db, member.id, Factor::BackupCode, &attempter, limits, now)
                .await
                .map_err(BackupCodeError::from)
        },
        async {
            admission
                .digest(&code, &salt, params)
                .await
                .map_err(BackupCodeError::from)
        },
        async {
            match &set {
                Some(set) => codes_of(db, set.id).await.map_err(BackupCodeError::from),
                None => Ok(Vec::new()),
            }
        },
        async {
            Audience::read(db, member.org_id, member.id)
                .await
                .map_err(BackupCodeError::from)
        },
    )?;
    let ahead = Some(&audience);
    let in_force = set.map(|set| (set, codes));
    let codes = in_force
        .as_ref()
        .map_or(&[][..], |(_, codes)| codes.as_slice());
    let matched = find_in_constant_time(codes.iter().map(|c| c.digest.as_slice()), &digest)
        .and_then(|index| codes.get(index));
    let expired = in_force
        .as_ref()
        .is_some_and(|(set, _)| policy.expired(set.into(), now));
    // Under "a specific numbered code", only the slot the sign-in page asked for counts.
    let wrong_slot = matched.is_some_and(|code| {
        entry
            .slot
            .is_some_and(|slot| u32::try_from(code.slot).ok() != Some(slot))
    });
    let usable = matched.filter(|code| code.used_at.is_none() && !expired && !wrong_slot);
    // Locked: the same answer, after the same work, whether or not the code was right.
    let Some(ticket) = ticket else {
        if let Some(issued) = issued {
            issued.same_work(&code).await?;
        }
        failed.record(db, "locked", None, ahead).await?;
        return Err(BackupCodeError::Rejected);
    };
    let Some(matched) = usable else {
        // Not a code of the set: it may be a code an admin issued. Every refusal below costs
        // that second evaluation too, whether or not such a code is waiting.
        if let Some(issued) = issued {
            if matched.is_none() {
                if issued.spend(&code).await? {
                    ticket.passed(db).await?;
                    let remaining = codes.iter().filter(|c| c.used_at.is_none()).count();
                    return Ok(Redeemed {
                        slot: 0,
                        remaining: if expired { 0 } else { count_u32(remaining) },
                    });
                }
            } else {
                issued.same_work(&code).await?;
            }
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
        failed.record(db, reason, Some(ticket), ahead).await?;
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
        failed.record(&txn, "used", Some(ticket), ahead).await?;
        txn.commit().await?;
        return Err(BackupCodeError::Rejected);
    }
    ticket.passed(&txn).await?;
    // The set counts the code spent (in this transaction, so the count is always the codes
    // spent), and the numbered code asked for is answered: the next sign-in asks afresh. The
    // updated count says how many are left.
    let remaining = backup_code_set::Entity::update_many()
        .col_expr(
            backup_code_set::Column::CodesUsed,
            Expr::col(backup_code_set::Column::CodesUsed).add(1),
        )
        .col_expr(backup_code_set::Column::LastUsedAt, Expr::value(now))
        .col_expr(
            backup_code_set::Column::AskedSlot,
            Expr::value(Option::<i32>::None),
        )
        .filter(backup_code_set::Column::Id.eq(matched.set_id))
        .exec_with_returning(&txn)
        .await?
        .first()
        .map_or(0, |set| {
            u32::try_from(set.code_count.saturating_sub(set.codes_used)).unwrap_or(0)
        });
    // What the member's notice says: which code, how many are left, and whether that is low
    // (the audit log tells the member from this transaction; see `audit::notices`).
    let details = serde_json::json!({
        "set": matched.set_id,
        "slot": matched.slot,
        "remaining": remaining,
        "low_codes_threshold": policy.low_codes_threshold,
    });
    cmd.record_to(
        &txn,
        cmd.event(AuditAction::BackupCodeRedeemed, Some(member), details),
        ahead,
    )
    .await?;
    for event in also_record {
        cmd.record_to(&txn, event.clone(), ahead).await?;
    }
    let slot = u32::try_from(matched.slot).unwrap_or(0);
    txn.commit().await?;
    Ok(Redeemed { slot, remaining })
}

/// A refused redemption: recorded in the audit log, and the attempt (when one was reserved)
/// settled as wrong, which locks backup-code sign-in once the window's attempts are used, in
/// one transaction.
struct Failure<'a> {
    cmd: &'a Command<'a>,
    limits: Limits,
}

impl Failure<'_> {
    async fn record(
        &self,
        db: &(impl ConnectionTrait + TransactionTrait),
        reason: &'static str,
        ticket: Option<Ticket>,
        ahead: Option<&Audience>,
    ) -> Result<(), DbErr> {
        let member = self.cmd.actor;
        let txn = db.begin().await?;
        self.cmd
            .record_to(
                &txn,
                Event {
                    action: AuditAction::BackupCodeRefused,
                    actor: Some(member),
                    target: Some(member),
                    outcome: Outcome::Failure,
                    details: serde_json::json!({ "reason": reason }),
                },
                ahead,
            )
            .await?;
        if let Some(ticket) = ticket {
            ticket
                .failed(&txn, member, self.limits, self.cmd.source, self.cmd.now)
                .await?;
        }
        txn.commit().await
    }
}

/// The numbered code the sign-in page asks `member` for (NIST SP 800-63B's look-up
/// secrets): the one asked before, while it is unanswered and the set is in force, so that
/// starting the sign-in again does not draw another; otherwise a random unused one, kept
/// with the set. `None` when they hold no usable code.
pub async fn slot_to_ask(
    db: &impl ConnectionTrait,
    member: &Member,
    policy: &CodePolicy,
    now: DateTime<Utc>,
) -> Result<Option<u32>, BackupCodeError> {
    let Some((set, codes)) = set_in_force(db, member.id).await? else {
        return Ok(None);
    };
    if policy.expired((&set).into(), now) {
        return Ok(None);
    }
    let unused: Vec<i32> = codes
        .iter()
        .filter(|code| code.used_at.is_none())
        .map(|code| code.slot)
        .collect();
    if let Some(asked) = set.asked_slot.filter(|slot| unused.contains(slot)) {
        return Ok(u32::try_from(asked).ok());
    }
    let Some(pick) = unused.get(OsRng.gen_range(0..unused.len().max(1))).copied() else {
        return Ok(None);
    };
    // Two pages opened at once must ask for the same code: the first to store one wins.
    backup_code_set::Entity::update_many()
        .col_expr(backup_code_set::Column::AskedSlot, Expr::value(pick))
        .filter(backup_code_set::Column::Id.eq(set.id))
        .filter(
            backup_code_set::Column::AskedSlot
                .is_null()
                .or(backup_code_set::Column::AskedSlot.eq(set.asked_slot)),
        )
        .exec(db)
        .await?;
    Ok(asked_slot(db, member.id)
        .await?
        .or_else(|| u32::try_from(pick).ok()))
}

/// The numbered code asked for from `member_id`'s set in force, if one is waiting.
pub async fn asked_slot(db: &impl ConnectionTrait, member_id: i32) -> Result<Option<u32>, DbErr> {
    Ok(backup_code_set::Entity::find()
        .filter(backup_code_set::Column::UserId.eq(member_id))
        .filter(backup_code_set::Column::EndedAt.is_null())
        .one(db)
        .await?
        .and_then(|set| set.asked_slot)
        .and_then(|slot| u32::try_from(slot).ok()))
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

/// Ends `member_id`'s set `set_id` if it is the one in force; returns whether it was.
async fn end_set(
    db: &impl ConnectionTrait,
    member_id: i32,
    set_id: i32,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let ended = backup_code_set::Entity::update_many()
        .col_expr(backup_code_set::Column::EndedAt, Expr::value(now))
        .col_expr(backup_code_set::Column::EndReason, Expr::value(reason))
        .filter(backup_code_set::Column::Id.eq(set_id))
        .filter(backup_code_set::Column::UserId.eq(member_id))
        .filter(backup_code_set::Column::EndedAt.is_null())
        .exec(db)
        .await?;
    Ok(ended.rows_affected == 1)
}

/// Asks the gate about the actor's own codes; a refusal is recorded in the audit log and
/// becomes [`BackupCodeError::NotAllowed`].
async fn gate(cmd: &Command<'_>, action: Action) -> Result<(), BackupCodeError> {
    if cmd.allows(action).await? {
        return Ok(());
    }
    let name = match action {
        Action::GenerateBackupCodes => AuditAction::BackupCodesGenerateRefused,
        _ => AuditAction::BackupCodeRefused,
    };
    let member = cmd.actor;
    cmd.record(
        cmd.db,
        Event {
            action: name,
            actor: Some(member),
            target: Some(member),
            outcome: Outcome::Denied,
            details: serde_json::json!({ "reason": "not_allowed" }),
        },
    )
    .await?;
    Err(BackupCodeError::NotAllowed)
}

/// The member's set in force and its codes (with their digests), slot 1 first: what a
/// redemption compares against.
async fn set_in_force(
    db: &impl ConnectionTrait,
    member_id: i32,
) -> Result<Option<(backup_code_set::Model, Vec<backup_code::Model>)>, DbErr> {
    let Some(set) = set_in_force_of(db, member_id).await? else {
        return Ok(None);
    };
    let codes = codes_of(db, set.id).await?;
    Ok(Some((set, codes)))
}

/// The member's set in force, without its codes.
async fn set_in_force_of(
    db: &impl ConnectionTrait,
    member_id: i32,
) -> Result<Option<backup_code_set::Model>, DbErr> {
    backup_code_set::Entity::find()
        .filter(backup_code_set::Column::UserId.eq(member_id))
        .filter(backup_code_set::Column::EndedAt.is_null())
        .one(db)
        .await
}

/// The codes of set `set_id` (with their digests), slot 1 first.
async fn codes_of(
    db: &impl ConnectionTrait,
    set_id: i32,
) -> Result<Vec<backup_code::Model>, DbErr> {
    backup_code::Entity::find()
        .filter(backup_code::Column::SetId.eq(set_id))
        .order_by_asc(backup_code::Column::Slot)
        .all(db)
        .await
}

fn count_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
