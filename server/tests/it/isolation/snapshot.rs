//! Acme's data before and after the calls: every row of it, its audit log and policy as
//! exported, and its audit chain verified; and the rows of notices, alerts and webhooks Acme
//! is given first, which the organizations' fixture does not make.

use std::collections::BTreeMap;

use chrono::Utc;
use domain::{
    accounts,
    audit::Source,
    authz::Authz,
    command::Command,
    incidents, notification_addresses,
    notifications::{
        AlertSettings, NotMe,
        webhooks::{MAX_PER_ORG, UrlRules},
    },
    org_policy::{
        alerts::save_alerts,
        webhooks::{WebhookForm, add_webhook},
    },
    secrets::SecretKey,
    testing::TestDatabase,
};
use sea_orm::{ConnectionTrait, Statement};

use crate::support::{cli::cli, organizations::Acme};

/// Acme's alerts on refused backup codes: this many within [`ACME_FAILED_MINUTES`]. Not the
/// default (10 in 10), so that Globex saving the same settings writes a row of its own.
pub const ACME_FAILED_COUNT: &str = "5";
/// See [`ACME_FAILED_COUNT`].
pub const ACME_FAILED_MINUTES: &str = "30";
/// The second address Acme's admin gets security notifications at. Globex never types it.
pub const ACME_SECOND_ADDRESS: &str = "pager@acme.test";
/// The host of Acme's webhooks. Globex never types it.
pub const ACME_WEBHOOK_HOST: &str = "siem.acme.test";

/// Gives Acme rows in the tables of notices and alerts: alert settings of its own (every
/// alert on, at [`ACME_FAILED_COUNT`] refused codes in [`ACME_FAILED_MINUTES`] minutes), a
/// second address for its admin (not yet confirmed), and a "This wasn't me" report by its
/// owner, who has no codes for it to stop and no session yet for it to end; the notices
/// these make, to the owner and the admins, are left unread. Then as many webhooks as Acme
/// may have ([`MAX_PER_ORG`]), each for `incident` events only, which no call of the tests
/// makes: nothing is delivered, and adding one more is refused. `key` is the key the server
/// starts with, which signs the report's link. Returns the webhooks' ids.
pub async fn add_acme_notification_rows(
    database: &TestDatabase,
    key: &SecretKey,
    acme: &Acme,
) -> Vec<i32> {
    let db = &database.db;
    let authz = Authz::load(db).await.unwrap();
    let source = Source::default();
    let now = Utc::now();
    let settings = AlertSettings {
        failed_redemptions_count: ACME_FAILED_COUNT.parse().unwrap(),
        failed_redemptions_minutes: ACME_FAILED_MINUTES.parse().unwrap(),
        ..AlertSettings::default()
    };
    save_alerts(
        &Command::new(db, &authz, &acme.owner, &source, now),
        &settings,
    )
    .await
    .unwrap();
    let admin = accounts::list_members(db, acme.org_id)
        .await
        .unwrap()
        .into_iter()
        .find(|member| member.email == "admin@acme.test")
        .unwrap();
    notification_addresses::add(
        &Command::new(db, &authz, &admin, &source, now),
        ACME_SECOND_ADDRESS,
    )
    .await
    .unwrap();
    let link = NotMe::new(acme.org_id, acme.owner.id, now).token(key);
    incidents::report(db, key, &link, &source, now)
        .await
        .unwrap();
    let by_owner = Command::new(db, &authz, &acme.owner, &source, now);
    let mut webhooks = Vec::new();
    for n in 1..=MAX_PER_ORG {
        let hook = WebhookForm {
            name: format!("Acme SIEM {n}"),
            url: format!("https://{ACME_WEBHOOK_HOST}/in/{n}"),
            events: vec!["incident".into()],
        }
        .parse(&UrlRules::default())
        .unwrap();
        webhooks.push(add_webhook(&by_owner, &hook).await.unwrap().webhook.id);
    }
    webhooks
}

