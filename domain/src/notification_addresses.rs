//! A member's second address for security notifications (NIST SP 800-63B-4 §4.6: notify at
//! every address on record). It gets the same notices as the sign-in address once it is
//! verified: a link sent to it, followed within 24 hours. Adding, verifying and removing it
//! are on the audit record, and each tells the member (a stranger adding their own address
//! is what the member must hear of).
//!
//! The link's token is 128 random bits (base64url); the table keeps only its SHA-256.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Duration, Utc};
use rand::{RngCore, rngs::OsRng};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, TransactionTrait, sea_query::Expr,
};
use sha2::{Digest, Sha256};

use crate::{
    audit::{self, AuditAction, Event, Outcome, Source},
    command::Command,
    entity::{audit_event, notification_address},
    identity::{self, Email, Member},
    input::FieldError,
    notifications::{self, Message, Notice, not_me},
};

/// How long a verification link works.
pub const VERIFY_WITHIN: Duration = Duration::hours(24);
/// Second addresses a member may add in a day: each one sends a message to an address the
/// member typed, which must not become a way to mail strangers.
pub const ADDS_PER_DAY: u64 = 3;
/// The path of the verification page, under the server's public address.
pub const VERIFY_PATH: &str = "/account/notification-address/verify";

/// A member's second address, as their account page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecondAddress {
    pub email: String,
    /// Verified: it gets the member's notices. Otherwise a link was sent and not followed.
    pub verified: bool,
}

