//! Tenant isolation and malformed input, through the real binary, for every server function.
//!
//! Two organizations share one database: Acme, with data in every table a server function
//! reads or writes (members, a saved policy, an exception, MFA, backup codes, recovery-code
//! requests, audit events), and Globex beside it. Globex's owner, admin and a plain member
//! call every server function with Acme's ids and emails; Acme's owner and a visitor with no
//! session send every server function malformed input. Acme's rows are compared before and
//! after, and no answer may carry Acme's data or the server's insides.
//!
//! `SERVER_FUNCTIONS` lists every server function; a test reads `app/src/api/*.rs` and fails
//! when one is missing from it, so that a new server function cannot skip these tests.

use std::collections::BTreeMap;

use domain::{
    accounts::{self, Member},
    audit::Source,
    authz::Authz,
    backup_codes::{self, BackupCodeHasher, CodePolicy},
    hashing::PasswordHasher,
    mfa, org_policy, recovery_codes,
    secrets::SecretKey,
    testing::{TestDatabase, fresh_databases},
};
use reqwest::{Client, header};
use sea_orm::{ConnectionTrait, Statement};

use crate::{
    accounts::{PASSWORD, cli, create_org, sign_in, signed_in_email},
    harness::Server,
};

/// What an argument of a server function is, which decides what is valid for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A required `i32` naming a row: a member, an exception, a recovery-code request.
    Id,
    /// The policy version a save is based on: a required `i32`.
    Version,
    /// An optional `i32` where a page of members starts.
    After,
    /// An optional `i64` where a page of audit events starts.
    Before,
    /// A required string the function checks (an email, a code, a role, a setting…).
    Text,
    /// An optional string the function checks (a day, an outcome, a password).
    OptText,
    /// An optional search text: any text up to 254 characters is a valid search.
    Search,
    /// A checkbox: ticked whatever its value, when sent at all.
    Checkbox,
    /// A password asked for again only outside the re-authentication window (ten minutes
    /// after signing in): inside it, any value is accepted unread.
    Password,
    /// A path to go back to: any value, made a path on this site (else `/account`).
    Next,
}

impl Kind {
    fn optional(self) -> bool {
        matches!(
            self,
            Self::After | Self::Before | Self::OptText | Self::Search | Self::Checkbox
        )
    }
}

/// One argument: its form field, its kind, and the value sent when another field is under
/// test (`None`: not sent). The values make a call that changes nothing in Acme when its
/// owner sends it: it only reads, or it is refused (an id of `-1`, an unknown email, a
/// policy version that is not current, an email that is taken).
#[derive(Debug, Clone, Copy)]
struct Arg {
    name: &'static str,
    kind: Kind,
    baseline: Option<&'static str>,
}

const fn arg(name: &'static str, kind: Kind, baseline: &'static str) -> Arg {
    Arg {
        name,
        kind,
        baseline: Some(baseline),
    }
}

const fn unsent(name: &'static str, kind: Kind) -> Arg {
    Arg {
        name,
        kind,
        baseline: None,
    }
}

/// Who gets an answer (2xx or a redirect) to a function's baseline call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    /// Anybody, signed in or not.
    Anyone,
    /// A signed-in owner: the function only reads.
    SignedIn,
    /// Nobody: the baseline is refused (an unknown target, no sign-in step pending…).
    Refused,
}

/// A server function: `POST /api/<endpoint>` with its arguments as a form.
struct ServerFunction {
    endpoint: &'static str,
    args: &'static [Arg],
    open: Open,
}

/// `PolicyFields`, as the policy form posts it: the settings Acme's owner would keep.
const POLICY_FIELDS: [Arg; 9] = [
    arg("fields[backup_codes]", Kind::Text, "allowed"),
    arg("fields[codes_per_set]", Kind::Text, "10"),
    arg("fields[max_set_age_days]", Kind::Text, "0"),
    arg("fields[low_codes_threshold]", Kind::Text, "3"),
    arg("fields[lockout_attempts]", Kind::Text, "5"),
    arg("fields[lockout_minutes]", Kind::Text, "15"),
    arg("fields[code_entry]", Kind::Text, "any"),
    unsent("fields[restrict_after_backup_sign_in]", Kind::Checkbox),
    unsent("fields[recovery_code_approval]", Kind::Checkbox),
];

/// `save_policy`'s arguments: a version that is never current, then the policy fields.
const SAVE_POLICY: [Arg; 10] = {
    let mut args = [arg("expected_version", Kind::Version, "-1"); 10];
    let mut i = 0;
    while i < POLICY_FIELDS.len() {
        args[i + 1] = POLICY_FIELDS[i];
        i += 1;
    }
    args
};

