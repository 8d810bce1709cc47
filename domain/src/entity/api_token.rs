//! A personal access token for the JSON API: its digest, scopes and lifetime.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "api_token")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub org_id: i32,
    /// The member the token acts as.
    pub member_id: i32,
    pub name: String,
    /// The token's first characters, shown to tell tokens apart.
    pub prefix: String,
    /// SHA-256 of the token, lowercase hex.
    #[sea_orm(unique)]
    pub digest: String,
    /// Space-separated scopes.
    pub scopes: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub last_used_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
