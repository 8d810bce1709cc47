//! The JSON API (`/api/v1`) through the real binary, on SQLite and PostgreSQL: each scope
//! opens its endpoints and no other; a token that does not work gets 401 whatever the
//! reason; the gate decides as the token's owner; another organization's data never comes
//! back; malformed input is named and writes nothing; the per-token rate holds under 200
//! calls at once; every call is on the record; the OpenAPI document matches its snapshot;
//! and `examples/members-without-codes.sh` does what it says with curl alone.
//!
//! [`ENDPOINTS`] lists every endpoint with its scope; a test reads the routes from the
//! sources and fails when one is missing, so that a new endpoint joins every table here.

use chrono::{Duration, Utc};
use domain::{
    accounts,
    api_tokens::{self, Scope, TokenForm},
    audit::Source,
    authz::Authz,
    command::Command,
    org_policy::OrgPolicy,
    testing::{TestDatabase, fresh_databases},
};
use reqwest::{Method, StatusCode, header};
use serde_json::Value;

use crate::support::{
    cli::{create_org, create_user},
    client::client,
    process::Server,
    sources::{RouteKind, every_route, workspace_path},
};

/// One endpoint: its method, its route as the router names it, and the scope it needs.
struct Endpoint {
    method: &'static str,
    route: &'static str,
    scope: Scope,
}

/// Every endpoint of the API but the document describing it.
const ENDPOINTS: [Endpoint; 10] = [
    Endpoint {
        method: "GET",
        route: "/api/v1/members",
        scope: Scope::MembersRead,
    },
    Endpoint {
        method: "GET",
        route: "/api/v1/members/{id}",
        scope: Scope::MembersRead,
    },
    Endpoint {
        method: "POST",
        route: "/api/v1/members/{id}/revoke-codes",
        scope: Scope::CodesRevoke,
    },
    Endpoint {
        method: "POST",
        route: "/api/v1/members/{id}/reset-mfa",
        scope: Scope::MfaReset,
    },
    Endpoint {
        method: "POST",
        route: "/api/v1/members/{id}/sign-in-code",
        scope: Scope::SignInCodesIssue,
    },
    Endpoint {
        method: "POST",
        route: "/api/v1/sign-in-codes/{id}/reveal",
        scope: Scope::SignInCodesIssue,
    },
    Endpoint {
        method: "GET",
        route: "/api/v1/policy",
        scope: Scope::PolicyRead,
    },
    Endpoint {
        method: "GET",
        route: "/api/v1/policy/history",
        scope: Scope::PolicyRead,
    },
    Endpoint {
        method: "PUT",
        route: "/api/v1/policy",
        scope: Scope::PolicyWrite,
    },
    Endpoint {
        method: "GET",
        route: "/api/v1/audit/events",
        scope: Scope::AuditRead,
    },
];

/// The document's address: public, outside the token layer.
const DOCUMENT: &str = "/api/v1/openapi.json";
/// The committed snapshot of the document.
const SNAPSHOT: &str = "docs/openapi.json";

/// The policy as a save through the API sends it: the default settings, against `version`.
fn policy_body(version: i32, codes_per_set: Value) -> Value {
    let policy = OrgPolicy::default();
    serde_json::json!({
        "expected_version": version,
        "policy": {
            "backup_codes": policy.codes.as_str(),
            "codes_per_set": codes_per_set,
            "max_set_age_days": policy.max_set_age_days,
            "low_codes_threshold": policy.low_codes_threshold,
            "lockout_attempts": policy.lockout_attempts,
            "lockout_minutes": policy.lockout_minutes,
            "code_entry": policy.code_entry.as_str(),
            "restrict_after_backup_sign_in": policy.restrict_after_backup_sign_in,
            "recovery_code_approval": policy.recovery_code_approval,
            "admins_request_backups": policy.admins_request_backups,
            "replace_when_low": policy.replace_when_low,
            "required_from": policy.required_from,
            "grace_days": policy.grace_days,
            "sign_in_codes": {
                "issuers": policy.recovery_codes.issuers.as_str(),
                "shortest_minutes": policy.recovery_codes.shortest_minutes,
                "longest_minutes": policy.recovery_codes.longest_minutes,
                "default_minutes": policy.recovery_codes.default_minutes,
                "max_uses": policy.recovery_codes.max_uses,
            },
        }
    })
}

