//! `/admin/policy`: the organization's backup-code policy, for owners and admins.
//!
//! Changing it takes two steps: "Preview changes" (a plain GET form, so the preview is a page
//! of its own, with or without JavaScript) states what the change will do, counted and
//! listed; "Save policy" there saves exactly what was previewed, as a new version. Below:
//! exceptions for named members, "Explain a decision", and the versions so far.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{components::Redirect, hooks::use_query_map, params::ParamsMap};

use crate::{
    api::policy::{
        AddPolicyException, Explanation, PolicyFields, PolicyOverview, PolicyPreview,
        RemovePolicyException, SavePolicy, explain_decision, get_policy_overview, preview_policy,
    },
    error::AppError,
    forms::{FieldMessage, FormMessage, invalid, last_error},
};

/// The policy form's fields, as the preview's query string carries them.
fn fields_from_query(query: &ParamsMap) -> PolicyFields {
    let get = |name: &str| query.get(name).unwrap_or_default();
    PolicyFields {
        backup_codes: get("backup_codes"),
        codes_per_set: get("codes_per_set"),
        max_set_age_days: get("max_set_age_days"),
        low_codes_threshold: get("low_codes_threshold"),
        lockout_attempts: get("lockout_attempts"),
        lockout_minutes: get("lockout_minutes"),
        code_entry: get("code_entry"),
        restrict_after_backup_sign_in: query.get("restrict_after_backup_sign_in"),
        recovery_code_approval: query.get("recovery_code_approval"),
        admins_request_backups: query.get("admins_request_backups"),
        replace_when_low: query.get("replace_when_low"),
        required_from: get("required_from"),
        grace_days: get("grace_days"),
        recovery_code_issuers: get("recovery_code_issuers"),
        recovery_code_shortest: get("recovery_code_shortest"),
        recovery_code_longest: get("recovery_code_longest"),
        recovery_code_default: get("recovery_code_default"),
        recovery_code_max_uses: get("recovery_code_max_uses"),
    }
}

/// `/admin/policy`.
#[component]
pub fn PolicyPage() -> impl IntoView {
    let query = use_query_map();
    let add = ServerAction::<AddPolicyException>::new();
    let remove = ServerAction::<RemovePolicyException>::new();
    let save = ServerAction::<SavePolicy>::new();
    let overview = Resource::new(
        move || {
            (
                query.with(|q| q.get("saved")),
                add.version().get(),
                remove.version().get(),
                save.version().get(),
            )
        },
        |_| get_policy_overview(),
    );
    let previewed =
        move || query.with(|q| q.get("preview").is_some().then(|| fields_from_query(q)));
    let preview = Resource::new(previewed, |fields| async move {
        match fields {
            Some(fields) => Some(preview_policy(fields).await),
            None => None,
        }
    });
    let asked = move || {
        query.with(|q| {
            q.get("explain_email")
                .map(|email| (email, q.get("explain_act").unwrap_or_default()))
        })
    };
    let explanation = Resource::new(asked, |asked| async move {
        match asked {
            Some((email, act)) => Some(explain_decision(email, act).await),
            None => None,
        }
    });

    view! {
        <Title text="Backup-code policy" />
        <Suspense>
            {move || {
                let overview = overview.get()?;
                let preview = preview.get()?;
                let explanation = explanation.get()?;
                let saved = query.with(|q| q.get("saved"));
                Some(match overview {
                    Err(AppError::SignInRequired) => view! { <Redirect path="/sign-in" /> }.into_any(),
                    Err(error) => {
                        view! {
                            <section class="panel">
                                <h1>"Backup-code policy"</h1>
                                <p class="form-error">{error.to_string()}</p>
                            </section>
                        }
                            .into_any()
                    }
                    Ok(overview) => {
                        let fields = previewed().unwrap_or_else(|| overview.fields.clone());
                        view! {
                            <PolicySection overview=overview.clone() fields preview saved save />
                            <ExceptionsSection overview=overview.clone() add remove />
                            <ExplainSection explanation />
                            <HistorySection overview />
                        }
                            .into_any()
                    }
                })
            }}
        </Suspense>
    }
}

