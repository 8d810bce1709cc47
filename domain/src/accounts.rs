//! Organizations and their members: creating them, listing and removing members, ending a
//! member's sessions, and checking a password under the per-account lockout (the sign-in
//! path in [`crate::sign_in`] and re-authentication before a sensitive change).

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set, SqlErr, TransactionTrait,
    sea_query::Expr,
};

use crate::{
    audit::{self, AuditAction, Event, Outcome, Source},
    authz::{Action, AuthzError, PolicyError, rules},
    command::{Attempt, Command},
    entity::{organization, user_account},
    hashing::{HashError, PasswordHasher},
    identity::{Email, Member, Organization, Role},
    input::{FieldError, single_line},
    lockout::{self, Attempter, Factor, Limits, Refusal, Ticket},
    secrets::Password,
};

pub mod setup;

/// Passwords shorter than this are refused (NIST SP 800-63B asks for at least 8).
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longer passwords are refused: nobody types more, and hashing megabytes is a denial of service.
pub const MAX_PASSWORD_CHARS: usize = 256;
const MAX_ORG_NAME_CHARS: usize = 100;
const MAX_SLUG_CHARS: usize = 64;

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
    #[error("An organization keeps at least one owner: make another member an owner first.")]
    LastOwner,
    #[error("This installation is already set up: sign in instead.")]
    AlreadySetUp,
    #[error(
        "This setup link does not work: it was used, or the server restarted since. Use the \
         link in the server's log."
    )]
    SetupLinkInvalid,
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
    Ok(single_line("name", name, MAX_ORG_NAME_CHARS)?.to_owned())
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
    let new = NewOrganization::check(name, owner_email, password)?;
    let password_hash = hasher.hash(password).await?;
    let txn = db.begin().await?;
    let created = new.insert(&txn, password_hash, now).await?;
    txn.commit().await?;
    Ok(created)
}

/// A new organization and its owner, checked before anything is hashed or written.
struct NewOrganization {
    name: String,
    slug: String,
    email: Email,
}

impl NewOrganization {
    /// Errors: a field error on `name`, `email` or `password`.
    fn check(name: &str, owner_email: &str, password: &Password) -> Result<Self, AccountError> {
        let name = check_org_name(name)?;
        let slug = slug_from_name(&name)?;
        let email = Email::parse(owner_email)?;
        check_new_password(password)?;
        Ok(Self { name, slug, email })
    }

    /// Writes the organization, its audit chain, its owner and `organization.created` in
    /// `txn`.
    async fn insert(
        self,
        txn: &DatabaseTransaction,
        password_hash: String,
        now: DateTime<Utc>,
    ) -> Result<(Organization, Member), AccountError> {
        let org = organization::ActiveModel {
            name: Set(self.name),
            slug: Set(self.slug),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(txn)
        .await
        .map_err(email_taken)?;
        audit::start_chain(txn, org.id).await?;
        let owner =
            insert_member(txn, org.id, &self.email, password_hash, Role::Owner, now).await?;
        audit::record(
            txn,
            org.id,
            Event {
                action: AuditAction::OrganizationCreated,
                actor: None,
                target: Some(&owner),
                outcome: Outcome::Success,
                details: serde_json::json!({ "name": org.name, "slug": org.slug }),
            },
            &Source::default(),
            now,
        )
        .await?;
        Ok((org.into(), owner))
    }
}

/// A member to add, as typed by an admin or on the command line.
#[derive(Debug, Clone, Copy)]
pub struct NewMember<'a> {
    pub email: &'a str,
    pub password: &'a Password,
    pub role: Role,
}