/// Every server function in `app/src/api/`, in the order of its source files.
const SERVER_FUNCTIONS: &[ServerFunction] = &[
    // account.rs
    ServerFunction {
        endpoint: "account",
        args: &[],
        open: Open::Anyone,
    },
    ServerFunction {
        // Acme's owner has an enrolment pending: this shows it again and writes nothing.
        endpoint: "account/mfa/setup",
        args: &[],
        open: Open::SignedIn,
    },
    ServerFunction {
        endpoint: "account/mfa/confirm",
        args: &[arg("code", Kind::Text, "000000")],
        open: Open::Refused,
    },
    ServerFunction {
        // Acme's owner has no MFA in force: refused before the password is checked.
        endpoint: "account/mfa/disable",
        args: &[arg("password", Kind::Text, "")],
        open: Open::Refused,
    },
    ServerFunction {
        endpoint: "account/confirm",
        args: &[
            arg("password", Kind::Password, ""),
            arg("next", Kind::Next, "/account"),
        ],
        open: Open::SignedIn,
    },
    // audit.rs
    ServerFunction {
        endpoint: "admin/audit",
        args: &[
            unsent("from", Kind::OptText),
            unsent("to", Kind::OptText),
            unsent("actor", Kind::Search),
            unsent("action", Kind::Search),
            unsent("outcome", Kind::OptText),
            unsent("before", Kind::Before),
        ],
        open: Open::SignedIn,
    },
    // backup_codes.rs
    ServerFunction {
        endpoint: "account/backup-codes",
        args: &[],
        open: Open::SignedIn,
    },
    ServerFunction {
        // Acme's owner has no MFA in force: refused. (The password is read only outside the
        // re-authentication window, where a wrong one counts towards the account's lockout
        // and is audited: that is backup_codes.rs's test.)
        endpoint: "account/backup-codes/generate",
        args: &[arg("password", Kind::OptText, "")],
        open: Open::Refused,
    },
    // compliance.rs
    ServerFunction {
        endpoint: "admin/compliance",
        args: &[],
        open: Open::SignedIn,
    },
    // members.rs
    ServerFunction {
        endpoint: "members",
        args: &[unsent("q", Kind::Search), unsent("after", Kind::After)],
        open: Open::SignedIn,
    },
    ServerFunction {
        endpoint: "members/revoke_codes",
        args: &[arg("member_id", Kind::Id, "-1")],
        open: Open::Refused,
    },
    ServerFunction {
        endpoint: "members/reset_mfa",
        args: &[arg("member_id", Kind::Id, "-1")],
        open: Open::Refused,
    },
    ServerFunction {
        endpoint: "members/unlock",
        args: &[arg("member_id", Kind::Id, "-1")],
        open: Open::Refused,
    },
    ServerFunction {
        endpoint: "members/change_role",
        args: &[
            arg("member_id", Kind::Id, "-1"),
            arg("role", Kind::Text, "member"),
        ],
        open: Open::Refused,
    },
    ServerFunction {
        // The owner's own email is taken, so even a valid password adds nobody.
        endpoint: "members/add",
        args: &[
            arg("email", Kind::Text, "owner@acme.test"),
            arg("password", Kind::Text, PASSWORD),
            arg("role", Kind::Text, "member"),
        ],
        open: Open::Refused,
    },
    ServerFunction {
        endpoint: "members/remove",
        args: &[arg("member_id", Kind::Id, "-1")],
        open: Open::Refused,
    },
    // policy.rs
    ServerFunction {
        endpoint: "admin/policy",
        args: &[],
        open: Open::SignedIn,
    },
    ServerFunction {
        endpoint: "admin/policy/preview",
        args: &POLICY_FIELDS,
        open: Open::SignedIn,
    },
    ServerFunction {
        endpoint: "admin/policy/save",
        args: &SAVE_POLICY,
        open: Open::Refused,
    },
    ServerFunction {
        endpoint: "admin/policy/exceptions/add",
        args: &[
            arg("email", Kind::Text, "nobody@acme.test"),
            arg("backup_codes", Kind::Text, "allow"),
            arg("reason", Kind::Text, "a reason"),
        ],
        open: Open::Refused,
    },
    ServerFunction {
        endpoint: "admin/policy/exceptions/remove",
        args: &[arg("exception_id", Kind::Id, "-1")],
        open: Open::Refused,
    },
    ServerFunction {
        endpoint: "admin/policy/explain",
        args: &[
            arg("email", Kind::Text, "nobody@acme.test"),
            arg("act", Kind::Text, "generate"),
        ],
        open: Open::Refused,
    },
    // recovery.rs
    ServerFunction {
        endpoint: "admin/recovery",
        args: &[],
        open: Open::SignedIn,
    },
    ServerFunction {
        endpoint: "admin/recovery/request",
        args: &[arg("email", Kind::Text, "nobody@acme.test")],
        open: Open::Refused,
    },
    ServerFunction {
        endpoint: "admin/recovery/approve",
        args: &[arg("request_id", Kind::Id, "-1")],
        open: Open::Refused,
    },
    ServerFunction {
        endpoint: "admin/recovery/reveal",
        args: &[arg("request_id", Kind::Id, "-1")],
        open: Open::Refused,
    },
    // sign_in.rs: without a password step passed, the code steps refuse everything. (What
    // they do with a pending sign-in is tested in accounts.rs and backup_codes.rs.)
    ServerFunction {
        endpoint: "sign_in/email",
        args: &[arg("email", Kind::Text, "")],
        open: Open::Refused,
    },
    ServerFunction {
        endpoint: "sign_in/password",
        args: &[arg("password", Kind::Text, "")],
        open: Open::Refused,
    },
    ServerFunction {
        endpoint: "sign_in/code",
        args: &[arg("code", Kind::Text, "")],
        open: Open::Refused,
    },
    ServerFunction {
        endpoint: "sign_in/backup_code",
        args: &[arg("code", Kind::Text, "")],
        open: Open::Refused,
    },
    ServerFunction {
        endpoint: "sign_in/backup_code/slot",
        args: &[],
        open: Open::Refused,
    },
    ServerFunction {
        endpoint: "sign_in/progress",
        args: &[],
        open: Open::Anyone,
    },
    ServerFunction {
        endpoint: "sign_in/help",
        args: &[],
        open: Open::Refused,
    },
    ServerFunction {
        // Ends the caller's session: sent last, or with a session kept for it.
        endpoint: "sign_out",
        args: &[],
        open: Open::Anyone,
    },
    // status.rs
    ServerFunction {
        endpoint: "check_status",
        args: &[],
        open: Open::Anyone,
    },
];

#[test]
fn every_server_function_is_in_the_table() {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../app/src/api");
    let mut in_source = Vec::new();
    for entry in std::fs::read_dir(&folder).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for rest in text.split("endpoint = \"").skip(1) {
                let endpoint = rest.split('"').next().unwrap();
                in_source.push(endpoint.to_owned());
            }
        }
    }
    in_source.sort();
    let mut in_table: Vec<String> = SERVER_FUNCTIONS
        .iter()
        .map(|f| f.endpoint.to_owned())
        .collect();
    in_table.sort();
    let missing: Vec<&String> = in_source.iter().filter(|e| !in_table.contains(e)).collect();
    assert!(
        missing.is_empty(),
        "server functions not in isolation.rs's SERVER_FUNCTIONS, so not tested for tenant \
         isolation and malformed input: {missing:?}"
    );
    assert_eq!(
        in_table, in_source,
        "SERVER_FUNCTIONS names a server function that is gone, or one twice"
    );
    assert!(in_source.len() >= 33, "{in_source:?}");
}

/// A client that shows redirects instead of following them.
fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// An HTTP answer, read whole.
struct Answer {
    status: u16,
    content_type: String,
    /// Where a redirect sends the browser: a path when it is on this server.
    location: Option<String>,
    body: String,
}

