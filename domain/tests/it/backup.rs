//! Data backups on every backend (issue 15): an organization backed up and restored into an
//! empty database comes back exactly — every row (the sealed secrets re-sealed), every Casbin
//! decision for every member and action, the audit chain verifying to the archive's signed
//! head, members signing in with the same password, authenticator and unused backup codes,
//! used codes staying used. A wrong passphrase, a changed or cut archive, another schema and
//! a database that is not empty are refused, and nothing is written. A backup taken while
//! 200 events are recorded at once is one instant of the organization.
//!
//! Restored as a new organization — into another installation holding another organization,
//! and into the one it came from, beside itself — it is the same modulo ids: rows, decisions,
//! sign-ins, a chain linked anew that verifies; the organizations already there are as they
//! were. A taken slug or email address, a bad slug, a changed or cut archive are refused with
//! nothing written, and two restores under one new slug at once make one organization.

use std::{collections::HashMap, sync::Arc};

use chrono::Duration;
use domain::{
    audit::{self, AuditAction, Event, Outcome, Source},
    authz::{Action, Authz, group_subject, member_subject, org_domain},
    backup::{self, BackupError, Passphrase, Table},
    backup_codes::{self, CodeEntry},
    command::Command,
    db::Backend,
    groups,
    hashing::PasswordHasher,
    identity::{Email, Member, Role},
    lookup_secret::BackupCodeHasher,
    mfa,
    notifications::webhooks::UrlRules,
    org_policy::{
        self,
        webhooks::{WebhookForm, add_webhook},
    },
    secrets::Password,
    sign_in,
    testing::{self, TestDatabase, migrated_databases, postgres_admin_url},
};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;

use crate::fixtures::{add_member, member_with_mfa, owner_with_mfa, t0};

const PASSPHRASE: &str = "correct staple orbit lantern meadow";
/// The seeded group, holding the member, and the help-desk member scoped to it.
const GROUP: &str = "Engineering";
const HELP_DESK: &str = "helpdesk@acme.test";
/// scrypt's work factor for the tests' archives: 2^10, not age's second of work.
const WORK_FACTOR: u8 = 10;

/// Whether a restore's error is the one a case expects.
type RefusedAs = fn(&BackupError) -> bool;

/// A restore as a new organization that is refused: what, into where, the archive, the slug.
type NewOrgCase<'a> = (
    &'a str,
    &'a TestDatabase,
    Vec<u8>,
    Option<&'a str>,
    RefusedAs,
);

fn passphrase() -> Passphrase {
    Passphrase::new_for_archive(PASSPHRASE, PASSPHRASE, &["Acme"])
        .unwrap()
        .with_work_factor(WORK_FACTOR)
}

/// Another empty, migrated database on `test_db`'s backend.
async fn empty_like(test_db: &TestDatabase) -> TestDatabase {
    match test_db.backend {
        Backend::Sqlite => TestDatabase::sqlite().await,
        Backend::Postgres => {
            TestDatabase::postgres(&postgres_admin_url().expect("PostgreSQL was asked for")).await
        }
    }
    .migrated()
    .await
}

/// An organization with something in every table a backup covers: the owner and a member
/// with MFA, the member's backup codes with one used, an exception (so Casbin rules of its
/// own), a webhook, a group holding the member with an exception allowing backup codes (so
/// grouping rows and a group's rules) and a help-desk member scoped to it (a scope's rules),
/// and the audit events of all of it. Returns the owner, the member, the member's setup key
/// and unused codes.
struct Seeded {
    owner: Member,
    member: Member,
    member_setup_key: String,
    unused: Vec<String>,
    used: String,
    /// The group's id.
    group_id: i32,
}

async fn seed(test_db: &TestDatabase, hasher: &PasswordHasher) -> Seeded {
    let key = testing::secret_key();
    let codes = BackupCodeHasher::new(hasher.clone(), &key);
    let (owner, _) = owner_with_mfa(test_db, hasher, &key).await;
    let member = add_member(
        test_db,
        hasher,
        owner.org_id,
        "member@acme.test",
        Role::Member,
    )
    .await;
    let enrolment = mfa::begin_enrolment(&test_db.db, &key, member.id)
        .await
        .unwrap();
    let code = mfa::code_at(&enrolment.setup_key, t0()).unwrap();
    mfa::confirm_enrolment(
        &test_db.db,
        &key,
        member.id,
        &code,
        &Source::default(),
        t0(),
    )
    .await
    .unwrap();
    let member = domain::accounts::member(&test_db.db, member.id)
        .await
        .unwrap()
        .unwrap();
    add_member(
        test_db,
        hasher,
        owner.org_id,
        "admin@acme.test",
        Role::Admin,
    )
    .await;
    let authz = Authz::load(&test_db.db).await.unwrap();
    let source = Source::default();
    let fresh = backup_codes::generate(
        &Command::new(&test_db.db, &authz, &member, &source, t0()),
        &codes,
        &org_policy::current(&test_db.db, owner.org_id)
            .await
            .unwrap()
            .policy
            .code_policy(),
    )
    .await
    .unwrap();
    let mut unused: Vec<String> = fresh.codes.iter().map(|c| c.grouped()).collect();
    let used = unused.remove(0);
    backup_codes::redeem(
        &Command::new(
            &test_db.db,
            &authz,
            &member,
            &source,
            t0() + Duration::minutes(1),
        ),
        &codes,
        &org_policy::current(&test_db.db, owner.org_id)
            .await
            .unwrap()
            .policy
            .code_policy(),
        &CodeEntry::any(&used),
        None,
        &[],
    )
    .await
    .unwrap();
    let authz = Authz::load(&test_db.db).await.unwrap();
    let version = org_policy::current(&test_db.db, owner.org_id)
        .await
        .unwrap()
        .version;
    org_policy::save(
        &Command::new(&test_db.db, &authz, &owner, &source, t0()),
        version,
        &org_policy::OrgPolicy {
            lockout_attempts: 7,
            ..org_policy::OrgPolicy::default()
        },
    )
    .await
    .unwrap();
    org_policy::add_exception(
        &Command::new(&test_db.db, &authz, &owner, &source, t0()),
        "admin@acme.test",
        false,
        "shared device",
    )
    .await
    .unwrap();
    let hook = WebhookForm {
        name: "SIEM".to_owned(),
        url: "https://siem.example.com/hooks/lifeline".to_owned(),
        events: Vec::new(),
    }
    .parse(&UrlRules::default())
    .unwrap();
    add_webhook(
        &Command::new(&test_db.db, &authz, &owner, &source, t0()),
        &hook,
    )
    .await
    .unwrap();
    let help_desk = add_member(test_db, hasher, owner.org_id, HELP_DESK, Role::Helpdesk).await;
    let authz = Authz::load(&test_db.db).await.unwrap();
    let by_owner = Command::new(&test_db.db, &authz, &owner, &source, t0());
    let group = groups::create(&by_owner, GROUP).await.unwrap();
    groups::add_from_csv(&by_owner, group.id, "email\nmember@acme.test\n")
        .await
        .unwrap();
    groups::set_exception(&by_owner, group.id, Some(true), "pilot of backup codes")
        .await
        .unwrap();
    groups::set_scope(&by_owner, help_desk.id, &[group.id])
        .await
        .unwrap();
    // A member's refused request, recorded with the id they sent, which names no group.
    let by_member = Command::new(&test_db.db, &authz, &member, &source, t0());
    assert!(groups::delete(&by_member, -1).await.is_err());
    Seeded {
        owner,
        member,
        member_setup_key: enrolment.setup_key,
        unused,
        used,
        group_id: group.id,
    }
}

