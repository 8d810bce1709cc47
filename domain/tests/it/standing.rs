//! The one query for sets in force: one member, a page, a whole organization, each giving
//! the same counts, and no statement that grows with the number of members asked about.

use domain::{
    audit::Source,
    authz::Authz,
    backup_codes::{self, CodePolicy, Scope, sets_in_force},
    command::Command,
    hashing::PasswordHasher,
    lookup_secret::BackupCodeHasher,
    secrets::SecretKey,
    testing::migrated_databases,
};

use crate::fixtures::{owner_with_mfa, t0};

#[tokio::test]
async fn sets_in_force_read_alike_for_a_member_a_page_and_an_organization_of_any_size() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    let codes = BackupCodeHasher::new(hasher.clone(), &key);
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let authz = Authz::load(db).await.unwrap();
        let (owner, _) = owner_with_mfa(&test_db, &hasher, &key).await;
        let source = Source::default();
        let cmd = Command::new(db, &authz, &owner, &source, t0());
        let policy = CodePolicy::default();
        let fresh = backup_codes::generate(&cmd, &codes, &policy).await.unwrap();
        let typed = fresh.codes[0].grouped();
        let entry = backup_codes::CodeEntry::any(&typed);
        backup_codes::redeem(&cmd, &codes, &policy, &entry, None, &[])
            .await
            .unwrap();

        let one = sets_in_force(db, Scope::Member(owner.id)).await.unwrap();
        assert_eq!(one.len(), 1, "{:?}", test_db.backend);
        assert_eq!((one[0].total, one[0].remaining), (10, 9));
        assert_eq!(one[0].last_used_at, Some(t0()));
        let whole = sets_in_force(db, Scope::Organization(owner.org_id))
            .await
            .unwrap();
        assert_eq!(whole, one);
        // More ids than PostgreSQL binds in one statement (65,535): still answered, because
        // no statement binds more than a fixed number of them.
        let mut ids: Vec<i32> = (1_000_000..1_070_000).collect();
        ids.push(owner.id);
        let page = sets_in_force(db, Scope::Members(&ids)).await.unwrap();
        assert_eq!(page, one, "{:?}", test_db.backend);
        assert!(
            sets_in_force(db, Scope::Organization(owner.org_id + 1))
                .await
                .unwrap()
                .is_empty()
        );
    }
}
