//! Admin-issued recovery codes on every backend: request, approval, reveal once, their
//! terms under the organization's rules (lifetime, start, uses), expiry, one open code per
//! member, and who may do what.

use chrono::Duration;
use domain::{
    audit::{self, Source},
    authz::Authz,
    backup_codes::{self, BackupCodeError, CodeEntry},
    command::Command,
    hashing::PasswordHasher,
    identity::{Member, Role},
    lookup_secret::BackupCodeHasher,
    org_policy::{
        self, CodesMode, Issuers, OrgPolicy, RecoveryCodeRules, issued_codes::CodeChoice,
    },
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
    redeem_under(
        &OrgPolicy::default(),
        test_db,
        authz,
        codes,
        member,
        code,
        at,
    )
    .await
}

/// [`redeem`] under `policy`'s code rules (its lockout, say).
async fn redeem_under(
    policy: &OrgPolicy,
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
        &policy.code_policy(),
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
            Default::default(),
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
        assert_eq!(revealed.state, RecoveryState::Active);
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
        // It stays on the list for a week, used, with its reason.
        let listed = recovery_codes::recent(db, &authz, &org.admin, t0())
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].state, RecoveryState::UsedUp);
        assert_eq!(listed[0].reason(), "Used: the member signed in with it.");
        let week_later = t0() + Duration::days(recovery_codes::LISTED_AFTER_DAYS + 2);
        assert!(
            recovery_codes::recent(db, &authz, &org.admin, week_later)
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
            Default::default(),
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
                recovery_codes::request(
                    &Command::new(db, authz, &actor, &source, t0()),
                    &email,
                    Default::default(),
                )
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
        let open = recovery_codes::recent(db, &authz, &org.owner, t0())
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
            Default::default(),
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
        let listed = recovery_codes::recent(db, &authz, &org.owner, at(0))
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
            Default::default(),
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
            Default::default(),
        )
        .await
        .unwrap();
        assert_eq!(after.state, RecoveryState::ReadyToReveal);
        // Turning it on again binds at once.
        save(2, true, 26).await;
        let again = recovery_codes::request(
            &Command::new(db, &authz, &org.admin, &source, at(26)),
            "member@acme.test",
            Default::default(),
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
                recovery_codes::request(
                    &Command::new(db, authz, &actor, &source, t0()),
                    &email,
                    Default::default(),
                )
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
            let request = recovery_codes::request(&by_owner, &email, Default::default())
                .await
                .unwrap();
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
                    let request = recovery_codes::request(&by_owner, &email, Default::default())
                        .await
                        .unwrap();
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

/// The default rules with `issuers`.
fn issued_by(issuers: Issuers) -> RecoveryCodeRules {
    RecoveryCodeRules {
        issuers,
        ..RecoveryCodeRules::default()
    }
}

/// Saves `rules` as the organization's recovery-code rules, over version `version`.
async fn save_rules(
    db: &sea_orm::DatabaseConnection,
    authz: &Authz,
    owner: &Member,
    version: i32,
    rules: RecoveryCodeRules,
) {
    org_policy::save(
        &Command::new(db, authz, owner, &Source::default(), t0()),
        version,
        &OrgPolicy {
            recovery_codes: rules,
            ..OrgPolicy::default()
        },
    )
    .await
    .unwrap();
}

/// Requests (as `by`) and reveals a code for `member` on `choice`'s terms, at `at`.
async fn issue(
    db: &sea_orm::DatabaseConnection,
    authz: &Authz,
    codes: &BackupCodeHasher,
    by: &Member,
    member: &Member,
    choice: CodeChoice,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(recovery_codes::RecoveryRequest, String), RecoveryError> {
    let source = Source::default();
    let request = recovery_codes::request(
        &Command::new(db, authz, by, &source, at),
        &member.email,
        choice,
    )
    .await?;
    let (revealed, code) =
        recovery_codes::reveal(&Command::new(db, authz, by, &source, at), codes, request.id)
            .await?;
    Ok((revealed, code.grouped()))
}

/// The state and reason of the code `id` on the recovery page's list at `at`.
async fn listed(
    db: &sea_orm::DatabaseConnection,
    authz: &Authz,
    viewer: &Member,
    id: i32,
    at: chrono::DateTime<chrono::Utc>,
) -> (RecoveryState, String) {
    let request = recovery_codes::recent(db, authz, viewer, at)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.id == id)
        .expect("listed");
    (request.state, request.reason())
}

#[tokio::test]
async fn a_code_works_from_its_start_until_its_lifetime_ends_for_its_uses() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    let codes = BackupCodeHasher::new(hasher.clone(), &key);
    for test_db in migrated_databases().await {
        let (db, backend) = (&test_db.db, test_db.backend);
        let authz = Authz::load(db).await.unwrap();
        let org = org(&test_db, &hasher, &key).await;
        save_rules(
            db,
            &authz,
            &org.owner,
            0,
            RecoveryCodeRules {
                shortest_minutes: 10,
                longest_minutes: 30 * 24 * 60,
                default_minutes: 60,
                max_uses: 2,
                issuers: Issuers::HelpDesk,
            },
        )
        .await;
        let starts = t0() + Duration::hours(3);
        let choice = CodeChoice {
            lifetime_minutes: Some(60),
            starts_at: Some(starts),
            uses: Some(2),
        };
        let (request, code) = issue(db, &authz, &codes, &org.admin, &org.member, choice, t0())
            .await
            .unwrap();
        assert_eq!(
            (request.starts_at, request.expires_at, request.max_uses),
            (starts, starts + Duration::hours(1), 2)
        );
        let use_at = |at| redeem(&test_db, &authz, &codes, &org.member, &code, at);

        // Before its start: not valid yet, and refused as any wrong code is.
        let before = starts - Duration::minutes(1);
        let (state, reason) = listed(db, &authz, &org.admin, request.id, before).await;
        assert_eq!(state, RecoveryState::NotYetValid, "{backend:?}");
        assert!(
            reason.starts_with("Not valid yet: it works from"),
            "{reason}"
        );
        assert!(matches!(
            use_at(before).await,
            Err(BackupCodeError::Rejected)
        ));
        // From its start: active, two uses, then used up.
        let (state, reason) = listed(db, &authz, &org.admin, request.id, starts).await;
        assert_eq!(state, RecoveryState::Active);
        assert!(reason.starts_with("Active: 2 of 2 uses left"), "{reason}");
        use_at(starts).await.unwrap();
        let (_, reason) = listed(db, &authz, &org.admin, request.id, starts).await;
        assert!(reason.starts_with("Active: 1 of 2 uses left"), "{reason}");
        use_at(starts + Duration::minutes(5)).await.unwrap();
        assert!(matches!(
            use_at(starts + Duration::minutes(6)).await,
            Err(BackupCodeError::Rejected)
        ));
        let (state, reason) = listed(db, &authz, &org.admin, request.id, starts).await;
        assert_eq!(
            (state, reason.as_str()),
            (RecoveryState::UsedUp, "Used up: all 2 uses spent.")
        );

        // A one-use code past its lifetime: expired, and refused at the last minute's end.
        let (request, code) = issue(
            db,
            &authz,
            &codes,
            &org.admin,
            &org.member,
            CodeChoice::default(),
            t0(),
        )
        .await
        .unwrap();
        assert_eq!(request.expires_at, t0() + Duration::minutes(60));
        let expired_at = request.expires_at;
        let (state, _) = listed(db, &authz, &org.admin, request.id, expired_at).await;
        assert_eq!(state, RecoveryState::Expired);
        assert!(matches!(
            redeem(&test_db, &authz, &codes, &org.member, &code, expired_at).await,
            Err(BackupCodeError::Rejected)
        ));
        redeem(
            &test_db,
            &authz,
            &codes,
            &org.member,
            &code,
            expired_at - Duration::seconds(1),
        )
        .await
        .unwrap();

        // Terms outside the rules are refused next to their field, and nothing is written.
        let requests_before = test_db.count("recovery_code").await;
        for (choice, field) in [
            (
                CodeChoice {
                    lifetime_minutes: Some(9),
                    ..CodeChoice::default()
                },
                "lifetime",
            ),
            (
                CodeChoice {
                    lifetime_minutes: Some(30 * 24 * 60 + 1),
                    ..CodeChoice::default()
                },
                "lifetime",
            ),
            (
                CodeChoice {
                    uses: Some(3),
                    ..CodeChoice::default()
                },
                "uses",
            ),
            (
                CodeChoice {
                    starts_at: Some(t0() - Duration::hours(1)),
                    ..CodeChoice::default()
                },
                "starts_at",
            ),
        ] {
            let refused = recovery_codes::request(
                &Command::new(db, &authz, &org.admin, &Source::default(), t0()),
                &org.member.email,
                choice,
            )
            .await;
            assert!(
                matches!(&refused, Err(RecoveryError::Invalid(e)) if e.field == field),
                "{choice:?}: {refused:?}"
            );
        }
        assert_eq!(test_db.count("recovery_code").await, requests_before);
    }
}

