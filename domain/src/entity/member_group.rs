//! A group of an organization's members, and the exception it may hold from the
//! organization's backup-code setting.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "member_group")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub org_id: i32,
    pub name: String,
    /// The name trimmed and lower-cased: unique in the organization.
    pub name_key: String,
    /// `allow` or `deny`: backup codes for the group's members whatever the setting.
    pub exception: Option<String>,
    pub exception_reason: Option<String>,
    pub created_by_id: Option<i32>,
    pub created_by: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
