//! The compliance report's counts, made by the database, against the console's answer for
//! each member: every standing, under every backup-code setting, on every backend. A new
//! standing joins the table by being in `Standing::ALL`.

use chrono::{DateTime, Duration, Utc};
use domain::{
    audit::Source,
    authz::{Action, Authz},
    backup_codes,
    command::Command,
    hashing::PasswordHasher,
    identity::{Member, Role},
    lookup_secret::BackupCodeHasher,
    members::{self, MemberStatus, Standing},
    org_policy::{self, CodesMode, OrgPolicy},
    secrets::{Password, SecretKey},
    testing::{TestDatabase, migrated_databases},
};

use crate::fixtures::{add_member, member_with_mfa, owner_with_mfa, t0};

/// Whether the console's row for a member puts them in `standing`: the meaning of each
/// standing, one member at a time.
fn stands(row: &MemberStatus, standing: Standing) -> bool {
    let working = row.codes_remaining.is_some() && !row.set_expired;
    match standing {
        Standing::WithMfa => row.member.mfa_enabled,
        Standing::HoldingCodes => working && row.codes_remaining > Some(0),
        Standing::WithoutCodes => !(working && row.codes_remaining > Some(0)),
        Standing::LowOnCodes => working && row.codes_low,
        Standing::ExpiredSets => row.set_expired,
        Standing::Locked => !row.locked.is_empty(),
        Standing::NonCompliant => !row.compliant,
        Standing::Exempted => row.exception.is_some(),
        Standing::InGrace => row.deadline.is_some_and(|deadline| !deadline.passed()),
    }
}

fn sql_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339()
}

/// The set in force of `member`, generated at `at`.
async fn codes_at(
    db: &domain::db::DatabaseConnection,
    authz: &Authz,
    codes: &BackupCodeHasher,
    member: &Member,
    at: DateTime<Utc>,
) {
    let source = Source::default();
    backup_codes::generate(
        &Command::new(db, authz, member, &source, at),
        codes,
        &OrgPolicy::default().code_policy(),
    )
    .await
    .unwrap();
}

/// Marks the first `spent` codes of `member`'s set in force used, and counts them on the set,
/// as `spent` redemptions would.
async fn spend(test_db: &TestDatabase, member: &Member, spent: u32) {
    let at = sql_time(t0() - Duration::hours(1));
    let in_force = format!(
        "SELECT id FROM backup_code_set WHERE user_id = {} AND ended_at IS NULL",
        member.id
    );
    test_db
        .execute(&format!(
            "UPDATE backup_code SET used_at = '{at}' WHERE slot <= {spent} AND set_id IN \
             ({in_force})"
        ))
        .await;
    test_db
        .execute(&format!(
            "UPDATE backup_code_set SET codes_used = {spent}, last_used_at = '{at}' \
             WHERE id IN ({in_force})"
        ))
        .await;
}

/// Locks `member`'s `factor` until `until`, as five wrong attempts from anywhere would.
async fn lock(test_db: &TestDatabase, member: &Member, factor: &str, until: DateTime<Utc>) {
    test_db
        .execute(&format!(
            "INSERT INTO factor_attempt \
             (user_id, factor, source, attempts, window_started_at, locked_until, lockouts) \
             VALUES ({}, '{factor}', '', 5, '{}', '{}', 1)",
            member.id,
            sql_time(until - Duration::minutes(15)),
            sql_time(until),
        ))
        .await;
}

