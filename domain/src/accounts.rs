//! Organizations and their members: creating them, listing and removing members, and
//! checking a password at sign-in.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, SqlErr, TransactionTrait,
    sea_query::Expr,
};
use serde::{Deserialize, Serialize};

use crate::{
    audit::{self, Event, Outcome, Source},
    authz::{Action, Attempt, Authz, AuthzError, PolicyError},
    entity::{organization, user_account},
    hashing::{HashError, PasswordHasher},
    lockout::{self, Factor},
    secrets::Password,
};

/// Passwords shorter than this are refused (NIST SP 800-63B asks for at least 8).
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longer passwords are refused: nobody types more, and hashing megabytes is a denial of service.
pub const MAX_PASSWORD_CHARS: usize = 256;
const MAX_EMAIL_CHARS: usize = 254;
const MAX_ORG_NAME_CHARS: usize = 100;
const MAX_SLUG_CHARS: usize = 64;

/// A problem with one input field, in words fit to show next to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    /// The form field the message belongs to (`email`, `password`, `name`, `code`, …).
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// Why an account operation did not happen. Nothing was written in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("There is no organization “{0}”.")]
    UnknownOrganization(String),
    #[error("That member does not exist.")]
    UnknownMember,
    #[error("You are not allowed to do that.")]
    NotAllowed,
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Database(#[from] DbErr),
}

impl From<AuthzError> for AccountError {
    fn from(error: AuthzError) -> Self {
        match error {
            AuthzError::Denied(_) => Self::NotAllowed,
            AuthzError::Policy(cause) => Self::Policy(cause),
            AuthzError::Database(cause) => Self::Database(cause),
        }
    }
}

/// An email address as Lifeline stores it: trimmed and lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Email(String);

impl Email {
    /// Parses what a person typed; refuses anything that is not a plausible address.
    pub fn parse(input: &str) -> Result<Self, FieldError> {
        let invalid = |message: &str| FieldError::new("email", message);
        let email = input.trim().to_lowercase();
        if email.is_empty() {
            return Err(invalid("Enter your email address."));
        }
        if email.chars().count() > MAX_EMAIL_CHARS {
            return Err(invalid("That email address is too long."));
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(invalid("Enter an email address like name@example.com."));
        };
        let allowed = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c);
        let plausible = !local.is_empty()
            && local.len() <= 64
            && local.chars().all(allowed)
            && !domain.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !plausible {
            return Err(invalid("Enter an email address like name@example.com."));
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a member may do in their organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Signs in and manages their own MFA and backup codes.
    Member,
    /// Also manages members and the organization's policy.
    Admin,
    /// The first admin; also manages admins.
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }

    pub fn parse(input: &str) -> Result<Self, FieldError> {
        match input.trim().to_ascii_lowercase().as_str() {
            "member" => Ok(Self::Member),
            "admin" => Ok(Self::Admin),
            "owner" => Ok(Self::Owner),
            _ => Err(FieldError::new("role", "Choose member, admin or owner.")),
        }
    }
}

/// Checks a new password against the length rules.
pub fn check_new_password(password: &Password) -> Result<(), FieldError> {
    let chars = password.expose().chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(FieldError::new(
            "password",
            format!("Use at least {MIN_PASSWORD_CHARS} characters."),
        ));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(FieldError::new(
            "password",
            format!("Use at most {MAX_PASSWORD_CHARS} characters."),
        ));
    }
    Ok(())
}

/// An organization as the rest of the product sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    pub id: i32,
    pub name: String,
    pub slug: String,
}

impl From<organization::Model> for Organization {
    fn from(row: organization::Model) -> Self {
        Self {
            id: row.id,
            name: row.name,
            slug: row.slug,
        }
    }
}

/// A member as the rest of the product sees them: no password hash, no TOTP secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: i32,
    pub org_id: i32,
    pub email: String,
    pub role: Role,
    pub mfa_enabled: bool,
    pub created_at: DateTime<Utc>,
    /// An admin reset this member's MFA: they must set it up again at their next sign-in.
    #[serde(default)]
    pub mfa_setup_required: bool,
    /// Sessions signed in under another number are over ([`end_sessions`]).
    #[serde(default)]
    pub session_epoch: i32,
}

impl TryFrom<user_account::Model> for Member {
    type Error = DbErr;

    fn try_from(row: user_account::Model) -> Result<Self, DbErr> {
        let role = Role::parse(&row.role)
            .map_err(|_| DbErr::Type(format!("unknown role {:?} on user {}", row.role, row.id)))?;
        Ok(Self {
            id: row.id,
            org_id: row.org_id,
            email: row.email,
            role,
            mfa_enabled: row.totp_enabled_at.is_some(),
            created_at: row.created_at,
            mfa_setup_required: row.mfa_setup_required,
            session_epoch: row.session_epoch,
        })
    }
}