#[component]
fn PolicySection(
    overview: PolicyOverview,
    /// What the form shows: the settings in force, or those being previewed.
    fields: PolicyFields,
    preview: Option<Result<PolicyPreview, AppError>>,
    saved: Option<String>,
    save: ServerAction<SavePolicy>,
) -> impl IntoView {
    let preview_error = Signal::stored(preview.as_ref().and_then(|p| p.as_ref().err().cloned()));
    let save_error = last_error(save);
    let radio = |name: &'static str, value: &'static str, label: &'static str, current: &str| {
        let id = format!("{name}-{value}");
        let label_for = id.clone();
        let checked = current == value;
        view! {
            <label class="check" for=label_for>
                <input type="radio" id=id name=name value=value checked=checked />
                {label}
            </label>
        }
    };
    let lifetime = |name: &'static str, label: &'static str, value: String| {
        view! {
            <label for=name>{label}</label>
            <input
                type="text"
                id=name
                name=name
                value=value
                maxlength="32"
                required
                aria-describedby=format!("{name}-error")
                aria-invalid=invalid(preview_error, name)
            />
            <FieldMessage error=preview_error field=name />
        }
    };
    let number = |name: &'static str, label: &'static str, value: String, min: u32, max: u32| {
        view! {
            <label for=name>{label}</label>
            <input
                type="number"
                id=name
                name=name
                value=value
                min=min.to_string()
                max=max.to_string()
                required
                aria-describedby=format!("{name}-error")
                aria-invalid=invalid(preview_error, name)
            />
            <FieldMessage error=preview_error field=name />
        }
    };
    view! {
        <section class="panel" id="policy">
            <h1>"Backup-code policy"</h1>
            <p class="muted">
                {overview.organization.clone()} " · "
                {if overview.version == 0 {
                    "the defaults: nobody has saved a policy yet".to_owned()
                } else {
                    format!("version {} in force", overview.version)
                }}
            </p>
            {saved
                .map(|version| {
                    view! { <p class="status ok" role="status">{format!("Saved as version {version}.")}</p> }
                })}
            <dl class="facts policy-in-force">
                {overview
                    .settings
                    .iter()
                    .map(|(name, value)| view! { <dt>{name.clone()}</dt><dd>{value.clone()}</dd> })
                    .collect_view()}
            </dl>
            <h2>"Change the policy"</h2>
            <form method="get" action="/admin/policy" class="policy-form">
                <input type="hidden" name="preview" value="1" />
                <FormMessage error=preview_error />
                <fieldset aria-describedby="backup_codes-error">
                    <legend>"Backup verification codes"</legend>
                    {radio("backup_codes", "not_allowed", "Not allowed", &fields.backup_codes)}
                    {radio("backup_codes", "allowed", "Allowed", &fields.backup_codes)}
                    {radio("backup_codes", "required", "Required: every member with MFA must hold a valid set", &fields.backup_codes)}
                    <FieldMessage error=preview_error field="backup_codes" />
                    <label for="required_from">"Under Required, limit members without codes from (00:00 UTC; blank: report only, never limit)"</label>
                    <input
                        type="date"
                        id="required_from"
                        name="required_from"
                        value=fields.required_from.clone()
                        aria-describedby="required_from-hint required_from-error"
                        aria-invalid=invalid(preview_error, "required_from")
                    />
                    <p class="muted" id="required_from-hint">
                        "Before the date, members who hold no working code see a countdown and get reminders 7 days and 1 day before. From it, until they generate a set, they can use only their MFA settings."
                    </p>
                    <FieldMessage error=preview_error field="required_from" />
                    {number("grace_days", "Grace period for new members, in days after joining (0–365)", fields.grace_days.clone(), 0, 365)}
                </fieldset>
                {number("codes_per_set", "Codes per set (5–20)", fields.codes_per_set.clone(), 5, 20)}
                {number("max_set_age_days", "Maximum set age in days (0: no limit)", fields.max_set_age_days.clone(), 0, 3650)}
                {number("low_codes_threshold", "Warn members at this many codes left", fields.low_codes_threshold.clone(), 0, 19)}
                <label class="check" for="replace_when_low">
                    <input
                        type="checkbox"
                        id="replace_when_low"
                        name="replace_when_low"
                        value="on"
                        checked=fields.replace_when_low.is_some()
                    />
                    "When a sign-in with a backup code leaves a member this many codes or fewer, require a new set before anything else (instead of a warning)"
                </label>
                {number("lockout_attempts", "Lock backup-code sign-in after this many wrong codes", fields.lockout_attempts.clone(), 1, 20)}
                {number("lockout_minutes", "Lockout duration in minutes", fields.lockout_minutes.clone(), 1, 1440)}
                <fieldset aria-describedby="code_entry-error">
                    <legend>"Code entry at sign-in"</legend>
                    {radio("code_entry", "any", "Any unused code", &fields.code_entry)}
                    {radio("code_entry", "numbered", "A specific numbered code the sign-in page asks for", &fields.code_entry)}
                    <FieldMessage error=preview_error field="code_entry" />
                </fieldset>
                <label class="check" for="restrict_after_backup_sign_in">
                    <input
                        type="checkbox"
                        id="restrict_after_backup_sign_in"
                        name="restrict_after_backup_sign_in"
                        value="on"
                        checked=fields.restrict_after_backup_sign_in.is_some()
                    />
                    "After a sign-in with a backup code, allow only MFA settings until the authenticator is set up again or new codes are generated"
                </label>
                <label class="check" for="recovery_code_approval">
                    <input
                        type="checkbox"
                        id="recovery_code_approval"
                        name="recovery_code_approval"
                        value="on"
                        checked=fields.recovery_code_approval.is_some()
                    />
                    "Two-admin approval: a recovery code an admin issues is revealed only after a second admin approves it (turning this off takes effect 24 hours after saving)"
                </label>
                <fieldset aria-describedby="recovery_code_issuers-error">
                    <legend>"Recovery codes administrators issue"</legend>
                    <p class="muted">"Who may issue them (each only for the roles it may act on: the help desk for members alone):"</p>
                    {radio("recovery_code_issuers", "helpdesk", "Owners, administrators and the help desk", &fields.recovery_code_issuers)}
                    {radio("recovery_code_issuers", "admins", "Owners and administrators", &fields.recovery_code_issuers)}
                    {radio("recovery_code_issuers", "owners", "Owners", &fields.recovery_code_issuers)}
                    {radio("recovery_code_issuers", "nobody", "Nobody: recovery codes off (codes issued before stop working)", &fields.recovery_code_issuers)}
                    <FieldMessage error=preview_error field="recovery_code_issuers" />
                    <p class="muted">"Lifetimes as 30m, 8h or 7d, from 10 minutes to 30 days:"</p>
                    {lifetime("recovery_code_shortest", "Shortest lifetime", fields.recovery_code_shortest.clone())}
                    {lifetime("recovery_code_longest", "Longest lifetime", fields.recovery_code_longest.clone())}
                    {lifetime("recovery_code_default", "Default lifetime", fields.recovery_code_default.clone())}
                    {number("recovery_code_max_uses", "Uses per code, at most (1: one-time codes only)", fields.recovery_code_max_uses.clone(), 1, 10)}
                </fieldset>
                <fieldset>
                    <legend>"Data backups"</legend>
                    <label class="check" for="admins_request_backups">
                        <input
                            type="checkbox"
                            id="admins_request_backups"
                            name="admins_request_backups"
                            value="on"
                            checked=fields.admins_request_backups.is_some()
                            aria-describedby="admins_request_backups-hint"
                        />
                        "Administrators may request data backups (owners always may)"
                    </label>
                    <p class="muted" id="admins_request_backups-hint">
                        "A backup holds every member's password hash and the whole audit log."
                    </p>
                </fieldset>
                <button type="submit">"Preview changes"</button>
            </form>
            {match preview {
                Some(Ok(preview)) => {
                    view! { <PreviewPanel preview fields version=overview.version save save_error /> }.into_any()
                }
                _ => ().into_any(),
            }}
        </section>
    }
}

