//! Personal access tokens for the JSON API (`/api/v1`).
//!
//! An owner or admin makes a token in the console: a name, the scopes it carries and how
//! many days it lives. The token is `lifeline_pat_` and 43 URL-safe characters (32 random
//! bytes), shown once; only its SHA-256 digest is stored, which is enough for a secret of
//! 256 bits (nothing to guess, so nothing to slow down with argon2). A call with a token
//! acts as its owner: the gate decides each call as it would for the owner's own page, and a
//! call outside the token's scopes is refused before that. Removing the owner removes the
//! token; lowering their role narrows what it can do.
//!
//! Creating and revoking a token and every call made with one are on the audit record
//! ([`AuditAction::ApiTokenCreated`], [`AuditAction::ApiTokenRevoked`],
//! [`AuditAction::ApiTokenUsed`]).
//!
//! This module is on the third floor: it imports the command, the gate and the record.

use std::fmt;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Duration, Utc};
use rand::{RngCore, rngs::OsRng};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, Set, TransactionTrait, sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::{
    audit::{AuditAction, Event, Outcome},
    authz::{Action, Authz, AuthzError, PolicyError},
    command::{Attempt, Command},
    entity::{api_token, user_account},
    identity::Member,
    input::{FieldError, single_line},
};

/// What every token starts with, so that secret scanners (and people) recognise one.
pub const TOKEN_PREFIX: &str = "lifeline_pat_";
/// Random bytes in a token.
const SECRET_BYTES: usize = 32;
/// Characters in a token: the prefix and the secret in unpadded base64 (4 per 3 bytes).
const TOKEN_CHARS: usize = TOKEN_PREFIX.len() + (SECRET_BYTES * 4).div_ceil(3);
/// Characters of the token kept to tell tokens apart: the prefix and four of the secret.
const SHOWN_CHARS: usize = TOKEN_PREFIX.len() + 4;
/// The longest token name, in characters.
pub const MAX_NAME_CHARS: usize = 80;
/// The lifetimes a token may be given, in days (a token that never ends is not offered).
pub const LIFETIME_DAYS: std::ops::RangeInclusive<u32> = 1..=366;
/// The lifetime the console proposes, in days.
pub const DEFAULT_LIFETIME_DAYS: u32 = 30;

macro_rules! scopes {
    ($($variant:ident = $name:literal, $words:literal;)+) => {
        /// What a token may be used for. A call needs the scope its endpoint names, and then
        /// the gate's word for the token's owner.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum Scope {
            $(
                #[doc = $words]
                $variant,
            )+
        }

        impl Scope {
            /// Every scope, in the order the console lists them.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The scope's name, as tokens and the API's documentation spell it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)+
                }
            }

            /// What the scope allows, in words.
            pub fn words(self) -> &'static str {
                match self {
                    $(Self::$variant => $words,)+
                }
            }
        }
    };
}

scopes! {
    MembersRead = "members:read", "List members with their MFA and backup-code standing";
    CodesRevoke = "codes:revoke", "Revoke a member's backup codes";
    MfaReset = "mfa:reset", "Reset a member's MFA";
    SignInCodesIssue = "sign_in_codes:issue", "Issue a sign-in code for a member";
    AuditRead = "audit:read", "Read the audit log";
    PolicyRead = "policy:read", "Read the backup-code policy and its history";
    PolicyWrite = "policy:write", "Change the backup-code policy";
}

impl Scope {
    /// The scope named `name`, if there is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|scope| scope.as_str() == name)
    }
}

/// A token in plaintext: no `Serialize`, and a `Debug` that hides it; [`PlainToken::expose`]
/// is the one way to read it, to show it once or to send it.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainToken(String);

impl PlainToken {
    fn random() -> Self {
        let mut secret = [0u8; SECRET_BYTES];
        OsRng.fill_bytes(&mut secret);
        Self(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret)))
    }

    /// The token, to show its owner once.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PlainToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainToken(…)")
    }
}

/// SHA-256 of a presented token, lowercase hex: how it is stored and looked up.
fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The console's "New token" form, as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenForm {
    pub name: String,
    /// Scope names (`members:read`, …), one per ticked box.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Days the token lives, as typed.
    pub lifetime_days: String,
}

/// A token to make, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub name: String,
    /// At least one, each once, in [`Scope::ALL`]'s order.
    pub scopes: Vec<Scope>,
    pub lifetime: Duration,
}

