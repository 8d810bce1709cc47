//! Groups of members on every backend: creating them (names unique, a limit per
//! organization, under concurrent requests), adding members from a CSV (previewed row by
//! row, all or nothing, each member once however many adds arrive at once), a help-desk
//! member scoped to groups (codes and unlocks for those groups' members alone), the members
//! console filtered by group, and the export of a past date replaying it all.

use domain::{
    audit::Source,
    authz::{Action, Authz},
    command::Command,
    groups::{self, GroupError, RowOutcome},
    hashing::PasswordHasher,
    identity::{Member, Role},
    members,
    org_policy::{self, issued_codes::CodeChoice},
    recovery_codes::{self, RecoveryError},
    secrets::SecretKey,
    testing::{TestDatabase, migrated_databases},
};

use crate::fixtures::{add_member, owner_with_mfa, t0};

struct Org {
    owner: Member,
    helpdesk: Member,
    /// In the group "Engineering".
    engineer: Member,
    /// In no group.
    contractor: Member,
    /// The owner of another organization.
    stranger: Member,
}

async fn org(test_db: &TestDatabase, hasher: &PasswordHasher, key: &SecretKey) -> Org {
    let (owner, _) = owner_with_mfa(test_db, hasher, key).await;
    let add = |email, role| add_member(test_db, hasher, owner.org_id, email, role);
    let helpdesk = add("helpdesk@acme.test", Role::Helpdesk).await;
    let engineer = add("engineer@acme.test", Role::Member).await;
    let contractor = add("contractor@acme.test", Role::Member).await;
    let (_, stranger) = domain::accounts::create_organization(
        &test_db.db,
        hasher,
        "Globex",
        "owner@globex.test",
        &domain::secrets::Password::new("correct horse battery"),
        t0(),
    )
    .await
    .unwrap();
    Org {
        owner,
        helpdesk,
        engineer,
        contractor,
        stranger,
    }
}

fn cmd<'a>(test_db: &'a TestDatabase, authz: &'a Authz, actor: &'a Member) -> Command<'a> {
    // A `Source` lives for the whole test run: commands borrow it.
    static SOURCE: std::sync::LazyLock<Source> = std::sync::LazyLock::new(Source::default);
    Command::new(&test_db.db, authz, actor, &SOURCE, t0())
}