/// A malformed call: method, path, body, the status it gets and the field its error names.
type Malformed = (
    &'static str,
    &'static str,
    Option<String>,
    u16,
    Option<&'static str>,
);

/// A token for `member_id` with `scopes`, made as the console makes it.
async fn token_for(database: &TestDatabase, member_id: i32, scopes: &[Scope]) -> String {
    let db = &database.db;
    let authz = Authz::load(db).await.unwrap();
    let member = accounts::member(db, member_id).await.unwrap().unwrap();
    let source = Source::default();
    let created = api_tokens::create(
        &Command::new(db, &authz, &member, &source, Utc::now()),
        &TokenForm {
            name: format!("{} for tests", member.email),
            scopes: scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            lifetime_days: "30".to_owned(),
        },
    )
    .await
    .unwrap();
    created.token.expose().to_owned()
}

/// An answer: its status, its JSON (`Null` when it has none) and its headers.
struct Answer {
    status: StatusCode,
    json: Value,
    headers: header::HeaderMap,
}

impl Answer {
    /// The error's message (empty when there is none).
    fn message(&self) -> &str {
        self.json["error"]["message"].as_str().unwrap_or_default()
    }

    /// The field the error names, if any.
    fn field(&self) -> Option<&str> {
        self.json["error"]["field"].as_str()
    }
}