async fn take_backup(test_db: &TestDatabase, org_id: i32) -> Vec<u8> {
    let mut archive = Vec::new();
    let mut progress = Vec::new();
    backup::create(
        &test_db.db,
        &testing::secret_key(),
        backup::Request {
            org_id,
            by: None,
            source: &Source::default(),
        },
        &passphrase(),
        &mut archive,
        |step| progress.push(step),
    )
    .await
    .unwrap();
    let last = progress.last().expect("progress was reported");
    assert_eq!(last.written, last.total, "the progress ends at the total");
    assert!(
        progress.windows(2).all(|w| w[0].written <= w[1].written),
        "the progress only advances"
    );
    archive
}

async fn restore(
    target: &TestDatabase,
    archive: &[u8],
    text: &str,
) -> Result<backup::Restored, BackupError> {
    backup::restore(
        &target.db,
        &testing::secret_key(),
        std::io::Cursor::new(archive.to_vec()),
        &Passphrase::to_open(text),
        &Source::default(),
        t0() + Duration::hours(1),
    )
    .await
}

async fn organizations(test_db: &TestDatabase) -> i64 {
    rows_in(test_db, "organization").await
}

/// Every action the gate decides, for every role it names: the whole matrix.
fn actions() -> Vec<Action> {
    let mut actions = vec![
        Action::ListMembers,
        Action::GenerateBackupCodes,
        Action::RedeemBackupCode,
        Action::ViewBackupCodes,
        Action::ViewPolicy,
        Action::ManagePolicy,
        Action::ViewAudit,
        Action::ManageWebhooks,
        Action::ManageApiTokens,
    ];
    for role in Role::ALL.iter().copied() {
        actions.extend([
            Action::AddAccount(role),
            Action::RemoveAccount(role),
            Action::IssueRecoveryCode(role),
            Action::ManageMember(role),
        ]);
    }
    actions
}

/// Every member's decision on every action, with the rules that made it.
async fn decisions(test_db: &TestDatabase, org_id: i32) -> Vec<String> {
    let authz = Authz::load(&test_db.db).await.unwrap();
    let mut out = Vec::new();
    for member in domain::accounts::list_members(&test_db.db, org_id)
        .await
        .unwrap()
    {
        for action in actions() {
            let decision = authz.decide(&member, org_id, action).await.unwrap();
            out.push(format!(
                "{} {action:?}: {} by {} {:?}",
                member.email, decision.allowed, decision.subject, decision.rules
            ));
        }
    }
    out
}

/// The organization's rows as an archive holds them, but for what a restore adds or renumbers:
/// `casbin_rule` ids, and the audit chain beyond `events` events (the restore's own event;
/// a chain linked anew differs in its links, compared apart).
async fn comparable_rows(
    test_db: &TestDatabase,
    org_id: i32,
    events: usize,
) -> Vec<(Table, Vec<serde_json::Value>)> {
    let mut all = backup::rows(&test_db.db, &testing::secret_key(), org_id)
        .await
        .unwrap();
    for (table, rows) in &mut all {
        match table {
            Table::CasbinRule => {
                for row in rows.iter_mut() {
                    row["id"] = serde_json::Value::Null;
                }
                rows.sort_by_key(|row| row.to_string());
            }
            Table::AuditEvent => rows.truncate(events),
            Table::AuditChainHead => rows.clear(),
            _ => {}
        }
    }
    all
}

/// Restores `archive` into `target` as a new organization under `slug`.
async fn restore_as_new(
    target: &TestDatabase,
    archive: &[u8],
    slug: Option<&str>,
) -> Result<backup::Restored, BackupError> {
    backup::restore_as_new_organization(
        &target.db,
        &testing::secret_key(),
        std::io::Cursor::new(archive.to_vec()),
        &Passphrase::to_open(PASSPHRASE),
        slug,
        &Source::default(),
        t0() + Duration::hours(1),
    )
    .await
}

/// Another organization, Globex, with an owner and a member with MFA: in a database of its
/// own, its ids are the ones an archive of the seeded organization holds. Returns its id.
async fn globex(test_db: &TestDatabase, hasher: &PasswordHasher) -> i32 {
    let (_, owner) = domain::accounts::create_organization(
        &test_db.db,
        hasher,
        "Globex",
        "owner@globex.test",
        &Password::new("correct horse battery"),
        t0(),
    )
    .await
    .unwrap();
    member_with_mfa(
        test_db,
        hasher,
        &testing::secret_key(),
        owner.org_id,
        "member@globex.test",
    )
    .await;
    owner.org_id
}

