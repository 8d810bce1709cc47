//! The organizations and members tests start from: Acme's owner with MFA and backup codes,
//! Acme's owner signed in, and Acme with data in every table beside Globex.

use chrono::{DateTime, Utc};
use domain::{
    accounts,
    audit::Source,
    authz::Authz,
    backup_codes::{self, CodePolicy},
    command::Command,
    hashing::PasswordHasher,
    identity::Member,
    lookup_secret::BackupCodeHasher,
    mfa, org_policy, recovery_codes,
    secrets::SecretKey,
    testing::TestDatabase,
};
use reqwest::Client;
use sea_orm::DatabaseConnection;

use crate::support::{
    cli::{create_org, create_user},
    client::{client, sign_in},
    process::Server,
};

/// A member's authenticator and backup codes, as [`enrol_with_codes`] made them.
pub struct Enrolled {
    /// The TOTP setup key, to compute the authenticator's codes with [`mfa::code_at`].
    pub setup_key: String,
    /// The backup codes, slot 1 first, grouped as the page shows them.
    pub codes: Vec<String>,
}

/// Turns MFA on for `member_id` (the authenticator confirmed at `now`) and generates a set of
/// backup codes at `now`, with `key` as the server started with that key would.
pub async fn enrol_with_codes(
    db: &DatabaseConnection,
    authz: &Authz,
    key: &SecretKey,
    member_id: i32,
    now: DateTime<Utc>,
) -> Enrolled {
    let enrolment = mfa::begin_enrolment(db, key, member_id).await.unwrap();
    let code = mfa::code_at(&enrolment.setup_key, now).unwrap();
    mfa::confirm_enrolment(db, key, member_id, &code, &Source::default(), now)
        .await
        .unwrap();
    let member = accounts::member(db, member_id).await.unwrap().unwrap();
    let hasher = BackupCodeHasher::new(PasswordHasher::new(2).unwrap(), key);
    let source = Source::default();
    let fresh = backup_codes::generate(
        &Command::new(db, authz, &member, &source, now),
        &hasher,
        &CodePolicy::default(),
    )
    .await
    .unwrap();
    Enrolled {
        setup_key: enrolment.setup_key,
        codes: fresh.codes.iter().map(|code| code.grouped()).collect(),
    }
}

/// The owner of "Acme" (member 1) with MFA on and a set of codes made with `key`, as the
/// server started with that key makes them; returns the codes, slot 1 first.
pub async fn owner_with_codes(database: &TestDatabase, key: &SecretKey) -> Vec<String> {
    create_org(&database.url, "Acme", "owner@acme.test").await;
    let authz = Authz::baseline().await.unwrap();
    enrol_with_codes(&database.db, &authz, key, 1, Utc::now())
        .await
        .codes
}

/// An organization "Acme" with its owner, a server on it, and the owner's signed-in session.
pub async fn signed_in_owner(database: &TestDatabase) -> (Server, Client, String) {
    create_org(&database.url, "Acme", "owner@acme.test").await;
    let server = Server::start(&database.url).await;
    let client = client();
    let session = sign_in(&client, &server, "owner@acme.test").await;
    (server, client, session)
}

/// Acme, as the tests know it after making it.
pub struct Acme {
    pub org_id: i32,
    pub owner: Member,
    /// Every member's id: owner, admin, member, hidden (on the help desk).
    pub member_ids: Vec<i32>,
    pub exception_ids: Vec<i32>,
    pub request_ids: Vec<i32>,
    /// Its group "Engineering" (the member in it, codes allowed for it, the help desk
    /// scoped to it).
    pub group_ids: Vec<i32>,
    pub policy_version: i32,
}

/// Acme's organization id: it is made first in a fresh database.
pub const ACME_ORG: i32 = 1;

/// The reason on Acme's exception: Globex never types it, so it must never come back.
pub const ACME_REASON: &str = "Anvil contract: codes allowed";

impl Acme {
    /// Every id of an Acme row a server function could name.
    pub fn ids(&self) -> Vec<i64> {
        self.member_ids
            .iter()
            .chain(&self.exception_ids)
            .chain(&self.request_ids)
            .chain(&self.group_ids)
            .map(|&id| i64::from(id))
            .collect()
    }
}

