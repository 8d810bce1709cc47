//! Time-based one-time passwords (RFC 6238) as the second factor: enrolment with a setup key
//! confirmed by a first code, verification with ±1 time-step tolerance and no replay, and
//! disabling with the password.
//!
//! The TOTP secret is stored sealed with the server's [`SecretKey`], bound to its account,
//! beside the key version that sealed it ([`reseal_secrets`] moves them all to a new one).
//! It leaves the server only while enrolment is pending (the set-up page, so that a reload
//! shows the same key); once MFA is on, it is never sent anywhere again.
//!
//! A member with MFA on replaces their authenticator without turning MFA off
//! ([`current_replacement`], [`confirm_replacement`]): the new secret waits beside the one
//! in force, which (like a backup code) still signs in until a code from the new one
//! confirms it; then the new one takes its place in one conditional update.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait, UpdateMany, sea_query::Expr,
};
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};

use crate::{
    accounts,
    audit::{self, AuditAction, Event, Outcome, Source},
    command::Command,
    entity::user_account,
    hashing::PasswordHasher,
    identity::Member,
    input::FieldError,
    lockout::{self, Attempter, Factor, Limits, Refusal},
    secrets::{Password, SecretKey},
};

/// Seconds per TOTP time step.
const STEP_SECONDS: i64 = 30;
/// Digits per code.
const DIGITS: usize = 6;
/// Secret length in bytes (160 bits, as RFC 4226 recommends).
const SECRET_BYTES: usize = 20;
/// The issuer shown in authenticator apps.
const ISSUER: &str = "Lifeline";

/// Whether `key` opens the TOTP secrets already stored (true when there are none): the
/// server checks this at start-up, so that a lost or wrong key stops it with a clear message
/// instead of locking every MFA user out.
pub async fn key_opens_stored_secrets(
    db: &DatabaseConnection,
    key: &SecretKey,
) -> Result<bool, DbErr> {
    let sample = user_account::Entity::find()
        .filter(user_account::Column::TotpSecret.is_not_null())
        .one(db)
        .await?;
    Ok(match sample {
        Some(row) => row.totp_secret.as_deref().is_some_and(|sealed| {
            key.open(row.totp_key_version, sealed, &seal_context(row.id))
                .is_ok()
        }),
        None => true,
    })
}

/// Secrets re-sealed per query by [`reseal_secrets`].
const RESEAL_PAGE: u64 = 500;

/// Re-seals every stored TOTP secret (in force, pending, or a replacement waiting) that
/// another version sealed under `key`'s newest version, for `lifeline rotate-key`; returns
/// how many. Each is opened with the version that sealed it and replaced only if it is still
/// the one opened (an enrolment, a replacement or a disabling meanwhile wins), so it may run
/// while servers serve. Errors: a secret that does not open (this key is not the one that
/// sealed it), or the database's.
pub async fn reseal_secrets(db: &DatabaseConnection, key: &SecretKey) -> Result<usize, MfaError> {
    let mut resealed = 0;
    for stored in [Stored::InForce, Stored::Replacement] {
        resealed += reseal(db, key, stored).await?;
    }
    Ok(resealed)
}

/// Which of an account's two TOTP secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    /// `totp_secret`: in force, or pending enrolment while MFA is off.
    InForce,
    /// `totp_replacement_secret`: a new authenticator waiting to be confirmed.
    Replacement,
}

impl Stored {
    fn columns(self) -> (user_account::Column, user_account::Column) {
        match self {
            Self::InForce => (
                user_account::Column::TotpSecret,
                user_account::Column::TotpKeyVersion,
            ),
            Self::Replacement => (
                user_account::Column::TotpReplacementSecret,
                user_account::Column::TotpReplacementKeyVersion,
            ),
        }
    }

    /// The sealed secret and the key version that sealed it, if this one is stored.
    fn of(self, row: &user_account::Model) -> Option<(&[u8], i32)> {
        match self {
            Self::InForce => Some((row.totp_secret.as_deref()?, row.totp_key_version)),
            Self::Replacement => Some((
                row.totp_replacement_secret.as_deref()?,
                row.totp_replacement_key_version?,
            )),
        }
    }
}

