//! Tenant isolation and malformed input, through the real binary, for every server function.
//!
//! Two organizations share one database: Acme, with data in every table a server function
//! reads or writes (members, a saved policy, an exception, MFA, backup codes, recovery-code
//! requests, audit events, notices, alert settings, a second notification address, a "This
//! wasn't me" report, as many webhooks as it may have, requested backups with an archive in
//! the server's backup folder), and Globex beside it. Globex's owner,
//! admin, a plain member, a help-desk member and an auditor call every server function with
//! Acme's ids and emails; Acme's
//! owner and a visitor with no session send every server function malformed input. Acme's
//! rows (and archives) are compared before and after, and no answer may carry Acme's data or
//! the server's insides.
//!
//! `SERVER_FUNCTIONS` lists every server function; a test reads `app/src/api/*.rs` and fails
//! when one is missing from it, so that a new server function cannot skip these tests.
//!
//! Every route the server answers (pages, server functions, the server's own routes) is read
//! from the sources too (`support::sources::every_route`): `restricted` sends each one from a
//! session limited to MFA settings after a backup-code sign-in, so a new route is tried there
//! as soon as it exists.
//!
//! This module holds the catalogue of server functions and the tests that keep the catalogues
//! complete; `tenants` makes the cross-organization calls, `malformed` the malformed-input
//! sweep, `pages` checks that pages escape what they show and `restricted` that a session
//! limited to MFA settings reaches nothing else. `answers` calls and judges, `snapshot`
//! records Acme's data before and after.

mod answers;
mod malformed;
mod pages;
mod restricted;
mod snapshot;
mod tenants;

use self::snapshot::{ACME_FAILED_COUNT, ACME_FAILED_MINUTES, BACKUP_PASSPHRASE};
use crate::support::{
    PASSWORD,
    sources::{RouteKind, every_route, server_functions},
};

/// What an argument of a server function is, which decides what is valid for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A required `i32` naming a row: a member, an exception, a recovery-code request, a
    /// webhook, a requested backup, an API token.
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
    /// A checkbox: ticked when sent with a value, whatever the value; unticked when left out
    /// or sent empty. Ticking and unticking are choices, not malformed input: the sweep never
    /// flips a checkbox from its baseline (for a save, that would change the setting).
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
/// owner sends it: it only reads, it saves what is already there (which writes nothing), or
/// it is refused (an id of `-1`, an unknown email, a policy version that is not current, an
/// email that is taken, a link this server did not sign).
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
    /// A signed-in owner: the function only reads, or finds nothing to change (each such
    /// entry says why).
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

/// Server functions each member may call only so often (a day's quota): a call naming an
/// Acme row and one naming no row are both answered, but the quota the first used up can
/// change the second's answer, so `tenants` does not ask them to read alike.
const LIMITED_PER_MEMBER: [&str; 1] = ["account/notifications/address"];

/// `PolicyFields`, as the policy form posts it: the settings Acme's owner would keep.
const POLICY_FIELDS: [Arg; 18] = [
    arg("fields[backup_codes]", Kind::Text, "allowed"),
    arg("fields[codes_per_set]", Kind::Text, "10"),
    arg("fields[max_set_age_days]", Kind::Text, "0"),
    arg("fields[low_codes_threshold]", Kind::Text, "3"),
    arg("fields[lockout_attempts]", Kind::Text, "5"),
    arg("fields[lockout_minutes]", Kind::Text, "15"),
    arg("fields[code_entry]", Kind::Text, "any"),
    unsent("fields[restrict_after_backup_sign_in]", Kind::Checkbox),
    unsent("fields[recovery_code_approval]", Kind::Checkbox),
    unsent("fields[admins_request_backups]", Kind::Checkbox),
    unsent("fields[replace_when_low]", Kind::Checkbox),
    // Blank: "Required" sets no date; 0 (or blank) days of grace.
    unsent("fields[required_from]", Kind::OptText),
    arg("fields[grace_days]", Kind::OptText, "0"),
    // The recovery-code rules, as the defaults (each blank reads as its default too).
    arg("fields[recovery_code_issuers]", Kind::OptText, "helpdesk"),
    arg("fields[recovery_code_shortest]", Kind::OptText, "1h"),
    arg("fields[recovery_code_longest]", Kind::OptText, "24h"),
    arg("fields[recovery_code_default]", Kind::OptText, "24h"),
    arg("fields[recovery_code_max_uses]", Kind::OptText, "1"),
];