/// An organization with a member in every state the report tells apart, and a second
/// organization whose members must never be counted. Returns the owner.
async fn population(
    test_db: &TestDatabase,
    hasher: &PasswordHasher,
    key: &SecretKey,
    codes: &BackupCodeHasher,
) -> Member {
    let db = &test_db.db;
    let authz = Authz::load(db).await.unwrap();
    let (owner, _) = owner_with_mfa(test_db, hasher, key).await;
    let org = owner.org_id;
    let with_mfa = |email: &'static str| member_with_mfa(test_db, hasher, key, org, email);

    add_member(test_db, hasher, org, "no-mfa@acme.test", Role::Member).await;
    add_member(test_db, hasher, org, "admin-no-mfa@acme.test", Role::Admin).await;
    let long_ago = with_mfa("no-codes@acme.test").await;
    test_db
        .execute(&format!(
            "UPDATE user_account SET created_at = '{}' WHERE id = {}",
            sql_time(t0() - Duration::days(60)),
            long_ago.id
        ))
        .await;
    with_mfa("no-codes-new@acme.test").await;
    codes_at(db, &authz, codes, &owner, t0()).await;
    let full = with_mfa("full@acme.test").await;
    codes_at(db, &authz, codes, &full, t0()).await;
    let low = with_mfa("low@acme.test").await;
    codes_at(db, &authz, codes, &low, t0()).await;
    spend(test_db, &low, 8).await;
    let spent = with_mfa("spent@acme.test").await;
    codes_at(db, &authz, codes, &spent, t0()).await;
    spend(test_db, &spent, 10).await;
    let expired = with_mfa("expired-on-record@acme.test").await;
    codes_at(db, &authz, codes, &expired, t0()).await;
    test_db
        .execute(&format!(
            "UPDATE backup_code_set SET expired_at = '{}' WHERE user_id = {}",
            sql_time(t0() - Duration::minutes(5)),
            expired.id
        ))
        .await;
    // Under a 10-day maximum age this set expires; under 30 days it does not.
    let aging = with_mfa("aging@acme.test").await;
    codes_at(db, &authz, codes, &aging, t0() - Duration::days(20)).await;
    let old = with_mfa("old@acme.test").await;
    codes_at(db, &authz, codes, &old, t0() - Duration::days(40)).await;
    let locked = with_mfa("locked@acme.test").await;
    codes_at(db, &authz, codes, &locked, t0()).await;
    lock(
        test_db,
        &locked,
        "backup_code",
        t0() + Duration::minutes(14),
    )
    .await;
    // A lock that has run out is no lock.
    let unlocked = with_mfa("lock-over@acme.test").await;
    lock(test_db, &unlocked, "password", t0() - Duration::hours(1)).await;
    with_mfa("denied@acme.test").await;
    with_mfa("allowed@acme.test").await;
    let source = Source::default();
    let cmd = Command::new(db, &authz, &owner, &source, t0());
    org_policy::add_exception(&cmd, "denied@acme.test", false, "contractor")
        .await
        .unwrap();
    org_policy::add_exception(&cmd, "allowed@acme.test", true, "on call")
        .await
        .unwrap();
    // Groups' exceptions: a member only a denying group names, one an allowing group names,
    // and one in both (deny wins); the member allowed on their own is in the denying group
    // too (their own wins).
    with_mfa("group-denied@acme.test").await;
    with_mfa("group-allowed@acme.test").await;
    with_mfa("in-both-groups@acme.test").await;
    for (name, allowed, members) in [
        (
            "Contractors",
            false,
            "group-denied@acme.test\nin-both-groups@acme.test\nallowed@acme.test",
        ),
        (
            "On call",
            true,
            "group-allowed@acme.test\nin-both-groups@acme.test",
        ),
    ] {
        let group = domain::groups::create(&cmd, name).await.unwrap();
        domain::groups::add_from_csv(&cmd, group.id, &format!("email\n{members}\n"))
            .await
            .unwrap();
        domain::groups::set_exception(&cmd, group.id, Some(allowed), "review")
            .await
            .unwrap();
    }

    // Another organization, in most of those states too.
    let (_, stranger) = domain::accounts::create_organization(
        db,
        hasher,
        "Globex",
        "owner@globex.test",
        &Password::new("correct horse battery"),
        t0(),
    )
    .await
    .unwrap();
    let theirs = member_with_mfa(test_db, hasher, key, stranger.org_id, "m@globex.test").await;
    codes_at(db, &authz, codes, &theirs, t0()).await;
    spend(test_db, &theirs, 9).await;
    owner
}