impl Answer {
    async fn read(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let named = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = named(header::CONTENT_TYPE).unwrap_or_default();
        // A redirect to this server's own origin is a path on this site.
        let origin = response.url().origin().ascii_serialization();
        let location = named(header::LOCATION).map(|location| {
            location
                .strip_prefix(&origin)
                .map_or(location.clone(), str::to_owned)
        });
        let bytes = response.bytes().await.unwrap();
        Self {
            status,
            content_type,
            location,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }
}

/// Posts `body` as a form to the server function at `/api/<endpoint>`, as the hydrated app
/// does (asking for JSON).
async fn call(
    client: &Client,
    server: &Server,
    endpoint: &str,
    session: Option<&str>,
    body: Vec<u8>,
) -> Answer {
    let mut request = client
        .post(server.url(&format!("/api/{endpoint}")))
        .header(header::ACCEPT, "application/json")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body);
    if let Some(id) = session {
        request = request.header(header::COOKIE, format!("lifeline_session={id}"));
    }
    Answer::read(request.send().await.unwrap()).await
}

/// Gets a page or a download, as a browser does.
async fn get(client: &Client, server: &Server, path: &str, session: Option<&str>) -> Answer {
    let mut request = client.get(server.url(path));
    if let Some(id) = session {
        request = request.header(header::COOKIE, format!("lifeline_session={id}"));
    }
    Answer::read(request.send().await.unwrap()).await
}

/// Percent-encodes `bytes` as a browser encodes a form's names and values.
fn escape_into(out: &mut Vec<u8>, bytes: &[u8]) {
    for &byte in bytes {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(byte),
            b' ' => out.push(b'+'),
            _ => out.extend_from_slice(format!("%{byte:02X}").as_bytes()),
        }
    }
}

/// An `application/x-www-form-urlencoded` body.
fn form(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        if !body.is_empty() {
            body.push(b'&');
        }
        escape_into(&mut body, name.as_bytes());
        body.push(b'=');
        escape_into(&mut body, value.as_bytes());
    }
    body
}

/// A query string for `fields`, with the leading `?`.
fn query(fields: &[(&str, &str)]) -> String {
    format!("?{}", String::from_utf8(form(fields)).unwrap())
}

/// The fields of `function`'s baseline call, with `replace` in place of one argument's value
/// (or added, when the baseline does not send it); `None` leaves that argument out.
fn baseline_with(
    function: &ServerFunction,
    replace: Option<(&str, Option<&str>)>,
) -> Vec<(&'static str, String)> {
    let mut fields = Vec::new();
    for arg in function.args {
        let value = match replace {
            Some((name, value)) if name == arg.name => value,
            _ => arg.baseline,
        };
        if let Some(value) = value {
            fields.push((arg.name, value.to_owned()));
        }
    }
    fields
}

/// `fields` borrowed, as `form` takes them.
fn pairs<'a>(fields: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    fields.iter().map(|(n, v)| (*n, v.as_str())).collect()
}

/// What is wrong with an answer, whatever its status: the server's insides in it (a panic,
/// SQL, a source path, a stack trace), or, in HTML, a tried script or attribute unescaped.
/// (Words that are also plain English or HTML are matched by case: `SELECT `, not
/// `<select`.)
fn problems(what: &str, answer: &Answer) -> Vec<String> {
    const INSIDES: [&str; 17] = [
        "panicked",
        "RUST_BACKTRACE",
        "stack backtrace",
        "/src/",
        ".rs",
        "sqlx",
        "SQLSTATE",
        "syntax error",
        "SELECT ",
        "INSERT INTO",
        "DELETE FROM",
        "no such table",
        "constraint",
        "DbErr",
        "error returned from database",
        "Query Error",
        "Execution Error",
    ];
    const INSIDES_IN_ANY_CASE: [&str; 4] = ["sqlite", "postgres", "duplicate key", "unique"];
    let mut found = Vec::new();
    let lower = answer.body.to_lowercase();
    for inside in INSIDES {
        if answer.body.contains(inside) {
            found.push(format!("the server's insides ({inside:?})"));
        }
    }
    for inside in INSIDES_IN_ANY_CASE {
        if lower.contains(inside) {
            found.push(format!("the server's insides ({inside:?})"));
        }
    }
    if let Some(location) = &answer.location {
        let local = location.starts_with('/') && !location.starts_with("//");
        if !local || location.contains('\\') {
            found.push(format!("a redirect off this site ({location:?})"));
        }
    }
    if answer.content_type.contains("html") {
        for payload in [SCRIPT, "<img src=x onerror=alert(1)>", "alert(1)</script>"] {
            if answer.body.contains(payload) {
                found.push(format!("{payload:?} unescaped in HTML"));
            }
        }
    }
    found
        .into_iter()
        .map(|problem| {
            format!(
                "{what}: {problem} in the answer ({}): {:.1500}",
                answer.status, answer.body
            )
        })
        .collect()
}

