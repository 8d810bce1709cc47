//! The help-desk and auditor roles through the domain's own operations, on every backend:
//! each role × operation × the role of the member acted on (or the actor themselves), with
//! what must happen written out from the README's roles table, and every refusal left on
//! the record with nothing else written.

use domain::{
    audit::{self, Filter, Source},
    authz::Authz,
    command::Command,
    hashing::PasswordHasher,
    identity::{Member, Role},
    members,
    org_policy::{self, OrgPolicy},
    recovery_codes,
    secrets::SecretKey,
    testing::migrated_databases,
};

use crate::fixtures::{add_member, owner_with_mfa, t0};

/// What an actor tries, on a target where there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Unlock,
    RequestSignInCode,
    RevokeCodes,
    ReadAuditLog,
    ReadPolicyHistory,
    SavePolicy,
}

impl Operation {
    const ALL: [Self; 6] = [
        Self::Unlock,
        Self::RequestSignInCode,
        Self::RevokeCodes,
        Self::ReadAuditLog,
        Self::ReadPolicyHistory,
        Self::SavePolicy,
    ];

    fn has_target(self) -> bool {
        matches!(
            self,
            Self::Unlock | Self::RequestSignInCode | Self::RevokeCodes
        )
    }
}

/// Who is acted on: a member of this role other than the actor, or the actor themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Other(Role),
    Themselves,
}

/// Whether `actor` may do `operation` to `target`, from the README's roles table.
fn expected(actor: Role, operation: Operation, target: Option<Target>) -> bool {
    let manages = matches!(actor, Role::Owner | Role::Admin);
    let over = |role: Role| {
        actor == Role::Owner
            || (actor == Role::Admin
                && matches!(role, Role::Member | Role::Helpdesk | Role::Auditor))
    };
    match (operation, target) {
        (_, Some(Target::Themselves)) => false,
        (Operation::Unlock | Operation::RequestSignInCode, Some(Target::Other(role))) => {
            over(role) || (actor == Role::Helpdesk && role == Role::Member)
        }
        (Operation::RevokeCodes, Some(Target::Other(role))) => over(role),
        (Operation::ReadAuditLog | Operation::ReadPolicyHistory, _) => {
            manages || actor == Role::Auditor
        }
        (Operation::SavePolicy, _) => manages,
        (_, None) => unreachable!("{operation:?} needs a target"),
    }
}

#[tokio::test]
async fn help_desk_and_auditors_do_exactly_what_their_role_allows() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    let source = Source::default();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let authz = Authz::load(db).await.unwrap();
        let (owner, _) = owner_with_mfa(&test_db, &hasher, &key).await;
        let org_id = owner.org_id;
        // Two of each role, so that everyone has someone of every role to act on.
        let mut people: Vec<Member> = vec![owner.clone()];
        people.push(add_member(&test_db, &hasher, org_id, "owner2@acme.test", Role::Owner).await);
        for role in [Role::Admin, Role::Helpdesk, Role::Auditor, Role::Member] {
            for n in 1..=2 {
                let email = format!("{}{n}@acme.test", role.as_str());
                people.push(add_member(&test_db, &hasher, org_id, &email, role).await);
            }
        }
        let first_of = |role: Role| people.iter().find(|p| p.role == role).unwrap().clone();
        let other_of = |role: Role, not: &Member| {
            people
                .iter()
                .find(|p| p.role == role && p.id != not.id)
                .unwrap()
                .clone()
        };
        let mut cells = 0;
        for actor_role in Role::ALL {
            let actor = first_of(actor_role);
            for operation in Operation::ALL {
                let targets: Vec<Option<Target>> = if operation.has_target() {
                    Role::ALL
                        .into_iter()
                        .map(|role| Some(Target::Other(role)))
                        .chain([Some(Target::Themselves)])
                        .collect()
                } else {
                    vec![None]
                };
                for target in targets {
                    let on = match target {
                        Some(Target::Other(role)) => Some(other_of(role, &actor)),
                        Some(Target::Themselves) => Some(actor.clone()),
                        None => None,
                    };
                    let case = format!(
                        "{actor_role:?} {operation:?} {target:?} ({:?})",
                        test_db.backend
                    );
                    let cmd = Command::new(db, &authz, &actor, &source, t0());
                    let done = match (operation, &on) {
                        (Operation::Unlock, Some(on)) => members::unlock(&cmd, on.id).await.is_ok(),
                        (Operation::RequestSignInCode, Some(on)) => {
                            recovery_codes::request(&cmd, &on.email, Default::default())
                                .await
                                .is_ok()
                        }
                        (Operation::RevokeCodes, Some(on)) => {
                            members::revoke_codes(&cmd, on.id).await.is_ok()
                        }
                        (Operation::ReadAuditLog, None) => {
                            audit::page_seen_by(db, &authz, &actor, &Filter::default(), None, 10)
                                .await
                                .is_ok()
                        }
                        (Operation::ReadPolicyHistory, None) => {
                            org_policy::history(db, &authz, &actor).await.is_ok()
                        }
                        (Operation::SavePolicy, None) => {
                            let version = org_policy::current(db, org_id).await.unwrap().version;
                            org_policy::save(&cmd, version, &OrgPolicy::default())
                                .await
                                .is_ok()
                        }
                        _ => unreachable!("{case}"),
                    };
                    assert_eq!(done, expected(actor_role, operation, target), "{case}");
                    cells += 1;
                }
            }
        }
        // 5 roles × (3 operations × 6 targets + 3 operations without one).
        assert_eq!(cells, Role::ALL.len() * (3 * (Role::ALL.len() + 1) + 3));
    }
}