#[tokio::test]
async fn each_count_is_the_number_of_members_the_console_puts_there() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    let codes = BackupCodeHasher::new(hasher.clone(), &key);
    let source = Source::default();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let backend = test_db.backend;
        let owner = population(&test_db, &hasher, &key, &codes).await;
        let authz = Authz::load(db).await.unwrap();
        let mut version = org_policy::current(db, owner.org_id).await.unwrap().version;
        for mode in [
            CodesMode::Allowed,
            CodesMode::Required,
            CodesMode::NotAllowed,
        ] {
            // Under "Required", a date passed ten days ago and 30 days for new members: those
            // who joined at t0 are in grace, the one who joined 60 days before is not.
            let policy = OrgPolicy {
                codes: mode,
                max_set_age_days: 30,
                required_from: Some((t0() - Duration::days(10)).date_naive()),
                grace_days: 30,
                ..OrgPolicy::default()
            };
            org_policy::save(
                &Command::new(db, &authz, &owner, &source, t0()),
                version,
                &policy,
            )
            .await
            .unwrap();
            version += 1;

            let console = members::page(db, &authz, &owner, members::Filter::default(), None, t0())
                .await
                .unwrap();
            assert!(console.next_after.is_none(), "one page holds them all");
            let counts = members::standing_counts(db, &authz, &owner, t0())
                .await
                .unwrap();
            assert_eq!(counts.policy, mode);
            assert_eq!(counts.members, console.rows.len() as u64);
            // The same counts when the members are split into id ranges counted at once (as
            // a large organization is on SQLite): each member in exactly one range.
            let in_parts = members::standing_counts_in_parts(db, &authz, &owner, t0(), 1)
                .await
                .unwrap();
            assert_eq!(
                in_parts, counts,
                "{backend:?}, {mode:?}: counted in id ranges at once"
            );
            for standing in Standing::ALL {
                let mut expected: Vec<i32> = console
                    .rows
                    .iter()
                    .filter(|row| stands(row, standing))
                    .map(|row| row.member.id)
                    .collect();
                expected.sort_unstable();
                assert_eq!(
                    counts.of(standing),
                    expected.len() as u64,
                    "{backend:?}, {mode:?}: the count of {standing:?}"
                );
                let listed: Vec<i32> = members::page(
                    db,
                    &authz,
                    &owner,
                    members::Filter {
                        standing: Some(standing),
                        ..Default::default()
                    },
                    None,
                    t0(),
                )
                .await
                .unwrap()
                .rows
                .iter()
                .map(|row| row.member.id)
                .collect();
                assert_eq!(
                    listed, expected,
                    "{backend:?}, {mode:?}: the members listed as {standing:?}"
                );
            }
            // The population tells every standing apart, so a wrong condition shows.
            if mode == CodesMode::Required {
                for standing in Standing::ALL {
                    assert!(
                        counts.of(standing) > 0,
                        "{backend:?}: nobody is {standing:?}"
                    );
                    assert!(
                        counts.of(standing) < counts.members,
                        "{backend:?}: everybody is {standing:?}"
                    );
                }
            }
        }
    }
}

/// The gate's allowance (what the counts' SQL is built from) answers as the gate does: a
/// member no exception decides for may act exactly when their role may, and it knows of an
/// exception exactly when one decides for somebody.
#[tokio::test]
async fn the_gate_s_allowance_answers_as_the_gate_does_for_each_member() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    let codes = BackupCodeHasher::new(hasher.clone(), &key);
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let owner = population(&test_db, &hasher, &key, &codes).await;
        let authz = Authz::load(db).await.unwrap();
        let console = members::page(db, &authz, &owner, members::Filter::default(), None, t0())
            .await
            .unwrap();
        for action in [
            Action::GenerateBackupCodes,
            Action::ViewAudit,
            Action::ManagePolicy,
        ] {
            let allowance = authz.allowance(owner.org_id, action).await.unwrap();
            // Exceptions speak of backup codes only.
            let excepted = |row: &MemberStatus| {
                action == Action::GenerateBackupCodes && row.exception.is_some()
            };
            assert_eq!(
                allowance.any_exception,
                console.rows.iter().any(excepted),
                "{:?}: {action:?}",
                test_db.backend
            );
            for row in console.rows.iter().filter(|row| !excepted(row)) {
                assert_eq!(
                    allowance.roles.contains(&row.member.role),
                    authz
                        .allows(&row.member, owner.org_id, action)
                        .await
                        .unwrap(),
                    "{:?}: {} and {action:?}",
                    test_db.backend,
                    row.member.email
                );
            }
        }
    }
}