/// Fails on any of [`problems`].
fn assert_sound(what: &str, answer: &Answer) {
    let found = problems(what, answer);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// Acme, as the tests know it after making it.
struct Acme {
    org_id: i32,
    owner: Member,
    /// Every member's id: owner, admin, member, hidden.
    member_ids: Vec<i32>,
    exception_ids: Vec<i32>,
    request_ids: Vec<i32>,
    policy_version: i32,
}

/// Acme's organization id: it is made first in a fresh database.
const ACME_ORG: i32 = 1;

/// Acme's emails that Globex types into forms in the cross-organization calls. Acme also
/// has `hidden@acme.test`, whom Globex never names.
const TYPED_ACME_EMAILS: [&str; 3] = ["owner@acme.test", "admin@acme.test", "member@acme.test"];

/// The reason on Acme's exception: Globex never types it, so it must never come back.
const ACME_REASON: &str = "Anvil contract: codes allowed";

impl Acme {
    /// Every id of an Acme row a server function could name.
    fn ids(&self) -> Vec<i64> {
        self.member_ids
            .iter()
            .chain(&self.exception_ids)
            .chain(&self.request_ids)
            .map(|&id| i64::from(id))
            .collect()
    }
}

async fn create_user(database: &TestDatabase, org: &str, email: &str, role: &str) {
    let (ok, _, stderr) = cli(
        &database.url,
        &[
            "create-user",
            "--org",
            org,
            "--email",
            email,
            "--role",
            role,
        ],
        &format!("{PASSWORD}\n"),
    )
    .await;
    assert!(ok, "{stderr}");
}

/// Acme with data in every table, and Globex (owner, admin, member) beside it. The server
/// must be started with `key`, which sealed Acme's TOTP secrets.
async fn two_organizations(database: &TestDatabase, key: &SecretKey) -> Acme {
    create_org(&database.url, "Acme", "owner@acme.test").await;
    create_user(database, "acme", "admin@acme.test", "admin").await;
    create_user(database, "acme", "member@acme.test", "member").await;
    create_user(database, "acme", "hidden@acme.test", "member").await;
    create_org(&database.url, "Globex", "owner@globex.test").await;
    create_user(database, "globex", "admin@globex.test", "admin").await;
    create_user(database, "globex", "member@globex.test", "member").await;

    let db = &database.db;
    let source = Source::default();
    let now = chrono::Utc::now();
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
    let saved = org_policy::save(db, &authz, &owner, 0, &policy, &source, now)
        .await
        .unwrap();
    let exception = org_policy::add_exception(
        db,
        &authz,
        &owner,
        "hidden@acme.test",
        true,
        ACME_REASON,
        &source,
        now,
    )
    .await
    .unwrap();

    // The owner has an authenticator being set up; the member has MFA and backup codes.
    mfa::begin_enrolment(db, key, owner.id).await.unwrap();
    let enrolment = mfa::begin_enrolment(db, key, member.id).await.unwrap();
    let code = mfa::code_at(&enrolment.setup_key, now).unwrap();
    mfa::confirm_enrolment(db, key, member.id, &code, &source, now)
        .await
        .unwrap();
    let member = accounts::member(db, member.id).await.unwrap().unwrap();
    let hasher = BackupCodeHasher::new(PasswordHasher::new(2).unwrap(), key);
    backup_codes::generate(
        db,
        &authz,
        &hasher,
        &member,
        &CodePolicy::default(),
        &source,
        now,
    )
    .await
    .unwrap();

    // Two recovery-code requests: one awaiting approval, one approved and ready to reveal.
    let waiting = recovery_codes::request(db, &authz, &owner, "member@acme.test", &source, now)
        .await
        .unwrap();
    let ready = recovery_codes::request(db, &authz, &owner, "hidden@acme.test", &source, now)
        .await
        .unwrap();
    recovery_codes::approve(db, &authz, &admin, ready.id, &source, now)
        .await
        .unwrap();

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
        policy_version: saved.version,
    }
}

/// Everything Acme has, read straight from the database and through the command line:
/// its rows in every table (secrets by length only), its audit log as exported, and its
/// policy as exported. Two snapshots are equal when nothing of Acme's changed.
async fn acme_snapshot(database: &TestDatabase, acme: &Acme) -> BTreeMap<String, Vec<String>> {
    let org = acme.org_id;
    let members = format!("SELECT id FROM user_account WHERE org_id = {org}");
    let sets = format!("SELECT id FROM backup_code_set WHERE user_id IN ({members})");
    let tables: [(&str, &str, String); 11] = [
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
            "factor_lockout",
            "user_id, factor, failures, locked_until, lockouts",
            format!("user_id IN ({members})"),
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
            !rows.is_empty() || table == "factor_lockout",
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
fn assert_acme_unchanged(
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
async fn assert_acme_chain_intact(database: &TestDatabase) {
    let (ok, stdout, stderr) = cli(&database.url, &["audit", "verify", "--org", "acme"], "").await;
    assert!(ok && stdout.contains("is intact"), "{stdout}{stderr}");
}

/// Starts the server on `database` with the key that sealed its TOTP secrets.
async fn start(database: &TestDatabase, key: &SecretKey, extra: &[(&str, &str)]) -> Server {
    let hex = key.to_hex();
    let mut vars = vec![
        ("DATABASE_URL", database.url.as_str()),
        ("LIFELINE_SECRET_KEY", hex.as_str()),
    ];
    vars.extend_from_slice(extra);
    Server::start_with(&vars).await
}

/// Fails if `text` carries anything of Acme's: `markers` are strings only Acme's data has,
/// and no JSON id field may hold an Acme row's id.
fn assert_nothing_of_acme(what: &str, text: &str, markers: &[&str], acme_ids: &[i64]) {
    for marker in markers {
        assert!(
            !text.contains(marker),
            "{what}: Acme's {marker:?} in a Globex answer: {text:.3000}"
        );
    }
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(text) {
        let mut found = Vec::new();
        ids_in(&json, acme_ids, &mut found);
        assert!(
            found.is_empty(),
            "{what}: Acme's ids {found:?} in a Globex answer: {text:.3000}"
        );
    }
}

/// Collects the values of id fields in `json` that are among `acme_ids`. (Globex's own
/// members have ids after Acme's, and Globex has no exceptions or requests, so any Acme id
/// in an id field is Acme's row.)
fn ids_in(json: &serde_json::Value, acme_ids: &[i64], found: &mut Vec<String>) {
    match json {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                if ["id", "member_id", "request_id", "exception_id"].contains(&key.as_str())
                    && value.as_i64().is_some_and(|id| acme_ids.contains(&id))
                {
                    found.push(format!("{key}: {value}"));
                }
                ids_in(value, acme_ids, found);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                ids_in(item, acme_ids, found);
            }
        }
        _ => {}
    }
}

/// The audit page's rows may show what a Globex caller typed (a refused attempt records the
/// email asked for in its details): an echo of the caller's own input, not Acme's data. The
/// actor and target of every row must still be Globex's; the details are checked with
/// `markers` that no Globex caller ever typed, and then left out of the general check.
fn audit_rows_without_typed_details(what: &str, body: &str, untyped_markers: &[&str]) -> String {
    let Ok(mut view) = serde_json::from_str::<serde_json::Value>(body) else {
        return body.to_owned();
    };
    if let Some(rows) = view.get_mut("rows").and_then(|rows| rows.as_array_mut()) {
        for row in rows {
            for field in ["actor", "target"] {
                let who = row[field].as_str().unwrap_or_default();
                assert!(!who.contains("acme"), "{what}: an Acme {field}: {row}");
            }
            let details = row["details"].as_str().unwrap_or_default().to_owned();
            for marker in untyped_markers {
                assert!(!details.contains(marker), "{what}: {marker:?} in {row}");
            }
            row["details"] = serde_json::Value::Null;
        }
    }
    view.to_string()
}

/// The values a Globex caller tries for `arg` to reach Acme's rows (none: the baseline's).
fn acme_values(arg: &Arg, acme: &Acme) -> Vec<String> {
    let ids = |ids: &[i32]| ids.iter().map(i32::to_string).collect();
    match (arg.kind, arg.name) {
        (Kind::Id, "member_id") => ids(&acme.member_ids),
        (Kind::Id, "exception_id") => ids(&acme.exception_ids),
        (Kind::Id, "request_id") => ids(&acme.request_ids),
        (Kind::Version, _) => vec![acme.policy_version.to_string()],
        // From the first member on: a page that would show Acme's, were they not filtered.
        (Kind::After, _) => vec!["0".into()],
        (Kind::Before, _) => vec![i64::from(i32::MAX).to_string()],
        (_, "email" | "actor") => TYPED_ACME_EMAILS.iter().map(|e| (*e).to_owned()).collect(),
        (_, "q") => vec!["acme".into()],
        (_, "role") => vec!["owner".into()],
        _ => Vec::new(),
    }
}

/// What stands in for an Acme target that does not exist at all, for the functions where
/// Acme's row must read exactly like no row. `members/add` is left out: emails are unique
/// across organizations, and an unknown email would add a member.
fn unknown_target(function: &ServerFunction, arg: &Arg) -> Option<&'static str> {
    match (arg.kind, arg.name) {
        (Kind::Id, _) => Some("2000000000"),
        (_, "email") if function.endpoint != "members/add" => Some("nobody@nowhere.test"),
        _ => None,
    }
}