#[component]
fn PreviewPanel(
    preview: PolicyPreview,
    fields: PolicyFields,
    version: i32,
    save: ServerAction<SavePolicy>,
    save_error: Signal<Option<AppError>>,
) -> impl IntoView {
    let nothing_changes = preview.changes.is_empty();
    let hidden = |name: &'static str, value: String| {
        view! { <input type="hidden" name=format!("fields[{name}]") value=value /> }
    };
    view! {
        <section class="preview" id="preview">
            <h3>"What this change does"</h3>
            {if nothing_changes {
                view! { <p>"Nothing changes: these are the settings in force."</p> }.into_any()
            } else {
                view! {
                    <ul class="changes">
                        {preview
                            .changes
                            .iter()
                            .map(|c| view! { <li>{format!("{}: {} → {}", c.field, c.before, c.after)}</li> })
                            .collect_view()}
                    </ul>
                    <ul class="effects">
                        {preview
                            .effects
                            .into_iter()
                            .map(|(effect, members)| {
                                view! {
                                    <li>
                                        <strong>{effect}</strong>
                                        {(!members.is_empty())
                                            .then(|| view! { <span class="muted">{format!(" {}", members.join(", "))}</span> })}
                                    </li>
                                }
                            })
                            .collect_view()}
                    </ul>
                    <ActionForm action=save>
                        <FormMessage error=save_error />
                        <input type="hidden" name="expected_version" value=version.to_string() />
                        {hidden("backup_codes", fields.backup_codes)}
                        {hidden("codes_per_set", fields.codes_per_set)}
                        {hidden("max_set_age_days", fields.max_set_age_days)}
                        {hidden("low_codes_threshold", fields.low_codes_threshold)}
                        {hidden("lockout_attempts", fields.lockout_attempts)}
                        {hidden("lockout_minutes", fields.lockout_minutes)}
                        {hidden("code_entry", fields.code_entry)}
                        {hidden("required_from", fields.required_from)}
                        {hidden("grace_days", fields.grace_days)}
                        {hidden("recovery_code_issuers", fields.recovery_code_issuers)}
                        {hidden("recovery_code_shortest", fields.recovery_code_shortest)}
                        {hidden("recovery_code_longest", fields.recovery_code_longest)}
                        {hidden("recovery_code_default", fields.recovery_code_default)}
                        {hidden("recovery_code_max_uses", fields.recovery_code_max_uses)}
                        {fields
                            .restrict_after_backup_sign_in
                            .map(|value| hidden("restrict_after_backup_sign_in", value))}
                        {fields
                            .recovery_code_approval
                            .map(|value| hidden("recovery_code_approval", value))}
                        {fields
                            .admins_request_backups
                            .map(|value| hidden("admins_request_backups", value))}
                        {fields
                            .replace_when_low
                            .map(|value| hidden("replace_when_low", value))}
                        <button type="submit" class="primary">
                            "Save policy"
                        </button>
                    </ActionForm>
                }
                    .into_any()
            }}
        </section>
    }
}

