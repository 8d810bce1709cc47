//! Showing a form's errors next to the fields they are about, the same way whether the
//! form was posted by the hydrated app or as a plain HTML form (then the error comes back
//! in the URL, and the server-side action reads it from there).

use leptos::{prelude::*, server_fn::ServerFn};

use crate::error::AppError;

/// The last error of `action`, if its last run failed.
pub fn last_error<S>(action: ServerAction<S>) -> Signal<Option<AppError>>
where
    S: ServerFn<Error = AppError> + Clone + Send + Sync + 'static,
    S::Output: Send + Sync + 'static,
{
    Signal::derive(move || {
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
