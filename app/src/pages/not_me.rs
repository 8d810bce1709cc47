//! `/not-me?token=…`: "This wasn't me", opened from the link in a security notice. The page
//! says which account the link is about and what confirming does; the confirmation is a
//! plain form, so it works without JavaScript. `/not-me/reported` says what was done.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::{
    api::not_me::{ReportNotMe, check_not_me_link},
    forms::{FormMessage, last_error},
};

/// `/not-me?token=…`.
#[component]
pub fn NotMePage() -> impl IntoView {
    let query = leptos_router::hooks::use_query_map();
    let token = move || query.with(|q| q.get("token")).unwrap_or_default();
    let link = Resource::new(token, check_not_me_link);
    let report = ServerAction::<ReportNotMe>::new();
    let error = last_error(report);
    view! {
        <Title text="This wasn't me" />
        <section class="panel">
            <h1>"This wasn't me"</h1>
            <FormMessage error />
            <Suspense>
                {move || {
                    link.get()
                        .map(|link| match link {
                            Ok(link) => {
                                view! {
                                    <p class="lead">
                                        "Secure the account " <strong>{link.email}</strong>
                                        " if a security notice described something you did not do."
                                    </p>
                                    <p>"Confirming will at once:"</p>
                                    <ul>
                                        <li>"stop your backup codes, and cancel any sign-in code an administrator issued for you;"</li>
                                        <li>"sign out every session of your account, on every device;"</li>
                                        <li>"tell your organization's administrators, and record the report in the audit log."</li>
                                    </ul>
                                    <p>
                                        "Nothing secret is asked for. This link works once, until "
                                        {link.expires_at} "."
                                    </p>
                                    <ActionForm action=report>
                                        <input type="hidden" name="token" value=token />
                                        <button type="submit" class="primary danger">
                                            "This wasn't me: secure my account"
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
                                        "If something on your account worries you, contact your organization's administrators."
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

/// `/not-me/reported`: after the report.
#[component]
pub fn NotMeReportedPage() -> impl IntoView {
    view! {
        <Title text="Report taken" />
        <section class="panel">
            <h1>"Your report was taken"</h1>
            <p class="lead">
                "Your backup codes and any sign-in code issued for you no longer work, and every session of your account was signed out."
            </p>
            <p>"Your organization's administrators were told, and the report is in the audit log."</p>
            <p>
                "Next: sign in again, change your password if someone may know it, and generate new backup codes. Tell an administrator what you saw."
            </p>
            <p>
                <a href="/sign-in">"Sign in"</a>
            </p>
        </section>
    }
}