#[component]
fn ExceptionsSection(
    overview: PolicyOverview,
    add: ServerAction<AddPolicyException>,
    remove: ServerAction<RemovePolicyException>,
) -> impl IntoView {
    let add_error = last_error(add);
    let remove_error = last_error(remove);
    view! {
        <section class="panel" id="exceptions">
            <h2>"Exceptions"</h2>
            <p class="muted">
                "A member named here keeps (or loses) backup codes whatever the setting above says, e.g. a break-glass account."
            </p>
            <FormMessage error=remove_error />
            {if overview.exceptions.is_empty() {
                view! { <p>"No exceptions."</p> }.into_any()
            } else {
                view! {
                    <table class="members exceptions">
                        <thead>
                            <tr>
                                <th scope="col">"Member"</th>
                                <th scope="col">"Backup codes"</th>
                                <th scope="col">"Reason"</th>
                                <th scope="col">"Added"</th>
                                <th scope="col"></th>
                            </tr>
                        </thead>
                        <tbody>
                            {overview
                                .exceptions
                                .into_iter()
                                .map(|e| {
                                    view! {
                                        <tr>
                                            <td>{e.email.clone()}</td>
                                            <td>{if e.allowed { "Allowed" } else { "Not allowed" }}</td>
                                            <td>{e.reason}</td>
                                            <td>{format!("{} by {}", e.created_at, e.created_by)}</td>
                                            <td>
                                                <ActionForm action=remove>
                                                    <input type="hidden" name="exception_id" value=e.id.to_string() />
                                                    <button type="submit" aria-label=format!("Remove the exception for {}", e.email)>
                                                        "Remove"
                                                    </button>
                                                </ActionForm>
                                            </td>
                                        </tr>
                                    }
                                })
                                .collect_view()}
                        </tbody>
                    </table>
                }
                    .into_any()
            }}
            <h3>"Add an exception"</h3>
            <ActionForm action=add>
                <FormMessage error=add_error />
                <label for="exception-email">"Member's email address"</label>
                <input id="exception-email" name="email" type="email" maxlength="254" required aria-describedby="email-error" aria-invalid=invalid(add_error, "email") />
                <FieldMessage error=add_error field="email" />
                <label for="exception-codes">"Backup codes for this member"</label>
                <select id="exception-codes" name="backup_codes" aria-describedby="backup_codes-error" aria-invalid=invalid(add_error, "backup_codes")>
                    <option value="allow">"Allowed, whatever the setting"</option>
                    <option value="deny">"Not allowed, whatever the setting"</option>
                </select>
                <FieldMessage error=add_error field="backup_codes" />
                <label for="exception-reason">"Reason"</label>
                <input id="exception-reason" name="reason" type="text" maxlength="500" required aria-describedby="reason-error" aria-invalid=invalid(add_error, "reason") />
                <FieldMessage error=add_error field="reason" />
                <button type="submit">"Add exception"</button>
            </ActionForm>
        </section>
    }
}