/// "Exempted (an exception)": a member's own exception or a group's, either way, counted
/// once when they have both; the console's list under that standing names the same members.
#[tokio::test]
async fn members_excepted_on_their_own_or_by_a_group_are_counted_once() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    let source = Source::default();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let authz = Authz::load(db).await.unwrap();
        let (owner, _) = owner_with_mfa(&test_db, &hasher, &key).await;
        let org = owner.org_id;
        for email in [
            "own@acme.test",
            "both@acme.test",
            "grouped@acme.test",
            "plain@acme.test",
        ] {
            add_member(&test_db, &hasher, org, email, Role::Member).await;
        }
        let cmd = Command::new(db, &authz, &owner, &source, t0());
        org_policy::add_exception(&cmd, "own@acme.test", false, "contractor")
            .await
            .unwrap();
        org_policy::add_exception(&cmd, "both@acme.test", true, "on call")
            .await
            .unwrap();
        // A group with an exception holds one member with their own exception and one
        // without; a group without one changes nothing.
        let excepted = domain::groups::create(&cmd, "Pilot").await.unwrap();
        domain::groups::add_from_csv(
            &cmd,
            excepted.id,
            "email\nboth@acme.test\ngrouped@acme.test\n",
        )
        .await
        .unwrap();
        domain::groups::set_exception(&cmd, excepted.id, Some(false), "pilot over")
            .await
            .unwrap();
        let plain = domain::groups::create(&cmd, "Everyone else").await.unwrap();
        domain::groups::add_from_csv(&cmd, plain.id, "email\nplain@acme.test\n")
            .await
            .unwrap();

        let counts = members::standing_counts(db, &authz, &owner, t0())
            .await
            .unwrap();
        assert_eq!(counts.of(Standing::Exempted), 3, "{:?}", test_db.backend);
        let listed = members::page(
            db,
            &authz,
            &owner,
            members::Filter {
                standing: Some(Standing::Exempted),
                ..Default::default()
            },
            None,
            t0(),
        )
        .await
        .unwrap();
        let mut emails: Vec<_> = listed
            .rows
            .iter()
            .map(|row| row.member.email.as_str())
            .collect();
        emails.sort_unstable();
        // Each row shows the exception that decides for them: their own, else their group's.
        let shown: Vec<_> = listed
            .rows
            .iter()
            .map(|row| (row.member.email.as_str(), row.exception))
            .collect();
        for expected in [
            ("own@acme.test", Some(false)),
            ("both@acme.test", Some(true)),
            ("grouped@acme.test", Some(false)),
        ] {
            assert!(
                shown.contains(&expected),
                "{:?}: {shown:?} lacks {expected:?}",
                test_db.backend
            );
        }
        assert_eq!(
            emails,
            ["both@acme.test", "grouped@acme.test", "own@acme.test"],
            "{:?}",
            test_db.backend
        );
    }
}

