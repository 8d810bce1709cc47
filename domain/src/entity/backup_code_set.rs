//! A member's set of backup verification codes; at most one per member is in force.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "backup_code_set")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub user_id: i32,
    pub generated_at: DateTimeUtc,
    pub ended_at: Option<DateTimeUtc>,
    pub end_reason: Option<String>,
    pub salt: Vec<u8>,
    pub params: String,
    pub code_count: i32,
    /// When the set's expiry was recorded in the audit log (`backup_codes.expired`).
    pub expired_at: Option<DateTimeUtc>,
    /// The numbered code a sign-in page asked for and is waiting for.
    pub asked_slot: Option<i32>,
    /// Codes of the set spent so far: counted up in the transaction that spends each one, so
    /// it always equals the codes whose `used_at` is set.
    pub codes_used: i32,
    /// When the last code of the set was spent, written with `codes_used`.
    pub last_used_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::backup_code::Entity")]
    BackupCode,
    #[sea_orm(
        belongs_to = "super::user_account::Entity",
        from = "Column::UserId",
        to = "super::user_account::Column::Id",
        on_delete = "Cascade"
    )]
    UserAccount,
}

impl Related<super::user_account::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::UserAccount.def()
    }
}

impl Related<super::backup_code::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::BackupCode.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