/// `text` with `org:<org_id>` written `org:#`, each `member:<id>` written with the account's
/// email address and each `group:<id>` with the group's name: the same for an organization
/// restored under new ids.
fn modulo_ids(text: &str, org_id: i32, names: &Names) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(colon) = rest.find(':') {
        let (before, after) = rest.split_at(colon + 1);
        out.push_str(before);
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        rest = &after[digits.len()..];
        match digits.parse::<i64>() {
            Ok(id) if before.ends_with("org:") && id == i64::from(org_id) => out.push('#'),
            Ok(id) if before.ends_with("member:") && names.emails.contains_key(&id) => {
                out.push_str(&names.emails[&id]);
            }
            Ok(id) if before.ends_with("group:") && names.groups.contains_key(&id) => {
                out.push_str(&names.groups[&id]);
            }
            _ => out.push_str(&digits),
        }
    }
    out.push_str(rest);
    out
}

/// The places of the rows audit events' details name by id (besides accounts and groups).
struct DetailNames {
    sets: HashMap<i64, usize>,
    exceptions: HashMap<i64, usize>,
    recovery_codes: HashMap<i64, usize>,
    webhooks: HashMap<i64, usize>,
}

/// The keys under which audit events' details hold ids.
const DETAIL_KEYS: [&str; 7] = [
    "set",
    "exception",
    "request",
    "group",
    "groups",
    "members",
    "webhook",
];

/// The keys under which they hold numbers that are not ids. A number under any other key
/// fails the comparison: a new event's id must be renumbered by a restore (and named here).
const DETAIL_COUNTS: [&str; 5] = [
    "codes",
    "remaining",
    "low_codes_threshold",
    "slot",
    "version",
];

/// An audit event's details (JSON text) with each id they hold written as what it names
/// (a row no longer there as `"gone"`): the same for an organization restored under new ids.
fn details_modulo_ids(text: &str, names: &Names, places: &DetailNames) -> serde_json::Value {
    let mut details: serde_json::Value = serde_json::from_str(text).unwrap();
    let Some(fields) = details.as_object_mut() else {
        return details;
    };
    for (key, value) in fields.iter_mut() {
        if !DETAIL_KEYS.contains(&key.as_str()) || value.is_null() {
            assert!(
                !value.is_number() || DETAIL_COUNTS.contains(&key.as_str()),
                "the details' {key} holds a number: an id a restore must renumber, or a count"
            );
            continue;
        }
        *value = match &*value {
            serde_json::Value::Array(ids) => ids
                .iter()
                .map(|id| name_of(key, id, names, places))
                .collect(),
            id => name_of(key, id, names, places),
        };
    }
    details
}

/// What the id `id` under `key` of an audit event's details names ([`details_modulo_ids`]).
fn name_of(
    key: &str,
    id: &serde_json::Value,
    names: &Names,
    places: &DetailNames,
) -> serde_json::Value {
    let id = id.as_i64().unwrap();
    let named = match key {
        "set" => places.sets.get(&id).map(|place| json!(place)),
        "exception" => places.exceptions.get(&id).map(|place| json!(place)),
        "request" => places.recovery_codes.get(&id).map(|place| json!(place)),
        "webhook" => places.webhooks.get(&id).map(|place| json!(place)),
        "group" | "groups" => names.groups.get(&id).map(|name| json!(name)),
        "members" => names.emails.get(&id).map(|email| json!(email)),
        _ => unreachable!("{key} holds no ids"),
    };
    named.unwrap_or_else(|| json!("gone"))
}

/// What the ids of an organization's rows name: its accounts' email addresses and its
/// groups' names, by id.
struct Names {
    emails: HashMap<i64, String>,
    groups: HashMap<i64, String>,
}

async fn names(test_db: &TestDatabase, org_id: i32) -> Names {
    let emails = domain::accounts::list_members(&test_db.db, org_id)
        .await
        .unwrap()
        .into_iter()
        .map(|member| (i64::from(member.id), member.email))
        .collect();
    let groups = backup::rows(&test_db.db, &testing::secret_key(), org_id)
        .await
        .unwrap()
        .into_iter()
        .find(|(table, _)| *table == Table::MemberGroup)
        .map(|(_, rows)| {
            rows.iter()
                .map(|row| {
                    let name = row["name"].as_str().unwrap().to_owned();
                    (row["id"].as_i64().unwrap(), name)
                })
                .collect()
        })
        .unwrap_or_default();
    Names { emails, groups }
}

/// [`decisions`], the same for an organization restored under new ids ([`modulo_ids`]).
async fn decisions_modulo_ids(test_db: &TestDatabase, org_id: i32) -> Vec<String> {
    let names = names(test_db, org_id).await;
    decisions(test_db, org_id)
        .await
        .iter()
        .map(|line| modulo_ids(line, org_id, &names))
        .collect()
}