/// Acme with data in every table (its member has spent a backup code), and Globex (owner,
/// admin, member, help desk, auditor) beside it. The server must be started with `key`,
/// which sealed Acme's TOTP secrets.
pub async fn two_organizations(database: &TestDatabase, key: &SecretKey) -> Acme {
    let url = &database.url;
    create_org(url, "Acme", "owner@acme.test").await;
    create_user(url, "acme", "admin@acme.test", "admin").await;
    create_user(url, "acme", "member@acme.test", "member").await;
    // On the help desk, scoped to Acme's group: every table has an Acme row.
    create_user(url, "acme", "hidden@acme.test", "helpdesk").await;
    create_org(url, "Globex", "owner@globex.test").await;
    create_user(url, "globex", "admin@globex.test", "admin").await;
    create_user(url, "globex", "member@globex.test", "member").await;
    create_user(url, "globex", "helpdesk@globex.test", "helpdesk").await;
    create_user(url, "globex", "auditor@globex.test", "auditor").await;

    let db = &database.db;
    let source = Source::default();
    let now = Utc::now();
    let authz = Authz::load(db).await.unwrap();
    let by_email = |email: &'static str| async move {
        let members = accounts::list_members(db, ACME_ORG).await.unwrap();
        members.into_iter().find(|m| m.email == email).unwrap()
    };
    let owner = by_email("owner@acme.test").await;
    let admin = by_email("admin@acme.test").await;
    let member = by_email("member@acme.test").await;
    assert_eq!(
        accounts::organization(db, owner.org_id).await.unwrap().slug,
        "acme"
    );

    // A saved policy (version 1): recovery codes need a second admin's approval.
    let policy = org_policy::OrgPolicy {
        recovery_code_approval: true,
        ..Default::default()
    };
    let by_owner = Command::new(db, &authz, &owner, &source, now);
    let saved = org_policy::save(&by_owner, 0, &policy).await.unwrap();
    let exception = org_policy::add_exception(&by_owner, "hidden@acme.test", true, ACME_REASON)
        .await
        .unwrap();
    // A group with the member in it, and an exception of its own.
    let group = domain::groups::create(&by_owner, "Engineering")
        .await
        .unwrap();
    domain::groups::add_from_csv(&by_owner, group.id, "member@acme.test")
        .await
        .unwrap();
    domain::groups::set_exception(&by_owner, group.id, Some(true), ACME_REASON)
        .await
        .unwrap();
    let help_desk = by_email("hidden@acme.test").await;
    domain::groups::set_scope(&by_owner, help_desk.id, &[group.id])
        .await
        .unwrap();
    // As many groups as Acme may have: creating one more is refused, whatever its name.
    for n in 2..=domain::groups::MAX_GROUPS {
        domain::groups::create(&by_owner, &format!("Team {n}"))
            .await
            .unwrap();
    }

    // The owner has an authenticator being set up; the member has MFA and backup codes.
    mfa::begin_enrolment(db, key, owner.id).await.unwrap();
    let enrolled = enrol_with_codes(db, &authz, key, member.id, now).await;
    // The member has signed in with one of them (the compliance chart counts it).
    let member = by_email("member@acme.test").await;
    backup_codes::redeem(
        &Command::new(db, &authz, &member, &source, now),
        &BackupCodeHasher::new(PasswordHasher::new(2).unwrap(), key),
        &CodePolicy::default(),
        &backup_codes::CodeEntry::any(&enrolled.codes[0]),
        None,
        &[],
    )
    .await
    .unwrap();

    // Two recovery-code requests: one awaiting approval, one approved and ready to reveal.
    let waiting = recovery_codes::request(&by_owner, "member@acme.test", Default::default())
        .await
        .unwrap();
    let ready = recovery_codes::request(&by_owner, "hidden@acme.test", Default::default())
        .await
        .unwrap();
    // The approving admin has MFA on, as approving needs.
    enrol_with_codes(db, &authz, key, admin.id, now).await;
    let admin = by_email("admin@acme.test").await;
    let by_admin = Command::new(db, &authz, &admin, &source, now);
    recovery_codes::approve(&by_admin, ready.id).await.unwrap();

    let member_ids = accounts::list_members(db, owner.org_id)
        .await
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    Acme {
        org_id: owner.org_id,
        owner,
        member_ids,
        exception_ids: vec![exception.id],
        request_ids: vec![waiting.id, ready.id],
        group_ids: vec![group.id],
        policy_version: saved.version,
    }
}