/// Why a second address was not added or verified. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The link is unknown, was replaced by a newer one, or was used.
    #[error("this link does not confirm any address: it may have been replaced or used already")]
    UnknownLink,
    /// Older than [`VERIFY_WITHIN`].
    #[error("this link has expired: links work for 24 hours; add the address again")]
    Expired,
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// `member`'s second address, if they added one.
pub async fn second_address(
    db: &impl ConnectionTrait,
    member: &Member,
) -> Result<Option<SecondAddress>, DbErr> {
    Ok(crate::notifications::second_address(db, member.id)
        .await?
        .map(|(email, verified)| SecondAddress { email, verified }))
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Sets the actor's second address to `email` (replacing any before it, verified or not) and
/// sends a verification link to it; `notification_address.added` tells the member at their
/// sign-in address. At most [`ADDS_PER_DAY`] a day, however many arrive at once. Errors: an
/// address that is not one, or is their sign-in address; the day's additions used up.
pub async fn add(cmd: &Command<'_>, email: &str) -> Result<(), AddressError> {
    let member = cmd.actor;
    let email = Email::parse(email)?;
    if email.as_str() == member.email {
        return Err(FieldError::new(
            "email",
            "That is the address you sign in with: enter another one.",
        )
        .into());
    }
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let txn = cmd.db.begin().await?;
    // A write first, on the member's own row: additions by one member take turns (a row lock
    // on PostgreSQL; SQLite has one writer), so the day's count below cannot go stale.
    crate::db::take_turns_on_member(&txn, member.id).await?;
    let added_today = audit_event::Entity::find()
        .filter(audit_event::Column::TargetId.eq(member.id))
        .filter(audit_event::Column::Action.eq(AuditAction::NotificationAddressAdded.as_str()))
        .filter(audit_event::Column::At.gt(cmd.now - Duration::days(1)))
        .count(&txn)
        .await?;
    if added_today >= ADDS_PER_DAY {
        return Err(FieldError::new(
            "email",
            format!(
                "You have added {ADDS_PER_DAY} addresses in the last 24 hours: try again \
                 tomorrow."
            ),
        )
        .into());
    }
    // The old address, if any, goes.
    notification_address::Entity::delete_many()
        .filter(notification_address::Column::UserId.eq(member.id))
        .exec(&txn)
        .await?;
    notification_address::Entity::insert(notification_address::ActiveModel {
        user_id: Set(member.id),
        email: Set(email.as_str().to_owned()),
        token_digest: Set(digest(&token)),
        created_at: Set(cmd.now),
        verified_at: Set(None),
        ..Default::default()
    })
    .exec_without_returning(&txn)
    .await?;
    let link = format!("{}{VERIFY_PATH}?token={token}", not_me::base_url());
    let notice = Notice {
        subject: "Confirm this address for Lifeline security notifications".to_owned(),
        what: format!(
            "{} asked for a copy of their Lifeline security notifications at this address.",
            member.email
        ),
        facts: vec![("Confirm within 24 hours", link)],
        status: None,
        if_you: "If that is you, open the link above and confirm.".to_owned(),
        if_not_you: "If you did not ask for this, ignore this message: nothing will be sent \
                     here."
            .to_owned(),
        contacts: identity::admin_contacts(&txn, member.org_id).await?,
        not_me: None,
    };
    notifications::enqueue(
        &txn,
        Message {
            org_id: member.org_id,
            user_id: Some(member.id),
            kind: "notification_address.verify",
            recipient: email.as_str(),
            rendered: notifications::render(&notice),
        },
        cmd.now,
    )
    .await?;
    cmd.record(
        &txn,
        cmd.event(
            AuditAction::NotificationAddressAdded,
            Some(member),
            serde_json::json!({ "address": email.as_str() }),
        ),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Verifies the address the link with `token` was sent to; `notification_address.verified`
/// tells the member at both addresses. Errors: an unknown, replaced or used link; an expired
/// one.
pub async fn verify(
    db: &DatabaseConnection,
    token: &str,
    source: &Source,
    now: DateTime<Utc>,
) -> Result<SecondAddress, AddressError> {
    let digest = digest(token.trim());
    let txn = db.begin().await?;
    // A write first (SQLite): the row is taken only while unverified and fresh.
    let verified = notification_address::Entity::update_many()
        .col_expr(notification_address::Column::VerifiedAt, Expr::value(now))
        .filter(notification_address::Column::TokenDigest.eq(&digest))
        .filter(notification_address::Column::VerifiedAt.is_null())
        .filter(notification_address::Column::CreatedAt.gt(now - VERIFY_WITHIN))
        .exec(&txn)
        .await?
        .rows_affected;
    let row = notification_address::Entity::find()
        .filter(notification_address::Column::TokenDigest.eq(&digest))
        .one(&txn)
        .await?;
    let (Some(row), 1) = (row.as_ref(), verified) else {
        let expired = row.is_some_and(|row| row.verified_at.is_none());
        return Err(if expired {
            AddressError::Expired
        } else {
            AddressError::UnknownLink
        });
    };
    let member = identity::member(&txn, row.user_id)
        .await?
        .ok_or(AddressError::UnknownLink)?;
    audit::record(
        &txn,
        member.org_id,
        Event {
            action: AuditAction::NotificationAddressVerified,
            actor: Some(&member),
            target: Some(&member),
            outcome: Outcome::Success,
            details: serde_json::json!({ "address": row.email }),
        },
        source,
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(SecondAddress {
        email: row.email.clone(),
        verified: true,
    })
}

/// Removes the actor's second address, if they have one; `notification_address.removed`
/// tells them at their sign-in address.
pub async fn remove(cmd: &Command<'_>) -> Result<(), AddressError> {
    let member = cmd.actor;
    let Some(row) = notification_address::Entity::find()
        .filter(notification_address::Column::UserId.eq(member.id))
        .one(cmd.db)
        .await?
    else {
        return Ok(());
    };
    let txn = cmd.db.begin().await?;
    // A write first (SQLite); a removal that lost a race removes nothing and says nothing.
    let removed = notification_address::Entity::delete_many()
        .filter(notification_address::Column::Id.eq(row.id))
        .exec(&txn)
        .await?
        .rows_affected;
    if removed != 1 {
        return Ok(());
    }
    cmd.record(
        &txn,
        cmd.event(
            AuditAction::NotificationAddressRemoved,
            Some(member),
            serde_json::json!({ "address": row.email }),
        ),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}
