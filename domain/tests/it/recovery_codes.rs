//! Admin-issued recovery codes on every backend: request, approval, reveal once, use once,
//! expiry, and who may do what.

use chrono::Duration;
use domain::{
    audit::{self, Source},
    authz::Authz,
    backup_codes::{self, BackupCodeError, CodeEntry},
    command::Command,
    hashing::PasswordHasher,
    identity::{Member, Role},
    lookup_secret::BackupCodeHasher,
    org_policy::{self, CodesMode, OrgPolicy},
    recovery_codes::{self, RecoveryError, RecoveryState},
    secrets::SecretKey,
    testing::{TestDatabase, migrated_databases},
};

use crate::fixtures::{add_member, member_with_mfa, owner_with_mfa, t0, with_mfa};

struct Org {
    owner: Member,
    admin: Member,
    other_admin: Member,
    member: Member,
}

async fn org(test_db: &TestDatabase, hasher: &PasswordHasher, key: &SecretKey) -> Org {
    let (owner, _) = owner_with_mfa(test_db, hasher, key).await;
    let add = |email, role| add_member(test_db, hasher, owner.org_id, email, role);
    let admin = add("admin@acme.test", Role::Admin).await;
    // The second admin who approves has MFA on, as approving needs.
    let other_admin = with_mfa(test_db, key, &add("admin2@acme.test", Role::Admin).await).await;
    let member = add("member@acme.test", Role::Member).await;
    Org {
        owner,
        admin,
        other_admin,
        member,
    }
}