/// The seeded organization's member, help-desk member and owner, restored as organization
/// `org_id` in `test_db`, are decided for as before, under their ids there: the help desk
/// assists the member in its group and nobody else, and the member's backup codes follow the
/// group's exception; the group holds the member, its exception and the help desk's scope.
async fn groups_decide_as_before(test_db: &TestDatabase, org_id: i32) {
    let backend = test_db.backend;
    let members = domain::accounts::list_members(&test_db.db, org_id)
        .await
        .unwrap();
    let named = |email: &str| {
        members
            .iter()
            .find(|member| member.email == email)
            .unwrap_or_else(|| panic!("{backend:?}: {email} is restored"))
            .clone()
    };
    let (owner, member, help_desk) = (
        named("owner@acme.test"),
        named("member@acme.test"),
        named(HELP_DESK),
    );
    let authz = Authz::load(&test_db.db).await.unwrap();
    let listed = groups::list(&test_db.db, &authz, &owner).await.unwrap();
    assert_eq!(listed.len(), 1, "{backend:?}: {listed:?}");
    let group = &listed[0];
    assert_eq!(
        (
            group.name.as_str(),
            group.members,
            group.exception,
            group.scoped_help_desk.clone()
        ),
        (GROUP, 1, Some(true), vec![HELP_DESK.to_owned()]),
        "{backend:?}"
    );
    let scopes = groups::scopes(&test_db.db, &authz, &owner).await.unwrap();
    assert_eq!(
        scopes
            .iter()
            .map(|scope| (scope.member.id, scope.groups.clone()))
            .collect::<Vec<_>>(),
        [(help_desk.id, vec![group.id])],
        "{backend:?}"
    );

    let domain = org_domain(org_id);
    let assists = authz
        .decide(&help_desk, org_id, Action::Assist(member.id))
        .await
        .unwrap();
    assert!(assists.allowed, "{backend:?}: {assists:?}");
    assert_eq!(
        assists.rules,
        [format!(
            "p, {}, {domain}, {}, assist, allow",
            member_subject(help_desk.id),
            group_subject(group.id)
        )],
        "{backend:?}"
    );
    for outside in [&owner, &named("admin@acme.test")] {
        let refused = authz
            .decide(&help_desk, org_id, Action::Assist(outside.id))
            .await
            .unwrap();
        assert!(
            !refused.allowed,
            "{backend:?} {}: {refused:?}",
            outside.email
        );
    }

    let redeems = authz
        .decide(&member, org_id, Action::RedeemBackupCode)
        .await
        .unwrap();
    assert_eq!(
        (redeems.allowed, redeems.subject.as_str(), redeems.rules),
        (
            true,
            group_subject(group.id).as_str(),
            vec![format!(
                "p, {}, {domain}, backup_codes, redeem, allow",
                group_subject(group.id)
            )]
        ),
        "{backend:?}"
    );
    // Outside the group, the role decides.
    let owner_redeems = authz
        .decide(&owner, org_id, Action::RedeemBackupCode)
        .await
        .unwrap();
    assert_eq!(owner_redeems.subject, "owner", "{backend:?}");
}

/// [`comparable_rows`] with every id written as what it names, so that an organization
/// restored under new ids compares equal to the one backed up: a row's own id as its place
/// in its table (a restore keeps their order), an account as its email address, a code set
/// as its place, a group as its name, the organization as `org`, and so the ids in audit
/// events' details ([`details_modulo_ids`]); the links, which cover the ids, left out (the
/// chain is verified apart), and the checkpoints too (they are not restored).
async fn rows_modulo_ids(
    test_db: &TestDatabase,
    org_id: i32,
    events: usize,
) -> Vec<(Table, Vec<serde_json::Value>)> {
    let mut all = comparable_rows(test_db, org_id, events).await;
    let names = names(test_db, org_id).await;
    let places = |of: Table| -> HashMap<i64, usize> {
        all.iter()
            .find(|(table, _)| *table == of)
            .map(|(_, rows)| {
                rows.iter()
                    .enumerate()
                    .map(|(place, row)| (row["id"].as_i64().unwrap(), place))
                    .collect()
            })
            .unwrap_or_default()
    };
    let sets = places(Table::BackupCodeSet);
    let detail_names = DetailNames {
        sets: sets.clone(),
        exceptions: places(Table::PolicyException),
        recovery_codes: places(Table::RecoveryCode),
        webhooks: places(Table::Webhook),
    };
    for (table, rows) in &mut all {
        for (place, row) in rows.iter_mut().enumerate() {
            for (column, value) in row.as_object_mut().unwrap() {
                *value = match column.as_str() {
                    "id" if *table != Table::CasbinRule => json!(place),
                    "org_id" => json!("org"),
                    "user_id" | "saved_by_id" | "created_by_id" | "requested_by_id"
                    | "approved_by_id" | "actor_id" | "target_id" => {
                        json!(value.as_i64().and_then(|id| names.emails.get(&id)))
                    }
                    "set_id" => json!(sets[&value.as_i64().unwrap()]),
                    "group_id" => json!(names.groups[&value.as_i64().unwrap()]),
                    "v0" | "v1" | "v2" => {
                        json!(modulo_ids(value.as_str().unwrap(), org_id, &names))
                    }
                    "prev_hash" | "hash" if *table == Table::AuditEvent => serde_json::Value::Null,
                    "details" if *table == Table::AuditEvent => {
                        details_modulo_ids(value.as_str().unwrap(), &names, &detail_names)
                    }
                    _ => continue,
                };
            }
        }
        match table {
            Table::CasbinRule => rows.sort_by_key(|row| row.to_string()),
            Table::AuditCheckpoint => rows.clear(),
            _ => {}
        }
    }
    all
}

/// How many rows `table` holds, every organization's.
async fn rows_in(test_db: &TestDatabase, table: &str) -> i64 {
    let backend = test_db.db.get_database_backend();
    let row = test_db
        .db
        .query_one(Statement::from_string(
            backend,
            format!("SELECT COUNT(*) AS n FROM {table}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n")
        .or_else(|_| row.try_get::<i32>("", "n").map(i64::from))
        .unwrap()
}

/// `archive` opened, its file `path` changed by `edit`, the manifest's digest of it made to
/// match, and sealed again with the passphrase: what someone holding the passphrase, but not
/// the installation's key, can make.
fn resealed(archive: &[u8], path: &str, edit: impl Fn(&str) -> String) -> Vec<u8> {
    use std::io::Read;

    let secret = age::secrecy::SecretString::from(PASSPHRASE.to_owned());
    let identity = age::scrypt::Identity::new(secret.clone());
    let plain = age::Decryptor::new(archive)
        .unwrap()
        .decrypt(std::iter::once(&identity as _))
        .unwrap();
    let mut files = Vec::new();
    for entry in tar::Archive::new(plain).entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut text = String::new();
        entry.read_to_string(&mut text).unwrap();
        if name == path {
            let edited = edit(&text);
            assert_ne!(edited, text, "the edit changes {path}");
            text = edited;
        }
        files.push((name, text));
    }
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        files
            .iter()
            .find(|(name, _)| name == path)
            .unwrap()
            .1
            .as_bytes(),
    ));
    let mut manifest: serde_json::Value = serde_json::from_str(&files[0].1).unwrap();
    for file in manifest["files"].as_array_mut().unwrap() {
        if file["path"] == path {
            file["sha256"] = json!(digest);
        }
    }
    files[0].1 = manifest.to_string();

    let mut recipient = age::scrypt::Recipient::new(secret);
    recipient.set_work_factor(WORK_FACTOR);
    let encryptor = age::Encryptor::with_recipients(std::iter::once(&recipient as _)).unwrap();
    let mut out = Vec::new();
    let mut builder = tar::Builder::new(encryptor.wrap_output(&mut out).unwrap());
    for (name, text) in &files {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o600);
        header.set_cksum();
        builder
            .append_data(&mut header, name, text.as_bytes())
            .unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap();
    out
}