/// Turns an organization's name into its slug: `Acme Corp.` → `acme-corp`.
pub fn slug_from_name(name: &str) -> Result<String, FieldError> {
    let mut slug = String::new();
    for c in name.trim().to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug: String = slug
        .trim_end_matches('-')
        .chars()
        .take(MAX_SLUG_CHARS)
        .collect();
    let slug = slug.trim_end_matches('-').to_owned();
    if slug.is_empty() {
        return Err(FieldError::new(
            "name",
            "Use a name with at least one letter or digit.",
        ));
    }
    Ok(slug)
}

fn check_org_name(name: &str) -> Result<String, FieldError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(FieldError::new("name", "Enter the organization's name."));
    }
    if name.chars().count() > MAX_ORG_NAME_CHARS {
        return Err(FieldError::new(
            "name",
            format!("Use at most {MAX_ORG_NAME_CHARS} characters."),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(FieldError::new(
            "name",
            "The name has invisible control characters.",
        ));
    }
    Ok(name.to_owned())
}

fn email_taken(error: DbErr) -> AccountError {
    match error.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(detail)) if detail.contains("email") => {
            FieldError::new(
                "email",
                "An account with this email address already exists.",
            )
            .into()
        }
        Some(SqlErr::UniqueConstraintViolation(detail)) if detail.contains("slug") => {
            FieldError::new("name", "An organization with this name already exists.").into()
        }
        _ => AccountError::Database(error),
    }
}

/// Creates an organization and its owner in one transaction.
pub async fn create_organization(
    db: &DatabaseConnection,
    hasher: &PasswordHasher,
    name: &str,
    owner_email: &str,
    password: &Password,
    now: DateTime<Utc>,
) -> Result<(Organization, Member), AccountError> {
    let name = check_org_name(name)?;
    let slug = slug_from_name(&name)?;
    let email = Email::parse(owner_email)?;
    check_new_password(password)?;
    let password_hash = hasher.hash(password).await?;

    let txn = db.begin().await?;
    let org = organization::ActiveModel {
        name: Set(name),
        slug: Set(slug),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .map_err(email_taken)?;
    audit::start_chain(&txn, org.id).await?;
    let owner = insert_member(&txn, org.id, &email, password_hash, Role::Owner, now).await?;
    audit::record(
        &txn,
        org.id,
        Event {
            action: "organization.created",
            actor: None,
            target: Some(&owner),
            outcome: Outcome::Success,
            details: serde_json::json!({ "name": org.name, "slug": org.slug }),
        },
        &Source::default(),
        now,
    )
    .await?;
    txn.commit().await?;
    Ok((org.into(), owner))
}

/// A member to add, as typed by an admin or on the command line.
#[derive(Debug, Clone, Copy)]
pub struct NewMember<'a> {
    pub email: &'a str,
    pub password: &'a Password,
    pub role: Role,
}