/// [`reseal_secrets`] for one of the two secrets.
async fn reseal(
    db: &DatabaseConnection,
    key: &SecretKey,
    stored: Stored,
) -> Result<usize, MfaError> {
    let version = key.current_version();
    let (secret_column, version_column) = stored.columns();
    let (mut resealed, mut after_id) = (0, 0);
    loop {
        let rows = user_account::Entity::find()
            .filter(secret_column.is_not_null())
            .filter(version_column.ne(version))
            .filter(user_account::Column::Id.gt(after_id))
            .order_by_asc(user_account::Column::Id)
            .limit(RESEAL_PAGE)
            .all(db)
            .await?;
        let Some(last) = rows.last() else {
            return Ok(resealed);
        };
        after_id = last.id;
        for row in &rows {
            let Some((sealed, sealed_by)) = stored.of(row) else {
                continue;
            };
            let secret = key
                .open(sealed_by, sealed, &seal_context(row.id))
                .map_err(|e| MfaError::Secret(format!("account {}: {e}", row.id)))?;
            let fresh = key
                .seal(&secret, &seal_context(row.id))
                .map_err(|e| MfaError::Secret(e.to_string()))?;
            let updated = user_account::Entity::update_many()
                .col_expr(secret_column, Expr::value(fresh.bytes))
                .col_expr(version_column, Expr::value(fresh.version))
                .filter(user_account::Column::Id.eq(row.id))
                .filter(secret_column.eq(sealed.to_vec()))
                .exec(db)
                .await?;
            resealed += usize::try_from(updated.rows_affected).unwrap_or(0);
        }
    }
}

/// What enrolment shows: the key to type or scan. Its `Debug` hides the key.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpEnrolment {
    /// The secret in base32, as authenticator apps take it when typed.
    pub setup_key: String,
    /// The `otpauth://` URL that the QR code encodes.
    pub otpauth_url: String,
}

impl std::fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpEnrolment(…)")
    }
}

/// Why an MFA operation did not happen. Nothing was written in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("That code is not valid. Enter the current code from your authenticator app.")]
    WrongCode,
    #[error("Multi-factor authentication is already on for this account.")]
    AlreadyEnabled,
    #[error("Start the set-up again: no authenticator is waiting to be confirmed.")]
    NotEnrolling,
    #[error("Multi-factor authentication is not on for this account.")]
    NotEnabled,
    #[error("That password is not correct.")]
    WrongPassword,
    #[error("That account does not exist.")]
    UnknownAccount,
    #[error("the stored authenticator secret cannot be used: {0}")]
    Secret(String),
    #[error(transparent)]
    Database(#[from] DbErr),
    /// The password could not be checked (the hasher busy, or the database).
    #[error(transparent)]
    PasswordCheck(#[from] accounts::AccountError),
}

/// Parses a code as typed: six ASCII digits, spaces allowed between them.
pub fn parse_code(input: &str) -> Result<String, FieldError> {
    let code: String = input.chars().filter(|c| !c.is_whitespace()).collect();
    if code.is_empty() {
        return Err(FieldError::new(
            "code",
            "Enter the 6-digit code from your authenticator app.",
        ));
    }
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FieldError::new(
            "code",
            "The code is 6 digits, like 123456.",
        ));
    }
    Ok(code)
}

/// Starts enrolment: a new secret, sealed and stored but not yet in force.
pub async fn begin_enrolment(
    db: &DatabaseConnection,
    key: &SecretKey,
    member_id: i32,
) -> Result<TotpEnrolment, MfaError> {
    start_enrolment(db, key, member_id, Replace::Any).await
}

/// Whether a new pending secret may replace one already pending.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Replace {
    Any,
    /// Only when none is pending: two set-up pages opened at once must not each store a
    /// secret and leave one of them showing a key that can never be confirmed.
    OnlyEmpty,
}

async fn start_enrolment(
    db: &DatabaseConnection,
    key: &SecretKey,
    member_id: i32,
    replace: Replace,
) -> Result<TotpEnrolment, MfaError> {
    let row = account(db, member_id).await?;
    if row.totp_enabled_at.is_some() {
        return Err(MfaError::AlreadyEnabled);
    }
    let secret: [u8; SECRET_BYTES] = rand::random();
    let enrolment = enrolment(&secret, &row.email)?;
    let sealed = key
        .seal(&secret, &seal_context(member_id))
        .map_err(|e| MfaError::Secret(e.to_string()))?;
    // Only an account without MFA in force takes a new pending secret.
    let mut update = user_account::Entity::update_many()
        .col_expr(user_account::Column::TotpSecret, Expr::value(sealed.bytes))
        .col_expr(
            user_account::Column::TotpKeyVersion,
            Expr::value(sealed.version),
        )
        .col_expr(
            user_account::Column::TotpLastStep,
            Expr::value(Option::<i64>::None),
        )
        .filter(user_account::Column::Id.eq(member_id))
        .filter(user_account::Column::TotpEnabledAt.is_null());
    if replace == Replace::OnlyEmpty {
        update = update.filter(user_account::Column::TotpSecret.is_null());
    }
    if update.exec(db).await?.rows_affected == 1 {
        return Ok(enrolment);
    }
    match replace {
        Replace::Any => Err(MfaError::AlreadyEnabled),
        // Another request started one a moment ago: show that one.
        Replace::OnlyEmpty => Box::pin(current_enrolment(db, key, member_id)).await,
    }
}