#[tokio::test]
async fn only_those_who_read_the_audit_record_get_the_counts() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let authz = Authz::load(db).await.unwrap();
        let (owner, _) = owner_with_mfa(&test_db, &hasher, &key).await;
        let member = add_member(&test_db, &hasher, owner.org_id, "m@acme.test", Role::Member).await;
        assert!(matches!(
            members::standing_counts(db, &authz, &member, t0()).await,
            Err(domain::accounts::AccountError::NotAllowed)
        ));
        assert!(matches!(
            members::page(
                db,
                &authz,
                &member,
                members::Filter {
                    standing: Some(Standing::Locked),
                    ..Default::default()
                },
                None,
                t0()
            )
            .await,
            Err(domain::accounts::AccountError::NotAllowed)
        ));
    }
}

#[tokio::test]
async fn the_chart_counts_each_utc_days_redemptions_and_refusals_of_the_organization() {
    use chrono::TimeZone;
    use domain::audit::{self, AuditAction, Event, Outcome};

    let hasher = PasswordHasher::new(2).unwrap();
    let at = |d: u32, h: u32, m: u32, s: u32| Utc.with_ymd_and_hms(2026, 11, d, h, m, s).unwrap();
    let october =
        |d: u32, h: u32, m: u32, s: u32| Utc.with_ymd_and_hms(2026, 10, d, h, m, s).unwrap();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let backend = test_db.backend;
        let authz = Authz::load(db).await.unwrap();
        let owner = crate::fixtures::owner(&test_db, &hasher).await;
        let (_, other) = domain::accounts::create_organization(
            db,
            &hasher,
            "Globex",
            "owner@globex.test",
            &domain::secrets::Password::new("correct horse battery"),
            t0(),
        )
        .await
        .unwrap();
        let events = [
            // The day before the first day of the chart (t0 is 27 November, 12:00 UTC).
            (
                &owner,
                AuditAction::BackupCodeRedeemed,
                october(28, 23, 59, 59),
            ),
            (
                &owner,
                AuditAction::BackupCodeRedeemed,
                october(29, 0, 0, 0),
            ),
            (
                &owner,
                AuditAction::BackupCodeRefused,
                october(29, 23, 59, 59),
            ),
            (&owner, AuditAction::BackupCodeRefused, at(27, 0, 0, 0)),
            (&owner, AuditAction::BackupCodeRedeemed, at(27, 11, 0, 0)),
            (&owner, AuditAction::BackupCodeRedeemed, at(27, 11, 30, 0)),
            (&owner, AuditAction::BackupCodesGenerated, at(27, 11, 0, 0)),
            (&other, AuditAction::BackupCodeRedeemed, at(27, 11, 0, 0)),
            (&other, AuditAction::BackupCodeRefused, at(15, 8, 0, 0)),
        ];
        for (member, action, when) in events {
            audit::record(
                db,
                member.org_id,
                Event {
                    action,
                    actor: Some(member),
                    target: Some(member),
                    outcome: Outcome::Success,
                    details: serde_json::json!({}),
                },
                &Source::default(),
                when,
            )
            .await
            .unwrap();
        }
        let report = members::compliance(db, &authz, &owner, t0()).await.unwrap();
        let days: Vec<(String, u32, u32)> = report
            .days
            .iter()
            .map(|d| (d.day.to_string(), d.redeemed, d.refused))
            .collect();
        assert_eq!(days.len(), 30, "{backend:?}");
        assert_eq!(days[0], ("2026-10-29".to_owned(), 1, 1), "{backend:?}");
        assert_eq!(days[29], ("2026-11-27".to_owned(), 2, 1), "{backend:?}");
        assert!(
            days[1..29].iter().all(|(_, r, f)| (*r, *f) == (0, 0)),
            "{backend:?}: {days:?}"
        );
        // Counted again from the events (as a restore does), the days are the same: the
        // database's day of an event is the one it was counted on as it was written.
        for org_id in [owner.org_id, other.org_id] {
            audit::daily::recount(db, org_id).await.unwrap();
        }
        let recounted = members::compliance(db, &authz, &owner, t0()).await.unwrap();
        assert_eq!(recounted.days, report.days, "{backend:?}");
        let rows = test_db.count("code_use_day").await;
        assert_eq!(
            rows, 5,
            "{backend:?}: one row per organization and day with use"
        );
    }
}