/// Everything Acme has, read straight from the database and through the command line:
/// its rows in every table (secrets by length only), its audit log as exported, and its
/// policy as exported. Two snapshots are equal when nothing of Acme's changed.
pub async fn acme_snapshot(database: &TestDatabase, acme: &Acme) -> BTreeMap<String, Vec<String>> {
    let org = acme.org_id;
    let members = format!("SELECT id FROM user_account WHERE org_id = {org}");
    let sets = format!("SELECT id FROM backup_code_set WHERE user_id IN ({members})");
    let tables: [(&str, &str, String); 16] = [
        (
            "organization",
            "id, name, slug, created_at",
            format!("id = {org}"),
        ),
        (
            "user_account",
            "id, org_id, email, password_hash, role, length(totp_secret), totp_enabled_at, \
             totp_last_step, created_at, mfa_setup_required",
            format!("org_id = {org}"),
        ),
        (
            "backup_code_set",
            "id, user_id, generated_at, ended_at, end_reason, length(salt), params, \
             code_count, expired_at",
            format!("user_id IN ({members})"),
        ),
        (
            "backup_code",
            "id, set_id, slot, length(digest), used_at",
            format!("set_id IN ({sets})"),
        ),
        (
            "recovery_code",
            "id, org_id, user_id, requested_by_id, requested_by, requested_at, \
             approved_by_id, approved_by, approved_at, length(salt), length(digest), params, \
             revealed_at, used_at, ended_at, expires_at",
            format!("org_id = {org}"),
        ),
        (
            "policy_exception",
            "id, org_id, user_id, effect, reason, created_by_id, created_by, created_at",
            format!("org_id = {org}"),
        ),
        (
            "org_policy",
            "id, org_id, version, backup_codes, codes_per_set, max_set_age_days, \
             low_codes_threshold, lockout_attempts, lockout_minutes, code_entry, \
             restrict_after_backup_sign_in, saved_by_id, saved_by, saved_at, changes, \
             recovery_code_approval",
            format!("org_id = {org}"),
        ),
        (
            "casbin_rule",
            "id, ptype, v0, v1, v2, v3, v4, v5",
            format!("v1 = 'org:{org}' OR v2 = 'org:{org}'"),
        ),
        (
            "factor_attempt",
            "user_id, factor, source, attempts, window_started_at, locked_until, lockouts",
            format!("user_id IN ({members})"),
        ),
        (
            "alert_settings",
            "org_id, issued_code, privileged_backup_sign_in, failed_redemptions, \
             failed_redemptions_count, failed_redemptions_minutes, lock, policy_loosened, \
             incident, saved_at, saved_by",
            format!("org_id = {org}"),
        ),
        (
            "notification_address",
            "id, user_id, email, length(token_digest), created_at, verified_at",
            format!("user_id IN ({members})"),
        ),
        (
            "incident_report",
            "id, org_id, user_id, length(nonce), reported_at",
            format!("org_id = {org} OR user_id IN ({members})"),
        ),
        // What the outbox holds for Acme and whether it was read, not how its delivery goes:
        // the server sends the messages while the tests run.
        (
            "notification_outbox",
            "id, org_id, user_id, kind, recipient, subject, length(body_text), \
             length(body_html), idempotency_key, created_at, read_at, webhook_id",
            format!("org_id = {org} OR user_id IN ({members})"),
        ),
        (
            "webhook",
            "id, org_id, name, url, length(secret), key_version, events, created_at, \
             created_by",
            format!("org_id = {org}"),
        ),
        (
            "audit_chain_head",
            "org_id, seq, hash",
            format!("org_id = {org}"),
        ),
        (
            "audit_event",
            "id, org_id, at, actor_id, actor, action, target_id, target, outcome, source_ip, \
             user_agent, details, seq, prev_hash, hash",
            format!("org_id = {org}"),
        ),
    ];
    let backend = database.db.get_database_backend();
    let mut snapshot = BTreeMap::new();
    for (table, columns, filter) in tables {
        let row = columns
            .split(", ")
            .map(|column| format!("COALESCE(CAST({column} AS TEXT), '-')"))
            .collect::<Vec<_>>()
            .join(" || ' | ' || ");
        let sql = format!("SELECT {row} AS row FROM {table} WHERE {filter} ORDER BY 1");
        let rows = database
            .db
            .query_all(Statement::from_string(backend, sql.clone()))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let rows: Vec<String> = rows
            .iter()
            .map(|row| row.try_get::<String>("", "row").unwrap())
            .collect();
        assert!(
            !rows.is_empty() || table == "factor_attempt",
            "Acme has no {table} rows: the snapshot would see nothing"
        );
        snapshot.insert(format!("table {table}"), rows);
    }

    let (ok, jsonl, stderr) = cli(
        &database.url,
        &["audit", "export", "--org", "acme", "--format", "jsonl"],
        "",
    )
    .await;
    assert!(ok, "{stderr}");
    snapshot.insert(
        "lifeline audit export".into(),
        jsonl.lines().map(str::to_owned).collect(),
    );
    let (ok, policy, stderr) = cli(&database.url, &["policy", "export", "--org", "acme"], "").await;
    assert!(ok, "{stderr}");
    let mut policy: serde_json::Value = serde_json::from_str(&policy).unwrap();
    // The moment of the export is the one thing that differs between two exports.
    policy["exported_at"] = serde_json::Value::Null;
    snapshot.insert(
        "lifeline policy export".into(),
        serde_json::to_string_pretty(&policy)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect(),
    );
    snapshot
}

/// Fails with the rows that differ when Acme's snapshot changed.
pub fn assert_acme_unchanged(
    before: &BTreeMap<String, Vec<String>>,
    after: &BTreeMap<String, Vec<String>>,
    what: &str,
) {
    for (part, rows) in before {
        let now = &after[part];
        let gone: Vec<&String> = rows.iter().filter(|r| !now.contains(r)).collect();
        let new: Vec<&String> = now.iter().filter(|r| !rows.contains(r)).collect();
        assert!(
            gone.is_empty() && new.is_empty() && rows == now,
            "{what} changed Acme's {part}:\n  before only: {gone:#?}\n  after only: {new:#?}"
        );
    }
}

/// `lifeline audit verify --org acme` passes.
pub async fn assert_acme_chain_intact(database: &TestDatabase) {
    let (ok, stdout, stderr) = cli(&database.url, &["audit", "verify", "--org", "acme"], "").await;
    assert!(ok && stdout.contains("is intact"), "{stdout}{stderr}");
}