/// The admin console's pages and downloads.
const ADMIN_PAGES: [&str; 8] = [
    "/admin/members",
    "/admin/policy",
    "/admin/audit",
    "/admin/compliance",
    "/admin/recovery",
    "/admin/audit/export?format=csv",
    "/admin/audit/export?format=jsonl",
    "/admin/policy/export",
];

/// Globex's pages and downloads must show nothing of Acme. Before the cross-organization
/// calls nothing at all may mention Acme; afterwards the audit log and its downloads may
/// show the Acme emails Globex typed (refused attempts record them), and are checked with
/// `untyped` markers only.
async fn assert_globex_pages_show_nothing_of_acme(
    client: &Client,
    server: &Server,
    session: &str,
    who: &str,
    markers: &[&str],
    untyped: &[&str],
    acme_ids: &[i64],
) -> usize {
    let mut tried = 0;
    for path in ADMIN_PAGES {
        let answer = get(client, server, path, Some(session)).await;
        tried += 1;
        let what = format!("{who} GET {path}");
        assert_eq!(answer.status, 200, "{what}: {:.2000}", answer.body);
        let audit = path.starts_with("/admin/audit");
        assert_nothing_of_acme(
            &what,
            &answer.body,
            if audit { untyped } else { markers },
            acme_ids,
        );
        if path == "/admin/audit/export?format=jsonl" {
            for line in answer.body.lines() {
                let event: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_ne!(event["org_id"], ACME_ORG, "{what}: {line}");
                for field in ["actor", "target"] {
                    let who = event[field].as_str().unwrap_or_default();
                    assert!(!who.contains("acme"), "{what}: an Acme {field}: {line}");
                }
            }
        }
    }
    tried
}

#[tokio::test]
async fn globex_reaches_nothing_of_acme_through_any_server_function_or_page() {
    for database in fresh_databases().await {
        let key = SecretKey::generate();
        let acme = two_organizations(&database, &key).await;
        let server = start(&database, &key, &[]).await;
        let client = client();
        let acme_ids = acme.ids();
        let mut tried = 0usize;

        let callers = [
            ("Globex's owner", "owner@globex.test"),
            ("Globex's admin", "admin@globex.test"),
            ("Globex's member", "member@globex.test"),
        ];
        let mut sessions = Vec::new();
        for (who, email) in callers {
            sessions.push((who, email, sign_in(&client, &server, email).await));
        }
        // Acme's owner is signed in too: nothing Globex does may end that session.
        let acme_session = sign_in(&client, &server, "owner@acme.test").await;
        let before = acme_snapshot(&database, &acme).await;

        // Strings only Acme's data has. Globex types the first three emails below; the rest
        // Globex never sends, so they may not appear even where Globex's input is echoed.
        let untyped = ["hidden@acme.test", "Acme", ACME_REASON];
        let everything = ["@acme.test", "Acme", "acme", ACME_REASON];

        // Globex's admins' pages before any Globex caller typed an Acme email: nothing.
        for (who, _, session) in &sessions[..2] {
            tried += assert_globex_pages_show_nothing_of_acme(
                &client,
                &server,
                session,
                who,
                &everything,
                &everything,
                &acme_ids,
            )
            .await;
        }

        for (who, email, session) in &sessions {
            // Signing out ends the session: it goes last.
            let functions = SERVER_FUNCTIONS
                .iter()
                .filter(|f| f.endpoint != "sign_out")
                .chain(SERVER_FUNCTIONS.iter().filter(|f| f.endpoint == "sign_out"));
            for function in functions {
                // One call per Acme value of each argument that can name Acme's rows; a
                // function with no such argument is called once, as it is.
                let mut attempts = Vec::new();
                for arg in function.args {
                    for value in acme_values(arg, &acme) {
                        let with =
                            |value: &str| baseline_with(function, Some((arg.name, Some(value))));
                        let unknown = unknown_target(function, arg).map(with);
                        attempts.push((with(&value), unknown));
                    }
                }
                if attempts.is_empty() {
                    attempts.push((baseline_with(function, None), None));
                }
                for (fields, unknown) in attempts {
                    let what = format!("{who}: {} {:?}", function.endpoint, pairs(&fields));
                    let answer = call(
                        &client,
                        &server,
                        function.endpoint,
                        Some(session),
                        form(&pairs(&fields)),
                    )
                    .await;
                    tried += 1;
                    assert!(
                        answer.status < 500,
                        "{what}: {} {}",
                        answer.status,
                        answer.body
                    );
                    assert_sound(&what, &answer);
                    let body = if function.endpoint == "admin/audit" {
                        audit_rows_without_typed_details(&what, &answer.body, &untyped)
                    } else {
                        answer.body.clone()
                    };
                    assert_nothing_of_acme(&what, &body, &everything, &acme_ids);
                    // An Acme row must read exactly like a row that does not exist.
                    if let Some(unknown) = unknown {
                        let none = call(
                            &client,
                            &server,
                            function.endpoint,
                            Some(session),
                            form(&pairs(&unknown)),
                        )
                        .await;
                        tried += 1;
                        assert!(
                            (none.status, &none.body) == (answer.status, &answer.body),
                            "{what}: Acme's row reads differently from no row: {} {} vs. {} {}",
                            answer.status,
                            answer.body,
                            none.status,
                            none.body
                        );
                    }
                }
                if function.endpoint == "sign_out" {
                    assert_eq!(signed_in_email(&client, &server, session).await, None);
                } else if function.endpoint == "check_status" {
                    // Still signed in as themselves after everything else.
                    assert_eq!(
                        signed_in_email(&client, &server, session).await.as_deref(),
                        Some(*email),
                        "{who}"
                    );
                }
            }
        }

        // Globex's pages and downloads, with every Globex attempt on the record now (the
        // sessions above are signed out: new ones).
        for (who, email) in &callers[..2] {
            let session = sign_in(&client, &server, email).await;
            tried += assert_globex_pages_show_nothing_of_acme(
                &client,
                &server,
                &session,
                who,
                &["@acme.test", "Acme", ACME_REASON],
                &untyped,
                &acme_ids,
            )
            .await;
            // The plain "Reveal" form, posted with Acme's requests: no code, nothing of Acme.
            for request_id in &acme.request_ids {
                let answer = Answer::read(
                    client
                        .post(server.url("/admin/recovery"))
                        .header(header::COOKIE, format!("lifeline_session={session}"))
                        .header(header::ACCEPT, "text/html")
                        .form(&[("request_id", request_id.to_string())])
                        .send()
                        .await
                        .unwrap(),
                )
                .await;
                tried += 1;
                let what = format!("{who}: POST /admin/recovery request_id={request_id}");
                assert_eq!(answer.status, 200, "{what}");
                assert!(
                    !answer.body.contains("class=\"backup-code\""),
                    "{what}: a code revealed: {:.3000}",
                    answer.body
                );
                assert_nothing_of_acme(&what, &answer.body, &untyped, &acme_ids);
            }
        }
        // A member of Globex gets none of the admin pages and downloads.
        let member = sign_in(&client, &server, "member@globex.test").await;
        for path in ADMIN_PAGES {
            let answer = get(&client, &server, path, Some(&member)).await;
            tried += 1;
            let what = format!("Globex's member GET {path}");
            if path.contains("/export") {
                assert_eq!(answer.status, 403, "{what}");
            }
            assert!(answer.status < 500, "{what}: {}", answer.status);
            assert_nothing_of_acme(&what, &answer.body, &untyped, &acme_ids);
            assert!(
                !answer.body.contains("owner@globex.test"),
                "{what}: {:.2000}",
                answer.body
            );
        }
        assert_eq!(
            signed_in_email(&client, &server, &acme_session)
                .await
                .as_deref(),
            Some("owner@acme.test"),
            "Acme's owner is still signed in"
        );

        assert_acme_unchanged(&before, &acme_snapshot(&database, &acme).await, "Globex");
        assert_acme_chain_intact(&database).await;
        let log = server.log();
        assert!(!log.iter().any(|line| line.contains("panicked")), "{log:?}");
        eprintln!(
            "cross-org calls tried on {:?}: {tried}, failures: 0",
            database.backend
        );
    }
}