async fn redeem(
    test_db: &TestDatabase,
    authz: &Authz,
    codes: &BackupCodeHasher,
    member: &Member,
    code: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<backup_codes::Redeemed, BackupCodeError> {
    let source = Source::default();
    let cmd = Command::new(&test_db.db, authz, member, &source, at);
    let issued = recovery_codes::sign_in::Issued {
        cmd: &cmd,
        hasher: codes,
        also_record: Vec::new(),
    };
    backup_codes::redeem(
        &cmd,
        codes,
        &OrgPolicy::default().code_policy(),
        &CodeEntry::any(code),
        Some(&issued),
        &[],
    )
    .await
}

#[tokio::test]
async fn an_issued_code_is_revealed_once_to_its_requester_and_works_once() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    let codes = BackupCodeHasher::new(hasher.clone(), &key);
    let source = Source::default();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let authz = Authz::load(db).await.unwrap();
        let org = org(&test_db, &hasher, &key).await;
        let request = recovery_codes::request(
            &Command::new(db, &authz, &org.admin, &source, t0()),
            "member@acme.test",
        )
        .await
        .unwrap();
        assert_eq!(request.state, RecoveryState::ReadyToReveal);
        assert_eq!(request.expires_at, t0() + Duration::hours(24));

        assert!(matches!(
            recovery_codes::reveal(
                &Command::new(db, &authz, &org.owner, &source, t0()),
                &codes,
                request.id
            )
            .await,
            Err(RecoveryError::NotRequester)
        ));
        let (revealed, code) = recovery_codes::reveal(
            &Command::new(db, &authz, &org.admin, &source, t0()),
            &codes,
            request.id,
        )
        .await
        .unwrap();
        assert_eq!(revealed.state, RecoveryState::Revealed);
        assert!(matches!(
            recovery_codes::reveal(
                &Command::new(db, &authz, &org.admin, &source, t0()),
                &codes,
                request.id
            )
            .await,
            Err(RecoveryError::Closed)
        ));

        let used = redeem(&test_db, &authz, &codes, &org.member, &code.grouped(), t0())
            .await
            .unwrap();
        assert_eq!(used.slot, 0);
        assert!(matches!(
            redeem(&test_db, &authz, &codes, &org.member, &code.grouped(), t0()).await,
            Err(BackupCodeError::Rejected)
        ));
        // Nobody else can use it either.
        assert!(matches!(
            redeem(&test_db, &authz, &codes, &org.admin, &code.grouped(), t0()).await,
            Err(BackupCodeError::Rejected)
        ));
        let actions: Vec<String> = audit::latest(db, org.owner.org_id, 20)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .filter(|a| a.starts_with("recovery_code."))
            .collect();
        assert_eq!(
            actions,
            [
                "recovery_code.used",
                "recovery_code.revealed",
                "recovery_code.requested"
            ]
        );
        assert!(
            recovery_codes::open_requests(db, &authz, &org.admin, t0())
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn under_two_admin_approval_a_second_admin_must_approve_before_the_reveal() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    let codes = BackupCodeHasher::new(hasher.clone(), &key);
    let source = Source::default();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let authz = Authz::load(db).await.unwrap();
        let org = org(&test_db, &hasher, &key).await;
        org_policy::save(
            &Command::new(db, &authz, &org.owner, &source, t0()),
            0,
            &OrgPolicy {
                recovery_code_approval: true,
                ..OrgPolicy::default()
            },
        )
        .await
        .unwrap();
        let request = recovery_codes::request(
            &Command::new(db, &authz, &org.admin, &source, t0()),
            "member@acme.test",
        )
        .await
        .unwrap();
        assert_eq!(request.state, RecoveryState::AwaitingApproval);
        assert!(matches!(
            recovery_codes::reveal(
                &Command::new(db, &authz, &org.admin, &source, t0()),
                &codes,
                request.id
            )
            .await,
            Err(RecoveryError::NotApproved)
        ));
        assert!(matches!(
            recovery_codes::approve(
                &Command::new(db, &authz, &org.admin, &source, t0()),
                request.id
            )
            .await,
            Err(RecoveryError::OwnRequest)
        ));
        // A member cannot approve; a second admin can.
        assert!(matches!(
            recovery_codes::approve(
                &Command::new(db, &authz, &org.member, &source, t0()),
                request.id
            )
            .await,
            Err(RecoveryError::NotAllowed)
        ));
        let approved = recovery_codes::approve(
            &Command::new(db, &authz, &org.other_admin, &source, t0()),
            request.id,
        )
        .await
        .unwrap();
        assert_eq!(approved.state, RecoveryState::ReadyToReveal);
        assert_eq!(approved.approved_by.as_deref(), Some("admin2@acme.test"));
        let (_, code) = recovery_codes::reveal(
            &Command::new(db, &authz, &org.admin, &source, t0()),
            &codes,
            request.id,
        )
        .await
        .unwrap();
        // Valid for 24 hours from the request.
        assert!(matches!(
            redeem(
                &test_db,
                &authz,
                &codes,
                &org.member,
                &code.grouped(),
                t0() + Duration::hours(25)
            )
            .await,
            Err(BackupCodeError::Rejected)
        ));
        redeem(
            &test_db,
            &authz,
            &codes,
            &org.member,
            &code.grouped(),
            t0() + Duration::hours(23),
        )
        .await
        .unwrap();
    }
}

