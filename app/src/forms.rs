//! Showing a form's errors next to the fields they are about, the same way whether the
//! form was posted by the hydrated app or as a plain HTML form (then the error comes back
//! in the URL, and the server-side action reads it from there).
//!
//! An error in the URL is shown only on the page the server served at that URL: the server
//! lets such a page through only with an error it sent there itself (`server::form_errors`),
//! and a later move to another URL inside the hydrated app, which the server never sees,
//! shows none from its URL ([`ServedPage`]).

use leptos::{prelude::*, server_fn::ServerFn};
use leptos_router::hooks::use_location;

use crate::error::AppError;

/// The query string of the address the server served this page at.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServedQuery(String);

/// Remembers the address the page was served at (on the server: the request's; in the
/// browser: the one it hydrates), for [`last_result`]. Wraps everything inside the router.
#[component]
pub fn ServedPage(children: Children) -> impl IntoView {
    provide_context(ServedQuery(use_location().search.get_untracked()));
    children()
}

/// Whether the page being built is at the address the server served: an error in its URL
/// is then one the server let through.
fn at_served_address() -> bool {
    let here = use_location().search.get_untracked();
    use_context::<ServedQuery>().is_some_and(|ServedQuery(served)| served == here)
}

/// Whether `action`'s value may be shown: it came from a run on this page, or it is the error
/// in the URL of the page the server served (an action that never ran holds its URL's).
fn value_shown<S>(action: ServerAction<S>) -> impl Fn() -> bool + Copy + Send + Sync + 'static
where
    S: ServerFn + Clone + Send + Sync + 'static,
    S::Output: Send + Sync + 'static,
    S::Error: Send + Sync + 'static,
{
    let url_error_shown = at_served_address();
    move || url_error_shown || action.version().get() > 0
}

/// The last result of `action`: of its last run from this page, or else, on the page the
/// server served, the error a plain form's post left in the URL.
pub fn last_result<S>(action: ServerAction<S>) -> Signal<Option<Result<S::Output, AppError>>>
where
    S: ServerFn<Error = AppError> + Clone + Send + Sync + 'static,
    S::Output: Clone + Send + Sync + 'static,
{
    let shown = value_shown(action);
    Signal::derive(move || if shown() { action.value().get() } else { None })
}

/// The last error of `action`, if its last run failed (see [`last_result`] for which runs).
pub fn last_error<S>(action: ServerAction<S>) -> Signal<Option<AppError>>
where
    S: ServerFn<Error = AppError> + Clone + Send + Sync + 'static,
    S::Output: Send + Sync + 'static,
{
    let shown = value_shown(action);
    Signal::derive(move || {
        if !shown() {
            return None;
        }
        action.value().with(|value| {
            value
                .as_ref()
                .and_then(|result| result.as_ref().err().cloned())
        })
    })
}

/// The message under one field, when the last error was about it.
#[component]
pub fn FieldMessage(
    /// The last error of the form's action.
    error: Signal<Option<AppError>>,
    /// The field's name, as the server function's argument is called.
    field: &'static str,
) -> impl IntoView {
    move || {
        error
            .get()
            .and_then(|error| error.for_field(field))
            .map(|message| {
                view! {
                    <p class="field-error" id=format!("{field}-error") role="alert">
                        {message}
                    </p>
                }
            })
    }
}

/// `aria-invalid` for the input of `field`: `"true"` while the last error is about it, else
/// left out. With `aria-describedby="<field>-error"` on the input, a screen reader reads the
/// [`FieldMessage`] with the field (WCAG 2.2 SC 3.3.1, 4.1.2).
pub fn invalid(
    error: Signal<Option<AppError>>,
    field: &'static str,
) -> impl Fn() -> Option<&'static str> + Send + Sync + Copy + 'static {
    move || {
        error
            .with(|error| error.as_ref().and_then(|error| error.for_field(field)))
            .map(|_| "true")
    }
}

/// The message at the top of a form, for errors that are not about one field. When the
/// change needs the password again, a link to confirm it and come back to this page.
#[component]
pub fn FormMessage(error: Signal<Option<AppError>>) -> impl IntoView {
    let location = leptos_router::hooks::use_location();
    move || {
        error.get().and_then(|error| {
            let reauthenticate = matches!(error, AppError::ReauthenticationRequired);
            let message = error.for_form()?;
            let (path, search) = (location.pathname.get(), location.search.get());
            let search = search.trim_start_matches('?');
            let here = if search.is_empty() {
                path
            } else {
                format!("{path}?{search}")
            };
            let confirm = format!("/account/confirm?next={}", percent_encode(&here));
            Some(view! {
                <p class="form-error" role="alert">
                    {message}
                    {reauthenticate
                        .then(|| view! { " " <a href=confirm rel="external">"Confirm it's you"</a> })}
                </p>
            })
        })
    }
}

/// The "Verification code" field: six digits from an authenticator app.
#[component]
pub fn CodeInput(
    /// The last error of the form's action.
    error: Signal<Option<AppError>>,
    #[prop(optional)] autofocus: bool,
) -> impl IntoView {
    view! {
        <label for="code">"Verification code"</label>
        <input
            id="code"
            name="code"
            type="text"
            inputmode="numeric"
            autocomplete="one-time-code"
            maxlength="16"
            required
            autofocus=autofocus
            aria-describedby="code-error"
            aria-invalid=invalid(error, "code")
        />
        <FieldMessage error field="code" />
    }
}

/// `text` percent-encoded, leaving only unreserved characters as they are (for `data:` URLs
/// and query strings built on the page).
pub fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}