impl TokenForm {
    /// Checks the form.
    ///
    /// # Errors
    /// [`FieldError`] on `name` (blank, over [`MAX_NAME_CHARS`], several lines), `scopes`
    /// (none ticked, or one Lifeline does not know) or `lifetime_days` (not a whole number
    /// of days within [`LIFETIME_DAYS`]).
    pub fn parse(&self) -> Result<TokenRequest, FieldError> {
        let name = single_line("name", &self.name, MAX_NAME_CHARS)?;
        if name.is_empty() {
            return Err(FieldError::new(
                "name",
                "Name the token after what will use it, e.g. \"SIEM export\".",
            ));
        }
        let mut scopes = Vec::new();
        for typed in &self.scopes {
            let scope = Scope::parse(typed.trim()).ok_or_else(|| {
                FieldError::new(
                    "scopes",
                    format!("\"{typed}\" is not a scope Lifeline has."),
                )
            })?;
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        if scopes.is_empty() {
            return Err(FieldError::new(
                "scopes",
                "Choose at least one thing the token may do.",
            ));
        }
        scopes.sort_by_key(|scope| Scope::ALL.iter().position(|s| s == scope));
        let days = self
            .lifetime_days
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|days| LIFETIME_DAYS.contains(days))
            .ok_or_else(|| {
                FieldError::new(
                    "lifetime_days",
                    format!(
                        "Give a number of days from {} to {}.",
                        LIFETIME_DAYS.start(),
                        LIFETIME_DAYS.end()
                    ),
                )
            })?;
        Ok(TokenRequest {
            name: name.to_owned(),
            scopes,
            lifetime: Duration::days(i64::from(days)),
        })
    }
}

/// Whether a token works now, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenState {
    Active,
    Expired,
    Revoked,
}

impl TokenState {
    pub fn label(self) -> &'static str {
        match self {
            Self::Active => "Active",
            Self::Expired => "Expired",
            Self::Revoked => "Revoked",
        }
    }
}

/// One token as the console lists it: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenListing {
    pub id: i32,
    pub name: String,
    /// The token's first characters (`lifeline_pat_AbCd`).
    pub prefix: String,
    pub owner_id: i32,
    pub owner: String,
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub state: TokenState,
}

fn scopes_of(stored: &str) -> Vec<Scope> {
    stored.split_whitespace().filter_map(Scope::parse).collect()
}

fn listing(row: api_token::Model, owner: String, now: DateTime<Utc>) -> TokenListing {
    let state = if row.revoked_at.is_some() {
        TokenState::Revoked
    } else if row.expires_at <= now {
        TokenState::Expired
    } else {
        TokenState::Active
    };
    TokenListing {
        id: row.id,
        scopes: scopes_of(&row.scopes),
        name: row.name,
        prefix: row.prefix,
        owner_id: row.member_id,
        owner,
        created_at: row.created_at,
        expires_at: row.expires_at,
        last_used_at: row.last_used_at,
        revoked_at: row.revoked_at,
        state,
    }
}

/// Why a token was not made, listed or revoked. Nothing was written in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("You are not allowed to do that.")]
    NotAllowed,
    #[error("That token does not exist or was already revoked.")]
    Unknown,
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Database(#[from] DbErr),
}

impl From<AuthzError> for TokenError {
    fn from(error: AuthzError) -> Self {
        match error {
            AuthzError::Denied(_) => Self::NotAllowed,
            AuthzError::Policy(cause) => Self::Policy(cause),
            AuthzError::Database(cause) => Self::Database(cause),
        }
    }
}

/// A token just made: the token, this once, and its listing.
#[derive(Debug)]
pub struct CreatedToken {
    pub token: PlainToken,
    pub listing: TokenListing,
}