/// Issue 19, item 5: under two-admin approval, the one who asked, the one the code is for
/// and an admin without MFA cannot approve; each refusal leaves the request waiting.
#[tokio::test]
async fn a_second_admin_is_someone_else_with_mfa() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    let source = Source::default();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let authz = Authz::load(db).await.unwrap();
        let org = org(&test_db, &hasher, &key).await;
        let add = |email, role| add_member(&test_db, &hasher, org.owner.org_id, email, role);
        let second_owner =
            with_mfa(&test_db, &key, &add("owner2@acme.test", Role::Owner).await).await;
        let admin_without_mfa = add("admin3@acme.test", Role::Admin).await;
        org_policy::save(
            &Command::new(db, &authz, &org.owner, &source, t0()),
            0,
            &OrgPolicy {
                recovery_code_approval: true,
                ..OrgPolicy::default()
            },
        )
        .await
        .unwrap();
        let request = |actor: &Member, email: &str| {
            let (authz, actor, email, source) =
                (&authz, actor.clone(), email.to_owned(), source.clone());
            async move {
                recovery_codes::request(&Command::new(db, authz, &actor, &source, t0()), &email)
                    .await
                    .unwrap()
            }
        };
        let for_member = request(&org.admin, "member@acme.test").await;
        let for_owner = request(&second_owner, "owner@acme.test").await;
        // (who approves, which request, the refusal)
        type Refusal = fn(&RecoveryError) -> bool;
        let cases: [(&Member, i32, Refusal); 4] = [
            (&org.admin, for_member.id, |e| {
                matches!(e, RecoveryError::OwnRequest)
            }),
            (&org.owner, for_owner.id, |e| {
                matches!(e, RecoveryError::ApproveForYourself)
            }),
            (&admin_without_mfa, for_member.id, |e| {
                matches!(e, RecoveryError::ApproverWithoutMfa)
            }),
            (&org.member, for_member.id, |e| {
                matches!(e, RecoveryError::NotAllowed)
            }),
        ];
        for (approver, request_id, refusal) in cases {
            let refused = recovery_codes::approve(
                &Command::new(db, &authz, approver, &source, t0()),
                request_id,
            )
            .await
            .unwrap_err();
            assert!(
                refusal(&refused),
                "{} approving: {refused:?}",
                approver.email
            );
        }
        let open = recovery_codes::open_requests(db, &authz, &org.owner, t0())
            .await
            .unwrap();
        assert!(
            open.iter()
                .all(|r| r.state == RecoveryState::AwaitingApproval && r.approved_by.is_none()),
            "{open:?}"
        );
        // Someone else with MFA can; a second approval is refused.
        recovery_codes::approve(
            &Command::new(db, &authz, &org.other_admin, &source, t0()),
            for_member.id,
        )
        .await
        .unwrap();
        assert!(matches!(
            recovery_codes::approve(
                &Command::new(db, &authz, &org.owner, &source, t0()),
                for_member.id
            )
            .await,
            Err(RecoveryError::AlreadyApproved)
        ));
    }
}

/// Issue 19, item 5: the approval is checked again at reveal, as approval binds then and
/// with the approver as they are then; turning approval off binds only a day after the save,
/// so one admin cannot switch it off, issue alone and switch it back on.
#[tokio::test]
async fn approval_is_checked_again_at_reveal_and_turning_it_off_waits_a_day() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    let codes = BackupCodeHasher::new(hasher.clone(), &key);
    let source = Source::default();
    let approval = |on: bool| OrgPolicy {
        recovery_code_approval: on,
        ..OrgPolicy::default()
    };
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let authz = Authz::load(db).await.unwrap();
        let org = org(&test_db, &hasher, &key).await;
        let at = |hours: i64| t0() + Duration::hours(hours);
        let save = |version: i32, on: bool, hours: i64| {
            let (authz, owner, source) = (&authz, org.owner.clone(), source.clone());
            async move {
                org_policy::save(
                    &Command::new(db, authz, &owner, &source, at(hours)),
                    version,
                    &approval(on),
                )
                .await
                .unwrap()
            }
        };

        // Approved alone while approval was off; approval turned on before the reveal.
        let alone = recovery_codes::request(
            &Command::new(db, &authz, &org.admin, &source, at(0)),
            "member@acme.test",
        )
        .await
        .unwrap();
        assert_eq!(alone.state, RecoveryState::ReadyToReveal);
        save(0, true, 0).await;
        assert!(matches!(
            recovery_codes::reveal(
                &Command::new(db, &authz, &org.admin, &source, at(0)),
                &codes,
                alone.id
            )
            .await,
            Err(RecoveryError::NotApproved)
        ));
        let listed = recovery_codes::open_requests(db, &authz, &org.owner, at(0))
            .await
            .unwrap();
        assert_eq!(listed[0].state, RecoveryState::AwaitingApproval);

        // Approved by a second admin who then turns MFA off: the approval no longer holds.
        recovery_codes::approve(
            &Command::new(db, &authz, &org.other_admin, &source, at(0)),
            alone.id,
        )
        .await
        .unwrap();
        domain::mfa::disable(
            db,
            &hasher,
            org.other_admin.id,
            &domain::secrets::Password::new("correct horse battery"),
            &source,
            at(0),
        )
        .await
        .unwrap();
        assert!(matches!(
            recovery_codes::reveal(
                &Command::new(db, &authz, &org.admin, &source, at(0)),
                &codes,
                alone.id
            )
            .await,
            Err(RecoveryError::NotApproved)
        ));
        // A second admin as they are now approves again; then it reveals.
        recovery_codes::approve(
            &Command::new(db, &authz, &org.owner, &source, at(0)),
            alone.id,
        )
        .await
        .unwrap();
        recovery_codes::reveal(
            &Command::new(db, &authz, &org.admin, &source, at(0)),
            &codes,
            alone.id,
        )
        .await
        .unwrap();

        // Turned off at hour 1: for 24 hours a request still waits for a second admin.
        save(1, false, 1).await;
        let during = recovery_codes::request(
            &Command::new(db, &authz, &org.admin, &source, at(2)),
            "member@acme.test",
        )
        .await
        .unwrap();
        assert_eq!(during.state, RecoveryState::AwaitingApproval);
        assert!(matches!(
            recovery_codes::reveal(
                &Command::new(db, &authz, &org.admin, &source, at(2)),
                &codes,
                during.id
            )
            .await,
            Err(RecoveryError::NotApproved)
        ));
        let in_force = org_policy::two_admin_approval(db, org.owner.org_id, at(2))
            .await
            .unwrap();
        assert_eq!(in_force.ends_at, Some(at(25)));
        // After the delay a request is approved as it is made.
        let after = recovery_codes::request(
            &Command::new(db, &authz, &org.admin, &source, at(25)),
            "member@acme.test",
        )
        .await
        .unwrap();
        assert_eq!(after.state, RecoveryState::ReadyToReveal);
        // Turning it on again binds at once.
        save(2, true, 26).await;
        let again = recovery_codes::request(
            &Command::new(db, &authz, &org.admin, &source, at(26)),
            "member@acme.test",
        )
        .await
        .unwrap();
        assert_eq!(again.state, RecoveryState::AwaitingApproval);
    }
}

