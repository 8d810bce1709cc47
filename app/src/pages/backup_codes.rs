//! Backup verification codes as a member meets them: "MFA Recovery Modes" on the account
//! panel, the page that generates a set and shows it once (download, print, copy), signing in
//! with a code, and the page after that sign-in.
//!
//! Generating is a plain form posted to `/account/backup-codes`: the server answers that post
//! with this page rendered around the new codes, so the codes travel once, in that answer,
//! with or without JavaScript. With JavaScript, the sheet's one island ([`SheetActions`]) adds
//! Print and Copy buttons and a warning before leaving while the codes are not confirmed as
//! saved.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;

use crate::{
    api::{
        backup_codes::{
            CodeSetStatus, FreshBackupCodes, GenerateForm, RecoveryStatus, generate_backup_codes,
            get_recovery_status,
        },
        sign_in::{SubmitBackupCode, backup_code_slot, get_sign_in_progress, sign_in_help},
    },
    error::AppError,
    forms::{FieldMessage, FormMessage, invalid, last_error, percent_encode},
};

/// What a member whose organization does not let them use backup codes reads.
pub const CODES_NOT_AVAILABLE: &str =
    "Backup verification codes are not available for your account, per your organization's policy.";

/// Where the "Generate New Codes" form posts.
const GENERATE_URL: &str = "/account/backup-codes";

/// "MFA Recovery Modes" inside the account panel's Multi-factor Authentication section.
#[component]
pub fn RecoveryModes() -> impl IntoView {
    let status = Resource::new(|| (), |()| get_recovery_status());
    view! {
        <div class="recovery" id="recovery">
            <h3>"MFA Recovery Modes"</h3>
            <h4>"Backup verification codes"</h4>
            <p class="muted">
                "One-time 12-digit codes for signing in when you lose your authenticator. Each code works once."
            </p>
            <Suspense>
                {move || {
                    status
                        .get()
                        .map(|status| match status {
                            Err(error) => view! { <p class="form-error">{error.to_string()}</p> }.into_any(),
                            Ok(status) if !status.allowed => {
                                view! { <NotAllowed contacts=status.admin_contacts /> }.into_any()
                            }
                            Ok(status) => {
                                view! {
                                    <LimitBanner limited=status.limited.clone() />
                                    {status
                                        .missing_required_codes
                                        .then(|| {
                                            view! {
                                                <p class="banner" role="alert">
                                                    "Your organization requires backup verification codes. Generate a set and keep it safe."
                                                </p>
                                            }
                                        })}
                                    <CodeSetSummary codes=status.codes />
                                    <GenerateButton
                                        needs_password=status.needs_password
                                        replaces=status.replaces
                                        error=None
                                    />
                                    <OwnHistory history=status.history />
                                }
                                    .into_any()
                            }
                        })
                }}
            </Suspense>
        </div>
    }
}

/// `/account/backup-codes`: generate a set, and see it this once.
#[component]
pub fn BackupCodesPage() -> impl IntoView {
    // Present only while the server renders its answer to the generate form.
    let posted = use_context::<GenerateForm>();
    let fresh = Resource::new(
        || (),
        move |()| {
            let posted = posted.clone();
            async move {
                match posted {
                    Some(form) => Some(generate_backup_codes(form.password, form.replaces).await),
                    None => None,
                }
            }
        },
    );
    let status = Resource::new(|| (), |()| get_recovery_status());
    view! {
        <Title text="Backup verification codes" />
        <Suspense>
            {move || {
                let (fresh, status) = (fresh.get()?, status.get()?);
                Some(match (fresh, status) {
                    (Some(Ok(codes)), _) => view! { <CodesSheet codes /> }.into_any(),
                    (Some(Err(AppError::SignInRequired)), _) | (_, Err(AppError::SignInRequired)) => {
                        view! { <Redirect path="/sign-in" /> }.into_any()
                    }
                    (_, Err(error)) => view! { <p class="form-error">{error.to_string()}</p> }.into_any(),
                    (fresh, Ok(status)) => {
                        view! { <GeneratePanel status error=fresh.and_then(Result::err) /> }.into_any()
                    }
                })
            }}
        </Suspense>
    }
}