/// The values tried in every argument of every server function.
fn malformed_values() -> Vec<(&'static str, String)> {
    vec![
        ("letters", "abc".into()),
        ("empty", String::new()),
        ("negative", "-1".into()),
        ("i64::MAX", i64::MAX.to_string()),
        ("past i64", "99999999999999999999".into()),
        ("1e309", "1e309".into()),
        ("a fraction", "1.5".into()),
        ("10 KB", "7".repeat(10 * 1024)),
        ("a script", SCRIPT.into()),
        ("an attribute", ATTRIBUTE.into()),
        ("SQL", "' OR 1=1 --".into()),
        ("SQL", "\"; DROP TABLE user_account; --".into()),
        ("control characters", "a\u{0}b\r\nc".into()),
        ("another site", "//evil.example/x".into()),
        ("another site", "https://evil.example/".into()),
        ("another site", "/\\evil.example".into()),
        ("a script address", "javascript:alert(1)".into()),
    ]
}

const SCRIPT: &str = "<script>alert(1)</script>";
const ATTRIBUTE: &str = "\"><img src=x onerror=alert(1)>";

/// How one malformed request differs from a function's baseline call.
enum Mutation {
    /// The baseline itself.
    Baseline,
    /// One argument with a malformed value.
    Value(Arg, String),
    /// One argument left out.
    Missing(Arg),
    /// No fields at all.
    Empty,
    /// A field the function does not take.
    Extra,
    /// One argument sent twice.
    Twice,
    /// Bytes that are not UTF-8, raw or percent-encoded, in one argument (or alone: `None`).
    NotUtf8 { arg: Option<Arg>, raw: bool },
    /// A plain value where the function takes a structure (`fields=…` for `PolicyFields`).
    NotAStructure,
}

/// A malformed request to one function: what it is, its body, and how it differs.
struct Case {
    what: String,
    body: Vec<u8>,
    mutation: Mutation,
}

