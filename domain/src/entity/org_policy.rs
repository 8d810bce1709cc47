//! One saved version of an organization's backup-code policy.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "org_policy")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub org_id: i32,
    pub version: i32,
    pub backup_codes: String,
    pub codes_per_set: i32,
    pub max_set_age_days: i32,
    pub low_codes_threshold: i32,
    pub lockout_attempts: i32,
    pub lockout_minutes: i32,
    pub code_entry: String,
    pub restrict_after_backup_sign_in: bool,
    pub saved_by_id: Option<i32>,
    pub saved_by: Option<String>,
    pub saved_at: DateTimeUtc,
    pub changes: String,
    pub recovery_code_approval: bool,
    /// Administrators, not only owners, may request data backups.
    pub admins_request_backups: bool,
    /// A backup-code sign-in that leaves the member at or below the low-codes threshold
    /// requires a new set before anything else.
    pub replace_when_low: bool,
    /// "Required" limits the sessions of members who do not comply from this moment
    /// (00:00 UTC of the day the administrators chose); `None`: it never does.
    pub required_from: Option<DateTimeUtc>,
    /// Days a member who joins has before "Required" limits their session.
    pub grace_days: i32,
    /// The shortest lifetime an administrator may give a recovery code, in minutes.
    pub recovery_code_shortest_minutes: i32,
    /// The longest lifetime, in minutes.
    pub recovery_code_longest_minutes: i32,
    /// The lifetime a code gets when its issuer does not choose one, in minutes.
    pub recovery_code_default_minutes: i32,
    /// The most uses an issuer may give one code (1: every code is one-time).
    pub recovery_code_max_uses: i32,
    /// Who may issue recovery codes: `nobody`, `owners`, `admins` (owners and
    /// administrators) or `helpdesk` (those and the help desk).
    pub recovery_code_issuers: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
