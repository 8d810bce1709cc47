//! An admin-issued recovery code for one member. Its `Debug` hides the digest.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "recovery_code")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub org_id: i32,
    pub user_id: i32,
    pub requested_by_id: Option<i32>,
    pub requested_by: String,
    pub requested_at: DateTimeUtc,
    pub approved_by_id: Option<i32>,
    pub approved_by: Option<String>,
    pub approved_at: Option<DateTimeUtc>,
    pub salt: Option<Vec<u8>>,
    pub digest: Option<Vec<u8>>,
    pub params: Option<String>,
    pub revealed_at: Option<DateTimeUtc>,
    pub used_at: Option<DateTimeUtc>,
    pub ended_at: Option<DateTimeUtc>,
    pub expires_at: DateTimeUtc,
    /// The code works from then (the request time unless the issuer chose a later one).
    pub starts_at: DateTimeUtc,
    /// Sign-ins the code allows.
    pub max_uses: i32,
    /// Sign-ins made with it so far; `used_at` is the last.
    pub uses: i32,
    /// Why `ended_at` is set: `replaced`, `cancelled`, or a reason of
    /// [`crate::recovery_codes::stand_ins::EndReason`].
    pub end_reason: Option<String>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoveryCode")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("requested_by", &self.requested_by)
            .field("approved_by", &self.approved_by)
            .field("revealed_at", &self.revealed_at)
            .field("used_at", &self.used_at)
            .field("starts_at", &self.starts_at)
            .field("expires_at", &self.expires_at)
            .field("uses", &self.uses)
            .field("max_uses", &self.max_uses)
            .field("end_reason", &self.end_reason)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
