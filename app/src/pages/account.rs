//! The account panel: who is signed in, "Multi-factor Authentication", and signing out.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;

use crate::{
    api::{
        account::{
            Account, ConfirmItsYou, ConfirmTotp, ConfirmTotpReplacement, DisableTotp, TotpSetup,
            current_account, get_totp_replacement, get_totp_setup,
        },
        sign_in::SignOut,
    },
    forms::{CodeInput, FieldMessage, FormMessage, invalid, last_error},
    pages::backup_codes::RecoveryModes,
};

/// `/account/confirm?next=…`: the password again, before administrator changes.
#[component]
pub fn ConfirmPage() -> impl IntoView {
    let query = leptos_router::hooks::use_query_map();
    let next = move || {
        query
            .with(|q| q.get("next"))
            .unwrap_or_else(|| "/account".to_owned())
    };
    let confirm = ServerAction::<ConfirmItsYou>::new();
    let error = last_error(confirm);
    view! {
        <Title text="Confirm it's you" />
        <section class="panel">
            <h1>"Confirm it's you"</h1>
            <p>
                "Changes to members, the policy and recovery codes need your password when you last gave it more than a few minutes ago."
            </p>
            <ActionForm action=confirm>
                <FormMessage error />
                <input type="hidden" name="next" value=next />
                <label for="confirm-password">"Password"</label>
                <input
                    id="confirm-password"
                    name="password"
                    type="password"
                    autocomplete="current-password"
                    maxlength="1024"
                    required
                    autofocus
                    aria-describedby="password-error"
                    aria-invalid=invalid(error, "password")
                />
                <FieldMessage error field="password" />
                <button type="submit">"Confirm"</button>
            </ActionForm>
        </section>
    }
}

/// `/account`.
#[component]
pub fn AccountPage() -> impl IntoView {
    let account = Resource::new(|| (), |()| current_account());
    view! {
        <Title text="Account" />
        <Suspense>
            {move || {
                account
                    .get()
                    .map(|account| match account {
                        Ok(Some(account)) => view! { <AccountPanel account /> }.into_any(),
                        _ => view! { <Redirect path="/sign-in" /> }.into_any(),
                    })
            }}
        </Suspense>
    }
}

#[component]
fn AccountPanel(account: Account) -> impl IntoView {
    let sign_out = ServerAction::<SignOut>::new();
    view! {
        <section class="panel">
            <h1>"Account"</h1>
            <dl class="facts">
                <dt>"Email address"</dt>
                <dd class="account-email">{account.email.clone()}</dd>
                <dt>"Organization"</dt>
                <dd>{account.organization.clone()}</dd>
                <dt>"Role"</dt>
                <dd>{account.role.clone()}</dd>
            </dl>
            <p>
                <a href="/account/notifications">"Security notifications"</a>
            </p>
            {account
                .manages_members
                .then(|| {
                    view! {
                        <p>
                            <a href="/admin">"Administration overview"</a>
                            " — every area is also in the bar at the top of every page."
                        </p>
                    }
                })}
            <ActionForm action=sign_out>
                <button type="submit">"Sign out"</button>
            </ActionForm>
        </section>
        <MfaSection enabled=account.mfa_enabled />
    }
}

#[component]
fn MfaSection(enabled: bool) -> impl IntoView {
    let disable = ServerAction::<DisableTotp>::new();
    let error = last_error(disable);
    let query = leptos_router::hooks::use_query_map();
    let replaced = move || query.with(|q| q.get("authenticator")).as_deref() == Some("replaced");
    view! {
        <section class="panel" id="mfa">
            <h2>"Multi-factor Authentication"</h2>
            {if enabled {
                view! {
                    <p class="status ok">"On: signing in asks for a code from your authenticator app."</p>
                    {move || {
                        replaced()
                            .then(|| {
                                view! {
                                    <p class="status ok" role="status">
                                        "Your new authenticator is in use: codes from the old one no longer sign in."
                                    </p>
                                }
                            })
                    }}
                    <p>
                        <a class="button" href="/account/mfa/replace">
                            "Replace your authenticator"
                        </a>
                        " "
                        <span class="muted">"New phone? Set it up while this one still works."</span>
                    </p>
                    <details>
                        <summary>"Turn off multi-factor authentication"</summary>
                        <ActionForm action=disable>
                            <FormMessage error />
                            <label for="disable-password">"Password"</label>
                            <input
                                id="disable-password"
                                name="password"
                                type="password"
                                autocomplete="current-password"
                                maxlength="256"
                                required
                                aria-describedby="password-error"
                                aria-invalid=invalid(error, "password")
                            />
                            <FieldMessage error field="password" />
                            <button type="submit">"Turn off"</button>
                        </ActionForm>
                    </details>
                    <RecoveryModes />
                }
                    .into_any()
            } else {
                view! {
                    <p class="status warn">
                        "Off: anyone with your password can sign in as you."
                    </p>
                    <a class="button primary" href="/account/mfa/setup">
                        "Set up"
                    </a>
                }
                    .into_any()
            }}
        </section>
    }
}

