//! Every endpoint that checks a secret or runs argon2 is in the throttle's list
//! (`server::guarded::GUARDED_PATHS`), counted against the right account.
//!
//! The sources decide, not a list kept by hand: the domain functions that run argon2 are
//! the public ones that take the password hasher or the code hasher (argon2 cannot be reached
//! without one), read from `domain/src`; a server function in `app/src/api/` reaches argon2
//! when its body, or an app function it calls (`auth::confirm_recent_authentication`, a
//! helper of its file…), calls one of them or hands over the state's hasher. The plain forms
//! of `server/src/web.rs` reach it when the page they render calls such a server function.

use std::collections::BTreeSet;

use server::guarded::{AccountOf, GUARDED_PATHS};

use crate::support::sources::{
    Function, ServerFunction, SourceFile, calls, matching_brace, rust_files, server_functions,
    workspace_path,
};

/// What a domain function in [`SECRET_CHECKS`] does that makes a request reaching it an
/// attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Runs argon2: takes a hasher (or, for a struct, carries one into a function that does).
    /// Held against `domain/src`: every public function or struct field taking one is here.
    Argon2,
    /// Checks an authenticator code (HMAC, not argon2, but a secret all the same).
    Totp,
}

/// The domain's secret checks, as the app calls them (`module::function`).
const SECRET_CHECKS: &[(&str, Check)] = &[
    ("accounts::create_organization", Check::Argon2),
    ("accounts::create_member", Check::Argon2),
    ("accounts::confirm_password", Check::Argon2),
    ("accounts::setup::set_up", Check::Argon2),
    ("sign_in::password", Check::Argon2),
    ("sign_in::backup_code", Check::Argon2),
    ("mfa::disable", Check::Argon2),
    ("backup_codes::generate", Check::Argon2),
    ("backup_codes::generate_replacing", Check::Argon2),
    ("backup_codes::redeem", Check::Argon2),
    ("recovery_codes::reveal", Check::Argon2),
    ("recovery_codes::sign_in::spend", Check::Argon2),
    ("recovery_codes::sign_in::Issued", Check::Argon2),
    ("sign_in::authenticator_code", Check::Totp),
    ("mfa::confirm_enrolment", Check::Totp),
    ("mfa::confirm_replacement", Check::Totp),
];

/// The types that run argon2 for the domain.
const HASHERS: [&str; 2] = ["PasswordHasher", "BackupCodeHasher"];

/// The fields of `AppState` that hold them: a function that hands one over hashes, however it
/// names what it calls.
const STATE_HASHERS: [&str; 2] = ["state.hasher", "state.codes"];

/// The app functions that say whose session a server function acts for, and so whose
/// account its attempts are counted against.
const WHOSE_SESSION: [(&str, AccountOf); 4] = [
    ("remembered_email", AccountOf::RememberedEmail),
    ("pending_member", AccountOf::PendingMember),
    ("signed_in", AccountOf::SignedInMember),
    ("sensitive_change", AccountOf::SignedInMember),
];

/// Whether `code` names `ty` as a whole word.
fn names_type(code: &str, ty: &str) -> bool {
    code.match_indices(ty).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + ty.len()..].chars().next();
        let ident = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        !ident(before) && !ident(after)
    })
}

/// `domain/src/backup_codes/mod.rs` → `backup_codes`, `…/org_policy/form.rs` →
/// `org_policy::form`.
fn module_of(path: &std::path::Path) -> String {
    let relative = path.strip_prefix(workspace_path("domain/src")).unwrap();
    let mut segments: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    if segments.last().is_some_and(|s| s == "mod" || s == "lib") {
        segments.pop();
    }
    segments.join("::")
}

/// The public functions of `domain/src` that take a hasher, and the public structs with a
/// public field holding one: what the domain can be asked to run argon2 with.
fn argon2_in_domain() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for path in rust_files("domain/src") {
        let module = module_of(&path);
        let file = SourceFile::read(&path);
        for function in file.functions() {
            if function.top_level
                && function.public
                && HASHERS.iter().any(|h| names_type(&function.signature, h))
            {
                found.insert(format!("{module}::{}", function.name));
            }
        }
        for (at, _) in file.code.match_indices("\npub struct ") {
            let declaration = &file.code[at + "\npub struct ".len()..];
            let name: String = declaration
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let Some(open) = declaration.find(['{', ';', '(']) else {
                continue;
            };
            if !declaration[open..].starts_with('{') {
                continue;
            }
            let fields = &declaration[open..=matching_brace(declaration, open)];
            let carries_one = fields.lines().any(|line| {
                line.trim_start().starts_with("pub ") && HASHERS.iter().any(|h| names_type(line, h))
            });
            if carries_one {
                found.insert(format!("{module}::{name}"));
            }
        }
    }
    found
}