/// Signs `seeded`'s member in on `target` with the same password, authenticator and an unused
/// backup code, after checking that the used code stays used; returns the member signed in.
async fn signs_in_as_before(
    target: &TestDatabase,
    hasher: &PasswordHasher,
    seeded: &Seeded,
) -> Member {
    let later = t0() + Duration::hours(2);
    let step = sign_in::password(
        &target.db,
        hasher,
        &Email::parse("member@acme.test").unwrap(),
        &Password::new("correct horse battery"),
        &Source::default(),
        later,
    )
    .await
    .unwrap()
    .expect("the same password");
    let member = step.into_member();
    let authz = Authz::load(&target.db).await.unwrap();
    let source = Source::default();
    let totp = mfa::code_at(&seeded.member_setup_key, later).unwrap();
    sign_in::authenticator_code(
        &Command::new(&target.db, &authz, &member, &source, later),
        &testing::secret_key(),
        &totp,
    )
    .await
    .expect("the same authenticator");
    let codes = BackupCodeHasher::new(hasher.clone(), &testing::secret_key());
    let cmd = Command::new(
        &target.db,
        &authz,
        &member,
        &source,
        later + Duration::minutes(1),
    );
    sign_in::backup_code(&cmd, &codes, &seeded.used)
        .await
        .expect_err("a used code stays used");
    sign_in::backup_code(&cmd, &codes, &seeded.unused[0])
        .await
        .expect("an unused code works");
    member
}

#[tokio::test]
async fn a_restored_organization_is_the_one_backed_up() {
    let hasher = PasswordHasher::new(2).unwrap();
    for source_db in migrated_databases().await {
        let seeded = seed(&source_db, &hasher).await;
        let org_id = seeded.owner.org_id;
        let events = audit::chain::verify(&source_db.db, org_id)
            .await
            .unwrap()
            .events;
        let archive = take_backup(&source_db, org_id).await;
        let last = audit::latest(&source_db.db, org_id, 1).await.unwrap();
        assert_eq!(
            last[0].action,
            AuditAction::BackupCreated.as_str(),
            "a backup is on the record"
        );

        let target = empty_like(&source_db).await;
        let restored = restore(&target, &archive, PASSPHRASE).await.unwrap();
        assert!(
            !restored.chain_relinked,
            "the same installation's chain stays as it was"
        );
        assert_eq!(restored.codes_ended, 0);
        assert_eq!(restored.manifest.organization.slug, "acme");
        assert_eq!(restored.manifest.audit_head.seq, events);

        // Every row, table by table (the secrets compared opened: their seals differ).
        let events = usize::try_from(events).unwrap();
        let before = comparable_rows(&source_db, org_id, events).await;
        let after = comparable_rows(&target, org_id, events).await;
        for ((table, rows), (_, restored_rows)) in before.iter().zip(&after) {
            assert_eq!(
                rows,
                restored_rows,
                "{:?}: {}",
                source_db.backend,
                table.name()
            );
        }
        assert!(
            before.iter().all(|(table, rows)| !rows.is_empty()
                || matches!(
                    table,
                    Table::FactorAttempt
                        | Table::NotificationAddress
                        | Table::AlertSettings
                        | Table::AlertDigestItem
                        | Table::IncidentReport
                        | Table::RecoveryCode
                        | Table::AuditCheckpoint
                        | Table::AuditChainHead
                )),
            "the seed reaches the tables it should: {:?}",
            before
                .iter()
                .map(|(t, rows)| (t.name(), rows.len()))
                .collect::<Vec<_>>()
        );

        // The chain verifies, to the archive's signed head and past it (the restore's event).
        let chain = audit::chain::verify(&target.db, org_id).await.unwrap();
        assert_eq!(chain.broken, None, "{:?}", source_db.backend);
        assert_eq!(chain.events, restored.manifest.audit_head.seq + 1);
        let last = audit::latest(&target.db, org_id, 1).await.unwrap();
        assert_eq!(last[0].action, AuditAction::BackupRestored.as_str());
        assert_eq!(
            audit::checkpoint::verify_against(&target.db, org_id, &restored.manifest.audit_head)
                .await
                .unwrap()
                .broken,
            None
        );

        // Every Casbin decision, for every member and action; the group's and the help
        // desk's scope among them.
        assert_eq!(
            decisions(&source_db, org_id).await,
            decisions(&target, org_id).await,
            "{:?}",
            source_db.backend
        );
        groups_decide_as_before(&source_db, org_id).await;
        groups_decide_as_before(&target, org_id).await;

        // The member signs in with the same password, authenticator and unused codes; the
        // used code stays used.
        let member = signs_in_as_before(&target, &hasher, &seeded).await;
        assert_eq!(member, seeded.member);

        // New rows get new ids (PostgreSQL's sequences were moved past the restored ones).
        add_member(&target, &hasher, org_id, "new@acme.test", Role::Member).await;
    }
}