#[tokio::test]
async fn a_csv_is_previewed_row_by_row_and_added_all_or_nothing() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    for test_db in migrated_databases().await {
        let backend = test_db.backend;
        let authz = Authz::load(&test_db.db).await.unwrap();
        let org = org(&test_db, &hasher, &key).await;
        let by_owner = cmd(&test_db, &authz, &org.owner);
        let group = groups::create(&by_owner, "Engineering").await.unwrap();
        groups::add_from_csv(&by_owner, group.id, "engineer@acme.test")
            .await
            .unwrap();

        // Each kind of row, with a header, a blank line, quoting and extra columns.
        let csv = "email,name\n\
                   \"ENGINEER@acme.test\",Eve\n\
                   contractor@acme.test,Carl\n\
                   \n\
                   contractor@acme.test\n\
                   owner@globex.test\n\
                   not-an-address\n";
        let preview = groups::preview_add(&test_db.db, &authz, &org.owner, group.id, csv)
            .await
            .unwrap();
        let outcomes: Vec<(u64, &str, &RowOutcome)> = preview
            .rows
            .iter()
            .map(|row| (row.line, row.email.as_str(), &row.outcome))
            .collect();
        assert!(
            matches!(
                outcomes.as_slice(),
                [
                    (2, "ENGINEER@acme.test", RowOutcome::AlreadyIn),
                    (3, "contractor@acme.test", RowOutcome::Add),
                    (5, "contractor@acme.test", RowOutcome::Repeated),
                    // Another organization's member reads as no member at all.
                    (6, "owner@globex.test", RowOutcome::Unknown),
                    (7, "not-an-address", RowOutcome::Invalid(_)),
                ]
            ),
            "{backend:?}: {outcomes:?}"
        );
        assert_eq!((preview.adds(), preview.problems().count()), (1, 2));

        // With problems nothing is written: not the good rows, not an event.
        let before = test_db.count("group_member").await;
        let events = test_db.count("audit_event").await;
        assert!(matches!(
            groups::add_from_csv(&by_owner, group.id, csv).await,
            Err(GroupError::FileHasProblems { problems: 2 })
        ));
        assert_eq!(test_db.count("group_member").await, before, "{backend:?}");
        assert_eq!(test_db.count("audit_event").await, events, "{backend:?}");

        // Fixed, the file adds its new member; the gate sees them in the group.
        let fixed = "email\nengineer@acme.test\ncontractor@acme.test\n";
        let added = groups::add_from_csv(&by_owner, group.id, fixed)
            .await
            .unwrap();
        assert_eq!(added.adds(), 1);
        let listed = groups::list(&test_db.db, &authz, &org.owner).await.unwrap();
        assert_eq!(listed[0].members, 2, "{backend:?}");
        assert_eq!(
            test_db.count("casbin_rule WHERE ptype = 'g'").await,
            2,
            "{backend:?}"
        );

        // Taken out, the member leaves the group's rules too; a second time changes nothing.
        assert!(matches!(
            groups::remove_member(
                &cmd(&test_db, &authz, &org.helpdesk),
                group.id,
                org.contractor.id
            )
            .await,
            Err(GroupError::NotAllowed)
        ));
        for _ in 0..2 {
            groups::remove_member(&by_owner, group.id, org.contractor.id)
                .await
                .unwrap();
        }
        assert_eq!(test_db.count("casbin_rule WHERE ptype = 'g'").await, 1);
        assert_eq!(
            test_db
                .count("audit_event WHERE action = 'group.member_removed' AND outcome = 'success'")
                .await,
            1,
            "{backend:?}"
        );
        assert!(matches!(
            groups::remove_member(&by_owner, group.id, org.stranger.id).await,
            Err(GroupError::UnknownMember)
        ));

        // Files with no address, and an unknown or foreign group, are refused by name.
        for (csv, field) in [("", "csv"), ("email\n\n", "csv"), (" , \n", "csv")] {
            match groups::preview_add(&test_db.db, &authz, &org.owner, group.id, csv).await {
                Err(GroupError::Invalid(error)) => assert_eq!(error.field, field, "{csv:?}"),
                other => panic!("{csv:?}: {other:?}"),
            }
        }
        let foreign = groups::create(&cmd(&test_db, &authz, &org.stranger), "Sales")
            .await
            .unwrap();
        assert!(matches!(
            groups::add_from_csv(&by_owner, foreign.id, fixed).await,
            Err(GroupError::UnknownGroup)
        ));
        // Only those who manage groups fill them.
        assert!(matches!(
            groups::add_from_csv(&cmd(&test_db, &authz, &org.helpdesk), group.id, fixed).await,
            Err(GroupError::NotAllowed)
        ));
    }
}