/// Whether `code` uses the domain item `item` (`module::function` or `module::Struct`).
fn uses(code: &str, item: &str) -> bool {
    let is_struct = item
        .rsplit("::")
        .next()
        .is_some_and(|name| name.starts_with(char::is_uppercase));
    if is_struct {
        names_type(code, item)
    } else {
        calls(code, item)
    }
}

/// The app's functions that server functions call: `app/src/auth.rs` and every function of
/// `app/src/api/` (server functions and their helpers).
fn app_functions() -> Vec<Function> {
    let mut paths = rust_files("app/src/api");
    paths.push(workspace_path("app/src/auth.rs"));
    paths
        .iter()
        .flat_map(|path| SourceFile::read(path).functions())
        .collect()
}

/// For each app function (by name) that checks a secret, how: the domain call or state
/// field in its body, or the app function it calls that does. Functions are told apart by
/// name only, so two of one name count as one (erring towards "checks a secret").
fn secret_checks_in_app(functions: &[Function]) -> Vec<(String, String)> {
    let direct = |body: &str| {
        SECRET_CHECKS
            .iter()
            .find(|(item, _)| uses(body, item))
            .map(|(item, _)| format!("calls domain::{item}"))
            .or_else(|| {
                STATE_HASHERS
                    .iter()
                    .find(|field| body.contains(*field))
                    .map(|field| format!("hands over {field}"))
            })
    };
    let mut found: Vec<(String, String)> = Vec::new();
    loop {
        let mut more = Vec::new();
        for function in functions {
            if found
                .iter()
                .chain(&more)
                .any(|(name, _)| *name == function.name)
            {
                continue;
            }
            let how = direct(&function.body).or_else(|| {
                found
                    .iter()
                    .find(|(name, _)| calls(&function.body, name))
                    .map(|(name, _)| format!("calls {name}"))
            });
            if let Some(how) = how {
                more.push((function.name.clone(), how));
            }
        }
        if more.is_empty() {
            return found;
        }
        found.extend(more);
    }
}

/// Whose accounts `function`'s attempts are counted against, as the session helpers it calls
/// (itself or through other app functions) say.
fn whose_session(function: &Function, functions: &[Function]) -> Vec<AccountOf> {
    let mut whose = Vec::new();
    let mut seen = BTreeSet::new();
    let mut bodies = vec![function.body.clone()];
    while let Some(body) = bodies.pop() {
        for (helper, account) in WHOSE_SESSION {
            if calls(&body, helper) && !whose.contains(&account) {
                whose.push(account);
            }
        }
        for callee in functions {
            if calls(&body, &callee.name) && seen.insert(callee.name.clone()) {
                bodies.push(callee.body.clone());
            }
        }
    }
    whose
}

/// The plain-form routes of `server/src/web.rs`: the path and the form type its page is
/// rendered with (`post(post_to_page::<app::api::backup_codes::GenerateForm>)`, or a handler
/// of its own that builds the form and renders the page with it, as `post_add_webhook` does
/// with `AddWebhookForm::from_pairs` and `render_with_form`).
fn form_routes() -> Vec<(String, String)> {
    let web = SourceFile::read(&workspace_path("server/src/web.rs"));
    let handlers = web.functions();
    // The form type a handler of its own renders its page with: the `…Form` it builds.
    let built_form = |handler: &str| {
        let function = handlers.iter().find(|f| f.top_level && f.name == handler)?;
        if !calls(&function.body, "render_with_form") {
            return None;
        }
        function
            .body
            .split("::")
            .find(|segment| segment.ends_with("Form") && !segment.contains(char::is_whitespace))
            .map(str::to_owned)
    };
    let mut routes = Vec::new();
    for (at, _) in web.code.match_indices(".route(") {
        let open = at + ".route".len();
        let close = matching_brace(&web.code, open);
        let (code, text) = (&web.code[open..=close], &web.text[open..=close]);
        if !calls(code, "post") {
            continue;
        }
        let path = text.split('"').nth(1).unwrap().to_owned();
        let handler: String = code
            .split("post(")
            .nth(1)
            .unwrap_or_default()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let form = code
            .split("post_to_page::<")
            .nth(1)
            .and_then(|rest| rest.split('>').next())
            .and_then(|ty| ty.rsplit("::").next())
            .map(str::to_owned)
            .or_else(|| built_form(&handler))
            .unwrap_or_else(|| {
                panic!(
                    "POST {path} is not a form posted to its page: teach this test whether \
                     it reaches argon2"
                )
            });
        routes.push((path, form.trim().to_owned()));
    }
    routes
}