#[tokio::test]
async fn a_wrong_passphrase_a_changed_or_cut_archive_and_another_schema_write_nothing() {
    let hasher = PasswordHasher::new(2).unwrap();
    for source_db in migrated_databases().await {
        let seeded = seed(&source_db, &hasher).await;
        let archive = take_backup(&source_db, seeded.owner.org_id).await;
        let target = empty_like(&source_db).await;

        let mut changed = archive.clone();
        let middle = changed.len() / 2;
        changed[middle] ^= 0x01;
        let cut = &archive[..archive.len() - 100];
        let cases: Vec<(&str, Vec<u8>, &str, RefusedAs)> = vec![
            (
                "wrong passphrase",
                archive.clone(),
                "not the passphrase at all",
                |e| matches!(e, BackupError::WrongPassphrase),
            ),
            ("one bit changed", changed, PASSPHRASE, |e| {
                matches!(e, BackupError::Damaged(_))
            }),
            ("cut short", cut.to_vec(), PASSPHRASE, |e| {
                matches!(e, BackupError::Damaged(_))
            }),
            ("not an archive", b"hello".to_vec(), PASSPHRASE, |e| {
                matches!(e, BackupError::Format(_))
            }),
            ("empty file", Vec::new(), PASSPHRASE, |e| {
                matches!(e, BackupError::Format(_) | BackupError::Damaged(_))
            }),
        ];
        for (case, bytes, text, expected) in cases {
            let error = restore(&target, &bytes, text).await.unwrap_err();
            assert!(
                expected(&error),
                "{:?} {case}: {error:?}",
                source_db.backend
            );
            assert!(!error.to_string().is_empty());
            assert_eq!(organizations(&target).await, 0, "{case}: nothing written");
        }

        // Another schema: the archive's is not this database's last migration.
        target
            .execute(
                "INSERT INTO seaql_migrations (version, applied_at) \
                 VALUES ('m29991231_000001_from_the_future', 0)",
            )
            .await;
        let error = restore(&target, &archive, PASSPHRASE).await.unwrap_err();
        assert!(matches!(error, BackupError::Schema { .. }), "{error:?}");
        assert_eq!(organizations(&target).await, 0);
        target
            .execute("DELETE FROM seaql_migrations WHERE version LIKE 'm2999%'")
            .await;

        // Into the database it came from: not empty.
        let error = restore(&source_db, &archive, PASSPHRASE).await.unwrap_err();
        assert!(matches!(error, BackupError::NotEmpty(1)), "{error:?}");
        assert_eq!(organizations(&source_db).await, 1);

        // And the untouched archive still restores.
        restore(&target, &archive, PASSPHRASE).await.unwrap();
    }
}

#[tokio::test]
async fn a_backup_taken_while_200_events_are_recorded_is_one_instant() {
    let hasher = PasswordHasher::new(2).unwrap();
    for source_db in migrated_databases().await {
        let seeded = seed(&source_db, &hasher).await;
        let org_id = seeded.owner.org_id;
        let db = Arc::new(source_db.db.clone());
        let owner = Arc::new(seeded.owner.clone());
        let writers: Vec<_> = (0..200)
            .map(|i| {
                let (db, owner) = (Arc::clone(&db), Arc::clone(&owner));
                tokio::spawn(async move {
                    audit::record(
                        db.as_ref(),
                        org_id,
                        Event {
                            action: AuditAction::SignInFailed,
                            actor: Some(&owner),
                            target: Some(&owner),
                            outcome: Outcome::Denied,
                            details: serde_json::json!({ "attempt": i }),
                        },
                        &Source::default(),
                        t0(),
                    )
                    .await
                    .unwrap();
                })
            })
            .collect();
        let archive = take_backup(&source_db, org_id).await;
        for writer in writers {
            writer.await.unwrap();
        }

        // The archive's chain ends exactly at its signed head: no event half in.
        let target = empty_like(&source_db).await;
        let restored = restore(&target, &archive, PASSPHRASE).await.unwrap();
        let chain = audit::chain::verify(&target.db, org_id).await.unwrap();
        assert_eq!(chain.broken, None, "{:?}", source_db.backend);
        assert_eq!(chain.events, restored.manifest.audit_head.seq + 1);
        let all = audit::chain::verify(&source_db.db, org_id).await.unwrap();
        assert!(restored.manifest.audit_head.seq <= all.events);
    }
}

