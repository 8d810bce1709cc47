//! Redemptions and refused backup codes of one organization on one UTC day, counted from
//! the audit events as they are written (`crate::audit::daily`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "code_use_day")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub org_id: i32,
    /// `YYYY-MM-DD`, in UTC.
    #[sea_orm(primary_key, auto_increment = false)]
    pub day: String,
    pub redeemed: i64,
    pub refused: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