#[tokio::test]
async fn who_may_issue_for_whom_and_when_codes_are_not_allowed() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    let codes = BackupCodeHasher::new(hasher.clone(), &key);
    let source = Source::default();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let authz = Authz::load(db).await.unwrap();
        let org = org(&test_db, &hasher, &key).await;
        let request = |actor: &Member, email: &str| {
            let (authz, actor, email, source) =
                (&authz, actor.clone(), email.to_owned(), source.clone());
            async move {
                recovery_codes::request(&Command::new(db, authz, &actor, &source, t0()), &email)
                    .await
            }
        };
        // Only owners issue for admins and owners; members issue for nobody.
        assert!(matches!(
            request(&org.admin, "owner@acme.test").await,
            Err(RecoveryError::NotAllowed)
        ));
        assert!(matches!(
            request(&org.member, "admin@acme.test").await,
            Err(RecoveryError::NotAllowed)
        ));
        assert!(matches!(
            request(&org.admin, "admin@acme.test").await,
            Err(RecoveryError::NotAllowed)
        ));
        assert!(matches!(
            request(&org.owner, "owner@acme.test").await,
            Err(RecoveryError::ForYourself)
        ));
        assert!(matches!(
            request(&org.owner, "nobody@acme.test").await,
            Err(RecoveryError::UnknownMember)
        ));
        request(&org.owner, "admin@acme.test").await.unwrap();

        // A newer request ends the older one.
        let first = request(&org.admin, "member@acme.test").await.unwrap();
        let (_, old_code) = recovery_codes::reveal(
            &Command::new(db, &authz, &org.admin, &source, t0()),
            &codes,
            first.id,
        )
        .await
        .unwrap();
        request(&org.owner, "member@acme.test").await.unwrap();
        assert!(matches!(
            redeem(
                &test_db,
                &authz,
                &codes,
                &org.member,
                &old_code.grouped(),
                t0()
            )
            .await,
            Err(BackupCodeError::Rejected)
        ));

        // Not for a member whose codes the policy does not allow.
        org_policy::save(
            &Command::new(db, &authz, &org.owner, &source, t0()),
            0,
            &OrgPolicy {
                codes: CodesMode::NotAllowed,
                ..OrgPolicy::default()
            },
        )
        .await
        .unwrap();
        assert!(matches!(
            request(&org.owner, "member@acme.test").await,
            Err(RecoveryError::CodesNotAllowed)
        ));
    }
}