/// The page before a set is generated, or after generating failed.
#[component]
fn GeneratePanel(status: RecoveryStatus, error: Option<AppError>) -> impl IntoView {
    let body = if !status.mfa_enabled {
        view! {
            <p>
                "Backup verification codes are for when you lose your authenticator, so turn on multi-factor authentication first."
            </p>
            <a class="button primary" href="/account/mfa/setup">
                "Set up"
            </a>
        }
            .into_any()
    } else if !status.allowed {
        view! { <NotAllowed contacts=status.admin_contacts /> }.into_any()
    } else {
        let replaces = status.codes.is_some();
        view! {
            <CodeSetSummary codes=status.codes />
            <p>
                {if replaces {
                    "Generating a new set replaces your current codes: every one of them stops working at once."
                } else {
                    "You will see the new codes once, on the next page: save or print them there."
                }}
            </p>
            <GenerateButton needs_password=status.needs_password replaces=status.replaces error />
        }
            .into_any()
    };
    view! {
        <section class="panel">
            <h1>"Backup verification codes"</h1>
            {body}
            <p>
                <a href="/account">"Back to your account"</a>
            </p>
        </section>
    }
}

/// How many codes remain, when the set was made and last used, and a warning when low.
#[component]
fn CodeSetSummary(codes: Option<CodeSetStatus>) -> impl IntoView {
    let Some(codes) = codes else {
        return view! { <p class="status warn codes-status">"You have no backup verification codes yet."</p> }
            .into_any();
    };
    let warning = if codes.expired {
        Some(format!(
            "Your backup verification codes expired on {}: none of them works any more. Generate a new set.",
            codes.expires_at.clone().unwrap_or_default()
        ))
    } else if codes.remaining == 0 {
        Some(
            "You have used all your backup verification codes. Generate a new set: without one, losing your authenticator locks you out."
                .to_owned(),
        )
    } else if codes.low {
        Some(format!(
            "Only {} backup verification {} left. Generate a new set before you run out.",
            codes.remaining,
            if codes.remaining == 1 {
                "code"
            } else {
                "codes"
            }
        ))
    } else {
        None
    };
    let class = if warning.is_some() {
        "status warn codes-status"
    } else {
        "status ok codes-status"
    };
    view! {
        <p class=class>
            <span class="codes-remaining">{codes.remaining}</span>
            {format!(" of {} codes left.", codes.total)}
        </p>
        {warning.map(|warning| view! { <p class="codes-warning" role="alert">{warning}</p> })}
        <dl class="facts">
            <dt>"Generated"</dt>
            <dd>{codes.generated_at}</dd>
            <dt>"Last used"</dt>
            <dd class="codes-last-used">{codes.last_used_at.unwrap_or_else(|| "Never".to_owned())}</dd>
            {codes
                .expires_at
                .map(|at| {
                    view! {
                        <dt>{if codes.expired { "Expired" } else { "Expires" }}</dt>
                        <dd class="codes-expiry">{at}</dd>
                    }
                })}
        </dl>
    }
        .into_any()
}