/// Calls `method path` with `token` (none when `None`) and `body` as JSON text.
async fn call(
    server: &Server,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: Option<String>,
) -> Answer {
    let mut request = client().request(
        Method::from_bytes(method.as_bytes()).unwrap(),
        server.url(path),
    );
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    if let Some(body) = body {
        request = request
            .header(header::CONTENT_TYPE, "application/json")
            .body(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    assert!(
        json.is_object(),
        "{method} {path}: {status}, not a JSON object: {text:.500}"
    );
    Answer {
        status,
        json,
        headers,
    }
}

/// Calls an endpoint with `token`, `{id}` replaced by `id`; a save sends the default policy
/// against the version in force.
async fn call_endpoint(
    server: &Server,
    endpoint: &Endpoint,
    token: &str,
    id: i32,
    version: i32,
) -> Answer {
    let body = (endpoint.method == "PUT").then(|| policy_body(version, 10.into()).to_string());
    call(
        server,
        endpoint.method,
        &endpoint.route.replace("{id}", &id.to_string()),
        Some(&format!("Bearer {token}")),
        body,
    )
    .await
}

#[test]
fn every_endpoint_of_the_router_is_in_the_table() {
    let in_source: Vec<(String, String)> = every_route()
        .into_iter()
        .filter(|route| {
            route.kind == RouteKind::Server
                && route.path.starts_with("/api/v1/")
                && route.path != DOCUMENT
        })
        .map(|route| (route.method.to_owned(), route.path))
        .collect();
    let mut in_table: Vec<(String, String)> = ENDPOINTS
        .iter()
        .map(|e| (e.method.to_owned(), e.route.to_owned()))
        .collect();
    in_table.sort();
    let mut sorted = in_source.clone();
    sorted.sort();
    assert_eq!(
        in_table, sorted,
        "api.rs's ENDPOINTS and the API's routes differ: add the new endpoint with its scope"
    );
    for scope in Scope::ALL {
        assert!(
            ENDPOINTS.iter().any(|e| e.scope == *scope),
            "{scope:?} opens no endpoint"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_scope_opens_its_endpoints_and_no_other_and_every_call_is_recorded() {
    for database in fresh_databases().await {
        let backend = database.backend;
        create_org(&database.url, "Acme", "owner@acme.test").await;
        create_user(&database.url, "acme", "member@acme.test", "member").await;
        let server = Server::start(&database.url).await;
        let (mut calls, mut refused) = (0, 0);
        for scope in Scope::ALL {
            let token = token_for(&database, 1, &[*scope]).await;
            for endpoint in &ENDPOINTS {
                let answer = call_endpoint(&server, endpoint, &token, 2, 0).await;
                let what = format!(
                    "{backend:?} {scope:?} {} {}",
                    endpoint.method, endpoint.route
                );
                calls += 1;
                if endpoint.scope == *scope {
                    assert!(
                        !matches!(answer.status.as_u16(), 401 | 403 | 500..),
                        "{what}: {} {}",
                        answer.status,
                        answer.json
                    );
                } else {
                    refused += 1;
                    assert_eq!(answer.status, 403, "{what}: {}", answer.json);
                    assert!(
                        answer.message().contains(endpoint.scope.as_str()),
                        "{what}: {}",
                        answer.json
                    );
                }
            }
        }
        server.terminate().await;
        let used = "audit_event WHERE action = 'api_token.used'";
        assert_eq!(database.count(used).await, calls, "{backend:?}");
        assert_eq!(
            database
                .count(&format!("{used} AND outcome = 'denied'"))
                .await,
            refused,
            "{backend:?}"
        );
        assert_eq!(
            database
                .count("api_token WHERE last_used_at IS NOT NULL")
                .await,
            i64::try_from(Scope::ALL.len()).unwrap(),
            "{backend:?}: every token's last use is kept"
        );
        // The records name the route, not the member it was called on.
        assert_eq!(
            database
                .count(&format!(
                    "{used} AND details LIKE '%/api/v1/members/{{id}}/revoke-codes%'"
                ))
                .await,
            i64::try_from(Scope::ALL.len()).unwrap(),
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn a_token_that_does_not_work_gets_401_and_nothing_is_recorded() {
    for database in fresh_databases().await {
        let backend = database.backend;
        create_org(&database.url, "Acme", "owner@acme.test").await;
        let expired = token_for(&database, 1, Scope::ALL).await;
        database
            .execute(&format!(
                "UPDATE api_token SET expires_at = '{}' WHERE id = 1",
                (Utc::now() - Duration::seconds(1)).to_rfc3339()
            ))
            .await;
        let revoked = token_for(&database, 1, Scope::ALL).await;
        {
            let db = &database.db;
            let authz = Authz::load(db).await.unwrap();
            let owner = accounts::member(db, 1).await.unwrap().unwrap();
            let source = Source::default();
            api_tokens::revoke(&Command::new(db, &authz, &owner, &source, Utc::now()), 2)
                .await
                .unwrap();
        }
        let working = token_for(&database, 1, Scope::ALL).await;
        let unknown = format!("lifeline_pat_{}", "A".repeat(43));
        let cases: [(&str, Option<String>); 8] = [
            ("no header", None),
            ("another scheme", Some(format!("Basic {working}"))),
            ("no token", Some("Bearer ".to_owned())),
            ("not a token", Some("Bearer hunter2".to_owned())),
            (
                "one character short",
                Some(format!("Bearer {}", &working[1..])),
            ),
            ("unknown", Some(format!("Bearer {unknown}"))),
            ("expired", Some(format!("Bearer {expired}"))),
            ("revoked", Some(format!("Bearer {revoked}"))),
        ];
        let server = Server::start(&database.url).await;
        let events = database.count("audit_event").await;
        for (case, authorization) in &cases {
            for endpoint in &ENDPOINTS {
                let answer = call(
                    &server,
                    endpoint.method,
                    &endpoint.route.replace("{id}", "1"),
                    authorization.as_deref(),
                    None,
                )
                .await;
                let what = format!("{backend:?} {case}: {} {}", endpoint.method, endpoint.route);
                assert_eq!(answer.status, 401, "{what}: {}", answer.json);
                assert!(answer.message().contains("token"), "{what}");
                assert!(
                    answer.headers.contains_key(header::WWW_AUTHENTICATE),
                    "{what}"
                );
            }
        }
        assert_eq!(database.count("audit_event").await, events, "{backend:?}");
        // The working token works, and its owner's removal ends it.
        let bearer = format!("Bearer {working}");
        let answer = call(&server, "GET", "/api/v1/members", Some(&bearer), None).await;
        assert_eq!(answer.status, 200, "{backend:?}: {}", answer.json);
        server.terminate().await;
    }
}

#[tokio::test]
async fn the_gate_decides_each_call_as_the_tokens_owner() {
    for database in fresh_databases().await {
        let backend = database.backend;
        create_org(&database.url, "Acme", "owner@acme.test").await;
        create_user(&database.url, "acme", "admin@acme.test", "admin").await;
        create_user(&database.url, "acme", "member@acme.test", "member").await;
        let token = token_for(&database, 2, Scope::ALL).await;
        let bearer = format!("Bearer {token}");
        let server = Server::start(&database.url).await;
        // An admin acts on members, not on owners.
        for (path, status) in [
            ("/api/v1/members/3/revoke-codes", 200),
            ("/api/v1/members/1/revoke-codes", 403),
            ("/api/v1/members/1/reset-mfa", 403),
            ("/api/v1/members/1/sign-in-code", 403),
            // Oneself: refused before the gate is asked, so not a refusal on the record.
            ("/api/v1/members/2/reset-mfa", 403),
        ] {
            let answer = call(&server, "POST", path, Some(&bearer), None).await;
            assert_eq!(answer.status, status, "{backend:?} {path}: {}", answer.json);
        }
        assert_eq!(
            database
                .count("audit_event WHERE outcome = 'denied' AND action <> 'api_token.used'")
                .await,
            3,
            "{backend:?}: the gate's refusals are on the record as the console's are"
        );
        // Demoted to member: the same token reaches nothing a member may not do.
        database
            .execute("UPDATE user_account SET role = 'member' WHERE id = 2")
            .await;
        for endpoint in &ENDPOINTS {
            let answer = call_endpoint(&server, endpoint, &token, 3, 0).await;
            assert!(
                matches!(answer.status.as_u16(), 403 | 404),
                "{backend:?} {} {}: {} {}",
                endpoint.method,
                endpoint.route,
                answer.status,
                answer.json
            );
        }
        server.terminate().await;
    }
}

/// What of Acme (organization 1) a call could change or reveal, read from the database.
async fn acme_rows(database: &TestDatabase) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in [
        "audit_event WHERE org_id = 1",
        "recovery_code WHERE org_id = 1",
        "org_policy WHERE org_id = 1",
        "user_account WHERE org_id = 1 AND mfa_setup_required",
        "backup_code_set WHERE ended_at IS NULL",
    ] {
        counts.push(database.count(table).await);
    }
    counts
}

#[tokio::test]
async fn another_organizations_token_sees_and_changes_nothing_of_it() {
    for database in fresh_databases().await {
        let backend = database.backend;
        create_org(&database.url, "Acme", "owner@acme.test").await;
        create_user(&database.url, "acme", "member@acme.test", "member").await;
        create_org(&database.url, "Globex", "owner@globex.test").await;
        create_user(&database.url, "globex", "member@globex.test", "member").await;
        // An Acme request for a sign-in code, whose id Globex tries to reveal.
        let acme = token_for(&database, 1, Scope::ALL).await;
        let globex = token_for(&database, 3, Scope::ALL).await;
        let server = Server::start(&database.url).await;
        let issued = call(
            &server,
            "POST",
            "/api/v1/members/2/sign-in-code",
            Some(&format!("Bearer {acme}")),
            None,
        )
        .await;
        assert_eq!(issued.status, 201, "{backend:?}: {}", issued.json);
        let request_id = issued.json["request"].as_i64().unwrap();
        let before = acme_rows(&database).await;
        for endpoint in &ENDPOINTS {
            let id = if endpoint.route.contains("sign-in-codes") {
                i32::try_from(request_id).unwrap()
            } else {
                2
            };
            let answer = call_endpoint(&server, endpoint, &globex, id, 0).await;
            let what = format!("{backend:?} {} {}", endpoint.method, endpoint.route);
            assert!(answer.status.as_u16() < 500, "{what}: {}", answer.json);
            if endpoint.route.contains("{id}") {
                assert_eq!(answer.status, 404, "{what}: {}", answer.json);
            }
            let text = answer.json.to_string();
            assert!(!text.contains("acme"), "{what}: {text:.1000}");
        }
        let members = call(
            &server,
            "GET",
            "/api/v1/members",
            Some(&format!("Bearer {globex}")),
            None,
        )
        .await;
        let emails: Vec<&str> = members.json["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["email"].as_str().unwrap())
            .collect();
        assert_eq!(
            emails,
            ["owner@globex.test", "member@globex.test"],
            "{backend:?}"
        );
        server.terminate().await;
        // Globex's calls are on Globex's record, none on Acme's.
        assert_eq!(before, acme_rows(&database).await, "{backend:?}");
    }
}

#[tokio::test]
async fn malformed_input_is_named_and_writes_nothing() {
    for database in fresh_databases().await {
        let backend = database.backend;
        create_org(&database.url, "Acme", "owner@acme.test").await;
        create_user(&database.url, "acme", "member@acme.test", "member").await;
        let token = token_for(&database, 1, Scope::ALL).await;
        let bearer = format!("Bearer {token}");
        let server = Server::start(&database.url).await;
        let policy = |codes: Value| Some(policy_body(0, codes).to_string());
        let rules = |name: &str, value: Value| {
            let mut body = policy_body(0, 10.into());
            body["policy"]["sign_in_codes"][name] = value;
            Some(body.to_string())
        };
        let terms = |body: Value| Some(body.to_string());
        let mut unknown_field = policy_body(0, 10.into());
        unknown_field["policy"]["colour"] = "blue".into();
        let mut no_version = policy_body(0, 10.into());
        no_version
            .as_object_mut()
            .unwrap()
            .remove("expected_version");
        let mut bad_mode = policy_body(0, 10.into());
        bad_mode["policy"]["backup_codes"] = "sometimes".into();
        let cases: Vec<Malformed> = vec![
            (
                "PUT",
                "/api/v1/policy",
                Some("{not json".to_owned()),
                400,
                None,
            ),
            ("PUT", "/api/v1/policy", Some(String::new()), 400, None),
            (
                "PUT",
                "/api/v1/policy",
                policy("ten".into()),
                422,
                Some("policy.codes_per_set"),
            ),
            (
                "PUT",
                "/api/v1/policy",
                policy((-1).into()),
                422,
                Some("policy.codes_per_set"),
            ),
            (
                "PUT",
                "/api/v1/policy",
                policy(99.into()),
                422,
                Some("policy.codes_per_set"),
            ),
            (
                "PUT",
                "/api/v1/policy",
                Some(bad_mode.to_string()),
                422,
                Some("policy.backup_codes"),
            ),
            (
                "PUT",
                "/api/v1/policy",
                Some(unknown_field.to_string()),
                422,
                Some("policy.colour"),
            ),
            (
                "PUT",
                "/api/v1/policy",
                Some(no_version.to_string()),
                422,
                Some("."),
            ),
            (
                "PUT",
                "/api/v1/policy",
                Some(policy_body(7, 10.into()).to_string()),
                409,
                Some("expected_version"),
            ),
            (
                "GET",
                "/api/v1/members?standing=bogus",
                None,
                422,
                Some("standing"),
            ),
            ("GET", "/api/v1/members?after=x", None, 422, Some("after")),
            ("GET", "/api/v1/members?group=x", None, 422, Some("group")),
            (
                "GET",
                "/api/v1/members?after=99999999999",
                None,
                422,
                Some("after"),
            ),
            ("GET", "/api/v1/members/abc", None, 422, Some("id")),
            (
                "POST",
                "/api/v1/members/1.5/reset-mfa",
                None,
                422,
                Some("id"),
            ),
            ("POST", "/api/v1/members/999/revoke-codes", None, 404, None),
            ("POST", "/api/v1/members/1/sign-in-code", None, 409, None),
            // A sign-in code's terms outside the organization's rules (1 hour to 1 day, one
            // use, by default), or not what the document says.
            (
                "POST",
                "/api/v1/members/2/sign-in-code",
                terms(serde_json::json!({ "lifetime_minutes": 59 })),
                422,
                Some("lifetime_minutes"),
            ),
            (
                "POST",
                "/api/v1/members/2/sign-in-code",
                terms(serde_json::json!({ "uses": 2 })),
                422,
                Some("uses"),
            ),
            (
                "POST",
                "/api/v1/members/2/sign-in-code",
                terms(serde_json::json!({ "uses": "two" })),
                422,
                Some("uses"),
            ),
            (
                "POST",
                "/api/v1/members/2/sign-in-code",
                terms(serde_json::json!({ "starts_at": "2000-01-01T00:00:00Z" })),
                422,
                Some("starts_at"),
            ),
            (
                "POST",
                "/api/v1/members/2/sign-in-code",
                terms(serde_json::json!({ "starts_at": "tomorrow" })),
                422,
                Some("starts_at"),
            ),
            (
                "POST",
                "/api/v1/members/2/sign-in-code",
                Some("{not json".to_owned()),
                400,
                None,
            ),
            (
                "PUT",
                "/api/v1/policy",
                rules("shortest_minutes", 9.into()),
                422,
                Some("policy.sign_in_codes.shortest_minutes"),
            ),
            (
                "PUT",
                "/api/v1/policy",
                rules("default_minutes", (7 * 24 * 60).into()),
                422,
                Some("policy.sign_in_codes.default_minutes"),
            ),
            (
                "PUT",
                "/api/v1/policy",
                rules("max_uses", 11.into()),
                422,
                Some("policy.sign_in_codes.max_uses"),
            ),
            (
                "PUT",
                "/api/v1/policy",
                rules("issuers", "everyone".into()),
                422,
                Some("policy.sign_in_codes.issuers"),
            ),
            (
                "PUT",
                "/api/v1/policy",
                rules("issuers", 3.into()),
                422,
                Some("policy.sign_in_codes.issuers"),
            ),
            (
                "GET",
                "/api/v1/audit/events?after=-x",
                None,
                422,
                Some("after"),
            ),
            ("GET", "/api/v1/nothing-here", None, 404, None),
        ];
        let tables = [
            "org_policy",
            "recovery_code",
            "backup_code_set",
            "api_token",
        ];
        let mut before = Vec::new();
        for table in tables {
            before.push(database.count(table).await);
        }
        for (method, path, body, status, field) in cases {
            let answer = call(&server, method, path, Some(&bearer), body).await;
            let what = format!("{backend:?} {method} {path}");
            assert_eq!(answer.status.as_u16(), status, "{what}: {}", answer.json);
            assert!(!answer.message().is_empty(), "{what}");
            match field {
                // serde names a missing top-level field at the document itself.
                Some(".") => assert!(
                    answer.message().contains("expected_version"),
                    "{what}: {}",
                    answer.json
                ),
                Some(field) => assert_eq!(answer.field(), Some(field), "{what}: {}", answer.json),
                None => {}
            }
        }
        for (table, count) in tables.into_iter().zip(before) {
            assert_eq!(database.count(table).await, count, "{backend:?}: {table}");
        }
        // The one valid save writes one version.
        let saved = call(
            &server,
            "PUT",
            "/api/v1/policy",
            Some(&bearer),
            policy(12.into()),
        )
        .await;
        assert_eq!(saved.status, 200, "{backend:?}: {}", saved.json);
        assert_eq!(saved.json["version"], 1, "{backend:?}");
        assert_eq!(saved.json["policy"]["codes_per_set"], 12, "{backend:?}");
        // A save without the sign-in code rules (a client written before they existed) keeps
        // those in force: codes limited to owners stay so.
        let mut owners_only = policy_body(1, 12.into());
        owners_only["policy"]["sign_in_codes"]["issuers"] = "owners".into();
        let saved = call(
            &server,
            "PUT",
            "/api/v1/policy",
            Some(&bearer),
            Some(owners_only.to_string()),
        )
        .await;
        assert_eq!(saved.status, 200, "{backend:?}: {}", saved.json);
        let mut without_rules = policy_body(2, 13.into());
        without_rules["policy"]
            .as_object_mut()
            .unwrap()
            .remove("sign_in_codes");
        let saved = call(
            &server,
            "PUT",
            "/api/v1/policy",
            Some(&bearer),
            Some(without_rules.to_string()),
        )
        .await;
        assert_eq!(saved.status, 200, "{backend:?}: {}", saved.json);
        assert_eq!(saved.json["version"], 3, "{backend:?}");
        assert_eq!(
            saved.json["policy"]["sign_in_codes"]["issuers"], "owners",
            "{backend:?}"
        );
        // A sign-in code on terms within the rules: its start, lifetime and uses as asked.
        let issued = call(
            &server,
            "POST",
            "/api/v1/members/2/sign-in-code",
            Some(&bearer),
            terms(serde_json::json!({ "lifetime_minutes": 90 })),
        )
        .await;
        assert_eq!(issued.status, 201, "{backend:?}: {}", issued.json);
        let at = |name: &str| {
            issued.json[name]
                .as_str()
                .unwrap()
                .parse::<chrono::DateTime<Utc>>()
                .unwrap()
        };
        assert_eq!(at("expires_at") - at("starts_at"), Duration::minutes(90));
        assert_eq!(issued.json["uses"], 1, "{backend:?}");
        server.terminate().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_rate_per_token_holds_when_200_calls_arrive_at_once() {
    // A cell comes back every 60 / RATE = 12 s: the 200 calls are answered well within it.
    const RATE: usize = 5;
    for database in fresh_databases().await {
        let backend = database.backend;
        create_org(&database.url, "Acme", "owner@acme.test").await;
        let token = token_for(&database, 1, &[Scope::MembersRead]).await;
        let other = token_for(&database, 1, &[Scope::MembersRead]).await;
        let server = Server::start_with(&[
            ("DATABASE_URL", database.url.as_str()),
            ("LIFELINE_API_REQUESTS_PER_MINUTE", &RATE.to_string()),
        ])
        .await;
        let http = client();
        let url = server.url("/api/v1/members");
        let calls = (0..200).map(|_| {
            let (http, url, token) = (http.clone(), url.clone(), token.clone());
            tokio::spawn(async move {
                let response = http.get(url).bearer_auth(token).send().await.unwrap();
                (
                    response.status().as_u16(),
                    response.headers().contains_key(header::RETRY_AFTER),
                )
            })
        });
        let answers: Vec<(u16, bool)> = futures::future::join_all(calls)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let ok = answers.iter().filter(|(status, _)| *status == 200).count();
        let limited = answers
            .iter()
            .filter(|(status, retry)| *status == 429 && *retry)
            .count();
        assert_eq!(
            (ok, limited),
            (RATE, 200 - RATE),
            "{backend:?}: {answers:?}"
        );
        // Another token has its own rate.
        let answer = call(
            &server,
            "GET",
            "/api/v1/members",
            Some(&format!("Bearer {other}")),
            None,
        )
        .await;
        assert_eq!(answer.status, 200, "{backend:?}");
        server.terminate().await;
        assert_eq!(
            database
                .count("audit_event WHERE action = 'api_token.used'")
                .await,
            i64::try_from(RATE + 1).unwrap(),
            "{backend:?}: the calls answered are on the record"
        );
    }
}

#[tokio::test]
async fn the_document_matches_its_snapshot_and_describes_every_endpoint() {
    let database = fresh_databases().await.into_iter().next().unwrap();
    let server = Server::start(&database.url).await;
    let response = client().get(server.url(DOCUMENT)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let served = response.text().await.unwrap();
    server.terminate().await;
    let document: Value = serde_json::from_str(&served).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    for endpoint in &ENDPOINTS {
        let operation = &document["paths"][endpoint.route][endpoint.method.to_lowercase()];
        assert!(
            operation.is_object(),
            "{} {} is not in the document",
            endpoint.method,
            endpoint.route
        );
        assert_eq!(
            operation["security"][0]["token"][0],
            endpoint.scope.as_str(),
            "{} {}",
            endpoint.method,
            endpoint.route
        );
    }
    let snapshot = workspace_path(SNAPSHOT);
    if std::env::var_os("LIFELINE_UPDATE_OPENAPI").is_some() {
        std::fs::write(&snapshot, format!("{}\n", served.trim_end())).unwrap();
    }
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(&snapshot).unwrap_or_else(|_| {
            panic!("{SNAPSHOT} is missing: run with LIFELINE_UPDATE_OPENAPI=1")
        }))
        .unwrap();
    assert!(
        committed == document,
        "the API's document differs from {SNAPSHOT}: if the change is meant, run this test \
         with LIFELINE_UPDATE_OPENAPI=1 and commit the new snapshot"
    );
}

#[tokio::test]
async fn the_example_lists_members_without_codes_across_pages_with_curl_alone() {
    for database in fresh_databases().await {
        let backend = database.backend;
        create_org(&database.url, "Acme", "owner@acme.test").await;
        // 65 members without codes (two pages of 50), copied from the owner's account.
        database
            .execute(
                "INSERT INTO user_account (org_id, email, password_hash, role, \
                 totp_key_version, created_at, mfa_setup_required, session_epoch) \
                 SELECT org_id, 'm' || CAST(id AS VARCHAR(10)) || '-' || email, \
                 password_hash, 'member', totp_key_version, created_at, mfa_setup_required, \
                 session_epoch FROM user_account WHERE id = 1",
            )
            .await;
        for round in 0..6 {
            database
                .execute(&format!(
                    "INSERT INTO user_account (org_id, email, password_hash, role, \
                     totp_key_version, created_at, mfa_setup_required, session_epoch) \
                     SELECT org_id, 'x{round}-' || CAST(id AS VARCHAR(10)) || '-' || email, \
                     password_hash, role, totp_key_version, created_at, mfa_setup_required, \
                     session_epoch FROM user_account WHERE id > 1"
                ))
                .await;
        }
        let expected = database.count("user_account").await;
        let token = token_for(&database, 1, &[Scope::MembersRead]).await;
        let server = Server::start(&database.url).await;
        let output =
            tokio::process::Command::new(workspace_path("examples/members-without-codes.sh"))
                .env("LIFELINE_URL", server.url(""))
                .env("LIFELINE_TOKEN", &token)
                .output()
                .await
                .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{backend:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let emails: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            i64::try_from(emails.len()).unwrap(),
            expected,
            "{backend:?}: {stdout:.500}"
        );
        assert!(emails.contains(&"owner@acme.test"), "{backend:?}");
        let mut unique = emails.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(
            unique.len(),
            emails.len(),
            "{backend:?}: a member listed twice"
        );

        // With a wrong token it says why, on standard error, and fails.
        let output =
            tokio::process::Command::new(workspace_path("examples/members-without-codes.sh"))
                .env("LIFELINE_URL", server.url(""))
                .env("LIFELINE_TOKEN", "lifeline_pat_wrong")
                .output()
                .await
                .unwrap();
        assert!(!output.status.success(), "{backend:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("token"),
            "{backend:?}"
        );
        server.terminate().await;
    }
}