/// The server functions that the page rendered with `form` calls.
fn called_by_page_of<'a>(
    form: &str,
    server_functions: &'a [ServerFunction],
) -> Vec<&'a ServerFunction> {
    let page = rust_files("app/src/pages")
        .iter()
        .map(|path| SourceFile::read(path))
        .find(|page| page.code.contains(&format!("use_context::<{form}>")))
        .unwrap_or_else(|| panic!("no page in app/src/pages renders the posted {form}"));
    server_functions
        .iter()
        .filter(|f| calls(&page.code, &f.function.name))
        .collect()
}

#[test]
fn the_table_of_secret_checks_matches_the_domain() {
    let in_domain = argon2_in_domain();
    let in_table: BTreeSet<String> = SECRET_CHECKS
        .iter()
        .filter(|(_, check)| *check == Check::Argon2)
        .map(|(item, _)| (*item).to_owned())
        .collect();
    assert_eq!(
        in_table, in_domain,
        "SECRET_CHECKS in brute_force/every_secret_check.rs (left) must list every public \
         function of domain/src that takes PasswordHasher or BackupCodeHasher, and every \
         public struct field holding one (right)"
    );
    // The TOTP checks exist under these names.
    for (item, _) in SECRET_CHECKS.iter().filter(|(_, c)| *c == Check::Totp) {
        let (module, name) = item.rsplit_once("::").unwrap();
        let path = workspace_path(&format!("domain/src/{module}.rs"));
        let found = SourceFile::read(&path)
            .functions()
            .iter()
            .any(|f| f.top_level && f.public && f.name == name);
        assert!(found, "domain::{item} is gone: update SECRET_CHECKS");
    }
}

#[test]
fn every_endpoint_that_checks_a_secret_is_throttled_for_its_account() {
    let functions = app_functions();
    let checking = secret_checks_in_app(&functions);
    let how = |name: &str| {
        checking
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, how)| how.clone())
    };
    let server_functions = server_functions();

    // (path, how it checks a secret, whose accounts its attempts count against)
    let mut endpoints: Vec<(String, String, Vec<AccountOf>)> = Vec::new();
    for function in &server_functions {
        if let Some(how) = how(&function.function.name) {
            assert!(
                !function.attribute.contains("GetUrl"),
                "{} checks a secret over GET, which the throttle does not count",
                function.path()
            );
            let whose = whose_session(&function.function, &functions);
            endpoints.push((function.path(), how, whose));
        }
    }
    let forms = form_routes();
    for (path, form) in &forms {
        let reached: Vec<_> = called_by_page_of(form, &server_functions)
            .into_iter()
            .filter_map(|f| how(&f.function.name).map(|_| f))
            .collect();
        if let Some(first) = reached.first() {
            let mut whose = Vec::new();
            for function in &reached {
                for account in whose_session(&function.function, &functions) {
                    if !whose.contains(&account) {
                        whose.push(account);
                    }
                }
            }
            let how = format!("renders a page that calls {}", first.function.name);
            endpoints.push((path.clone(), how, whose));
        }
    }

    // The reading finds what is known to be there, so it cannot pass by finding nothing.
    let paths: Vec<&str> = endpoints.iter().map(|(p, _, _)| p.as_str()).collect();
    for known in [
        "/api/sign_in/password",
        "/api/sign_in/backup_code",
        "/api/account/confirm",
        "/api/members/add",
        "/account/backup-codes",
    ] {
        assert!(paths.contains(&known), "{known} not found among {paths:?}");
    }

    let mut problems = Vec::new();
    for (path, how, whose) in &endpoints {
        match GUARDED_PATHS.iter().find(|g| g.path == path) {
            None => problems.push(format!(
                "POST {path} {how} but is not in server/src/guarded.rs's GUARDED_PATHS"
            )),
            // An endpoint for nobody's session (the first-run setup) acts for no account.
            Some(guarded) if guarded.account == AccountOf::NoAccount && whose.is_empty() => {}
            Some(guarded) if whose.as_slice() != [guarded.account] => problems.push(format!(
                "POST {path} acts for the session's {whose:?}, but GUARDED_PATHS counts its \
                 attempts against {:?}",
                guarded.account
            )),
            Some(_) => {}
        }
    }
    // Nothing in the list that is not an endpoint (a renamed one would go unguarded).
    for guarded in &GUARDED_PATHS {
        let exists = server_functions.iter().any(|f| f.path() == guarded.path)
            || forms.iter().any(|(path, _)| path == guarded.path);
        if !exists {
            problems.push(format!(
                "GUARDED_PATHS names {}, which no route answers",
                guarded.path
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