#[tokio::test]
async fn a_restore_as_a_new_organization_is_the_one_backed_up_beside_the_others() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = testing::secret_key();
    for source_db in migrated_databases().await {
        let backend = source_db.backend;
        let seeded = seed(&source_db, &hasher).await;
        let org_id = seeded.owner.org_id;
        let events = audit::chain::verify(&source_db.db, org_id)
            .await
            .unwrap()
            .events;
        let archive = take_backup(&source_db, org_id).await;
        let events = usize::try_from(events).unwrap();
        let backed_up = rows_modulo_ids(&source_db, org_id, events).await;
        let backed_up_decisions = decisions_modulo_ids(&source_db, org_id).await;

        // Into another installation's database holding another organization (with the ids
        // the archive's rows have), under the archive's slug; and into the database it came
        // from, beside itself, under another slug, once its accounts have moved to other
        // addresses (addresses are unique across an installation).
        let elsewhere = empty_like(&source_db).await;
        let globex = globex(&elsewhere, &hasher).await;
        source_db
            .execute("UPDATE user_account SET email = 'was-' || email")
            .await;
        for (target, slug, other) in [
            (&elsewhere, None, globex),
            (&source_db, Some("acme-restored"), org_id),
        ] {
            let other_rows = backup::rows(&target.db, &key, other).await.unwrap();
            let other_decisions = decisions(target, other).await;

            let restored = restore_as_new(target, &archive, slug).await.unwrap();
            let new_id = restored.organization.id;
            let slug = slug.unwrap_or("acme");
            assert_ne!(new_id, other, "{backend:?}");
            assert_eq!(restored.organization.slug, slug);
            assert!(restored.chain_relinked, "new ids are new links");
            assert_eq!(restored.codes_ended, 0, "the same pepper");

            // Every row, table by table, modulo ids (the organization under its new slug).
            let mut expected = backed_up.clone();
            expected[0].1[0]["slug"] = json!(slug);
            let after = rows_modulo_ids(target, new_id, events).await;
            for ((table, rows), (_, restored_rows)) in expected.iter().zip(&after) {
                assert_eq!(rows, restored_rows, "{backend:?} {slug}: {}", table.name());
            }

            // The chain verifies, linked anew, and the restore is on it with the mapping.
            let chain = audit::chain::verify(&target.db, new_id).await.unwrap();
            assert_eq!(chain.broken, None, "{backend:?} {slug}");
            assert_eq!(chain.events, restored.manifest.audit_head.seq + 1);
            let last = audit::latest(&target.db, new_id, 1).await.unwrap();
            assert_eq!(last[0].action, AuditAction::BackupRestored.as_str());
            assert_eq!(last[0].details["mode"], "new_organization");
            assert_eq!(last[0].details["organization"]["archive_id"], org_id);
            assert_eq!(last[0].details["organization"]["id"], new_id);

            // Every Casbin decision, for every member and action; the group's and the help
            // desk's scope under their new ids.
            assert_eq!(
                decisions_modulo_ids(target, new_id).await,
                backed_up_decisions,
                "{backend:?} {slug}"
            );
            groups_decide_as_before(target, new_id).await;

            // The policy as of now, replayed from the restored audit log, is the one in force:
            // the ids its events record were renumbered with the rows.
            let now = chrono::Utc::now();
            let replayed = org_policy::export_at(&target.db, new_id, now, now)
                .await
                .unwrap();
            let in_force = org_policy::export(&target.db, new_id, now).await.unwrap();
            assert_eq!(replayed.rules, in_force.rules, "{backend:?} {slug}");
            assert_eq!(
                replayed.exceptions, in_force.exceptions,
                "{backend:?} {slug}"
            );

            // The member signs in as before, in the new organization.
            let member = signs_in_as_before(target, &hasher, &seeded).await;
            assert_eq!(
                (member.org_id, &member.email, member.role),
                (new_id, &seeded.member.email, seeded.member.role)
            );

            // The organization that was there is as it was.
            assert_eq!(
                backup::rows(&target.db, &key, other).await.unwrap(),
                other_rows,
                "{backend:?} {slug}"
            );
            assert_eq!(decisions(target, other).await, other_decisions);

            // New rows get new ids.
            add_member(target, &hasher, new_id, "new@acme.test", Role::Member).await;
        }
        assert_eq!(organizations(&source_db).await, 2);
        assert_eq!(organizations(&elsewhere).await, 2);
    }
}

