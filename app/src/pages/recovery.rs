//! `/admin/recovery`: recovery codes for members who lost both their authenticator and
//! their backup codes. Requesting and approving are forms like any other; revealing is a
//! plain form posted to this page, which the server answers with the code, this once.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;

use crate::{
    api::recovery::{
        ApproveRecoveryCode, CancelRecoveryCode, RecoveryOverview, RequestRecoveryCode, RevealForm,
        RevealedCode, get_recovery_overview, reveal_recovery_code,
    },
    error::AppError,
    forms::{FieldMessage, FormMessage, invalid, last_error},
};

/// `/admin/recovery`.
#[component]
pub fn RecoveryPage() -> impl IntoView {
    let request = ServerAction::<RequestRecoveryCode>::new();
    let approve = ServerAction::<ApproveRecoveryCode>::new();
    let cancel = ServerAction::<CancelRecoveryCode>::new();
    // Present only while the server renders its answer to the "Reveal" form.
    let posted = use_context::<RevealForm>();
    let revealed = Resource::new(
        || (),
        move |()| {
            let posted = posted.clone();
            async move {
                match posted {
                    Some(form) => Some(reveal_recovery_code(form.request_id).await),
                    None => None,
                }
            }
        },
    );
    let overview = Resource::new(
        move || {
            (
                request.version().get(),
                approve.version().get(),
                cancel.version().get(),
            )
        },
        |_| get_recovery_overview(),
    );
    view! {
        <Title text="Recovery codes" />
        <Suspense>
            {move || {
                let (revealed, overview) = (revealed.get()?, overview.get()?);
                Some(match (revealed, overview) {
                    (Some(Ok(code)), _) => view! { <RevealedPanel code /> }.into_any(),
                    (_, Err(AppError::SignInRequired)) => view! { <Redirect path="/sign-in" /> }.into_any(),
                    (_, Err(error)) => {
                        view! {
                            <section class="panel">
                                <h1>"Recovery codes"</h1>
                                <p class="form-error">{error.to_string()}</p>
                            </section>
                        }
                            .into_any()
                    }
                    (revealed, Ok(overview)) => {
                        let reveal_error = revealed.and_then(Result::err);
                        view! { <RequestsPanel overview request approve cancel reveal_error /> }.into_any()
                    }
                })
            }}
        </Suspense>
    }
}

#[component]
fn RevealedPanel(code: RevealedCode) -> impl IntoView {
    view! {
        <section class="panel codes-sheet">
            <h1>"Recovery code"</h1>
            <p class="lead">
                "For " <strong>{code.member_email.clone()}</strong>
                ". Give it to them in person or over a channel you trust: it is shown this once."
            </p>
            <p class="recovery-code">
                <code class="backup-code">{code.code}</code>
            </p>
            <p class="code-terms">
                {format!(
                    "{}, at \u{201c}Problem signing in?\u{201d} \u{2192} \u{201c}Use Backup Verification code\u{201d}.",
                    code.terms
                )}
            </p>
            <p class="no-print">
                // A full page load: the code must not stay in the hydrated page's memory.
                <a href="/admin/recovery" rel="external">
                    "Done"
                </a>
            </p>
        </section>
    }
}

