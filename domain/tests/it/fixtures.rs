//! What the domain tests build again and again: a fixed clock, an organization's owner
//! (with MFA on, when asked), and members added as an admin would. Every test module takes
//! its fixtures from here and from `domain::testing` (the databases), never from another
//! test module.

use chrono::{DateTime, TimeZone, Utc};
use domain::{
    accounts,
    hashing::PasswordHasher,
    identity::Member,
    mfa,
    secrets::{Password, SecretKey},
    testing::TestDatabase,
};

/// The fixed "now" of the tests.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
}

pub async fn owner(test_db: &TestDatabase, hasher: &PasswordHasher) -> Member {
    accounts::create_organization(
        &test_db.db,
        hasher,
        "Acme",
        "owner@acme.test",
        &Password::new("correct horse battery"),
        t0(),
    )
    .await
    .unwrap()
    .1
}

/// A new account in `org_id` with the test password, as an admin would add it.
pub async fn add_member(
    test_db: &TestDatabase,
    hasher: &PasswordHasher,
    org_id: i32,
    email: &str,
    role: domain::identity::Role,
) -> Member {
    accounts::create_member(
        &test_db.db,
        hasher,
        None,
        org_id,
        accounts::NewMember {
            email,
            password: &Password::new("correct horse battery"),
            role,
        },
        t0(),
    )
    .await
    .unwrap()
}

/// The owner of a new organization with MFA turned on at `t0()`, and their setup key.
pub async fn owner_with_mfa(
    test_db: &TestDatabase,
    hasher: &PasswordHasher,
    key: &SecretKey,
) -> (Member, String) {
    let owner = owner(test_db, hasher).await;
    let enrolment = mfa::begin_enrolment(&test_db.db, key, owner.id)
        .await
        .unwrap();
    let code = mfa::code_at(&enrolment.setup_key, t0()).unwrap();
    mfa::confirm_enrolment(
        &test_db.db,
        key,
        owner.id,
        &code,
        &domain::audit::Source::default(),
        t0(),
    )
    .await
    .unwrap();
    let owner = accounts::member(&test_db.db, owner.id)
        .await
        .unwrap()
        .unwrap();
    (owner, enrolment.setup_key)
}

/// A new member of `org_id` (role member) with MFA turned on at `t0()`.
pub async fn member_with_mfa(
    test_db: &TestDatabase,
    hasher: &PasswordHasher,
    key: &SecretKey,
    org_id: i32,
    email: &str,
) -> Member {
    let member = add_member(
        test_db,
        hasher,
        org_id,
        email,
        domain::identity::Role::Member,
    )
    .await;
    with_mfa(test_db, key, &member).await
}

/// `member` with an authenticator set up at [`t0`], as they are now.
pub async fn with_mfa(test_db: &TestDatabase, key: &SecretKey, member: &Member) -> Member {
    let enrolment = mfa::begin_enrolment(&test_db.db, key, member.id)
        .await
        .unwrap();
    let code = mfa::code_at(&enrolment.setup_key, t0()).unwrap();
    mfa::confirm_enrolment(
        &test_db.db,
        key,
        member.id,
        &code,
        &domain::audit::Source::default(),
        t0(),
    )
    .await
    .unwrap();
    accounts::member(&test_db.db, member.id)
        .await
        .unwrap()
        .unwrap()
}