#[tokio::test]
async fn a_role_refused_leaves_the_refusal_on_the_record_and_nothing_else() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let authz = Authz::load(db).await.unwrap();
        let (owner, _) = owner_with_mfa(&test_db, &hasher, &key).await;
        let admin = add_member(&test_db, &hasher, owner.org_id, "a@acme.test", Role::Admin).await;
        let helpdesk = add_member(
            &test_db,
            &hasher,
            owner.org_id,
            "h@acme.test",
            Role::Helpdesk,
        )
        .await;
        let auditor = add_member(
            &test_db,
            &hasher,
            owner.org_id,
            "r@acme.test",
            Role::Auditor,
        )
        .await;
        let open_before = test_db.count("recovery_code").await;
        let source = Source::default();
        for (actor, email) in [(&helpdesk, &admin.email), (&auditor, &helpdesk.email)] {
            let cmd = Command::new(db, &authz, actor, &source, t0());
            assert!(
                recovery_codes::request(&cmd, email, Default::default())
                    .await
                    .is_err()
            );
            let last = audit::latest(db, owner.org_id, 1).await.unwrap();
            let last = last.first().unwrap();
            assert_eq!(
                (last.action.as_str(), last.outcome.as_str()),
                ("recovery_code.requested", "denied"),
                "{:?} for {email} ({:?})",
                actor.role,
                test_db.backend
            );
        }
        assert_eq!(test_db.count("recovery_code").await, open_before);
    }
}

/// An organization that withheld codes ("Not allowed") before the new roles existed keeps
/// them withheld from the new roles too: migration 25 writes their deny rules.
#[tokio::test]
async fn codes_withheld_before_the_new_roles_stay_withheld_from_them() {
    use domain::authz::Action;
    use migrations::MigratorTrait;

    for test_db in domain::testing::fresh_databases().await {
        let db = &test_db.db;
        // The schema and the rules as the build before the new roles left them.
        migrations::Migrator::up(db, Some(24)).await.unwrap();
        for role in ["owner", "admin", "member"] {
            for act in ["generate", "redeem"] {
                test_db
                    .execute(&format!(
                        "INSERT INTO casbin_rule (ptype, v0, v1, v2, v3, v4, v5) \
                         VALUES ('p', '{role}', 'org:7', 'backup_codes', '{act}', 'deny', '')"
                    ))
                    .await;
            }
        }
        migrations::Migrator::up(db, None).await.unwrap();
        let authz = Authz::load(db).await.unwrap();
        for role in Role::ALL {
            let member = Member {
                id: 70,
                org_id: 7,
                email: "m@acme.test".into(),
                role,
                mfa_enabled: true,
                created_at: t0(),
                mfa_setup_required: false,
                session_epoch: 0,
            };
            for action in [Action::GenerateBackupCodes, Action::RedeemBackupCode] {
                assert!(
                    !authz.allows(&member, 7, action).await.unwrap(),
                    "{role:?} {action:?} ({:?})",
                    test_db.backend
                );
                // Another organization, without the setting, still allows them.
                let elsewhere = Member {
                    org_id: 8,
                    ..member.clone()
                };
                assert!(authz.allows(&elsewhere, 8, action).await.unwrap());
            }
        }
    }
}

/// Who members are told to ask, and who gets an administrator alert: the owners and admins,
/// and no other role, however many roles there are. One member of each role (a new role in
/// `Role::ALL` joins the table by itself), and another organization's admin.
#[tokio::test]
async fn admin_contacts_and_alerts_name_owners_and_admins_only() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let (owner, _) = owner_with_mfa(&test_db, &hasher, &key).await;
        let mut expected = vec![(owner.id, owner.email.clone())];
        for role in Role::ALL.into_iter().filter(|role| *role != Role::Owner) {
            let email = format!("{}@acme.test", role.as_str());
            let member = add_member(&test_db, &hasher, owner.org_id, &email, role).await;
            if Role::ADMINISTRATORS.contains(&role) {
                expected.push((member.id, email));
            }
        }
        let (_, stranger) = domain::accounts::create_organization(
            db,
            &hasher,
            "Globex",
            "owner@globex.test",
            &domain::secrets::Password::new("correct horse battery"),
            t0(),
        )
        .await
        .unwrap();
        add_member(
            &test_db,
            &hasher,
            stranger.org_id,
            "admin@globex.test",
            Role::Admin,
        )
        .await;

        let accounts = domain::identity::admin_accounts(db, owner.org_id)
            .await
            .unwrap();
        assert_eq!(accounts, expected, "{:?}", test_db.backend);
        let contacts = domain::identity::admin_contacts(db, owner.org_id)
            .await
            .unwrap();
        let emails: Vec<String> = expected.into_iter().map(|(_, email)| email).collect();
        assert_eq!(contacts, emails, "{:?}", test_db.backend);
    }
}