/// Adds a member to an organization. `by` is the admin's command (with the gate that must
/// let them through), or `None` for the command line run by the operator of the
/// installation.
pub async fn create_member(
    db: &DatabaseConnection,
    hasher: &PasswordHasher,
    by: Option<&Command<'_>>,
    org_id: i32,
    new: NewMember<'_>,
    now: DateTime<Utc>,
) -> Result<Member, AccountError> {
    let NewMember {
        email,
        password,
        role,
    } = new;
    if let Some(cmd) = by {
        if cmd.actor.org_id != org_id {
            return Err(AccountError::NotAllowed);
        }
        let attempt = Attempt {
            details: serde_json::json!({
                "email": Email::parse(email).ok().map(|email| email.as_str().to_owned()),
                "role": role.as_str(),
            }),
            ..Attempt::of(AuditAction::MemberAdded)
        };
        cmd.require(Action::AddAccount(role), attempt).await?;
    }
    let email = Email::parse(email)?;
    check_new_password(password)?;
    if crate::identity::organization(db, org_id).await?.is_none() {
        return Err(AccountError::UnknownOrganization(org_id.to_string()));
    }
    let password_hash = hasher.hash(password).await?;
    let txn = db.begin().await?;
    let member = insert_member(&txn, org_id, &email, password_hash, role, now).await?;
    let (actor, source) = match by {
        Some(cmd) => (Some(cmd.actor), cmd.source.clone()),
        None => (None, Source::default()),
    };
    audit::record(
        &txn,
        org_id,
        Event {
            action: AuditAction::MemberAdded,
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
    crate::identity::organization(db, id)
        .await?
        .ok_or(AccountError::UnknownOrganization(id.to_string()))
}

/// How many organizations exist (zero on a fresh installation).
pub async fn organization_count(db: &DatabaseConnection) -> Result<u64, DbErr> {
    organization::Entity::find().count(db).await
}

/// The member with this id, if they still exist.
pub async fn member(db: &DatabaseConnection, id: i32) -> Result<Option<Member>, DbErr> {
    crate::identity::member(db, id).await
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
    crate::identity::admin_contacts(db, org_id).await
}

/// Removes a member, if the gate lets the actor remove an account of that role. Nobody
/// removes themselves: an organization must not lose its last owner by a slip.
pub async fn remove_member(cmd: &Command<'_>, member_id: i32) -> Result<Member, AccountError> {
    let actor = cmd.actor;
    // Another organization's member reads as no member at all: ids do not leak across.
    let target = member(cmd.db, member_id)
        .await?
        .filter(|target| target.org_id == actor.org_id)
        .ok_or(AccountError::UnknownMember)?;
    if target.id == actor.id {
        return Err(AccountError::NotAllowed);
    }
    let details = serde_json::json!({ "role": target.role.as_str() });
    let attempt = Attempt {
        action: AuditAction::MemberRemoved,
        target: Some(&target),
        details: details.clone(),
    };
    cmd.require(Action::RemoveAccount(target.role), attempt)
        .await?;
    let txn = cmd.db.begin().await?;
    keep_an_owner(&txn, target.org_id, target.id).await?;
    // What stood in for their second factor ends on the record before the rows go.
    crate::recovery_codes::stand_ins::end_stand_ins(
        &txn,
        Some(actor),
        &target,
        crate::recovery_codes::stand_ins::EndReason::MemberRemoved,
        cmd.source,
        cmd.now,
    )
    .await?;
    // Their exception goes with them (a cascade), and so must the rules it compiled to;
    // first, so that the revision row is locked before the account row, as policy changes
    // lock them.
    rules::forget_member(&txn, target.org_id, target.id).await?;
    user_account::Entity::delete_by_id(target.id)
        .exec(&txn)
        .await?;
    cmd.record(
        &txn,
        cmd.event(AuditAction::MemberRemoved, Some(&target), details),
    )
    .await?;
    txn.commit().await?;
    Ok(target)
}

/// Refuses, with [`AccountError::LastOwner`], a change that would leave organization
/// `org_id` without an owner once `leaving` is no longer one. `db` is the transaction making
/// the change: its organization row is locked first (PostgreSQL; SQLite has one writer), so
/// that changes to who owns an organization are made one at a time and two owners removing
/// each other at once leave one. Call it before the change.
pub(crate) async fn keep_an_owner(
    db: &impl ConnectionTrait,
    org_id: i32,
    leaving: i32,
) -> Result<(), AccountError> {
    organization::Entity::update_many()
        .col_expr(
            organization::Column::Name,
            Expr::col(organization::Column::Name).into(),
        )
        .filter(organization::Column::Id.eq(org_id))
        .exec(db)
        .await?;
    let leaving_is_owner = user_account::Entity::find_by_id(leaving)
        .one(db)
        .await?
        .is_some_and(|row| row.role == Role::Owner.as_str());
    if !leaving_is_owner {
        return Ok(());
    }
    let other_owners = user_account::Entity::find()
        .filter(user_account::Column::OrgId.eq(org_id))
        .filter(user_account::Column::Role.eq(Role::Owner.as_str()))
        .filter(user_account::Column::Id.ne(leaving))
        .count(db)
        .await?;
    if other_owners == 0 {
        return Err(AccountError::LastOwner);
    }
    Ok(())
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

/// A password checked under the per-account limit ([`check_password`]).
#[derive(Debug)]
pub(crate) enum PasswordCheck {
    /// No account has that email (the same work was done, against a dummy hash).
    NoAccount,
    /// Right: settle the attempt with what the pass leads to.
    Passed(Ticket),
    /// Wrong, or no attempt could be reserved; with the organization's numbers.
    Refused(Refusal, Limits),
}

/// The organization's lockout numbers.
pub(crate) async fn limits_of(db: &impl ConnectionTrait, org_id: i32) -> Result<Limits, DbErr> {
    Ok(crate::org_policy::current(db, org_id)
        .await?
        .policy
        .code_policy()
        .limits())
}

/// Checks `password` against `row`'s hash under the per-account limit: an attempt is
/// reserved ([`lockout::reserve`], counted by `source`'s device cookie or with every
/// untrusted source) while the hash is verified, whatever the reservation says (a dummy hash
/// when there is no row), so every answer costs one argon2 evaluation; the result counts
/// only for a reserved attempt.
pub(crate) async fn check_password(
    db: &DatabaseConnection,
    hasher: &PasswordHasher,
    row: Option<&user_account::Model>,
    password: &Password,
    source: &Source,
    now: DateTime<Utc>,
) -> Result<PasswordCheck, AccountError> {
    // A place with the hasher first: a busy server says so before an attempt is reserved,
    // so that its refusal counts against no one.
    let admission = hasher.admit()?;
    // The reservation (its reads and its commit) runs while the hash is verified, so that it
    // adds no time to the answer; the verification's result counts only for a reserved
    // attempt, below.
    let reservation = async {
        match row {
            Some(row) => {
                let limits = limits_of(db, row.org_id).await?;
                let attempter = Attempter::of(source, row.id);
                let ticket =
                    lockout::reserve(db, row.id, Factor::Password, &attempter, limits, now).await?;
                Ok::<_, AccountError>(Some((ticket, limits)))
            }
            None => Ok(None),
        }
    };
    let verification = async {
        Ok::<_, AccountError>(
            admission
                .matches(password, row.map(|row| row.password_hash.as_str()))
                .await?,
        )
    };
    let (reserved, right) = tokio::try_join!(reservation, verification)?;
    Ok(match reserved {
        None => PasswordCheck::NoAccount,
        Some((None, limits)) => PasswordCheck::Refused(Refusal::Locked, limits),
        Some((Some(ticket), _)) if right => PasswordCheck::Passed(ticket),
        Some((Some(ticket), limits)) => PasswordCheck::Refused(Refusal::Wrong(ticket), limits),
    })
}

/// Checks the signed-in `member`'s password again (before a sensitive change), under the
/// same per-account limit as signing in: a wrong one is recorded and counted before the
/// answer, and while the password is locked the right one is refused too, after the same
/// work.
pub async fn confirm_password(
    db: &DatabaseConnection,
    hasher: &PasswordHasher,
    member: &Member,
    password: &Password,
    source: &Source,
    now: DateTime<Utc>,
) -> Result<bool, AccountError> {
    let row = user_account::Entity::find_by_id(member.id).one(db).await?;
    match check_password(db, hasher, row.as_ref(), password, source, now).await? {
        PasswordCheck::Passed(ticket) => {
            ticket.passed(db).await?;
            Ok(true)
        }
        PasswordCheck::Refused(refusal, limits) => {
            lockout::record_refusal(db, member, Factor::Password, refusal, limits, source, now)
                .await?;
            Ok(false)
        }
        PasswordCheck::NoAccount => Ok(false),
    }
}
