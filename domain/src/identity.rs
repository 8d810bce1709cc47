//! Who is who: organizations, their members and roles, and email addresses as Lifeline
//! stores them. The nouns every other module speaks of.
//!
//! The ground floor of the domain: this module imports only [`crate::input`] and the table
//! definitions, never a feature module.

use chrono::{DateTime, Utc};
use sea_orm::DbErr;
use serde::{Deserialize, Serialize};

use crate::{
    entity::{organization, user_account},
    input::FieldError,
};

/// Longest email address accepted (RFC 5321's path limit).
const MAX_EMAIL_CHARS: usize = 254;

/// An email address as Lifeline stores it: trimmed and lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Email(String);

impl Email {
    /// Parses what a person typed; refuses anything that is not a plausible address.
    ///
    /// # Errors
    /// [`FieldError`] on `email`, worded for the person who typed it.
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

/// What a member may do in their organization. The gate ([`crate::authz`]) decides what
/// each role may do (`policies/policy.csv`); this is only the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Signs in and manages their own MFA and backup codes.
    Member,
    /// Also reads, and changes nothing: the audit log, the compliance report, the policy and
    /// its history, and their exports.
    Auditor,
    /// Also helps members (never admins, owners or other help-desk staff) back into their
    /// accounts: unlocks them and requests, approves and reveals recovery codes for them.
    Helpdesk,
    /// Also manages members and the organization's policy.
    Admin,
    /// The first admin; also manages admins.
    Owner,
}

impl Role {
    /// Every role, most powerful first.
    pub const ALL: [Self; 5] = [
        Self::Owner,
        Self::Admin,
        Self::Helpdesk,
        Self::Auditor,
        Self::Member,
    ];

    /// The roles that run the organization: who members are told to ask for help, and who
    /// gets an administrator alert. Not auditors, who change nothing, nor help-desk staff,
    /// who help members back in but set no policy.
    pub const ADMINISTRATORS: [Self; 2] = [Self::Owner, Self::Admin];

    /// Its name in the database, in Casbin rules and in forms.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Auditor => "auditor",
            Self::Helpdesk => "helpdesk",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }

    /// # Errors
    /// [`FieldError`] on `role` for anything but a role's name ([`Role::as_str`]);
    /// `help-desk` is read as `helpdesk`.
    pub fn parse(input: &str) -> Result<Self, FieldError> {
        let name = input.trim().to_ascii_lowercase();
        let name = if name == "help-desk" {
            "helpdesk"
        } else {
            name.as_str()
        };
        Self::ALL
            .into_iter()
            .find(|role| role.as_str() == name)
            .ok_or_else(|| {
                FieldError::new("role", "Choose member, auditor, helpdesk, admin or owner.")
            })
    }
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
    /// Sessions signed in under another number are over
    /// ([`crate::accounts::end_sessions`]).
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

/// The organization with this id, if it exists.
pub async fn organization(
    db: &impl sea_orm::ConnectionTrait,
    id: i32,
) -> Result<Option<Organization>, DbErr> {
    use sea_orm::EntityTrait;
    Ok(organization::Entity::find_by_id(id)
        .one(db)
        .await?
        .map(Organization::from))
}

/// The member with this id, if they still exist.
pub async fn member(db: &impl sea_orm::ConnectionTrait, id: i32) -> Result<Option<Member>, DbErr> {
    use sea_orm::EntityTrait;
    user_account::Entity::find_by_id(id)
        .one(db)
        .await?
        .map(Member::try_from)
        .transpose()
}

/// The email addresses of an organization's owners and admins, oldest account first: who a
/// member asks for help. Takes any connection, so that a message written inside a
/// transaction names them as that transaction sees them.
pub async fn admin_contacts(
    db: &impl sea_orm::ConnectionTrait,
    org_id: i32,
) -> Result<Vec<String>, DbErr> {
    Ok(admin_accounts(db, org_id)
        .await?
        .into_iter()
        .map(|(_, email)| email)
        .collect())
}

/// The organization's owners and admins ([`Role::ADMINISTRATORS`]) as `(id, email)`, oldest
/// account first: who gets an administrator alert.
pub async fn admin_accounts(
    db: &impl sea_orm::ConnectionTrait,
    org_id: i32,
) -> Result<Vec<(i32, String)>, DbErr> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
    user_account::Entity::find()
        .select_only()
        .column(user_account::Column::Id)
        .column(user_account::Column::Email)
        .filter(user_account::Column::OrgId.eq(org_id))
        .filter(
            user_account::Column::Role.is_in(Role::ADMINISTRATORS.iter().map(|role| role.as_str())),
        )
        .order_by_asc(user_account::Column::Id)
        .into_tuple()
        .all(db)
        .await
}

/// Every organization's id, oldest first (for work done across all of them).
pub async fn organization_ids(db: &impl sea_orm::ConnectionTrait) -> Result<Vec<i32>, DbErr> {
    use sea_orm::{EntityTrait, QueryOrder, QuerySelect};
    organization::Entity::find()
        .select_only()
        .column(organization::Column::Id)
        .order_by_asc(organization::Column::Id)
        .into_tuple()
        .all(db)
        .await
}