/// One member as the impact preview's rules read them, for the oracle below.
struct Held {
    id: i32,
    email: String,
    mfa: bool,
    joined: DateTime<Utc>,
    exception: Option<bool>,
    set: Option<backup_codes::SetInForce>,
}

/// What each effect of saving `after` over `before` is about, member by member, written out
/// from the rules the console applies to one member: the count, the unused codes they hold
/// (for the two effects that say it) and the first 20 emails by id, in the preview's order.
fn oracle(
    held: &[Held],
    before: &OrgPolicy,
    after: &OrgPolicy,
) -> Vec<(u64, Option<u64>, Vec<String>)> {
    let now = t0();
    let standing =
        |h: &Held, p: &OrgPolicy| h.set.as_ref().map(|set| p.code_policy().standing(set, now));
    let expired = |h: &Held, p: &OrgPolicy| standing(h, p).is_some_and(|s| s.expired);
    let unused = |h: &Held| h.set.as_ref().map_or(0, |set| set.remaining);
    let compliant = |h: &Held, p: &OrgPolicy| {
        backup_codes::compliant(true, true, h.mfa, standing(h, p).as_ref())
    };
    let asked = |h: &Held, p: &OrgPolicy| {
        p.replace_when_low
            && p.codes != CodesMode::NotAllowed
            && h.exception != Some(false)
            && standing(h, p).is_some_and(|s| s.low && !s.expired && s.remaining > 0)
    };
    // (members, said even when none, says the codes they hold)
    let mut effects: Vec<(Vec<&Held>, bool, bool)> = Vec::new();
    let pick = |rule: &dyn Fn(&Held) -> bool| held.iter().filter(|h| rule(h)).collect::<Vec<_>>();
    if after.codes == CodesMode::NotAllowed && before.codes != CodesMode::NotAllowed {
        effects.push((
            pick(&|h| unused(h) > 0 && h.exception != Some(true)),
            true,
            true,
        ));
    }
    let age = |p: &OrgPolicy| p.max_set_age_days;
    if age(after) > 0 && (age(before) == 0 || age(after) < age(before)) {
        effects.push((
            pick(&|h| expired(h, after) && !expired(h, before)),
            true,
            false,
        ));
    }
    if age(before) > 0 && (age(after) == 0 || age(after) > age(before)) {
        effects.push((pick(&|h| expired(h, before)), false, false));
    }
    if before.codes == CodesMode::NotAllowed && after.codes != CodesMode::NotAllowed {
        effects.push((
            pick(&|h| unused(h) > 0 && !expired(h, after) && h.exception.is_none()),
            true,
            true,
        ));
    }
    let bound = |h: &Held| h.exception != Some(false) && !compliant(h, after);
    if after.codes == CodesMode::Required {
        effects.push((
            pick(&|h| bound(h) && (before.codes != CodesMode::Required || compliant(h, before))),
            true,
            false,
        ));
    }
    let moved = before.codes != after.codes
        || before.required_from != after.required_from
        || before.grace_days != after.grace_days;
    if let Some(from) = after
        .required_from
        .filter(|_| after.codes == CodesMode::Required)
        .map(org_policy::grace::start_of)
    {
        let deadline = |h: &Held| org_policy::grace::deadline(after, h.joined).unwrap();
        if from <= now {
            let newly = |h: &Held| moved || compliant(h, before);
            effects.push((
                pick(&|h| bound(h) && deadline(h) <= now && newly(h)),
                false,
                false,
            ));
        } else if moved {
            effects.push((pick(&|h| bound(h) && deadline(h) == from), true, false));
        }
    }
    if after.replace_when_low {
        effects.push((
            pick(&|h| asked(h, after) && !asked(h, before)),
            !before.replace_when_low,
            false,
        ));
    }
    effects
        .into_iter()
        .filter(|(members, always, _)| *always || !members.is_empty())
        .map(|(mut members, _, says_codes)| {
            members.sort_by_key(|h| h.id);
            let codes = members.iter().map(|h| u64::from(unused(h))).sum();
            (
                members.len() as u64,
                says_codes.then_some(codes),
                members.iter().take(20).map(|h| h.email.clone()).collect(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_impact_preview_names_whom_the_rules_name_for_each_change() {
    use domain::backup_codes::{Scope, sets_in_force};

    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    let codes = BackupCodeHasher::new(hasher.clone(), &key);
    let source = Source::default();
    let past = Some((t0() - Duration::days(10)).date_naive());
    let ahead = Some((t0() + Duration::days(10)).date_naive());
    let base = OrgPolicy {
        max_set_age_days: 30,
        ..OrgPolicy::default()
    };
    let required = |required_from, grace_days| OrgPolicy {
        codes: CodesMode::Required,
        required_from,
        grace_days,
        ..base
    };
    // (in force, previewed), written out: each effect the preview has, at least once.
    let changes = [
        (
            base,
            OrgPolicy {
                codes: CodesMode::NotAllowed,
                ..base
            },
        ),
        (
            base,
            OrgPolicy {
                max_set_age_days: 10,
                ..base
            },
        ),
        (
            base,
            OrgPolicy {
                max_set_age_days: 0,
                ..base
            },
        ),
        (
            OrgPolicy {
                codes: CodesMode::NotAllowed,
                ..base
            },
            base,
        ),
        (base, required(None, 0)),
        (required(None, 0), required(past, 0)),
        (required(None, 0), required(past, 30)),
        (base, required(ahead, 0)),
        (required(past, 0), required(ahead, 40)),
        (
            required(past, 0),
            OrgPolicy {
                max_set_age_days: 10,
                ..required(past, 0)
            },
        ),
        (
            base,
            OrgPolicy {
                replace_when_low: true,
                low_codes_threshold: 5,
                ..base
            },
        ),
    ];
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let backend = test_db.backend;
        let owner = population(&test_db, &hasher, &key, &codes).await;
        let authz = Authz::load(db).await.unwrap();
        for (before, after) in changes {
            let version = org_policy::current(db, owner.org_id).await.unwrap().version;
            org_policy::save(
                &Command::new(db, &authz, &owner, &source, t0()),
                version,
                &before,
            )
            .await
            .unwrap();
            let mut sets: std::collections::HashMap<i32, backup_codes::SetInForce> =
                sets_in_force(db, Scope::Organization(owner.org_id))
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|set| (set.member_id, set))
                    .collect();
            let held: Vec<Held> =
                members::page(db, &authz, &owner, members::Filter::default(), None, t0())
                    .await
                    .unwrap()
                    .rows
                    .into_iter()
                    .map(|row| Held {
                        id: row.member.id,
                        email: row.member.email.clone(),
                        mfa: row.member.mfa_enabled,
                        joined: row.member.created_at,
                        exception: row.exception,
                        set: sets.remove(&row.member.id),
                    })
                    .collect();
            let preview = org_policy::impact(db, &authz, &owner, &after, t0())
                .await
                .unwrap();
            // "3 members hold 24 unused codes …": the count, and the codes when said.
            let found: Vec<(u64, Option<u64>, Vec<String>)> = preview
                .effects
                .iter()
                .zip(&preview.members)
                .map(|(effect, members)| {
                    let words: Vec<&str> = effect.split(' ').collect();
                    let codes =
                        (words.get(4) == Some(&"unused")).then(|| words[3].parse().unwrap());
                    (words[0].parse().unwrap(), codes, members.clone())
                })
                .collect();
            let expected = oracle(&held, &before, &after);
            // The population tells each change apart: some effect names somebody.
            assert!(
                expected.iter().any(|(_, _, members)| !members.is_empty()),
                "{backend:?}: {before:?} → {after:?} names nobody"
            );
            assert_eq!(
                found, expected,
                "{backend:?}: {before:?} → {after:?}: {:?}",
                preview.effects
            );
        }
    }
}