/// Every malformed request tried on `function`.
fn malformed_cases(function: &ServerFunction) -> Vec<Case> {
    let encoded = |fields: &[(&'static str, String)]| form(&pairs(fields));
    let mut cases = vec![
        Case {
            what: "the baseline".into(),
            body: encoded(&baseline_with(function, None)),
            mutation: Mutation::Baseline,
        },
        Case {
            what: "no fields".into(),
            body: Vec::new(),
            mutation: Mutation::Empty,
        },
        Case {
            what: "an extra field".into(),
            body: {
                let mut fields = baseline_with(function, None);
                fields.push(("unexpected", SCRIPT.into()));
                encoded(&fields)
            },
            mutation: Mutation::Extra,
        },
    ];
    let not_utf8 = |arg: Option<Arg>, raw: bool| {
        let mut body = encoded(&match arg {
            Some(arg) => baseline_with(function, Some((arg.name, None))),
            None => baseline_with(function, None),
        });
        if !body.is_empty() {
            body.push(b'&');
        }
        let name = arg.map_or("unexpected", |arg| arg.name);
        escape_into(&mut body, name.as_bytes());
        body.push(b'=');
        if raw {
            body.extend_from_slice(b"\xff\xfe\xc3x");
        } else {
            body.extend_from_slice(b"%FF%FE%C3x");
        }
        Case {
            what: format!(
                "{} bytes that are not UTF-8 in {name}",
                if raw { "raw" } else { "encoded" }
            ),
            body,
            mutation: Mutation::NotUtf8 { arg, raw },
        }
    };
    if function.args.is_empty() {
        cases.push(not_utf8(None, true));
        cases.push(not_utf8(None, false));
    }
    for &arg in function.args {
        for (label, value) in malformed_values() {
            cases.push(Case {
                what: format!("{} = {label}", arg.name),
                body: encoded(&baseline_with(function, Some((arg.name, Some(&value))))),
                mutation: Mutation::Value(arg, value),
            });
        }
        if arg.baseline.is_some() {
            cases.push(Case {
                what: format!("{} left out", arg.name),
                body: encoded(&baseline_with(function, Some((arg.name, None)))),
                mutation: Mutation::Missing(arg),
            });
        }
        cases.push(Case {
            what: format!("{} twice", arg.name),
            body: {
                let mut fields = baseline_with(function, None);
                fields.push((arg.name, "1".into()));
                fields.push((arg.name, "2".into()));
                encoded(&fields)
            },
            mutation: Mutation::Twice,
        });
        cases.push(not_utf8(Some(arg), true));
        cases.push(not_utf8(Some(arg), false));
    }
    if function
        .args
        .iter()
        .any(|arg| arg.name.starts_with("fields["))
    {
        let mut fields: Vec<(&'static str, String)> = baseline_with(function, None)
            .into_iter()
            .filter(|(name, _)| !name.starts_with("fields["))
            .collect();
        fields.push(("fields", "abc".into()));
        cases.push(Case {
            what: "fields as a plain value".into(),
            body: encoded(&fields),
            mutation: Mutation::NotAStructure,
        });
    }
    cases
}

/// Whether `function` may answer `mutation` (2xx or a redirect) rather than refuse it with a
/// 4xx: only when its baseline is answered for this caller and the input stays valid — an
/// optional argument left out, a field it ignores, a search text, a page cursor that is a
/// number of the right size, an empty (so no) filter, a ticked checkbox, a password it does
/// not read inside the re-authentication window, a path to go back to (any value becomes
/// a path on this site, which every answer's redirect is checked for). Every other
/// malformed input must be refused.
fn may_answer(function: &ServerFunction, mutation: &Mutation, signed_in: bool) -> bool {
    let open = match function.open {
        Open::Anyone => true,
        Open::SignedIn => signed_in,
        Open::Refused => false,
    };
    open && match mutation {
        Mutation::Baseline | Mutation::Extra => true,
        Mutation::Missing(arg) => arg.kind.optional(),
        Mutation::Empty => function.args.iter().all(|arg| arg.kind.optional()),
        Mutation::Value(arg, value) => match arg.kind {
            Kind::Search => value.chars().count() <= 254,
            // Empty: no cursor, the first page.
            Kind::After => value.is_empty() || value.parse::<i32>().is_ok(),
            Kind::Before => value.is_empty() || value.parse::<i64>().is_ok(),
            Kind::OptText => value.trim().is_empty(),
            Kind::Checkbox | Kind::Password | Kind::Next => true,
            Kind::Id | Kind::Version | Kind::Text => false,
        },
        // Which of the two counts is the framework's business; either answer is fine, as
        // long as it is not a server error.
        Mutation::Twice => true,
        // A function without arguments does not read its body.
        Mutation::NotUtf8 { arg: None, .. } => true,
        // Raw bytes are refused; percent-encoded ones are decoded with U+FFFD in their
        // place, which is text like any other where any text is valid.
        Mutation::NotUtf8 {
            arg: Some(arg),
            raw,
        } => {
            !raw && matches!(
                arg.kind,
                Kind::Search | Kind::Checkbox | Kind::Password | Kind::Next
            )
        }
        Mutation::NotAStructure => false,
    }
}

/// What is wrong with `answer` to a malformed request: a server error, an input that had to
/// be refused but was answered, a function open to this caller that did not answer its
/// baseline, or any of [`problems`].
fn misjudged(
    what: &str,
    function: &ServerFunction,
    mutation: &Mutation,
    signed_in: bool,
    answer: &Answer,
) -> Vec<String> {
    let answerable = may_answer(function, mutation, signed_in);
    let refused = (400..500).contains(&answer.status);
    let mut found = problems(what, answer);
    let wrong = if answer.status >= 500 {
        Some("a server error")
    } else if !answerable && !refused {
        Some("must be refused with a 4xx")
    } else if answerable && matches!(mutation, Mutation::Baseline) && answer.status >= 400 {
        Some("the baseline must be answered")
    } else {
        None
    };
    if let Some(wrong) = wrong {
        found.push(format!(
            "{what}: {} {:.300} ({wrong})",
            answer.status, answer.body
        ));
    }
    found
}

#[tokio::test]
async fn malformed_input_to_every_server_function_is_refused_and_writes_nothing() {
    for database in fresh_databases().await {
        let key = SecretKey::generate();
        let acme = two_organizations(&database, &key).await;
        let server = start(&database, &key, &[]).await;
        let client = client();
        let owner = sign_in(&client, &server, "owner@acme.test").await;
        let before = acme_snapshot(&database, &acme).await;
        let mut tried = 0usize;
        let mut failures = Vec::new();

        for (who, session) in [("Acme's owner", Some(owner.as_str())), ("nobody", None)] {
            for function in SERVER_FUNCTIONS {
                // Signing out ends every session of the member: the owner's tries come last.
                if session.is_some() && function.endpoint == "sign_out" {
                    continue;
                }
                for case in malformed_cases(function) {
                    let what = format!("{who}: {} with {}", function.endpoint, case.what);
                    let answer =
                        call(&client, &server, function.endpoint, session, case.body).await;
                    tried += 1;
                    failures.extend(misjudged(
                        &what,
                        function,
                        &case.mutation,
                        session.is_some(),
                        &answer,
                    ));
                }
            }
        }
        // Mishandled requests are listed at the end, all of them, after the other checks.
        assert_eq!(
            signed_in_email(&client, &server, &owner).await.as_deref(),
            Some("owner@acme.test")
        );
        assert_acme_unchanged(
            &before,
            &acme_snapshot(&database, &acme).await,
            "Malformed input",
        );
        assert_acme_chain_intact(&database).await;

        // Signing out takes no arguments: a body it can read signs out, one it cannot is
        // refused and leaves the session alone. It ends every session of the member, so
        // each try has a session of its own, signed in after the snapshot (signing in is
        // audited).
        let sign_out = SERVER_FUNCTIONS
            .iter()
            .find(|f| f.endpoint == "sign_out")
            .unwrap();
        for case in malformed_cases(sign_out) {
            let session = sign_in(&client, &server, "owner@acme.test").await;
            let what = format!("Acme's owner: sign_out with {}", case.what);
            let answer = call(&client, &server, "sign_out", Some(&session), case.body).await;
            tried += 1;
            failures.extend(misjudged(&what, sign_out, &case.mutation, true, &answer));
            let still = signed_in_email(&client, &server, &session).await;
            assert_eq!(
                still.is_none(),
                answer.status < 400,
                "{what}: {}",
                answer.status
            );
        }

        let owner = sign_in(&client, &server, "owner@acme.test").await;
        tried +=
            pages_escape_what_they_show(&database, &client, &server, &owner, &acme, &mut failures)
                .await;
        assert_acme_chain_intact(&database).await;
        let log = server.log();
        assert!(!log.iter().any(|line| line.contains("panicked")), "{log:?}");
        eprintln!(
            "malformed inputs tried on {:?}: {tried}, failures: {}",
            database.backend,
            failures.len()
        );
        assert!(
            failures.is_empty(),
            "{} of {tried} malformed requests on {:?} were mishandled:\n{}",
            failures.len(),
            database.backend,
            failures.join("\n")
        );
    }
}

/// Pages that show what was typed, or what was stored, escape it: searches and filters in
/// the address, a plain form's post that is refused, and an exception's reason, which is
/// free text and legitimately stored with its `<` and quotes. Returns the requests made.
async fn pages_escape_what_they_show(
    database: &TestDatabase,
    client: &Client,
    server: &Server,
    owner: &str,
    acme: &Acme,
    failures: &mut Vec<String>,
) -> usize {
    let mut tried = 0;
    let pages = [
        format!("/admin/members{}", query(&[("q", SCRIPT)])),
        format!(
            "/admin/audit{}",
            query(&[("actor", SCRIPT), ("action", ATTRIBUTE), ("from", SCRIPT)])
        ),
        format!(
            "/admin/policy{}",
            query(&[
                ("preview", "1"),
                ("backup_codes", SCRIPT),
                ("codes_per_set", ATTRIBUTE),
                ("code_entry", "' OR 1=1 --"),
            ])
        ),
        format!("/admin/policy{}", query(&[("saved", SCRIPT)])),
        format!("/admin/audit/export{}", query(&[("format", SCRIPT)])),
        format!("/admin/policy/export{}", query(&[("at", SCRIPT)])),
        // Malformed addresses: control characters in a search or filter, numbers too big,
        // bytes that are not UTF-8.
        format!("/admin/members{}", query(&[("q", "a\u{0}b")])),
        format!("/admin/audit{}", query(&[("actor", "a\u{0}b")])),
        format!(
            "/admin/audit/export{}",
            query(&[("format", "csv"), ("action", "a\u{0}b")])
        ),
        format!(
            "/admin/members{}",
            query(&[("after", "99999999999999999999")])
        ),
        format!("/admin/audit{}", query(&[("before", "1e309")])),
        format!("/admin/policy/export{}", query(&[("at", "1e309")])),
        "/admin/members?q=%FF%FE".to_owned(),
        "/admin/audit/export?format=%FF".to_owned(),
    ];
    for path in &pages {
        let answer = get(client, server, path, Some(owner)).await;
        tried += 1;
        let what = format!("GET {path}");
        if answer.status >= 500 {
            failures.push(format!("{what}: {} {:.300}", answer.status, answer.body));
        }
        failures.extend(problems(&what, &answer));
    }
    // The search box shows the search again, escaped.
    let members = get(client, server, &pages[0], Some(owner)).await;
    assert!(
        members
            .body
            .contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{:.3000}",
        members.body
    );

    // A plain form's post (no JavaScript) that is refused goes back to its page.
    for (endpoint, fields, page) in [
        (
            "members/add",
            vec![("email", SCRIPT), ("password", SCRIPT), ("role", ATTRIBUTE)],
            "/admin/members",
        ),
        (
            "admin/policy/exceptions/add",
            vec![
                ("email", ATTRIBUTE),
                ("backup_codes", "allow"),
                ("reason", SCRIPT),
            ],
            "/admin/policy",
        ),
        (
            "admin/recovery/request",
            vec![("email", SCRIPT)],
            "/admin/recovery",
        ),
    ] {
        let posted = client
            .post(server.url(&format!("/api/{endpoint}")))
            .header(header::COOKIE, format!("lifeline_session={owner}"))
            .header(header::ACCEPT, "text/html")
            .header(header::REFERER, server.url(page))
            .form(&fields)
            .send()
            .await
            .unwrap();
        let answer = Answer::read(posted).await;
        tried += 1;
        let what = format!("a plain form's post to {endpoint}");
        assert!(
            (300..400).contains(&answer.status),
            "{what}: {} {:.500}",
            answer.status,
            answer.body
        );
        assert_sound(&what, &answer);
        let location = answer.location.clone().unwrap_or_default();
        assert!(location.starts_with(page), "{what}: back at {location}");
        let page = get(client, server, &location, Some(owner)).await;
        assert_eq!(page.status, 200, "{what}: back at {location}");
        assert_sound(&what, &page);
    }

    // A reason is free text: one with markup is stored as typed and shown escaped, on the
    // page and in the data the page hands to the browser for hydration.
    let reason = format!("</script>{SCRIPT} {ATTRIBUTE} ' OR 1=1 -- & more");
    let added = call(
        client,
        server,
        "admin/policy/exceptions/add",
        Some(owner),
        form(&[
            ("email", "member@acme.test"),
            ("backup_codes", "deny"),
            ("reason", &reason),
        ]),
    )
    .await;
    tried += 1;
    assert!(added.status < 400, "{} {}", added.status, added.body);
    let authz = Authz::load(&database.db).await.unwrap();
    let stored = org_policy::exceptions(&database.db, &authz, &acme.owner)
        .await
        .unwrap();
    assert!(
        stored.iter().any(|e| e.reason == reason),
        "stored as typed: {stored:?}"
    );
    for path in ["/admin/policy", "/admin/audit", "/admin/members"] {
        let page = get(client, server, path, Some(owner)).await;
        tried += 1;
        assert_eq!(page.status, 200, "{path}");
        assert_sound(path, &page);
        assert!(!page.body.contains("</script><script>"), "{path}");
    }
    let policy = get(client, server, "/admin/policy", Some(owner)).await;
    assert!(
        policy.body.contains("&lt;img src=x onerror=alert(1)&gt;")
            || policy.body.contains("&lt;img src=x onerror=alert(1)>"),
        "the reason is on the policy page, escaped: {:.5000}",
        policy.body
    );
    tried
}
