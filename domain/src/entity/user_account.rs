//! A member of an organization, with credentials. Its `Debug` hides the secrets.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "user_account")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub org_id: i32,
    #[sea_orm(unique)]
    pub email: String,
    pub password_hash: String,
    pub role: String,
    pub totp_secret: Option<Vec<u8>>,
    /// The secret key version that sealed `totp_secret`.
    pub totp_key_version: i32,
    pub totp_enabled_at: Option<DateTimeUtc>,
    pub totp_last_step: Option<i64>,
    pub created_at: DateTimeUtc,
    /// An admin reset this member's MFA: they must set it up again at their next sign-in.
    pub mfa_setup_required: bool,
    /// Sessions signed in under another number are over (see `accounts::end_sessions`).
    pub session_epoch: i32,
    /// A new authenticator being set up while MFA stays on (`mfa::current_replacement`),
    /// sealed like `totp_secret`; it takes that one's place once a code from it confirms it.
    pub totp_replacement_secret: Option<Vec<u8>>,
    /// The secret key version that sealed `totp_replacement_secret`.
    pub totp_replacement_key_version: Option<i32>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserAccount")
            .field("id", &self.id)
            .field("org_id", &self.org_id)
            .field("email", &self.email)
            .field("role", &self.role)
            .field("totp_enabled_at", &self.totp_enabled_at)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrgId",
        to = "super::organization::Column::Id",
        on_delete = "Cascade"
    )]
    Organization,
}

impl Related<super::organization::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Organization.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