/// The enrolment in progress, started if there is none: a page reload shows the same key
/// again until it is confirmed.
pub async fn current_enrolment(
    db: &DatabaseConnection,
    key: &SecretKey,
    member_id: i32,
) -> Result<TotpEnrolment, MfaError> {
    let row = account(db, member_id).await?;
    if row.totp_enabled_at.is_some() {
        return Err(MfaError::AlreadyEnabled);
    }
    let Some(sealed) = row.totp_secret.as_deref() else {
        return start_enrolment(db, key, member_id, Replace::OnlyEmpty).await;
    };
    let secret = key
        .open(row.totp_key_version, sealed, &seal_context(member_id))
        .map_err(|e| MfaError::Secret(e.to_string()))?;
    enrolment(&secret, &row.email)
}

/// Confirms enrolment with a current code; from then on sign-in asks for a code.
pub async fn confirm_enrolment(
    db: &DatabaseConnection,
    key: &SecretKey,
    member_id: i32,
    code: &str,
    source: &Source,
    now: DateTime<Utc>,
) -> Result<(), MfaError> {
    let code = parse_code(code)?;
    let row = account(db, member_id).await?;
    if row.totp_enabled_at.is_some() {
        return Err(MfaError::AlreadyEnabled);
    }
    let Some(sealed) = row.totp_secret.as_deref() else {
        return Err(MfaError::NotEnrolling);
    };
    let step = matching_step(key, &row, (sealed, row.totp_key_version), &code, now)?
        .ok_or(MfaError::WrongCode)?;
    let txn = db.begin().await?;
    let updated = user_account::Entity::update_many()
        .col_expr(user_account::Column::TotpEnabledAt, Expr::value(now))
        .col_expr(user_account::Column::TotpLastStep, Expr::value(step))
        .col_expr(user_account::Column::MfaSetupRequired, Expr::value(false))
        .filter(user_account::Column::Id.eq(member_id))
        .filter(user_account::Column::TotpEnabledAt.is_null())
        .filter(user_account::Column::TotpSecret.eq(sealed.to_vec()))
        .exec(&txn)
        .await?;
    if updated.rows_affected != 1 {
        return Err(MfaError::NotEnrolling);
    }
    let member = Member::try_from(row)?;
    audit::record(
        &txn,
        member.org_id,
        Event {
            action: AuditAction::MfaEnabled,
            actor: Some(&member),
            target: Some(&member),
            outcome: Outcome::Success,
            details: serde_json::json!({ "method": "totp" }),
        },
        source,
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// The new authenticator being set up for a member whose MFA is on, started if there is
/// none: a reload of the page shows the same key until it is confirmed
/// ([`confirm_replacement`]). The authenticator in force keeps working meanwhile. Errors:
/// [`MfaError::NotEnabled`] when MFA is off (set it up instead).
pub async fn current_replacement(
    db: &DatabaseConnection,
    key: &SecretKey,
    member_id: i32,
) -> Result<TotpEnrolment, MfaError> {
    let row = account(db, member_id).await?;
    if row.totp_enabled_at.is_none() {
        return Err(MfaError::NotEnabled);
    }
    if let Some((sealed, version)) = Stored::Replacement.of(&row) {
        let secret = key
            .open(version, sealed, &seal_context(member_id))
            .map_err(|e| MfaError::Secret(e.to_string()))?;
        return enrolment(&secret, &row.email);
    }
    let secret: [u8; SECRET_BYTES] = rand::random();
    let sealed = key
        .seal(&secret, &seal_context(member_id))
        .map_err(|e| MfaError::Secret(e.to_string()))?;
    // Only while MFA is on and none is waiting: two set-up pages opened at once must not each
    // store a secret and leave one of them showing a key that can never be confirmed.
    let stored = user_account::Entity::update_many()
        .col_expr(
            user_account::Column::TotpReplacementSecret,
            Expr::value(sealed.bytes),
        )
        .col_expr(
            user_account::Column::TotpReplacementKeyVersion,
            Expr::value(sealed.version),
        )
        .filter(user_account::Column::Id.eq(member_id))
        .filter(user_account::Column::TotpEnabledAt.is_not_null())
        .filter(user_account::Column::TotpReplacementSecret.is_null())
        .exec(db)
        .await?;
    if stored.rows_affected == 1 {
        return enrolment(&secret, &row.email);
    }
    // Another request stored one a moment ago (show that one), or MFA went off.
    Box::pin(current_replacement(db, key, member_id)).await
}

/// Puts the new authenticator in the place of the one in force, once `code` (from the new
/// one) proves it works: one conditional update, so that of any number of confirmations at
/// once exactly one replaces, and MFA is never off in between. The backup codes stay unless
/// `keep_codes` is false, when the set in force ends in the same transaction. Recorded as
/// `mfa.replaced`. Errors: [`MfaError::WrongCode`], [`MfaError::NotEnrolling`] (no new
/// authenticator waiting, or another confirmation won), [`MfaError::NotEnabled`].
pub async fn confirm_replacement(
    db: &DatabaseConnection,
    key: &SecretKey,
    member_id: i32,
    code: &str,
    keep_codes: bool,
    source: &Source,
    now: DateTime<Utc>,
) -> Result<(), MfaError> {
    let code = parse_code(code)?;
    let row = account(db, member_id).await?;
    if row.totp_enabled_at.is_none() {
        return Err(MfaError::NotEnabled);
    }
    let Some((sealed, version)) = Stored::Replacement.of(&row) else {
        return Err(MfaError::NotEnrolling);
    };
    let step =
        matching_step(key, &row, (sealed, version), &code, now)?.ok_or(MfaError::WrongCode)?;
    let txn = db.begin().await?;
    let swap = user_account::Entity::update_many()
        .col_expr(
            user_account::Column::TotpSecret,
            Expr::value(sealed.to_vec()),
        )
        .col_expr(user_account::Column::TotpKeyVersion, Expr::value(version))
        // The confirming code does not sign in again.
        .col_expr(user_account::Column::TotpLastStep, Expr::value(step));
    let replaced = without_replacement(swap)
        .filter(user_account::Column::Id.eq(member_id))
        .filter(user_account::Column::TotpEnabledAt.is_not_null())
        .filter(user_account::Column::TotpReplacementSecret.eq(sealed.to_vec()))
        .exec(&txn)
        .await?;
    if replaced.rows_affected != 1 {
        return Err(MfaError::NotEnrolling);
    }
    let member = Member::try_from(row.clone())?;
    let codes_ended = !keep_codes
        && crate::backup_codes::end_set_in_force(&txn, member.id, "authenticator_replaced", now)
            .await?;
    audit::record(
        &txn,
        member.org_id,
        Event {
            action: AuditAction::MfaReplaced,
            actor: Some(&member),
            target: Some(&member),
            outcome: Outcome::Success,
            details: serde_json::json!({
                "method": "totp",
                "backup_codes_ended": codes_ended,
            }),
        },
        source,
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// The authenticator step of the command's actor's sign-in, under their account's lockout:
/// a wrong code is recorded and counted ([`crate::lockout`]); while the factor is locked,
/// every code gets the wrong-code answer, right or not. A malformed code is no attempt. A
/// right code is claimed, the factor's count cleared and `also_record` (the sign-in itself)
/// written in one transaction.
pub async fn sign_in_with_code(
    cmd: &Command<'_>,
    key: &SecretKey,
    code: &str,
    limits: Limits,
    also_record: &[Event<'_>],
) -> Result<(), MfaError> {
    let (db, member, source, now) = (cmd.db, cmd.actor, cmd.source, cmd.now);
    parse_code(code)?;
    let attempter = Attempter::of(source, member.id);
    let ticket = lockout::reserve(db, member.id, Factor::Totp, &attempter, limits, now).await?;
    // The code is checked whatever the reservation said: the same work either way.
    let step = step_to_claim(db, key, member.id, code, now).await;
    let refuse =
        |refusal| lockout::record_refusal(db, member, Factor::Totp, refusal, limits, source, now);
    let Some(ticket) = ticket else {
        refuse(Refusal::Locked).await?;
        return Err(MfaError::WrongCode);
    };
    let step = match step {
        Ok(step) => step,
        Err(MfaError::WrongCode) => {
            refuse(Refusal::Wrong(ticket)).await?;
            return Err(MfaError::WrongCode);
        }
        Err(other) => return Err(other),
    };
    // The claim is the transaction's first statement, so it takes the write lock before
    // anything is read in it.
    let txn = db.begin().await?;
    if !claim_step(&txn, member.id, step).await? {
        drop(txn);
        refuse(Refusal::Wrong(ticket)).await?;
        return Err(MfaError::WrongCode);
    }
    ticket.passed(&txn).await?;
    lockout::signed_in(&txn, member.id).await?;
    for event in also_record {
        cmd.record(&txn, event.clone()).await?;
    }
    txn.commit().await?;
    Ok(())
}

/// Checks a code at sign-in. A code is accepted once: its time step must be later than
/// the last accepted one, and claiming it is a conditional update, so two requests with
/// the same code cannot both pass.
pub async fn verify_code(
    db: &DatabaseConnection,
    key: &SecretKey,
    member_id: i32,
    code: &str,
    now: DateTime<Utc>,
) -> Result<(), MfaError> {
    let step = step_to_claim(db, key, member_id, code, now).await?;
    if claim_step(db, member_id, step).await? {
        Ok(())
    } else {
        Err(MfaError::WrongCode)
    }
}

/// The time step `code` matches for the member's authenticator, if it is later than the
/// last one accepted.
async fn step_to_claim(
    db: &DatabaseConnection,
    key: &SecretKey,
    member_id: i32,
    code: &str,
    now: DateTime<Utc>,
) -> Result<i64, MfaError> {
    let code = parse_code(code)?;
    let row = account(db, member_id).await?;
    let (Some(_), Some(sealed)) = (row.totp_enabled_at, row.totp_secret.as_deref()) else {
        return Err(MfaError::NotEnabled);
    };
    let step = matching_step(key, &row, (sealed, row.totp_key_version), &code, now)?
        .ok_or(MfaError::WrongCode)?;
    if row.totp_last_step.is_some_and(|last| step <= last) {
        return Err(MfaError::WrongCode);
    }
    Ok(step)
}

/// Claims `step` as the last accepted one, if no later or equal one was accepted meanwhile.
async fn claim_step(
    db: &impl sea_orm::ConnectionTrait,
    member_id: i32,
    step: i64,
) -> Result<bool, DbErr> {
    let claimed = user_account::Entity::update_many()
        .col_expr(user_account::Column::TotpLastStep, Expr::value(step))
        .filter(user_account::Column::Id.eq(member_id))
        .filter(
            user_account::Column::TotpLastStep
                .is_null()
                .or(user_account::Column::TotpLastStep.lt(step)),
        )
        .exec(db)
        .await?;
    Ok(claimed.rows_affected == 1)
}

/// Turns MFA off after checking the member's password again. The member's backup codes end
/// with it, in the same transaction: codes for a factor that is off must not come back to
/// life when it is turned on again.
pub async fn disable(
    db: &DatabaseConnection,
    hasher: &PasswordHasher,
    member_id: i32,
    password: &Password,
    source: &Source,
    now: DateTime<Utc>,
) -> Result<(), MfaError> {
    let row = account(db, member_id).await?;
    if row.totp_enabled_at.is_none() {
        return Err(MfaError::NotEnabled);
    }
    let member = Member::try_from(row.clone())?;
    if !accounts::confirm_password(db, hasher, &member, password, source, now).await? {
        return Err(MfaError::WrongPassword);
    }
    let txn = db.begin().await?;
    without_authenticator(user_account::Entity::update_many())
        .filter(user_account::Column::Id.eq(member_id))
        .exec(&txn)
        .await?;
    let member = Member::try_from(row)?;
    let ended = crate::recovery_codes::stand_ins::end_stand_ins(
        &txn,
        None,
        &member,
        crate::recovery_codes::stand_ins::EndReason::MfaDisabled,
        source,
        now,
    )
    .await?;
    let codes_ended = ended.backup_codes;
    audit::record(
        &txn,
        member.org_id,
        Event {
            action: AuditAction::MfaDisabled,
            actor: Some(&member),
            target: Some(&member),
            outcome: Outcome::Success,
            details: serde_json::json!({ "backup_codes_ended": codes_ended }),
        },
        source,
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// `update` with the authenticator gone: no secret in force or pending, no step accepted,
/// and no replacement being set up (turning MFA off, an administrator's reset).
pub(crate) fn without_authenticator(
    update: UpdateMany<user_account::Entity>,
) -> UpdateMany<user_account::Entity> {
    let update = update
        .col_expr(
            user_account::Column::TotpSecret,
            Expr::value(Option::<Vec<u8>>::None),
        )
        .col_expr(
            user_account::Column::TotpEnabledAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            user_account::Column::TotpLastStep,
            Expr::value(Option::<i64>::None),
        );
    without_replacement(update)
}

/// `update` with no replacement being set up.
fn without_replacement(
    update: UpdateMany<user_account::Entity>,
) -> UpdateMany<user_account::Entity> {
    update
        .col_expr(
            user_account::Column::TotpReplacementSecret,
            Expr::value(Option::<Vec<u8>>::None),
        )
        .col_expr(
            user_account::Column::TotpReplacementKeyVersion,
            Expr::value(Option::<i32>::None),
        )
}

/// The code an authenticator shows at `time`, for tests and tools that stand in for one.
pub fn code_at(setup_key: &str, time: DateTime<Utc>) -> Option<String> {
    let secret = totp_rs::Secret::Encoded(setup_key.to_owned())
        .to_bytes()
        .ok()?;
    let totp = TOTP::new(
        Algorithm::SHA1,
        DIGITS,
        1,
        STEP_SECONDS as u64,
        secret,
        None,
        String::new(),
    )
    .ok()?;
    Some(totp.generate(u64::try_from(time.timestamp()).ok()?))
}

async fn account(db: &DatabaseConnection, member_id: i32) -> Result<user_account::Model, MfaError> {
    user_account::Entity::find_by_id(member_id)
        .one(db)
        .await?
        .ok_or(MfaError::UnknownAccount)
}

/// Binds a sealed secret to its account, so that a secret copied to another row is useless.
/// What binds a sealed TOTP secret to its account: it opens for no other row.
pub(crate) fn seal_context(member_id: i32) -> Vec<u8> {
    format!("totp:user_account:{member_id}").into_bytes()
}

fn totp(secret: &[u8], account_name: &str) -> Result<TOTP, MfaError> {
    TOTP::new(
        Algorithm::SHA1,
        DIGITS,
        1,
        STEP_SECONDS as u64,
        secret.to_vec(),
        Some(ISSUER.to_owned()),
        account_name.to_owned(),
    )
    .map_err(|e| MfaError::Secret(e.to_string()))
}

/// What an authenticator app needs to know of `secret` for the account `email`.
fn enrolment(secret: &[u8], email: &str) -> Result<TotpEnrolment, MfaError> {
    let totp = totp(secret, email)?;
    Ok(TotpEnrolment {
        setup_key: totp.get_secret_base32(),
        otpauth_url: totp.get_url(),
    })
}

/// The time step (previous, current or next) whose code equals `code`, compared in constant
/// time. `sealed` is one of `row`'s secrets with the key version that sealed it.
fn matching_step(
    key: &SecretKey,
    row: &user_account::Model,
    (sealed, version): (&[u8], i32),
    code: &str,
    now: DateTime<Utc>,
) -> Result<Option<i64>, MfaError> {
    let secret = key
        .open(version, sealed, &seal_context(row.id))
        .map_err(|e| MfaError::Secret(e.to_string()))?;
    let totp = totp(&secret, &row.email)?;
    let current = now.timestamp().div_euclid(STEP_SECONDS);
    let mut matched = None;
    for step in [current - 1, current, current + 1] {
        let Ok(at) = u64::try_from(step * STEP_SECONDS) else {
            continue;
        };
        if bool::from(totp.generate(at).as_bytes().ct_eq(code.as_bytes())) {
            matched = Some(step);
        }
    }
    Ok(matched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_ascii_digits_with_optional_spaces() {
        assert_eq!(parse_code("123456").unwrap(), "123456");
        assert_eq!(parse_code(" 123 456 ").unwrap(), "123456");
        for bad in [
            "",
            "12345",
            "1234567",
            "12a456",
            "١٢٣٤٥٦",
            &"1".repeat(10_000),
        ] {
            let error = parse_code(bad).unwrap_err();
            assert_eq!(error.field, "code", "{bad}");
        }
    }

    #[test]
    fn code_at_matches_rfc_6238_test_vectors() {
        // RFC 6238 appendix B, SHA-1 secret "12345678901234567890", truncated to 6 digits.
        let key = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (2_000_000_000, "279037"),
        ] {
            let at = DateTime::from_timestamp(time, 0).unwrap();
            assert_eq!(code_at(key, at).unwrap(), code, "{time}");
        }
    }
}
