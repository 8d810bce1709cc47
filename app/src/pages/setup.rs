//! `/setup?token=…`: the first run of an installation. While no organization exists, the
//! server prints this link in its log; the page creates the organization and its owner, then
//! goes straight on to setting up MFA. A plain form: it works without JavaScript.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::{
    api::setup::{SetUpInstallation, check_setup_link},
    forms::{FieldMessage, FormMessage, invalid, last_error},
};

/// `/setup?token=…`.
#[component]
pub fn SetupPage() -> impl IntoView {
    let query = leptos_router::hooks::use_query_map();
    let token = move || query.with(|q| q.get("token")).unwrap_or_default();
    let link = Resource::new(token, check_setup_link);
    let create = ServerAction::<SetUpInstallation>::new();
    let error = last_error(create);
    view! {
        <Title text="Set up Lifeline" />
        <section class="panel narrow">
            <h1>"Set up Lifeline"</h1>
            <Suspense>
                {move || {
                    link.get()
                        .map(|link| match link {
                            Ok(()) => {
                                view! {
                                    <p class="lead">
                                        "Create your organization and its first owner. You will set up multi-factor authentication next."
                                    </p>
                                    <ActionForm action=create>
                                        <FormMessage error />
                                        <input type="hidden" name="token" value=token />
                                        <label for="name">"Organization name"</label>
                                        <input
                                            id="name"
                                            name="name"
                                            type="text"
                                            autocomplete="organization"
                                            maxlength="100"
                                            required
                                            autofocus
                                            aria-describedby="name-error"
                                            aria-invalid=invalid(error, "name")
                                        />
                                        <FieldMessage error field="name" />
                                        <label for="email">"Your email address"</label>
                                        <input
                                            id="email"
                                            name="email"
                                            type="email"
                                            autocomplete="username"
                                            maxlength="254"
                                            required
                                            aria-describedby="email-error"
                                            aria-invalid=invalid(error, "email")
                                        />
                                        <FieldMessage error field="email" />
                                        <label for="password">"Password"</label>
                                        <input
                                            id="password"
                                            name="password"
                                            type="password"
                                            autocomplete="new-password"
                                            minlength="10"
                                            maxlength="256"
                                            required
                                            aria-describedby="password-hint password-error"
                                            aria-invalid=invalid(error, "password")
                                        />
                                        <p class="muted" id="password-hint">"At least 10 characters."</p>
                                        <FieldMessage error field="password" />
                                        <label for="confirm">"Password again"</label>
                                        <input
                                            id="confirm"
                                            name="confirm"
                                            type="password"
                                            autocomplete="new-password"
                                            maxlength="256"
                                            required
                                            aria-describedby="confirm-error"
                                            aria-invalid=invalid(error, "confirm")
                                        />
                                        <FieldMessage error field="confirm" />
                                        <button type="submit" class="primary">
                                            "Create organization"
                                        </button>
                                    </ActionForm>
                                }
                                    .into_any()
                            }
                            Err(error) => {
                                view! {
                                    <p class="form-error" role="alert">
                                        {error.to_string()}
                                    </p>
                                    <p>
                                        <a href="/sign-in">"Sign in"</a>
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