#[tokio::test]
async fn a_restore_as_a_new_organization_refuses_a_taken_slug_or_email_and_writes_nothing() {
    let hasher = PasswordHasher::new(2).unwrap();
    for source_db in migrated_databases().await {
        let backend = source_db.backend;
        let seeded = seed(&source_db, &hasher).await;
        let archive = take_backup(&source_db, seeded.owner.org_id).await;
        let target = empty_like(&source_db).await;
        let globex = globex(&target, &hasher).await;
        add_member(&target, &hasher, globex, "member@acme.test", Role::Member).await;
        let mut changed = archive.clone();
        let middle = changed.len() / 2;
        changed[middle] ^= 0x01;
        let cut = archive[..archive.len() - 100].to_vec();

        let cases: Vec<NewOrgCase> = vec![
            (
                "its slug, taken",
                &source_db,
                archive.clone(),
                None,
                |e| matches!(e, BackupError::SlugTaken(slug) if slug == "acme"),
            ),
            (
                "beside itself: every address taken",
                &source_db,
                archive.clone(),
                Some("acme-2"),
                |e| {
                    matches!(e, BackupError::EmailsTaken(emails) if emails == &[
                        "admin@acme.test", "helpdesk@acme.test", "member@acme.test",
                        "owner@acme.test",
                    ])
                },
            ),
            (
                "an address taken in another organization",
                &target,
                archive.clone(),
                None,
                |e| matches!(e, BackupError::EmailsTaken(emails) if emails == &["member@acme.test"]),
            ),
            (
                "not a slug",
                &target,
                archive.clone(),
                Some("Acme Copy!"),
                |e| matches!(e, BackupError::InvalidSlug(_)),
            ),
            ("one bit changed", &target, changed, Some("acme-2"), |e| {
                matches!(e, BackupError::Damaged(_))
            }),
            ("cut short", &target, cut, Some("acme-2"), |e| {
                matches!(e, BackupError::Damaged(_))
            }),
        ];
        for (case, db, bytes, slug, expected) in cases {
            let before = (
                organizations(db).await,
                rows_in(db, "user_account").await,
                rows_in(db, "audit_event").await,
                rows_in(db, "casbin_rule").await,
            );
            let error = restore_as_new(db, &bytes, slug).await.unwrap_err();
            assert!(expected(&error), "{backend:?} {case}: {error:?}");
            let after = (
                organizations(db).await,
                rows_in(db, "user_account").await,
                rows_in(db, "audit_event").await,
                rows_in(db, "casbin_rule").await,
            );
            assert_eq!(before, after, "{backend:?} {case}: nothing written");
        }
        let message = restore_as_new(&target, &archive, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(message.contains("member@acme.test"), "{message}");
    }
}

#[tokio::test]
async fn a_restore_as_a_new_organization_refuses_a_rule_naming_what_the_archive_does_not_hold() {
    let hasher = PasswordHasher::new(2).unwrap();
    for source_db in migrated_databases().await {
        let backend = source_db.backend;
        let seeded = seed(&source_db, &hasher).await;
        let (org, group, member) = (seeded.owner.org_id, seeded.group_id, seeded.member.id);
        let archive = take_backup(&source_db, org).await;
        let target = empty_like(&source_db).await;
        globex(&target, &hasher).await;
        // The archive's rules edited by someone holding its passphrase: each names a group, a
        // member or an organization the archive does not hold.
        let cases = [
            (
                "a group's exception for another group",
                format!(r#""v0":"group:{group}""#),
                r#""v0":"group:999""#,
                "a rule for group:999, no group of it",
            ),
            (
                "a help desk scoped to another group",
                format!(r#""v2":"group:{group}""#),
                r#""v2":"group:999""#,
                "a rule for group:999, no group of it",
            ),
            (
                "a member in another group",
                format!(r#""v1":"group:{group}""#),
                r#""v1":"group:999""#,
                "a rule for group:999, no group of it",
            ),
            (
                "another member in the group",
                format!(r#""ptype":"g","v0":"member:{member}""#),
                r#""ptype":"g","v0":"member:999""#,
                "a rule for member:999, no account of it",
            ),
            (
                "a membership of another organization",
                format!(r#""v2":"org:{org}""#),
                r#""v2":"org:999""#,
                "a rule of another organization",
            ),
            (
                "a group in a group",
                format!(r#""ptype":"g","v0":"member:{member}""#),
                r#""ptype":"g","v0":"group:999""#,
                "not of a member in a group",
            ),
        ];
        for (case, from, to, refusal) in cases {
            let changed = resealed(&archive, "tables/casbin_rule/000001.ndjson", |text| {
                text.replacen(&from, to, 1)
            });
            let before = (
                organizations(&target).await,
                rows_in(&target, "member_group").await,
                rows_in(&target, "casbin_rule").await,
            );
            let error = restore_as_new(&target, &changed, Some("acme-2"))
                .await
                .unwrap_err();
            assert!(
                matches!(&error, BackupError::Damaged(message) if message.contains(refusal)),
                "{backend:?} {case}: {error:?}"
            );
            let after = (
                organizations(&target).await,
                rows_in(&target, "member_group").await,
                rows_in(&target, "casbin_rule").await,
            );
            assert_eq!(before, after, "{backend:?} {case}: nothing written");
        }
        // The archive as it was restores.
        let restored = restore_as_new(&target, &archive, Some("acme-2"))
            .await
            .unwrap();
        groups_decide_as_before(&target, restored.organization.id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_restores_under_the_same_new_slug_at_once_make_one_organization() {
    let hasher = PasswordHasher::new(2).unwrap();
    for source_db in migrated_databases().await {
        let seeded = seed(&source_db, &hasher).await;
        let archive = Arc::new(take_backup(&source_db, seeded.owner.org_id).await);
        let target = empty_like(&source_db).await;
        globex(&target, &hasher).await;
        let restores: Vec<_> = (0..2)
            .map(|_| {
                let (db, archive) = (target.db.clone(), Arc::clone(&archive));
                tokio::spawn(async move {
                    backup::restore_as_new_organization(
                        &db,
                        &testing::secret_key(),
                        std::io::Cursor::new(archive.to_vec()),
                        &Passphrase::to_open(PASSPHRASE),
                        Some("acme-2"),
                        &Source::default(),
                        t0() + Duration::hours(1),
                    )
                    .await
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for restore in restores {
            outcomes.push(restore.await.unwrap());
        }
        let written = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
        assert_eq!(written, 1, "{:?}: {outcomes:?}", source_db.backend);
        assert!(
            outcomes.iter().any(
                |outcome| matches!(outcome, Err(BackupError::SlugTaken(slug)) if slug == "acme-2")
            ),
            "{outcomes:?}"
        );
        assert_eq!(organizations(&target).await, 2);
        assert_eq!(rows_in(&target, "user_account").await, 2 + 4);
    }
}

#[tokio::test]
async fn an_event_changed_in_an_archive_of_this_installation_is_refused_in_either_mode() {
    let hasher = PasswordHasher::new(2).unwrap();
    for source_db in migrated_databases().await {
        let backend = source_db.backend;
        let seeded = seed(&source_db, &hasher).await;
        let archive = take_backup(&source_db, seeded.owner.org_id).await;
        // The member's redemption, with one more code left than there was: the passphrase opens
        // and seals the archive, its digests match; only the links, under this installation's
        // key, show it.
        let changed = resealed(&archive, "tables/audit_event/000001.ndjson", |text| {
            text.replacen(r#"\"remaining\":9"#, r#"\"remaining\":10"#, 1)
        });
        let empty = empty_like(&source_db).await;
        let error = restore(&empty, &changed, PASSPHRASE).await.unwrap_err();
        assert!(
            matches!(&error, BackupError::RestoredChain(_)),
            "{backend:?} into an empty database: {error:?}"
        );
        assert_eq!(organizations(&empty).await, 0);

        let beside = empty_like(&source_db).await;
        globex(&beside, &hasher).await;
        let before = rows_in(&beside, "audit_event").await;
        let error = restore_as_new(&beside, &changed, None).await.unwrap_err();
        assert!(
            matches!(&error, BackupError::RestoredChain(message) if message.contains("altered")),
            "{backend:?} as a new organization: {error:?}"
        );
        assert_eq!(organizations(&beside).await, 1);
        assert_eq!(rows_in(&beside, "audit_event").await, before);

        // The archive as it was restores in both.
        restore(&empty, &archive, PASSPHRASE).await.unwrap();
        restore_as_new(&beside, &archive, None).await.unwrap();
    }
}

#[test]
fn a_backup_passphrase_must_be_hard_to_guess_and_typed_twice_alike() {
    let cases = [
        ("short", "short", Some("passphrase")),
        ("password1234", "password1234", Some("passphrase")),
        ("acmeacmeacme", "acmeacmeacme", Some("passphrase")),
        (
            PASSPHRASE,
            "correct staple orbit lantern",
            Some("passphrase_again"),
        ),
        (PASSPHRASE, PASSPHRASE, None),
    ];
    for (text, again, refused_on) in cases {
        let outcome = Passphrase::new_for_archive(text, again, &["Acme", "acme"]);
        assert_eq!(
            outcome.as_ref().err().map(|e| e.field.as_str()),
            refused_on,
            "{text:?}: {:?}",
            outcome.as_ref().err()
        );
    }
    assert_eq!(format!("{:?}", passphrase()), "Passphrase(..)");
}