/// The member's recent security events: codes generated, a code used and when, from where.
#[component]
fn OwnHistory(history: Vec<crate::api::backup_codes::HistoryEntry>) -> impl IntoView {
    (!history.is_empty()).then(|| {
        view! {
            <h4>"Recent security events"</h4>
            <ul class="history own-history">
                {history
                    .into_iter()
                    .map(|entry| {
                        view! {
                            <li>
                                <span class="muted">{entry.at}</span>
                                " · "
                                {entry.what}
                                {entry.from.map(|ip| format!(" · from {ip}"))}
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
        }
    })
}

/// The "Generate New Codes" button: a plain form posting to the codes page, naming the set
/// it replaces (so that posting it again is refused, not a second set), with the password
/// field when the last sign-in was too long ago (or the password was the problem).
#[component]
fn GenerateButton(
    needs_password: bool,
    replaces: String,
    error: Option<AppError>,
) -> impl IntoView {
    let asks_password = needs_password
        || error
            .as_ref()
            .is_some_and(|e| e.for_field("password").is_some());
    let error = Signal::stored(error);
    view! {
        <form method="post" action=GENERATE_URL class="generate-codes">
            <FormMessage error />
            <input type="hidden" name="replaces" value=replaces />
            {asks_password
                .then(|| {
                    view! {
                        <p class="muted">"For your security, enter your password again before generating codes."</p>
                        <label for="generate-password">"Password"</label>
                        <input
                            id="generate-password"
                            name="password"
                            type="password"
                            autocomplete="current-password"
                            maxlength="256"
                            required
                            aria-describedby="password-error"
                            aria-invalid=invalid(error, "password")
                        />
                        <FieldMessage error field="password" />
                    }
                })}
            <button type="submit" class="primary">
                "Generate New Codes"
            </button>
        </form>
    }
}

/// The codes, this once: numbered, grouped, with Download, Print and Copy, and a
/// confirmation that they were saved.
#[component]
fn CodesSheet(codes: FreshBackupCodes) -> impl IntoView {
    let text = codes_as_text(&codes);
    let file_name = download_name(&codes);
    view! {
        <Title text="Your backup verification codes" />
        <section class="panel codes-sheet">
            <h1>"Your backup verification codes"</h1>
            <p class="no-print lead">
                "Save these codes now: this is the only time they are shown. Keep them somewhere safe, apart from your password."
            </p>
            <p class="sheet-account">
                {codes.email.clone()} " · generated " {codes.generated_at.clone()}
            </p>
            <ol class="codes">
                {codes
                    .codes
                    .iter()
                    .map(|code| view! { <li><code class="backup-code">{code.clone()}</code></li> })
                    .collect_view()}
            </ol>
            <p>"Each code works only once. Once you have used them all, generate a new set."</p>
            <SheetActions text file_name />
        </section>
    }
}

/// Download, Print and Copy, and "I have saved these codes": the one island of the codes
/// sheet. `text` is the sheet as the downloaded file holds it (the codes are already on the
/// page around it, so handing them to the island shows them nowhere new).
///
/// Without JavaScript, Download is a `data:` link and the browser's Print command prints the
/// sheet; in the browser, Print and Copy buttons appear, and leaving before ticking "saved"
/// asks first (the browser's own "Leave site?" prompt).
#[island]
fn SheetActions(text: String, file_name: String) -> impl IntoView {
    let href = data_url(&text);
    let (hydrated, set_hydrated) = signal(false);
    let (saved, set_saved) = signal(false);
    let (copied, set_copied) = signal(None::<bool>);
    Effect::new(move |_| set_hydrated.set(true));
    Effect::new(move |_| {
        let handle = window_event_listener(leptos::ev::beforeunload, move |event| {
            if !saved.get_untracked() {
                event.prevent_default();
            }
        });
        on_cleanup(move || handle.remove());
    });
    let print = move |_| {
        let _ = window().print();
    };
    let copy = move |_| copy_to_clipboard(text.clone(), set_copied);
    view! {
        <div class="actions no-print">
            <a class="button" href=href download=file_name>
                "Download"
            </a>
            <Show
                when=move || hydrated.get()
                fallback=|| {
                    view! { <span class="muted">"To print, use your browser's Print command."</span> }
                }
            >
                <button type="button" on:click=print>
                    "Print"
                </button>
                <button type="button" on:click=copy.clone()>
                    "Copy"
                </button>
            </Show>
            {move || {
                copied
                    .get()
                    .map(|ok| {
                        view! {
                            <span class="muted" role="status">
                                {if ok { "Copied." } else { "Copying failed: download or print them instead." }}
                            </span>
                        }
                    })
            }}
        </div>
        <form method="get" action="/account" class="saved no-print">
            <label class="check">
                <input
                    type="checkbox"
                    name="saved"
                    value="1"
                    required
                    on:change=move |event| set_saved.set(event_target_checked(&event))
                />
                "I have saved these codes"
            </label>
            <button type="submit" class="primary">
                "Done"
            </button>
        </form>
    }
}

/// Codes not available under the organization's policy: who to ask.
#[component]
fn NotAllowed(contacts: Vec<String>) -> impl IntoView {
    view! {
        <p class="status warn codes-not-available">{CODES_NOT_AVAILABLE}</p>
        <AdminContacts contacts />
    }
}

/// "Contact your organization's administrator", with their addresses.
#[component]
pub fn AdminContacts(contacts: Vec<String>) -> impl IntoView {
    view! {
        <p>"Contact your organization's administrator:"</p>
        <ul class="contacts">
            {contacts
                .into_iter()
                .map(|email| {
                    let href = format!("mailto:{email}");
                    view! {
                        <li>
                            <a href=href>{email}</a>
                        </li>
                    }
                })
                .collect_view()}
        </ul>
    }
}

/// `/sign-in/backup-code`: the verification step with a backup code instead of the
/// authenticator.
#[component]
pub fn SignInBackupCode() -> impl IntoView {
    let submit = ServerAction::<SubmitBackupCode>::new();
    let error = last_error(submit);
    let progress = Resource::new(|| (), |()| get_sign_in_progress());
    let help = Resource::new(|| (), |()| sign_in_help());
    let slot = Resource::new(|| (), |()| backup_code_slot());
    view! {
        <Title text="Backup verification code" />
        <section class="panel narrow">
            <h1>"Backup verification code"</h1>
            <Suspense>
                {move || {
                    let (progress, help, slot) = (progress.get()?, help.get()?, slot.get()?);
                    // Under "a specific numbered code", the number of the code to enter.
                    let slot = slot.ok().flatten();
                    if !progress.is_ok_and(|p| p.awaiting_code) {
                        return Some(view! { <Redirect path="/sign-in" /> }.into_any());
                    }
                    let help = help.ok()?;
                    if !help.backup_codes {
                        return Some(
                            view! {
                                <p class="status warn codes-not-available">{CODES_NOT_AVAILABLE}</p>
                                <AdminContacts contacts=help.contacts />
                                <p>
                                    <a href="/sign-in/verify">"Back to the verification code"</a>
                                </p>
                            }
                                .into_any(),
                        );
                    }
                    Some(
                        view! {
                            <p>
                                {match slot {
                                    Some(n) => format!("Enter code number {n} from the list of 12-digit backup verification codes you saved."),
                                    None => "Enter one of the 12-digit backup verification codes you saved when you set up multi-factor authentication.".to_owned(),
                                }}
                            </p>
                            <ActionForm action=submit>
                                <FormMessage error />
                                <label for="code">
                                    {match slot {
                                        Some(n) => format!("Backup verification code #{n}"),
                                        None => "Backup verification code".to_owned(),
                                    }}
                                </label>
                                <input
                                    id="code"
                                    name="code"
                                    type="text"
                                    inputmode="numeric"
                                    autocomplete="off"
                                    spellcheck="false"
                                    placeholder="1234 5678 9012"
                                    maxlength="64"
                                    required
                                    autofocus
                                    aria-describedby="code-error"
                                    aria-invalid=invalid(error, "code")
                                />
                                <FieldMessage error field="code" />
                                <button type="submit" class="primary">
                                    "VERIFY"
                                </button>
                            </ActionForm>
                            <p class="muted">"No codes left, or lost them?"</p>
                            <AdminContacts contacts=help.contacts />
                            <p>
                                <a href="/sign-in/verify">"Use your authenticator app instead"</a>
                            </p>
                        }
                            .into_any(),
                    )
                }}
            </Suspense>
        </section>
    }
}

/// `/account/recovered`: after signing in with a backup code, how many remain and what to
/// do next.
#[component]
pub fn RecoveredPage() -> impl IntoView {
    let status = Resource::new(|| (), |()| get_recovery_status());
    view! {
        <Title text="Signed in with a backup code" />
        <section class="panel">
            <h1>"You signed in with a backup verification code"</h1>
            <Suspense>
                {move || {
                    status
                        .get()
                        .map(|status| match status {
                            Err(_) => view! { <Redirect path="/sign-in" /> }.into_any(),
                            Ok(status) => {
                                let remaining = status.codes.as_ref().map_or(0, |c| c.remaining);
                                let left = match remaining {
                                    0 => "You have no backup verification codes left.".to_owned(),
                                    1 => "You have 1 backup verification code left.".to_owned(),
                                    n => format!("You have {n} backup verification codes left."),
                                };
                                view! {
                                    <LimitBanner limited=status.limited.clone() />
                                    <p>"That code is now used and will not work again."</p>
                                    <p class=if remaining == 0 || status.codes.as_ref().is_some_and(|c| c.low) {
                                        "status warn codes-left"
                                    } else {
                                        "status ok codes-left"
                                    }>{left}</p>
                                    <GenerateButton
                                        needs_password=status.needs_password
                                        replaces=status.replaces
                                        error=None
                                    />
                                    <p>
                                        "Lost your authenticator? Set it up again under Multi-factor Authentication: turn it off with your password, then set up your new device (turning it off also ends your backup codes)."
                                    </p>
                                    <p>
                                        <a href="/account#mfa">"Set up the authenticator again"</a>
                                        " · "
                                        <a href="/account">"Continue to your account"</a>
                                    </p>
                                }
                                    .into_any()
                            }
                        })
                }}
            </Suspense>
        </section>
    }
}

/// Why this session reaches only the member's MFA settings for now, and what lifts it;
/// nothing when it is not limited.
#[component]
fn LimitBanner(limited: Option<String>) -> impl IntoView {
    limited.map(|why| {
        view! {
            <p class="banner" role="alert">
                {why}
            </p>
        }
    })
}

/// The codes as the downloaded file and the clipboard hold them.
fn codes_as_text(codes: &FreshBackupCodes) -> String {
    let mut text = format!(
        "Lifeline backup verification codes\nAccount: {}\nGenerated: {}\n\n",
        codes.email, codes.generated_at
    );
    for (slot, code) in codes.codes.iter().enumerate() {
        text.push_str(&format!("{:>2}. {code}\n", slot + 1));
    }
    text.push_str("\nEach code works only once. Keep these codes somewhere safe.\n");
    text
}

/// `lifeline-backup-codes-owner@acme.test-2026-11-28.txt`, with anything a file system might
/// dislike replaced.
fn download_name(codes: &FreshBackupCodes) -> String {
    let account: String = codes
        .email
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "@._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("lifeline-backup-codes-{account}-{}.txt", codes.generated_on)
}

/// A `data:` URL holding `text`, so that Download works without JavaScript and without a
/// second request to the server (which no longer knows the codes).
fn data_url(text: &str) -> String {
    format!("data:text/plain;charset=utf-8,{}", percent_encode(text))
}

#[cfg(feature = "hydrate")]
fn copy_to_clipboard(text: String, done: WriteSignal<Option<bool>>) {
    leptos::task::spawn_local(async move {
        let promise = window().navigator().clipboard().write_text(&text);
        let ok = wasm_bindgen_futures::JsFuture::from(promise).await.is_ok();
        done.set(Some(ok));
    });
}

/// The button exists only once hydrated; on the server there is no clipboard.
#[cfg(not(feature = "hydrate"))]
fn copy_to_clipboard(_text: String, _done: WriteSignal<Option<bool>>) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FreshBackupCodes {
        FreshBackupCodes {
            email: "Ann O'Neil+x@acme.test".into(),
            generated_at: "28 Nov 2026, 09:15 UTC".into(),
            generated_on: "2026-11-28".into(),
            codes: vec!["4821 0937 5516".into(), "0000 1111 2222".into()],
        }
    }

    #[test]
    fn the_text_holds_the_account_the_time_and_the_numbered_codes() {
        let text = codes_as_text(&sample());
        assert!(text.contains("Account: Ann O'Neil+x@acme.test\n"));
        assert!(text.contains("Generated: 28 Nov 2026, 09:15 UTC\n"));
        assert!(text.contains(" 1. 4821 0937 5516\n 2. 0000 1111 2222\n"));
        assert!(text.contains("Each code works only once."));
    }

    #[test]
    fn the_file_name_names_the_product_the_account_and_the_date() {
        assert_eq!(
            download_name(&sample()),
            "lifeline-backup-codes-Ann-O-Neil-x@acme.test-2026-11-28.txt"
        );
    }

    #[test]
    fn the_data_url_escapes_everything_but_unreserved_characters() {
        assert_eq!(
            data_url("a b\n1%"),
            "data:text/plain;charset=utf-8,a%20b%0A1%25"
        );
    }
}