#[component]
fn ExplainSection(explanation: Option<Result<Explanation, AppError>>) -> impl IntoView {
    let error = Signal::stored(explanation.as_ref().and_then(|e| e.as_ref().err().cloned()));
    view! {
        <section class="panel" id="explain">
            <h2>"Explain a decision"</h2>
            <form method="get" action="/admin/policy">
                <FormMessage error />
                <label for="explain-email">"Member's email address"</label>
                <input
                    id="explain-email"
                    name="explain_email"
                    type="email"
                    maxlength="254"
                    required
                    aria-describedby="email-error"
                    aria-invalid=invalid(error, "email")
                />
                <FieldMessage error field="email" />
                <label for="explain-act">"Action"</label>
                <select id="explain-act" name="explain_act">
                    <option value="redeem">"Sign in with a backup code"</option>
                    <option value="generate">"Generate backup codes"</option>
                    <option value="request_backups">"Request a data backup"</option>
                    <option value="issue_codes">"Issue recovery codes for members"</option>
                </select>
                <button type="submit">"Explain"</button>
            </form>
            {explanation
                .and_then(Result::ok)
                .map(|e| {
                    let verb = match e.act.as_str() {
                        "generate" => "generate backup codes",
                        "request_backups" => "request a data backup",
                        "issue_codes" => "issue recovery codes for members",
                        _ => "sign in with a backup code",
                    };
                    view! {
                        <div class="explanation" role="status">
                            <p class=if e.allowed { "status ok" } else { "status warn" }>
                                {format!(
                                    "{}: {} may {}{}.",
                                    if e.allowed { "Allowed" } else { "Denied" },
                                    e.email,
                                    if e.allowed { "" } else { "not " },
                                    verb,
                                )}
                            </p>
                            <p>
                                {if e.subject.starts_with("member:") {
                                    "Decided by an exception for this member:".to_owned()
                                } else if e.subject.starts_with("group:") {
                                    format!("Decided by the exception of their group ({}):", e.subject)
                                } else {
                                    format!("Decided by the rules for the role “{}”:", e.subject)
                                }}
                            </p>
                            {if e.rules.is_empty() {
                                view! { <p>"No rule allows it, so it is denied."</p> }.into_any()
                            } else {
                                view! {
                                    <ul class="rules">
                                        {e.rules.into_iter().map(|rule| view! { <li><code>{rule}</code></li> }).collect_view()}
                                    </ul>
                                }
                                    .into_any()
                            }}
                        </div>
                    }
                })}
        </section>
    }
}

#[component]
fn HistorySection(overview: PolicyOverview) -> impl IntoView {
    view! {
        <section class="panel" id="history">
            <h2>"Versions"</h2>
            <p>
                <a href="/admin/policy/export" rel="external" download>
                    "Download the policy in force with its rules (JSON)"
                </a>
            </p>
            <form method="get" action="/admin/policy/export">
                <label for="policy-at">"The policy as it stood at the end of"</label>
                <input id="policy-at" name="at" type="date" required />
                <button type="submit">"Download (JSON)"</button>
            </form>
            {if overview.history.is_empty() {
                view! { <p>"No version saved yet: the defaults are in force."</p> }.into_any()
            } else {
                view! {
                    <ol class="history" reversed>
                        {overview
                            .history
                            .into_iter()
                            .map(|v| {
                                view! {
                                    <li>
                                        <strong>{format!("Version {}", v.version)}</strong>
                                        {format!(" · {} · {} · ", v.saved_at, v.saved_by)}
                                        <a
                                            href=format!("/admin/policy/export?at={}", v.saved_at_rfc3339)
                                            rel="external"
                                            download
                                        >
                                            "Download as saved (JSON)"
                                        </a>
                                        <ul>
                                            {v
                                                .changes
                                                .into_iter()
                                                .map(|c| view! { <li>{format!("{}: {} → {}", c.field, c.before, c.after)}</li> })
                                                .collect_view()}
                                        </ul>
                                    </li>
                                }
                            })
                            .collect_view()}
                    </ol>
                }
                    .into_any()
            }}
        </section>
    }
}