/// Adds a member to an organization. `by` is the admin doing it (with the gate that must let
/// them through and where the request came from), or `None` for the command line run by the
/// operator of the installation.
pub async fn create_member(
    db: &DatabaseConnection,
    hasher: &PasswordHasher,
    by: Option<(&Authz, &Member, &Source)>,
    org_id: i32,
    new: NewMember<'_>,
    now: DateTime<Utc>,
) -> Result<Member, AccountError> {
    let NewMember {
        email,
        password,
        role,
    } = new;
    if let Some((authz, actor, source)) = by {
        if actor.org_id != org_id {
            return Err(AccountError::NotAllowed);
        }
        let attempt = Attempt {
            action: "member.added",
            actor,
            target: None,
            details: serde_json::json!({
                "email": Email::parse(email).ok().map(|email| email.0),
                "role": role.as_str(),
            }),
            source,
            now,
        };
        authz
            .require_recorded(db, Action::AddAccount(role), attempt)
            .await?;
    }
    let email = Email::parse(email)?;
    check_new_password(password)?;
    if organization::Entity::find_by_id(org_id)
        .one(db)
        .await?
        .is_none()
    {
        return Err(AccountError::UnknownOrganization(org_id.to_string()));
    }
    let password_hash = hasher.hash(password).await?;
    let txn = db.begin().await?;
    let member = insert_member(&txn, org_id, &email, password_hash, role, now).await?;
    let (actor, source) = match by {
        Some((_, actor, source)) => (Some(actor), source.clone()),
        None => (None, Source::default()),
    };
    audit::record(
        &txn,
        org_id,
        Event {
            action: "member.added",
            actor,
            target: Some(&member),
            outcome: Outcome::Success,
            details: serde_json::json!({
                "role": role.as_str(),
                "by": if actor.is_some() { "admin" } else { "command line" },
            }),
        },
        &source,
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(member)
}

async fn insert_member(
    db: &impl ConnectionTrait,
    org_id: i32,
    email: &Email,
    password_hash: String,
    role: Role,
    now: DateTime<Utc>,
) -> Result<Member, AccountError> {
    let row = user_account::ActiveModel {
        org_id: Set(org_id),
        email: Set(email.as_str().to_owned()),
        password_hash: Set(password_hash),
        role: Set(role.as_str().to_owned()),
        totp_secret: Set(None),
        totp_enabled_at: Set(None),
        totp_last_step: Set(None),
        created_at: Set(now),
        mfa_setup_required: Set(false),
        ..Default::default()
    }
    .insert(db)
    .await
    .map_err(email_taken)?;
    Ok(Member::try_from(row)?)
}

/// The organization with this slug (as typed on the command line).
pub async fn organization_by_slug(
    db: &DatabaseConnection,
    slug: &str,
) -> Result<Organization, AccountError> {
    let slug = slug.trim().to_lowercase();
    organization::Entity::find()
        .filter(organization::Column::Slug.eq(slug.as_str()))
        .one(db)
        .await?
        .map(Organization::from)
        .ok_or(AccountError::UnknownOrganization(slug))
}

/// The organization with this id.
pub async fn organization(db: &DatabaseConnection, id: i32) -> Result<Organization, AccountError> {
    organization::Entity::find_by_id(id)
        .one(db)
        .await?
        .map(Organization::from)
        .ok_or(AccountError::UnknownOrganization(id.to_string()))
}

/// How many organizations exist (zero on a fresh installation).
pub async fn organization_count(db: &DatabaseConnection) -> Result<u64, DbErr> {
    organization::Entity::find().count(db).await
}

/// Every organization's id, oldest first (for work done across all of them).
pub async fn organization_ids(db: &DatabaseConnection) -> Result<Vec<i32>, DbErr> {
    organization::Entity::find()
        .select_only()
        .column(organization::Column::Id)
        .order_by_asc(organization::Column::Id)
        .into_tuple()
        .all(db)
        .await
}

/// The member with this id, if they still exist.
pub async fn member(db: &DatabaseConnection, id: i32) -> Result<Option<Member>, DbErr> {
    user_account::Entity::find_by_id(id)
        .one(db)
        .await?
        .map(Member::try_from)
        .transpose()
}

/// Every member of an organization, oldest first.
pub async fn list_members(db: &DatabaseConnection, org_id: i32) -> Result<Vec<Member>, DbErr> {
    user_account::Entity::find()
        .filter(user_account::Column::OrgId.eq(org_id))
        .order_by_asc(user_account::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(Member::try_from)
        .collect()
}

/// The email addresses of an organization's owners and admins: who a member asks for help.
pub async fn admin_contacts(db: &DatabaseConnection, org_id: i32) -> Result<Vec<String>, DbErr> {
    Ok(user_account::Entity::find()
        .filter(user_account::Column::OrgId.eq(org_id))
        .filter(user_account::Column::Role.ne(Role::Member.as_str()))
        .order_by_asc(user_account::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(|row| row.email)
        .collect())
}

/// Removes a member, if the gate lets `actor` remove an account of that role. Nobody
/// removes themselves: an organization must not lose its last owner by a slip.
pub async fn remove_member(
    db: &DatabaseConnection,
    authz: &Authz,
    actor: &Member,
    member_id: i32,
    source: &Source,
    now: DateTime<Utc>,
) -> Result<Member, AccountError> {
    // Another organization's member reads as no member at all: ids do not leak across.
    let target = member(db, member_id)
        .await?
        .filter(|target| target.org_id == actor.org_id)
        .ok_or(AccountError::UnknownMember)?;
    if target.id == actor.id {
        return Err(AccountError::NotAllowed);
    }
    let attempt = Attempt {
        action: "member.removed",
        actor,
        target: Some(&target),
        details: serde_json::json!({ "role": target.role.as_str() }),
        source,
        now,
    };
    authz
        .require_recorded(db, Action::RemoveAccount(target.role), attempt)
        .await?;
    let txn = db.begin().await?;
    // Their exception goes with them (a cascade), and so must the rules it compiled to;
    // first, so that the revision row is locked before the account row, as policy changes
    // lock them.
    crate::org_policy::forget_member_rules(&txn, target.org_id, target.id).await?;
    user_account::Entity::delete_by_id(target.id)
        .exec(&txn)
        .await?;
    audit::record(
        &txn,
        actor.org_id,
        Event {
            action: "member.removed",
            actor: Some(actor),
            target: Some(&target),
            outcome: Outcome::Success,
            details: serde_json::json!({ "role": target.role.as_str() }),
        },
        source,
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(target)
}

/// Ends every session of `member_id`, on every instance: sessions remember the number they
/// were signed in under, and this raises the account's.
pub async fn end_sessions(db: &impl ConnectionTrait, member_id: i32) -> Result<(), DbErr> {
    user_account::Entity::update_many()
        .col_expr(
            user_account::Column::SessionEpoch,
            Expr::col(user_account::Column::SessionEpoch).add(1),
        )
        .filter(user_account::Column::Id.eq(member_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Checks an email and password at sign-in. Unknown email, wrong password and a locked
/// password give the same answer (`None`) in the same time: each costs one argon2
/// verification. A refusal for an existing account is recorded in its organization's audit
/// log and counted towards the lockout ([`crate::lockout`]) after the answer, so that the
/// writes do not make known emails slower to refuse.
pub async fn verify_password(
    db: &DatabaseConnection,
    hasher: &PasswordHasher,
    email: &Email,
    password: &Password,
    source: &Source,
    now: DateTime<Utc>,
) -> Result<Option<Member>, DbErr> {
    let row = user_account::Entity::find()
        .filter(user_account::Column::Email.eq(email.as_str()))
        .one(db)
        .await?;
    let check = check_password(db, hasher, row.as_ref(), password, now).await?;
    let member = row.map(Member::try_from).transpose()?;
    if check.passes {
        return Ok(member);
    }
    if let Some(member) = member {
        let (db, source) = (db.clone(), source.clone());
        tokio::spawn(async move {
            let refused = record_password_refusal(&db, &member, check.locked, &source, now);
            if let Err(error) = refused.await {
                tracing::warn!(%error, member = member.id, "recording a failed sign-in");
            }
        });
    }
    Ok(None)
}

/// A password checked under the per-account lockout.
#[derive(Debug, Clone, Copy)]
struct PasswordCheck {
    /// Right, and the password factor not locked.
    passes: bool,
    locked: bool,
}

/// Checks `password` against `row`'s hash (a dummy hash when there is no row) under the
/// password lockout, with the same work whether or not it is right or locked; a pass clears
/// the account's count of wrong ones.
async fn check_password(
    db: &DatabaseConnection,
    hasher: &PasswordHasher,
    row: Option<&user_account::Model>,
    password: &Password,
    now: DateTime<Utc>,
) -> Result<PasswordCheck, DbErr> {
    // Asked for unknown emails too (id 0 has no row), so that known ones take no longer.
    let member_id = row.map_or(0, |row| row.id);
    let locked = lockout::locked_until(db, member_id, Factor::Password, now)
        .await?
        .is_some();
    let right = hasher
        .verify(password, row.map(|row| row.password_hash.as_str()))
        .await;
    let passes = right && !locked;
    if passes {
        lockout::clear(db, member_id, Factor::Password).await?;
    }
    Ok(PasswordCheck { passes, locked })
}

/// Records a refused password for `member` and counts it towards the lockout.
async fn record_password_refusal(
    db: &DatabaseConnection,
    member: &Member,
    locked: bool,
    source: &Source,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let limits = crate::org_policy::current(db, member.org_id)
        .await?
        .policy
        .code_policy()
        .limits();
    lockout::record_refusal(db, member, Factor::Password, locked, limits, source, now).await
}

/// Records a sign-in, with its method: `password`, `password+totp`, `password+backup_code`
/// or `password+recovery_code`. (A refused factor is recorded by [`lockout::record_refusal`],
/// which also counts it.)
pub async fn record_sign_in(
    db: &DatabaseConnection,
    member: &Member,
    method: &str,
    source: &Source,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    audit::record(
        db,
        member.org_id,
        Event {
            action: "sign_in.succeeded",
            actor: Some(member),
            target: Some(member),
            outcome: Outcome::Success,
            details: serde_json::json!({ "method": method }),
        },
        source,
        now,
    )
    .await
}

/// Checks the signed-in `member`'s password again (before a sensitive change), under the
/// same per-account lockout as signing in: a wrong one is recorded and counted, and while
/// the password is locked the right one is refused too, after the same work.
pub async fn confirm_password(
    db: &DatabaseConnection,
    hasher: &PasswordHasher,
    member: &Member,
    password: &Password,
    source: &Source,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let row = user_account::Entity::find_by_id(member.id).one(db).await?;
    let check = check_password(db, hasher, row.as_ref(), password, now).await?;
    if !check.passes {
        record_password_refusal(db, member, check.locked, source, now).await?;
    }
    Ok(check.passes)
}
