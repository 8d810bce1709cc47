//! One backup verification code of a set, as a digest. Its `Debug` hides the digest.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "backup_code")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub set_id: i32,
    pub slot: i32,
    pub digest: Vec<u8>,
    pub used_at: Option<DateTimeUtc>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupCode")
            .field("id", &self.id)
            .field("set_id", &self.set_id)
            .field("slot", &self.slot)
            .field("used_at", &self.used_at)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::backup_code_set::Entity",
        from = "Column::SetId",
        to = "super::backup_code_set::Column::Id",
        on_delete = "Cascade"
    )]
    BackupCodeSet,
}

impl Related<super::backup_code_set::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::BackupCodeSet.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