/// `/account/mfa/setup`: scan or type the key, then confirm with a code.
#[component]
pub fn MfaSetupPage() -> impl IntoView {
    let setup = Resource::new(|| (), |()| get_totp_setup());
    let confirm = ServerAction::<ConfirmTotp>::new();
    let error = last_error(confirm);
    view! {
        <Title text="Set up multi-factor authentication" />
        <section class="panel">
            <h1>"Set up multi-factor authentication"</h1>
            <Suspense>
                {move || {
                    setup
                        .get()
                        .map(|setup| match setup {
                            Err(_) => view! { <Redirect path="/account" /> }.into_any(),
                            Ok(setup) => {
                                view! {
                                    <SetupKey setup />
                                    <ActionForm action=confirm>
                                        <FormMessage error />
                                        <CodeInput error />
                                        <button type="submit" class="primary">
                                            "Turn on"
                                        </button>
                                    </ActionForm>
                                }
                                    .into_any()
                            }
                        })
                }}
            </Suspense>
        </section>
    }
}

/// `/account/mfa/replace`: a new authenticator set up while MFA stays on. The old one
/// still signs in until the new one's code confirms it; the backup codes stay unless the
/// member unticks keeping them.
#[component]
pub fn MfaReplacePage() -> impl IntoView {
    let setup = Resource::new(|| (), |()| get_totp_replacement());
    let confirm = ServerAction::<ConfirmTotpReplacement>::new();
    let error = last_error(confirm);
    view! {
        <Title text="Replace your authenticator" />
        <section class="panel">
            <h1>"Replace your authenticator"</h1>
            <p>
                "Your current authenticator and your backup codes keep working until the new one is confirmed: multi-factor authentication stays on throughout."
            </p>
            <Suspense>
                {move || {
                    setup
                        .get()
                        .map(|setup| match setup {
                            Err(load_error) if matches!(load_error, crate::error::AppError::ReauthenticationRequired) => {
                                let load_error = Signal::derive(move || Some(load_error.clone()));
                                view! { <FormMessage error=load_error /> }.into_any()
                            }
                            Err(_) => view! { <Redirect path="/account" /> }.into_any(),
                            Ok(setup) => {
                                view! {
                                    <SetupKey setup />
                                    <ActionForm action=confirm>
                                        <FormMessage error />
                                        <CodeInput error />
                                        <label class="check" for="keep_codes">
                                            <input
                                                type="checkbox"
                                                id="keep_codes"
                                                name="keep_codes"
                                                value="on"
                                                checked=true
                                            />
                                            "Keep my backup codes (untick to end them: generate a new set afterwards)"
                                        </label>
                                        <button type="submit" class="primary">
                                            "Replace"
                                        </button>
                                    </ActionForm>
                                    <p>
                                        <a href="/account">"Keep the current authenticator"</a>
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

/// The steps to add a key to an authenticator app: its QR code, and the key as text.
#[component]
fn SetupKey(setup: TotpSetup) -> impl IntoView {
    view! {
        <ol class="steps">
            <li>
                "Scan this QR code with your authenticator app (Google Authenticator, Microsoft Authenticator, 1Password, …)."
            </li>
            <li>
                "Can't scan it? Type this setup key instead: "
                <code class="setup-key">{setup.setup_key}</code>
            </li>
            <li>"Enter the 6-digit code the app shows."</li>
        </ol>
        <div
            class="qr"
            role="img"
            aria-label="QR code for your authenticator app"
            inner_html=setup.qr_svg
        ></div>
    }
}