/// Everything that stands in for the second factor ends together: each event in the table
/// ends the member's backup codes and the recovery code an admin issued them, in its own
/// transaction, with the ended recovery code on the record. A new credential or a new event
/// joins the matrix by a row.
#[tokio::test]
async fn every_event_that_ends_a_stand_in_for_the_second_factor_ends_them_all() {
    /// What ends them, done as it is done in the product.
    #[derive(Debug, Clone, Copy)]
    enum Ending {
        RevokeCodes,
        ResetMfa,
        MfaOff,
        RemoveMember,
        CancelIssuedCode,
    }
    /// A credential that stands in for the authenticator, and whether the ending covers it.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum StandIn {
        BackupCode,
        IssuedRecoveryCode,
    }
    let matrix: &[(Ending, &[StandIn], &str)] = &[
        (
            Ending::RevokeCodes,
            &[StandIn::BackupCode, StandIn::IssuedRecoveryCode],
            "codes_revoked",
        ),
        (
            Ending::ResetMfa,
            &[StandIn::BackupCode, StandIn::IssuedRecoveryCode],
            "mfa_reset",
        ),
        (
            Ending::MfaOff,
            &[StandIn::BackupCode, StandIn::IssuedRecoveryCode],
            "mfa_disabled",
        ),
        (
            Ending::RemoveMember,
            &[StandIn::BackupCode, StandIn::IssuedRecoveryCode],
            "member_removed",
        ),
        (
            Ending::CancelIssuedCode,
            &[StandIn::IssuedRecoveryCode],
            "cancelled",
        ),
    ];
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    let codes = BackupCodeHasher::new(hasher.clone(), &key);
    let source = Source::default();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let authz = Authz::load(db).await.unwrap();
        let (owner, _) = owner_with_mfa(&test_db, &hasher, &key).await;
        for (n, (ending, ended, reason)) in matrix.iter().enumerate() {
            let email = format!("m{n}@acme.test");
            // MFA on, a set of codes, and a revealed recovery code.
            let member = member_with_mfa(&test_db, &hasher, &key, owner.org_id, &email).await;
            let by_member = Command::new(db, &authz, &member, &source, t0());
            let set =
                backup_codes::generate(&by_member, &codes, &OrgPolicy::default().code_policy())
                    .await
                    .unwrap();
            let by_owner = Command::new(db, &authz, &owner, &source, t0());
            let request = recovery_codes::request(&by_owner, &email).await.unwrap();
            let (_, issued) = recovery_codes::reveal(&by_owner, &codes, request.id)
                .await
                .unwrap();

            match ending {
                Ending::RevokeCodes => {
                    domain::members::revoke_codes(&by_owner, member.id)
                        .await
                        .unwrap();
                }
                Ending::ResetMfa => {
                    domain::members::reset_mfa(&by_owner, member.id)
                        .await
                        .unwrap();
                }
                Ending::MfaOff => domain::mfa::disable(
                    db,
                    &hasher,
                    member.id,
                    &domain::secrets::Password::new("correct horse battery"),
                    &source,
                    t0(),
                )
                .await
                .unwrap(),
                Ending::RemoveMember => {
                    domain::accounts::remove_member(&by_owner, member.id)
                        .await
                        .unwrap();
                }
                Ending::CancelIssuedCode => {
                    recovery_codes::cancel(&by_owner, request.id).await.unwrap();
                }
            }

            let recorded = audit::latest(db, owner.org_id, 10).await.unwrap();
            let ended_event = recorded
                .iter()
                .find(|e| e.action == "recovery_code.ended" && e.target_id == Some(member.id));
            assert_eq!(
                ended_event.map(|e| e.details["reason"].clone()),
                Some(serde_json::json!(reason)),
                "{ending:?} on {:?}",
                test_db.backend
            );
            if matches!(ending, Ending::RemoveMember) {
                // Gone with the member: nothing is left to sign in with.
                assert!(
                    domain::accounts::member(db, member.id)
                        .await
                        .unwrap()
                        .is_none()
                );
                continue;
            }
            // Each stand-in, tried where the member types it.
            for stand_in in [StandIn::BackupCode, StandIn::IssuedRecoveryCode] {
                let typed = match stand_in {
                    StandIn::BackupCode => set.codes[0].grouped(),
                    StandIn::IssuedRecoveryCode => issued.grouped(),
                };
                let worked = redeem(&test_db, &authz, &codes, &member, &typed, t0()).await;
                assert_eq!(
                    worked.is_ok(),
                    !ended.contains(&stand_in),
                    "{stand_in:?} after {ending:?} on {:?}: {worked:?}",
                    test_db.backend
                );
            }
        }
    }
}