#[tokio::test]
async fn limits_hold_when_the_same_request_arrives_200_times_at_once() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    for test_db in migrated_databases().await {
        let backend = test_db.backend;
        let authz = Authz::load(&test_db.db).await.unwrap();
        let org = org(&test_db, &hasher, &key).await;

        // One name, 200 creations: one group, 199 refusals by field.
        let creations: Vec<_> = (0..200)
            .map(|_| {
                let (db, authz, owner) = (test_db.db.clone(), authz.clone(), org.owner.clone());
                tokio::spawn(async move {
                    let source = Source::default();
                    groups::create(&Command::new(&db, &authz, &owner, &source, t0()), "Team").await
                })
            })
            .collect();
        let mut created = 0;
        for creation in creations {
            match creation.await.unwrap() {
                Ok(_) => created += 1,
                Err(GroupError::Invalid(error)) => assert_eq!(error.field, "name"),
                Err(other) => panic!("{backend:?}: {other:?}"),
            }
        }
        assert_eq!(created, 1, "{backend:?}");
        assert_eq!(test_db.count("member_group").await, 1, "{backend:?}");

        // One file, 200 adds: each member once, one event.
        let team = groups::list(&test_db.db, &authz, &org.owner).await.unwrap()[0].id;
        let adds: Vec<_> = (0..200)
            .map(|_| {
                let (db, authz, owner) = (test_db.db.clone(), authz.clone(), org.owner.clone());
                tokio::spawn(async move {
                    let source = Source::default();
                    groups::add_from_csv(
                        &Command::new(&db, &authz, &owner, &source, t0()),
                        team,
                        "engineer@acme.test\ncontractor@acme.test\nhelpdesk@acme.test",
                    )
                    .await
                })
            })
            .collect();
        for add in adds {
            add.await.unwrap().unwrap();
        }
        assert_eq!(test_db.count("group_member").await, 3, "{backend:?}");
        assert_eq!(
            test_db.count("casbin_rule WHERE ptype = 'g'").await,
            3,
            "{backend:?}"
        );
        assert_eq!(
            test_db
                .count("audit_event WHERE action = 'group.members_added'")
                .await,
            1,
            "{backend:?}"
        );

        // The most groups an organization may have, with 200 creations racing for the last.
        for n in 1..groups::MAX_GROUPS - 1 {
            groups::create(&cmd(&test_db, &authz, &org.owner), &format!("Group {n}"))
                .await
                .unwrap();
        }
        let creations: Vec<_> = (0..200)
            .map(|n| {
                let (db, authz, owner) = (test_db.db.clone(), authz.clone(), org.owner.clone());
                tokio::spawn(async move {
                    let source = Source::default();
                    groups::create(
                        &Command::new(&db, &authz, &owner, &source, t0()),
                        &format!("Late {n}"),
                    )
                    .await
                })
            })
            .collect();
        let mut created = 0;
        for creation in creations {
            if creation.await.unwrap().is_ok() {
                created += 1;
            }
        }
        assert_eq!(created, 1, "{backend:?}");
        assert_eq!(
            test_db
                .count(&format!("member_group WHERE org_id = {}", org.owner.org_id))
                .await,
            i64::try_from(groups::MAX_GROUPS).unwrap(),
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn a_scoped_help_desk_member_assists_their_groups_members_alone() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    for test_db in migrated_databases().await {
        let (db, backend) = (&test_db.db, test_db.backend);
        let authz = Authz::load(db).await.unwrap();
        let org = org(&test_db, &hasher, &key).await;
        let by_owner = cmd(&test_db, &authz, &org.owner);
        let by_helpdesk = cmd(&test_db, &authz, &org.helpdesk);
        let engineering = groups::create(&by_owner, "Engineering").await.unwrap();
        groups::add_from_csv(&by_owner, engineering.id, "engineer@acme.test")
            .await
            .unwrap();

        // Unscoped, the help desk assists both members.
        for member in [&org.engineer, &org.contractor] {
            assert!(
                authz
                    .allows(&org.helpdesk, org.owner.org_id, Action::Assist(member.id))
                    .await
                    .unwrap()
            );
        }
        // Only help-desk members are scoped; only those who manage groups scope them.
        assert!(matches!(
            groups::set_scope(&by_owner, org.engineer.id, &[engineering.id]).await,
            Err(GroupError::Invalid(error)) if error.field == "member"
        ));
        assert!(matches!(
            groups::set_scope(&by_helpdesk, org.helpdesk.id, &[]).await,
            Err(GroupError::NotAllowed)
        ));
        groups::set_scope(&by_owner, org.helpdesk.id, &[engineering.id])
            .await
            .unwrap();

        // A code for the group's member; none for anyone else, and the refusal is recorded.
        recovery_codes::request(&by_helpdesk, &org.engineer.email, CodeChoice::default())
            .await
            .unwrap();
        let refused = test_db.count("audit_event WHERE outcome = 'denied'").await;
        assert!(matches!(
            recovery_codes::request(&by_helpdesk, &org.contractor.email, CodeChoice::default())
                .await,
            Err(RecoveryError::NotAllowed)
        ));
        assert_eq!(
            test_db.count("audit_event WHERE outcome = 'denied'").await,
            refused + 1,
            "{backend:?}"
        );
        // The owner's code for the other member is not on the help desk's list.
        recovery_codes::request(&by_owner, &org.contractor.email, CodeChoice::default())
            .await
            .unwrap();
        let listed: Vec<i32> = recovery_codes::recent(db, &authz, &org.helpdesk, t0())
            .await
            .unwrap()
            .into_iter()
            .map(|code| code.member_id)
            .collect();
        assert_eq!(listed, vec![org.engineer.id], "{backend:?}");
        // Unlocking follows the same scope, on the page and in the act.
        let page = members::page(
            db,
            &authz,
            &org.helpdesk,
            members::Filter::default(),
            None,
            t0(),
        )
        .await
        .unwrap();
        for row in &page.rows {
            let expected = row.member.id == org.engineer.id;
            assert_eq!(row.unlockable, expected, "{} {backend:?}", row.member.email);
        }
        members::unlock(&by_helpdesk, org.engineer.id)
            .await
            .unwrap();
        assert!(
            members::unlock(&by_helpdesk, org.contractor.id)
                .await
                .is_err()
        );

        // The members console lists one group's members.
        let in_group = members::page(
            db,
            &authz,
            &org.owner,
            members::Filter {
                group: Some(engineering.id),
                ..Default::default()
            },
            None,
            t0(),
        )
        .await
        .unwrap();
        let emails: Vec<&str> = in_group
            .rows
            .iter()
            .map(|r| r.member.email.as_str())
            .collect();
        assert_eq!(emails, ["engineer@acme.test"], "{backend:?}");

        // A group a help-desk member is scoped to stays until their scope changes: deleting
        // it would let them assist everyone.
        assert!(matches!(
            groups::delete(&by_owner, engineering.id).await,
            Err(GroupError::InUseByScope(who)) if who == "helpdesk@acme.test"
        ));

        // The export of now and the replay of the log agree on every group rule.
        let exported = org_policy::export(db, org.owner.org_id, t0())
            .await
            .unwrap();
        for line in [
            format!(
                "g, member:{}, group:{}, org:{}",
                org.engineer.id, engineering.id, org.owner.org_id
            ),
            format!(
                "p, member:{}, org:{}, group:{}, assist, allow",
                org.helpdesk.id, org.owner.org_id, engineering.id
            ),
        ] {
            assert!(
                exported.rules.contains(&line),
                "{line} in {:?}",
                exported.rules
            );
        }
        assert_eq!(
            org_policy::export_at(db, org.owner.org_id, t0(), t0())
                .await
                .unwrap(),
            exported,
            "{backend:?}"
        );

        // Moved off the help desk, they lose the scope; as help desk again, they start
        // unscoped. Removed, their memberships leave the rules too.
        members::change_role(&by_owner, org.helpdesk.id, Role::Member)
            .await
            .unwrap();
        members::change_role(&by_owner, org.helpdesk.id, Role::Helpdesk)
            .await
            .unwrap();
        let back = Member {
            role: Role::Helpdesk,
            ..org.helpdesk.clone()
        };
        assert!(
            authz
                .allows(&back, org.owner.org_id, Action::Assist(org.contractor.id))
                .await
                .unwrap()
        );
        domain::accounts::remove_member(&by_owner, org.engineer.id)
            .await
            .unwrap();
        assert_eq!(
            test_db.count("casbin_rule WHERE ptype = 'g'").await,
            0,
            "{backend:?}"
        );
        groups::delete(&by_owner, engineering.id).await.unwrap();
        assert_eq!(test_db.count("member_group").await, 0, "{backend:?}");
        let exported = org_policy::export(db, org.owner.org_id, t0())
            .await
            .unwrap();
        assert_eq!(
            org_policy::export_at(db, org.owner.org_id, t0(), t0())
                .await
                .unwrap(),
            exported,
            "{backend:?}"
        );
        assert!(
            !exported.rules.iter().any(|line| line.contains("group:")),
            "{:?}",
            exported.rules
        );
    }
}