#[component]
fn RequestsPanel(
    overview: RecoveryOverview,
    request: ServerAction<RequestRecoveryCode>,
    approve: ServerAction<ApproveRecoveryCode>,
    cancel: ServerAction<CancelRecoveryCode>,
    reveal_error: Option<AppError>,
) -> impl IntoView {
    let approve_error = last_error(approve);
    let cancel_error = last_error(cancel);
    let reveal_error = Signal::stored(reveal_error);
    view! {
        <section class="panel">
            <h1>"Recovery codes"</h1>
            <p>
                "For a member who lost both their authenticator and their backup codes: a 12-digit code they enter where backup codes go. Your organization's policy allows lifetimes "
                {overview.lifetimes.clone()}
                {if overview.max_uses == 1 {
                    ", one use each.".to_owned()
                } else {
                    format!(", up to {} uses each.", overview.max_uses)
                }}
                {overview
                    .approval_required
                    .then_some(" Your organization's policy asks a second admin to approve each code before it is revealed.")}
                {overview
                    .approval_ends_at
                    .clone()
                    .map(|at| format!(" Two-admin approval was turned off and still applies until {at}."))}
            </p>
            <FormMessage error=reveal_error />
            <FormMessage error=approve_error />
            <FormMessage error=cancel_error />
            {if overview.codes_off {
                view! {
                    <p class="form-error" id="codes-off">
                        "Your organization's policy has recovery codes turned off: nobody may issue one, and codes issued before do not work. An owner or admin can turn them on in the policy."
                    </p>
                }
                    .into_any()
            } else {
                view! { <IssueForm overview=overview.clone() request /> }.into_any()
            }}
        </section>
        <section class="panel" id="requests">
            <h2>"Recovery codes"</h2>
            {if overview.requests.is_empty() {
                view! { <p>"No recovery codes in the last week."</p> }.into_any()
            } else {
                view! {
                    <table class="members requests">
                        <thead>
                            <tr>
                                <th scope="col">"Member"</th>
                                <th scope="col">"Requested"</th>
                                <th scope="col">"State"</th>
                                <th scope="col">"Works"</th>
                                <th scope="col">"Uses"</th>
                                <th scope="col"></th>
                            </tr>
                        </thead>
                        <tbody>
                            {overview
                                .requests
                                .into_iter()
                                .map(|r| {
                                    view! {
                                        <tr>
                                            <td>{r.member_email.clone()}</td>
                                            <td>{format!("{} by {}", r.requested_at, r.requested_by)}</td>
                                            <td class="request-state">
                                                <strong>{r.state.clone()}</strong>
                                                {r.approved_by.clone().map(|by| format!(" (approved by {by})"))}
                                                <br />
                                                <span class="request-reason">{r.reason.clone()}</span>
                                            </td>
                                            <td>{format!("{} \u{2013} {}", r.starts_at, r.expires_at)}</td>
                                            <td>{r.uses.clone()}</td>
                                            <td>
                                                {r
                                                    .can_approve
                                                    .then(|| {
                                                        view! {
                                                            <ActionForm action=approve>
                                                                <input type="hidden" name="request_id" value=r.id.to_string() />
                                                                <button type="submit">"Approve"</button>
                                                            </ActionForm>
                                                        }
                                                    })}
                                                {r
                                                    .can_reveal
                                                    .then(|| {
                                                        view! {
                                                            <form method="post" action="/admin/recovery">
                                                                <input type="hidden" name="request_id" value=r.id.to_string() />
                                                                <button type="submit" class="primary">"Reveal"</button>
                                                            </form>
                                                        }
                                                    })}
                                                {r
                                                    .open
                                                    .then(|| {
                                                        view! {
                                                            <ActionForm action=cancel>
                                                                <input type="hidden" name="request_id" value=r.id.to_string() />
                                                                <button
                                                                    type="submit"
                                                                    aria-label=format!("Cancel the recovery code for {}", r.member_email)
                                                                >
                                                                    "Cancel"
                                                                </button>
                                                            </ActionForm>
                                                        }
                                                    })}
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
        </section>
    }
}

/// The form that requests a code: the member, and its terms within the policy's rules.
#[component]
fn IssueForm(
    overview: RecoveryOverview,
    request: ServerAction<RequestRecoveryCode>,
) -> impl IntoView {
    let request_error = last_error(request);
    view! {
        <h2>"Issue a recovery code"</h2>
        <ActionForm action=request>
            <FormMessage error=request_error />
            <label for="recovery-email">"Member's email address"</label>
            <input id="recovery-email" name="email" type="email" maxlength="254" required aria-describedby="email-error" aria-invalid=invalid(request_error, "email") />
            <FieldMessage error=request_error field="email" />
            <label for="recovery-lifetime">"Lifetime"</label>
            <input
                id="recovery-lifetime"
                name="lifetime"
                type="text"
                maxlength="32"
                value=overview.default_lifetime.clone()
                aria-describedby="lifetime-hint lifetime-error"
                aria-invalid=invalid(request_error, "lifetime")
            />
            <p class="muted" id="lifetime-hint">
                {format!("e.g. 30m, 8h or 7d: {}.", overview.lifetimes)}
            </p>
            <FieldMessage error=request_error field="lifetime" />
            <label for="recovery-starts-at">"Starts (UTC)"</label>
            <input
                id="recovery-starts-at"
                name="starts_at"
                type="datetime-local"
                aria-describedby="starts-at-hint starts_at-error"
                aria-invalid=invalid(request_error, "starts_at")
            />
            <p class="muted" id="starts-at-hint">"Blank: from now; it works once revealed."</p>
            <FieldMessage error=request_error field="starts_at" />
            {(overview.max_uses > 1)
                .then(|| {
                    view! {
                        <label for="recovery-uses">"Uses"</label>
                        <input
                            id="recovery-uses"
                            name="uses"
                            type="number"
                            min="1"
                            max=overview.max_uses.to_string()
                            value="1"
                            aria-describedby="uses-error"
                            aria-invalid=invalid(request_error, "uses")
                        />
                        <FieldMessage error=request_error field="uses" />
                    }
                })}
            <button type="submit" class="primary">
                "Request recovery code"
            </button>
        </ActionForm>
    }
}