/// Makes a token for the actor from `form`, if the gate lets them manage tokens.
///
/// # Errors
/// [`TokenError::Invalid`] for the form, [`TokenError::NotAllowed`] (on the record).
pub async fn create(cmd: &Command<'_>, form: &TokenForm) -> Result<CreatedToken, TokenError> {
    let request = form.parse()?;
    let names: Vec<&str> = request.scopes.iter().map(|scope| scope.as_str()).collect();
    let scopes = names.join(" ");
    cmd.require(
        Action::ManageApiTokens,
        Attempt {
            action: AuditAction::ApiTokenCreated,
            target: Some(cmd.actor),
            details: serde_json::json!({ "name": request.name, "scopes": scopes }),
        },
    )
    .await?;
    let token = PlainToken::random();
    let txn = cmd.db.begin().await?;
    let row = api_token::ActiveModel {
        org_id: Set(cmd.actor.org_id),
        member_id: Set(cmd.actor.id),
        name: Set(request.name.clone()),
        prefix: Set(token.expose().chars().take(SHOWN_CHARS).collect()),
        digest: Set(digest(token.expose())),
        scopes: Set(scopes.clone()),
        created_at: Set(cmd.now),
        expires_at: Set(cmd.now + request.lifetime),
        last_used_at: Set(None),
        revoked_at: Set(None),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    cmd.record(
        &txn,
        cmd.event(
            AuditAction::ApiTokenCreated,
            Some(cmd.actor),
            serde_json::json!({
                "token": row.id,
                "name": request.name,
                "scopes": scopes,
                "expires_at": row.expires_at.to_rfc3339(),
            }),
        ),
    )
    .await?;
    txn.commit().await?;
    Ok(CreatedToken {
        token,
        listing: listing(row, cmd.actor.email.clone(), cmd.now),
    })
}

/// The tokens of the viewer's organization, newest first, for those who manage tokens.
///
/// # Errors
/// [`TokenError::NotAllowed`] unless the gate lets the viewer manage tokens.
pub async fn list(
    db: &DatabaseConnection,
    authz: &Authz,
    viewer: &Member,
    now: DateTime<Utc>,
) -> Result<Vec<TokenListing>, TokenError> {
    authz
        .require(viewer, viewer.org_id, Action::ManageApiTokens)
        .await?;
    let rows = api_token::Entity::find()
        .filter(api_token::Column::OrgId.eq(viewer.org_id))
        .order_by_desc(api_token::Column::Id)
        .all(db)
        .await?;
    let owners: std::collections::HashMap<i32, String> = user_account::Entity::find()
        .filter(user_account::Column::OrgId.eq(viewer.org_id))
        .filter(user_account::Column::Id.is_in(rows.iter().map(|row| row.member_id)))
        .all(db)
        .await?
        .into_iter()
        .map(|account| (account.id, account.email))
        .collect();
    Ok(rows
        .into_iter()
        .map(|row| {
            let owner = owners.get(&row.member_id).cloned().unwrap_or_default();
            listing(row, owner, now)
        })
        .collect())
}

/// Revokes a token of the actor's organization: it stops working at once. Those who manage
/// tokens revoke any of their organization's; a token already revoked is [`TokenError::Unknown`].
///
/// # Errors
/// [`TokenError::NotAllowed`] (on the record), [`TokenError::Unknown`].
pub async fn revoke(cmd: &Command<'_>, token_id: i32) -> Result<(), TokenError> {
    cmd.require(
        Action::ManageApiTokens,
        Attempt {
            details: serde_json::json!({ "token": token_id }),
            ..Attempt::of(AuditAction::ApiTokenRevoked)
        },
    )
    .await?;
    let row = api_token::Entity::find_by_id(token_id)
        .filter(api_token::Column::OrgId.eq(cmd.actor.org_id))
        .one(cmd.db)
        .await?
        .ok_or(TokenError::Unknown)?;
    let owner = crate::identity::member(cmd.db, row.member_id).await?;
    let txn = cmd.db.begin().await?;
    // Only over a token not yet revoked: of two revocations at once, one is recorded.
    let revoked = api_token::Entity::update_many()
        .col_expr(api_token::Column::RevokedAt, Expr::value(cmd.now))
        .filter(api_token::Column::Id.eq(row.id))
        .filter(api_token::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    if revoked.rows_affected != 1 {
        return Err(TokenError::Unknown);
    }
    cmd.record(
        &txn,
        cmd.event(
            AuditAction::ApiTokenRevoked,
            owner.as_ref(),
            serde_json::json!({ "token": row.id, "name": row.name }),
        ),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// A token that works, with the member it acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bearer {
    pub token_id: i32,
    pub name: String,
    pub scopes: Vec<Scope>,
    /// The owner, as the accounts table has them now.
    pub member: Member,
}

impl Bearer {
    /// Whether the token carries `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// Why a presented token does not work. Each is answered with 401 and the same words, so
/// the answer does not tell a guesser which tokens exist.
#[derive(Debug, thiserror::Error)]
pub enum BearerError {
    #[error("The token is missing, unknown, expired or revoked.")]
    Refused,
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// The token `presented` if it works at `now`: known, not revoked, not expired, and its
/// owner still a member of the token's organization.
///
/// # Errors
/// [`BearerError::Refused`] otherwise.
pub async fn authenticate(
    db: &impl ConnectionTrait,
    presented: &str,
    now: DateTime<Utc>,
) -> Result<Bearer, BearerError> {
    if !presented.starts_with(TOKEN_PREFIX) || presented.len() != TOKEN_CHARS {
        return Err(BearerError::Refused);
    }
    let row = api_token::Entity::find()
        .filter(api_token::Column::Digest.eq(digest(presented)))
        .filter(api_token::Column::RevokedAt.is_null())
        .filter(api_token::Column::ExpiresAt.gt(now))
        .one(db)
        .await?
        .ok_or(BearerError::Refused)?;
    let member = user_account::Entity::find_by_id(row.member_id)
        .filter(user_account::Column::OrgId.eq(row.org_id))
        .one(db)
        .await?
        .ok_or(BearerError::Refused)?;
    Ok(Bearer {
        token_id: row.id,
        scopes: scopes_of(&row.scopes),
        name: row.name,
        member: Member::try_from(member)?,
    })
}

/// One call made with a token, as the record keeps it.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// `GET`, `POST`, …
    pub method: &'a str,
    /// The route, with its parameters as placeholders (`/api/v1/members/{id}`).
    pub route: &'a str,
    /// The HTTP status answered.
    pub status: u16,
}

/// Records a call made with `bearer` ([`AuditAction::ApiTokenUsed`], refused when its status
/// is 403) and moves the token's last-used time, in one transaction; `cmd` is the token's
/// owner acting from the call's source.
pub async fn record_call(cmd: &Command<'_>, bearer: &Bearer, call: Call<'_>) -> Result<(), DbErr> {
    let txn = cmd.db.begin().await?;
    api_token::Entity::update_many()
        .col_expr(api_token::Column::LastUsedAt, Expr::value(cmd.now))
        .filter(api_token::Column::Id.eq(bearer.token_id))
        .exec(&txn)
        .await?;
    let outcome = match call.status {
        403 => Outcome::Denied,
        status if status >= 400 => Outcome::Failure,
        _ => Outcome::Success,
    };
    cmd.record(
        &txn,
        Event {
            action: AuditAction::ApiTokenUsed,
            actor: Some(cmd.actor),
            target: None,
            outcome,
            details: serde_json::json!({
                "token": bearer.token_id,
                "name": bearer.name,
                "method": call.method,
                "route": call.route,
                "status": call.status,
            }),
        },
    )
    .await?;
    txn.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(name: &str, scopes: &[&str], days: &str) -> TokenForm {
        TokenForm {
            name: name.to_owned(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            lifetime_days: days.to_owned(),
        }
    }

    #[test]
    fn the_form_answers_each_field_with_its_own_message() {
        let cases: &[(TokenForm, Option<&str>)] = &[
            (form("SIEM", &["audit:read"], "30"), None),
            (form("  ", &["audit:read"], "30"), Some("name")),
            (form(&"x".repeat(81), &["audit:read"], "30"), Some("name")),
            (form("a\nb", &["audit:read"], "30"), Some("name")),
            (form("SIEM", &[], "30"), Some("scopes")),
            (form("SIEM", &["audit:write"], "30"), Some("scopes")),
            (form("SIEM", &["audit:read"], "0"), Some("lifetime_days")),
            (form("SIEM", &["audit:read"], "367"), Some("lifetime_days")),
            (form("SIEM", &["audit:read"], "1"), None),
            (form("SIEM", &["audit:read"], "366"), None),
            (form("SIEM", &["audit:read"], "2.5"), Some("lifetime_days")),
            (form("SIEM", &["audit:read"], ""), Some("lifetime_days")),
        ];
        for (form, field) in cases {
            let answer = form.parse();
            assert_eq!(
                answer.as_ref().err().map(|e| e.field.as_str()),
                *field,
                "{form:?}: {answer:?}"
            );
        }
    }

    #[test]
    fn scopes_are_kept_once_each_in_catalogue_order() {
        let request = form("x", &["policy:read", "members:read", "policy:read"], "7")
            .parse()
            .unwrap();
        assert_eq!(request.scopes, vec![Scope::MembersRead, Scope::PolicyRead]);
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(*scope));
        }
    }

    #[test]
    fn a_token_is_random_prefixed_and_hidden_from_debug() {
        let (a, b) = (PlainToken::random(), PlainToken::random());
        assert_ne!(a, b);
        assert!(a.expose().starts_with(TOKEN_PREFIX));
        assert_eq!(a.expose().len(), TOKEN_CHARS);
        assert_eq!(TOKEN_CHARS, TOKEN_PREFIX.len() + 43);
        assert!(!format!("{a:?}").contains(&a.expose()[TOKEN_PREFIX.len()..]));
        assert_eq!(digest(a.expose()).len(), 64);
    }
}