/// `save_policy`'s arguments: a version that is never current, then the policy fields.
const SAVE_POLICY: [Arg; 19] = {
    let mut args = [arg("expected_version", Kind::Version, "-1"); 19];
    let mut i = 0;
    while i < POLICY_FIELDS.len() {
        args[i + 1] = POLICY_FIELDS[i];
        i += 1;
    }
    args
};

/// A "This wasn't me" link as the notices carry it, naming Acme's owner, with a signature
/// this server did not make: refused like any link that is altered.
const UNSIGNED_NOT_ME_LINK: &str =
    "1.1.AAAAAAAAAAAAAAAAAAAAAA.4102444800.1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

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
        // Acme's owner has no MFA in force: nothing to replace, nothing shown or stored.
        endpoint: "account/mfa/replace",
        args: &[],
        open: Open::Refused,
    },
    ServerFunction {
        endpoint: "account/mfa/replace/confirm",
        args: &[
            arg("code", Kind::Text, "000000"),
            unsent("keep_codes", Kind::Checkbox),
        ],
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
    // alerts.rs
    ServerFunction {
        endpoint: "admin/alerts",
        args: &[],
        open: Open::SignedIn,
    },
    ServerFunction {
        // Acme's settings as they are (`snapshot::add_acme_notification_rows`), every box
        // ticked: whatever a box is sent with, saving them changes nothing, and a save that
        // changes nothing writes nothing.
        endpoint: "admin/alerts/save",
        args: &[
            arg("fields[issued_code]", Kind::Checkbox, "on"),
            arg("fields[privileged_backup_sign_in]", Kind::Checkbox, "on"),
            arg("fields[failed_redemptions]", Kind::Checkbox, "on"),
            arg(
                "fields[failed_redemptions_count]",
                Kind::Text,
                ACME_FAILED_COUNT,
            ),
            arg(
                "fields[failed_redemptions_minutes]",
                Kind::Text,
                ACME_FAILED_MINUTES,
            ),
            arg("fields[lock]", Kind::Checkbox, "on"),
            arg("fields[policy_loosened]", Kind::Checkbox, "on"),
            arg("fields[incident]", Kind::Checkbox, "on"),
            unsent("fields[daily_digest]", Kind::Checkbox),
        ],
        open: Open::SignedIn,
    },
    // api_tokens.rs: owners and admins.
    ServerFunction {
        endpoint: "admin/api-tokens",
        args: &[],
        open: Open::SignedIn,
    },
    ServerFunction {
        // A name and a lifetime but no scope ticked: refused before anything is written, for
        // anyone. (An organization may have any number of tokens, so a valid call from Acme's
        // owner would add one; the sweep changes one argument at a time, and no malformed
        // value is a scope's name, so its calls are refused too.)
        endpoint: "admin/api-tokens/create",
        args: &[
            arg("name", Kind::Text, "Directory sync"),
            unsent("scopes", Kind::OptText),
            arg("lifetime_days", Kind::Text, "30"),
        ],
        open: Open::Refused,
    },
    ServerFunction {
        endpoint: "admin/api-tokens/revoke",
        args: &[arg("token_id", Kind::Id, "-1")],
        open: Open::Refused,
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
    // backups.rs: owners (admins too when the policy lets them, which Acme's and Globex's do
    // not).
    ServerFunction {
        endpoint: "admin/backups",
        args: &[],
        open: Open::SignedIn,
    },
    ServerFunction {
        // A valid request (a passphrase hard to guess, typed twice), which an owner whose
        // organization has requested fewer than a day's backups makes (Globex's, in
        // `tenants`); but Acme has requested as many as it may today
        // (`snapshot::add_acme_backups`): refused, and nothing written.
        endpoint: "admin/backups/request",
        args: &[
            arg("passphrase", Kind::Text, BACKUP_PASSPHRASE),
            arg("passphrase_again", Kind::Text, BACKUP_PASSPHRASE),
        ],
        open: Open::Refused,
    },
    ServerFunction {
        endpoint: "admin/backups/delete",
        args: &[arg("backup_id", Kind::Id, "-1")],
        open: Open::Refused,
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
    // admin.rs
    ServerFunction {
        endpoint: "admin/home",
        args: &[],
        open: Open::SignedIn,
    },
    // compliance.rs
    ServerFunction {
        endpoint: "admin/compliance",
        args: &[],
        open: Open::SignedIn,
    },
    // groups.rs: reading for whoever sees the members; changes for owners and admins.
    ServerFunction {
        endpoint: "admin/groups",
        args: &[],
        open: Open::SignedIn,
    },
    ServerFunction {
        // Acme has as many groups as it may (one of this name): refused, nothing written.
        endpoint: "admin/groups/create",
        args: &[arg("name", Kind::Text, "Engineering")],
        open: Open::Refused,
    },
    ServerFunction {
        endpoint: "admin/groups/delete",
        args: &[arg("group_id", Kind::Id, "-1")],
        open: Open::Refused,
    },
    ServerFunction {
        endpoint: "admin/groups/preview",
        args: &[
            arg("group_id", Kind::Id, "-1"),
            arg("csv", Kind::Text, "member@acme.test"),
        ],
        open: Open::Refused,
    },
    ServerFunction {
        endpoint: "admin/groups/add",
        args: &[
            arg("group_id", Kind::Id, "-1"),
            arg("csv", Kind::Text, "member@acme.test"),
        ],
        open: Open::Refused,
    },
    ServerFunction {
        endpoint: "admin/groups/remove-member",
        args: &[
            arg("group_id", Kind::Id, "-1"),
            arg("member_id", Kind::Id, "-1"),
        ],
        open: Open::Refused,
    },
    ServerFunction {
        endpoint: "admin/groups/exception",
        args: &[
            arg("group_id", Kind::Id, "-1"),
            arg("backup_codes", Kind::Text, "allow"),
            arg("reason", Kind::OptText, "a reason"),
        ],
        open: Open::Refused,
    },
    ServerFunction {
        endpoint: "admin/groups/scope",
        args: &[
            arg("member_id", Kind::Id, "-1"),
            unsent("groups[]", Kind::OptText),
        ],
        open: Open::Refused,
    },
    // members.rs
    ServerFunction {
        endpoint: "members",
        args: &[
            unsent("q", Kind::Search),
            unsent("standing", Kind::OptText),
            unsent("group", Kind::After),
            unsent("after", Kind::After),
        ],
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
    // not_me.rs: no sign-in needed, the link is the credential.
    ServerFunction {
        endpoint: "not_me/check",
        args: &[arg("token", Kind::Text, UNSIGNED_NOT_ME_LINK)],
        open: Open::Refused,
    },
    ServerFunction {
        endpoint: "not_me/report",
        args: &[arg("token", Kind::Text, UNSIGNED_NOT_ME_LINK)],
        open: Open::Refused,
    },
    // notifications.rs
    ServerFunction {
        endpoint: "account/notifications",
        args: &[],
        open: Open::SignedIn,
    },
    ServerFunction {
        // The owner's own sign-in address: refused, as a second address must be another.
        endpoint: "account/notifications/address",
        args: &[arg("email", Kind::Text, "owner@acme.test")],
        open: Open::Refused,
    },
    ServerFunction {
        // Acme's owner has no second address: nothing to remove, nothing written.
        endpoint: "account/notifications/address/remove",
        args: &[],
        open: Open::SignedIn,
    },
    ServerFunction {
        // A link no address was sent: no sign-in needed, refused.
        endpoint: "account/notifications/address/verify",
        args: &[arg("token", Kind::Text, "AAAAAAAAAAAAAAAAAAAAAA")],
        open: Open::Refused,
    },
    ServerFunction {
        // 0 for a visitor with no session.
        endpoint: "account/notifications/unread",
        args: &[],
        open: Open::Anyone,
    },
    ServerFunction {
        // The malformed-input sweep has Acme's owner read their notices before Acme's
        // snapshot: marking them read again changes nothing.
        endpoint: "account/notifications/read",
        args: &[],
        open: Open::SignedIn,
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
        args: &[
            arg("email", Kind::Text, "nobody@acme.test"),
            // Blank or absent: the policy's default lifetime, starting now, one use.
            arg("lifetime", Kind::OptText, "1h"),
            unsent("starts_at", Kind::OptText),
            arg("uses", Kind::OptText, "1"),
        ],
        open: Open::Refused,
    },
    ServerFunction {
        endpoint: "admin/recovery/approve",
        args: &[arg("request_id", Kind::Id, "-1")],
        open: Open::Refused,
    },
    ServerFunction {
        endpoint: "admin/recovery/cancel",
        args: &[arg("request_id", Kind::Id, "-1")],
        open: Open::Refused,
    },
    ServerFunction {
        endpoint: "admin/recovery/reveal",
        args: &[arg("request_id", Kind::Id, "-1")],
        open: Open::Refused,
    },
    // setup.rs: no sign-in needed, the link is the credential; with organizations in the
    // database the installation is set up, so everything is refused.
    ServerFunction {
        endpoint: "setup/check",
        args: &[arg("token", Kind::Text, "no-such-token")],
        open: Open::Refused,
    },
    ServerFunction {
        endpoint: "setup/create",
        args: &[
            arg("token", Kind::Text, "no-such-token"),
            arg("name", Kind::Text, "Initech"),
            arg("email", Kind::Text, "owner@initech.test"),
            arg("password", Kind::Text, PASSWORD),
            arg("confirm", Kind::Text, PASSWORD),
        ],
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
    // webhooks.rs: owners only.
    ServerFunction {
        endpoint: "admin/webhooks",
        args: &[],
        open: Open::SignedIn,
    },
    ServerFunction {
        // A valid webhook (a name, an https:// address, every event), which an owner with
        // room for one adds (Globex's, in `tenants`); but Acme has as many webhooks as it may
        // (`snapshot::add_acme_notification_rows`): refused, and nothing written.
        endpoint: "admin/webhooks/add",
        args: &[
            arg("name", Kind::Text, "SIEM"),
            arg("url", Kind::Text, "https://siem.example.com/in"),
            unsent("events", Kind::OptText),
        ],
        open: Open::Refused,
    },
    ServerFunction {
        endpoint: "admin/webhooks/remove",
        args: &[arg("webhook_id", Kind::Id, "-1")],
        open: Open::Refused,
    },
];

#[test]
fn every_server_function_is_in_the_table() {
    let mut in_source: Vec<String> = server_functions()
        .into_iter()
        .map(|function| function.endpoint)
        .collect();
    in_source.sort();
    let mut in_table: Vec<String> = SERVER_FUNCTIONS
        .iter()
        .map(|f| f.endpoint.to_owned())
        .collect();
    in_table.sort();
    let missing: Vec<&String> = in_source.iter().filter(|e| !in_table.contains(e)).collect();
    assert!(
        missing.is_empty(),
        "server functions not in isolation/mod.rs's SERVER_FUNCTIONS, so not tested for tenant \
         isolation and malformed input: {missing:?}"
    );
    assert_eq!(
        in_table, in_source,
        "SERVER_FUNCTIONS names a server function that is gone, or one twice"
    );
    assert!(in_source.len() >= 52, "{in_source:?}");
}

#[test]
fn the_route_catalogue_reads_every_kind_of_route() {
    let routes = every_route();
    let has = |method: &str, path: &str, kind: RouteKind| {
        routes
            .iter()
            .any(|route| route.method == method && route.path == path && route.kind == kind)
    };
    for (method, path, kind) in [
        ("GET", "/", RouteKind::Page),
        ("GET", "/admin/members", RouteKind::Page),
        ("GET", "/account/backup-codes", RouteKind::Page),
        ("POST", "/api/members", RouteKind::ServerFunction),
        ("POST", "/api/sign_out", RouteKind::ServerFunction),
        ("GET", "/admin/audit/export", RouteKind::Server),
        ("GET", "/admin/policy/export", RouteKind::Server),
        ("POST", "/admin/recovery", RouteKind::Server),
        ("GET", "/admin/webhooks", RouteKind::Page),
        ("POST", "/admin/webhooks", RouteKind::Server),
        ("GET", "/admin/api-tokens", RouteKind::Page),
        ("POST", "/admin/api-tokens", RouteKind::Server),
        ("GET", "/admin/backup", RouteKind::Page),
        (
            "POST",
            "/api/admin/backups/request",
            RouteKind::ServerFunction,
        ),
        ("GET", "/admin/backup/{id}/download", RouteKind::Server),
        ("GET", "/healthz", RouteKind::Server),
    ] {
        assert!(
            has(method, path, kind),
            "{method} {path} not read: {routes:#?}"
        );
    }
    let pages = routes.iter().filter(|r| r.kind == RouteKind::Page).count();
    assert!(pages >= 16, "{routes:#?}");
    assert_eq!(
        routes
            .iter()
            .filter(|r| r.kind == RouteKind::ServerFunction)
            .count(),
        SERVER_FUNCTIONS.len()
    );
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
