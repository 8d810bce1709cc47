//! The sign-in steps: "Email address" → NEXT, "Password" → SIGN IN, and, with MFA on, the
//! authenticator code. Every step is a plain form that also works without JavaScript.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;

use crate::{
    api::sign_in::{SubmitCode, SubmitEmail, SubmitPassword, get_sign_in_progress, sign_in_help},
    forms::{CodeInput, FieldMessage, FormMessage, invalid, last_error},
    pages::backup_codes::{AdminContacts, CODES_NOT_AVAILABLE},
};

/// Step 1: the email address.
#[component]
pub fn SignInEmail() -> impl IntoView {
    let submit = ServerAction::<SubmitEmail>::new();
    let error = last_error(submit);
    view! {
        <Title text="Sign in" />
        <section class="panel narrow">
            <h1>"Sign in"</h1>
            <ActionForm action=submit>
                <FormMessage error />
                <label for="email">"Email address"</label>
                <input
                    id="email"
                    name="email"
                    type="email"
                    autocomplete="username"
                    maxlength="254"
                    required
                    autofocus
                    aria-describedby="email-error"
                    aria-invalid=invalid(error, "email")
                />
                <FieldMessage error field="email" />
                <button type="submit" class="primary">
                    "NEXT"
                </button>
            </ActionForm>
        </section>
    }
}

/// Step 2: the password, for the email remembered from step 1.
#[component]
pub fn SignInPassword() -> impl IntoView {
    let submit = ServerAction::<SubmitPassword>::new();
    let error = last_error(submit);
    let progress = Resource::new(|| (), |()| get_sign_in_progress());
    view! {
        <Title text="Sign in" />
        <section class="panel narrow">
            <h1>"Sign in"</h1>
            <Suspense>
                {move || {
                    progress
                        .get()
                        .map(|progress| match progress.ok().and_then(|p| p.email) {
                            None => view! { <Redirect path="/sign-in" /> }.into_any(),
                            Some(email) => {
                                view! {
                                    <p class="muted">
                                        {email} " · " <a href="/sign-in">"Not you?"</a>
                                    </p>
                                    <ActionForm action=submit>
                                        <FormMessage error />
                                        <label for="password">"Password"</label>
                                        <input
                                            id="password"
                                            name="password"
                                            type="password"
                                            autocomplete="current-password"
                                            maxlength="256"
                                            required
                                            autofocus
                                            aria-describedby="password-error"
                                            aria-invalid=invalid(error, "password")
                                        />
                                        <FieldMessage error field="password" />
                                        <button type="submit" class="primary">
                                            "SIGN IN"
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

/// Step 3: the code from the authenticator app.
#[component]
pub fn SignInVerify() -> impl IntoView {
    let submit = ServerAction::<SubmitCode>::new();
    let error = last_error(submit);
    let progress = Resource::new(|| (), |()| get_sign_in_progress());
    view! {
        <Title text="Verification" />
        <section class="panel narrow">
            <h1>"Verification"</h1>
            <Suspense>
                {move || {
                    progress
                        .get()
                        .map(|progress| {
                            if !progress.is_ok_and(|p| p.awaiting_code) {
                                return view! { <Redirect path="/sign-in" /> }.into_any();
                            }
                            view! {
                                <p>"Enter the 6-digit code from your authenticator app."</p>
                                <ActionForm action=submit>
                                    <FormMessage error />
                                    <CodeInput error autofocus=true />
                                    <button type="submit" class="primary">
                                        "VERIFY"
                                    </button>
                                </ActionForm>
                                <p>
                                    <a href="/sign-in/help">"Problem signing in?"</a>
                                </p>
                            }
                                .into_any()
                        })
                }}
            </Suspense>
        </section>
    }
}

/// "Problem signing in?": who can help when the authenticator is lost.
#[component]
pub fn SignInHelp() -> impl IntoView {
    let contacts = Resource::new(|| (), |()| sign_in_help());
    view! {
        <Title text="Problem signing in?" />
        <section class="panel narrow">
            <h1>"Problem signing in?"</h1>
            <Suspense>
                {move || {
                    contacts
                        .get()
                        .map(|contacts| match contacts {
                            Err(_) => view! { <Redirect path="/sign-in" /> }.into_any(),
                            Ok(help) => {
                                view! {
                                    {if help.backup_codes {
                                        view! {
                                            <p>
                                                "Lost your authenticator app, or it shows no code? Sign in with one of the backup verification codes you saved."
                                            </p>
                                            <p>
                                                <a class="button primary" href="/sign-in/backup-code">
                                                    "Use Backup Verification code"
                                                </a>
                                            </p>
                                            <p class="muted">"No backup codes?"</p>
                                        }
                                            .into_any()
                                    } else {
                                        view! { <p class="status warn">{CODES_NOT_AVAILABLE}</p> }.into_any()
                                    }}
                                    <AdminContacts contacts=help.contacts />
                                    <p>
                                        <a href="/sign-in/verify">"Back to the verification code"</a>
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