/// Same work, same answer: every refusal of the backup-code step — a wrong code, a used
/// one, an expired set, another numbered code than the one asked for, no codes at all, a
/// locked factor — costs the same argon2 evaluations whether or not a recovery code an admin
/// issued is waiting for the member.
#[tokio::test]
async fn every_refusal_of_a_backup_code_costs_the_same_work_with_or_without_an_issued_code() {
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Refusal {
        Wrong,
        Used,
        Expired,
        WrongSlot,
        NoCodes,
        Locked,
    }
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    let codes = BackupCodeHasher::new(hasher.clone(), &key);
    let source = Source::default();
    let mut costs = Vec::new();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let authz = Authz::load(db).await.unwrap();
        let org = org(&test_db, &hasher, &key).await;
        let by_owner = Command::new(db, &authz, &org.owner, &source, t0());
        let mut n = 0;
        for refusal in [
            Refusal::Wrong,
            Refusal::Used,
            Refusal::Expired,
            Refusal::WrongSlot,
            Refusal::NoCodes,
            Refusal::Locked,
        ] {
            for issued_waiting in [false, true] {
                n += 1;
                let email = format!("w{n}@acme.test");
                let member =
                    member_with_mfa(&test_db, &hasher, &key, org.owner.org_id, &email).await;
                let by_member = Command::new(db, &authz, &member, &source, t0());
                let mut policy = OrgPolicy::default().code_policy();
                let set = if refusal == Refusal::NoCodes {
                    None
                } else {
                    Some(
                        backup_codes::generate(&by_member, &codes, &policy)
                            .await
                            .unwrap(),
                    )
                };
                if issued_waiting {
                    let request = recovery_codes::request(&by_owner, &email).await.unwrap();
                    recovery_codes::reveal(&by_owner, &codes, request.id)
                        .await
                        .unwrap();
                }
                let mut at = t0();
                let mut slot = None;
                let typed = match (refusal, &set) {
                    (Refusal::Used, Some(set)) => {
                        let first = set.codes[0].grouped();
                        redeem(&test_db, &authz, &codes, &member, &first, t0())
                            .await
                            .unwrap();
                        first
                    }
                    (Refusal::Expired, Some(set)) => {
                        policy.max_set_age_days = 1;
                        at = t0() + Duration::days(2);
                        set.codes[0].grouped()
                    }
                    (Refusal::WrongSlot, Some(set)) => {
                        slot = Some(2);
                        set.codes[0].grouped()
                    }
                    (Refusal::Locked, Some(set)) => {
                        for wrong in 1..=5 {
                            let typed = format!("0000 0000 000{wrong}");
                            let _ = redeem(&test_db, &authz, &codes, &member, &typed, t0()).await;
                        }
                        set.codes[0].grouped()
                    }
                    _ => "0000 1111 2222".to_owned(),
                };
                let cmd = Command::new(db, &authz, &member, &source, at);
                let issued = recovery_codes::sign_in::Issued {
                    cmd: &cmd,
                    hasher: &codes,
                    also_record: Vec::new(),
                };
                let before = hasher.evaluations();
                let refused = backup_codes::redeem(
                    &cmd,
                    &codes,
                    &policy,
                    &CodeEntry {
                        typed: &typed,
                        slot,
                    },
                    Some(&issued),
                    &[],
                )
                .await;
                assert!(
                    matches!(refused, Err(BackupCodeError::Rejected)),
                    "{refusal:?}, issued code waiting: {issued_waiting}: {refused:?}"
                );
                costs.push((refusal, issued_waiting, hasher.evaluations() - before));
            }
        }
    }
    let expected = costs[0].2;
    assert_eq!(
        expected, 2,
        "one evaluation for the set, one for an issued code"
    );
    for (refusal, issued_waiting, cost) in costs {
        assert_eq!(
            cost, expected,
            "{refusal:?}, issued code waiting: {issued_waiting}"
        );
    }
}