#[tokio::test]
async fn two_hundred_sign_ins_at_once_spend_exactly_the_uses_a_code_has() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    let codes = BackupCodeHasher::new(hasher.clone(), &key);
    for test_db in migrated_databases().await {
        let (db, backend) = (&test_db.db, test_db.backend);
        let authz = Authz::load(db).await.unwrap();
        let org = org(&test_db, &hasher, &key).await;
        save_rules(
            db,
            &authz,
            &org.owner,
            0,
            RecoveryCodeRules {
                max_uses: 3,
                ..RecoveryCodeRules::default()
            },
        )
        .await;
        let choice = CodeChoice {
            uses: Some(3),
            ..CodeChoice::default()
        };
        let (request, code) = issue(db, &authz, &codes, &org.admin, &org.member, choice, t0())
            .await
            .unwrap();
        let test_db = std::sync::Arc::new(test_db);
        let attempts: Vec<_> = (0..200)
            .map(|_| {
                let (test_db, authz, codes, member, code) = (
                    test_db.clone(),
                    authz.clone(),
                    codes.clone(),
                    org.member.clone(),
                    code.clone(),
                );
                tokio::spawn(
                    async move { redeem(&test_db, &authz, &codes, &member, &code, t0()).await },
                )
            })
            .collect();
        let mut signed_in = 0;
        for attempt in attempts {
            match attempt.await.unwrap() {
                Ok(_) => signed_in += 1,
                Err(BackupCodeError::Rejected) => {}
                Err(other) => panic!("{backend:?}: {other}"),
            }
        }
        assert_eq!(signed_in, 3, "{backend:?}");
        let (state, _) = listed(&test_db.db, &authz, &org.admin, request.id, t0()).await;
        assert_eq!(state, RecoveryState::UsedUp);
        assert_eq!(
            test_db
                .count("audit_event WHERE action = 'recovery_code.used'")
                .await,
            3,
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn two_hundred_requests_at_once_for_one_member_leave_one_open_code() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    for test_db in migrated_databases().await {
        let (db, backend) = (&test_db.db, test_db.backend);
        let authz = Authz::load(db).await.unwrap();
        let org = org(&test_db, &hasher, &key).await;
        // An open code for someone else first: older than every one the flood replaces.
        let earlier = recovery_codes::request(
            &Command::new(db, &authz, &org.owner, &Source::default(), t0()),
            &org.admin.email,
            CodeChoice::default(),
        )
        .await
        .unwrap();
        let requests: Vec<_> = (0..200)
            .map(|i| {
                let (db, authz, admin, email) = (
                    db.clone(),
                    authz.clone(),
                    if i % 2 == 0 {
                        org.admin.clone()
                    } else {
                        org.owner.clone()
                    },
                    org.member.email.clone(),
                );
                tokio::spawn(async move {
                    let source = Source::default();
                    recovery_codes::request(
                        &Command::new(&db, &authz, &admin, &source, t0()),
                        &email,
                        CodeChoice::default(),
                    )
                    .await
                })
            })
            .collect();
        for request in requests {
            request.await.unwrap().unwrap();
        }
        assert_eq!(
            test_db
                .count(&format!(
                    "recovery_code WHERE ended_at IS NULL AND user_id = {}",
                    org.member.id
                ))
                .await,
            1,
            "{backend:?}"
        );
        assert_eq!(
            test_db
                .count("recovery_code WHERE end_reason = 'replaced'")
                .await,
            199,
            "{backend:?}"
        );
        // Each replaced code's end is on the record.
        assert_eq!(
            test_db
                .count("audit_event WHERE action = 'recovery_code.ended'")
                .await,
            199,
            "{backend:?}"
        );
        // The page lists both open codes, however many stopped since the older one.
        let listed = recovery_codes::recent(db, &authz, &org.owner, t0())
            .await
            .unwrap();
        assert!(listed.iter().any(|r| r.id == earlier.id), "{backend:?}");
        assert_eq!(
            listed.iter().filter(|r| !r.state.is_over()).count(),
            2,
            "{backend:?}"
        );
        assert_eq!(
            listed.len(),
            2 + usize::try_from(recovery_codes::LISTED_AT_MOST).unwrap(),
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn the_policy_decides_who_issues_and_turning_codes_off_disables_those_issued() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    let codes = BackupCodeHasher::new(hasher.clone(), &key);
    for test_db in migrated_databases().await {
        let (db, backend) = (&test_db.db, test_db.backend);
        let authz = Authz::load(db).await.unwrap();
        let org = org(&test_db, &hasher, &key).await;
        let helpdesk = add_member(
            &test_db,
            &hasher,
            org.owner.org_id,
            "helpdesk@acme.test",
            Role::Helpdesk,
        )
        .await;
        let (request, code) = issue(
            db,
            &authz,
            &codes,
            &org.admin,
            &org.member,
            CodeChoice::default(),
            t0(),
        )
        .await
        .unwrap();

        // Each choice of issuers, as each role asks for a member: the gate decides.
        // (Each save changes the policy, so that each makes a version.)
        let issuers_cases = [
            (Issuers::Admins, [true, true, false]),
            (Issuers::Owners, [true, false, false]),
            (Issuers::HelpDesk, [true, true, true]),
        ];
        let mut version = 0;
        for (issuers, allowed) in issuers_cases {
            save_rules(db, &authz, &org.owner, version, issued_by(issuers)).await;
            version += 1;
            for (issuer, allowed) in [&org.owner, &org.admin, &helpdesk].into_iter().zip(allowed) {
                let asked = recovery_codes::request(
                    &Command::new(db, &authz, issuer, &Source::default(), t0()),
                    &org.member.email,
                    CodeChoice::default(),
                )
                .await;
                assert_eq!(
                    asked.is_ok(),
                    allowed,
                    "{backend:?} {issuers:?} {}: {asked:?}",
                    issuer.email
                );
                if !allowed {
                    assert!(matches!(asked, Err(RecoveryError::NotAllowed)));
                }
                // "Explain" gives the same answer, and names the organization's deny rule.
                let (_, explained) =
                    org_policy::explain(db, &authz, &org.owner, &issuer.email, "issue_codes")
                        .await
                        .unwrap();
                assert_eq!(explained.allowed, allowed, "{issuers:?} {}", issuer.email);
                if !allowed {
                    let rule = format!(
                        "p, {}, org:{}, recovery_code:member, issue, deny",
                        issuer.role.as_str(),
                        org.owner.org_id
                    );
                    assert!(explained.rules.contains(&rule), "{:?}", explained.rules);
                }
            }
        }
        // Those requests replaced the code issued first.
        let (state, reason) = listed(db, &authz, &org.owner, request.id, t0()).await;
        assert_eq!(state, RecoveryState::Replaced);
        assert_eq!(reason, "Replaced by a newer code for this member.");
        assert!(matches!(
            redeem(&test_db, &authz, &codes, &org.member, &code, t0()).await,
            Err(BackupCodeError::Rejected)
        ));
        let (request, code2) = issue(
            db,
            &authz,
            &codes,
            &org.owner,
            &org.member,
            CodeChoice::default(),
            t0(),
        )
        .await
        .unwrap();

        // Off: nobody may issue, and the issued code is disabled by policy, not ended.
        save_rules(db, &authz, &org.owner, version, issued_by(Issuers::Nobody)).await;
        let (state, reason) = listed(db, &authz, &org.owner, request.id, t0()).await;
        assert_eq!(state, RecoveryState::DisabledByPolicy, "{backend:?}");
        assert!(reason.starts_with("Disabled by policy"), "{reason}");
        assert!(matches!(
            redeem(&test_db, &authz, &codes, &org.member, &code2, t0()).await,
            Err(BackupCodeError::Rejected)
        ));
        for issuer in [&org.owner, &org.admin, &helpdesk] {
            assert!(matches!(
                recovery_codes::request(
                    &Command::new(db, &authz, issuer, &Source::default(), t0()),
                    &org.member.email,
                    CodeChoice::default(),
                )
                .await,
                Err(RecoveryError::CodesOff)
            ));
        }
        // Those who manage the policy may still cancel it while codes are off; the help desk
        // may not.
        assert!(matches!(
            recovery_codes::cancel(
                &Command::new(db, &authz, &helpdesk, &Source::default(), t0()),
                request.id
            )
            .await,
            Err(RecoveryError::NotAllowed)
        ));
        // On again: the same code works, once.
        save_rules(
            db,
            &authz,
            &org.owner,
            version + 1,
            issued_by(Issuers::Owners),
        )
        .await;
        redeem(&test_db, &authz, &codes, &org.member, &code2, t0())
            .await
            .unwrap();
        // A code cancelled while codes were off stays cancelled when they are on again.
        let (cancelled, code3) = issue(
            db,
            &authz,
            &codes,
            &org.owner,
            &org.member,
            CodeChoice::default(),
            t0(),
        )
        .await
        .unwrap();
        save_rules(
            db,
            &authz,
            &org.owner,
            version + 2,
            issued_by(Issuers::Nobody),
        )
        .await;
        recovery_codes::cancel(
            &Command::new(db, &authz, &org.owner, &Source::default(), t0()),
            cancelled.id,
        )
        .await
        .unwrap();
        save_rules(
            db,
            &authz,
            &org.owner,
            version + 3,
            RecoveryCodeRules::default(),
        )
        .await;
        let (state, _) = listed(db, &authz, &org.owner, cancelled.id, t0()).await;
        assert_eq!(state, RecoveryState::Cancelled, "{backend:?}");
        assert!(matches!(
            redeem(&test_db, &authz, &codes, &org.member, &code3, t0()).await,
            Err(BackupCodeError::Rejected)
        ));
    }
}
