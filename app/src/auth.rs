//! Who is asking: the session, the signed-in member, and the steps of signing in.
//!
//! Server-only. Sessions live in the application database (see `server::sessions`); the
//! browser holds only the session cookie.

use chrono::Utc;
use domain::{accounts, audit::Source, command::Command, identity::Member, sign_in::SessionLimit};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use crate::{error::AppError, state::AppState};

/// The signed-in member's id.
const MEMBER: &str = "member_id";
/// When the member last proved who they are (Unix seconds), for recent-authentication checks.
const AUTHENTICATED_AT: &str = "authenticated_at";
/// When the member signed in (Unix seconds): the session ends a fixed time after, however
/// active ([`AppState::session_lifetime`]).
const SIGNED_IN_AT: &str = "signed_in_at";
/// The account's session number at sign-in; raising the account's ends this session.
const SESSION_EPOCH: &str = "session_epoch";
/// The email typed at the first sign-in step.
const SIGN_IN_EMAIL: &str = "sign_in.email";
/// Set after a sign-in with a backup code when the organization allows only MFA settings
/// until the authenticator is set up again or new codes are generated
/// ([`SessionLimit::MfaSettings`]).
const ONLY_MFA_SETTINGS: &str = "only_mfa_settings";
/// Set after a sign-in with a backup code that left the member's codes running low, when
/// the organization requires a new set then ([`SessionLimit::NewSet`]).
const NEW_SET_OWED: &str = "new_set_owed";
/// A member who passed the password step and still owes a second factor.
const SIGN_IN_PENDING: &str = "sign_in.pending";

/// How long the second-factor step stays open after the password step.
const PENDING_LIMIT_SECONDS: i64 = 10 * 60;

/// A password checked, a second factor still to come.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct PendingSignIn {
    pub member_id: i32,
    pub since: i64,
    /// Wrong codes so far.
    #[serde(default)]
    pub failures: u8,
}

/// The request's session.
pub async fn session() -> Result<Session, AppError> {
    leptos_axum::extract::<Session>()
        .await
        .map_err(|cause| AppError::Internal.logged("session layer missing", &cause))
}

fn storage(cause: tower_sessions::session::Error) -> AppError {
    AppError::Internal.logged("session store", &cause)
}

/// The signed-in member, if any. The session is over, and deleted, when the member was
/// removed since, when all their sessions were ended (sign-out elsewhere, an admin's MFA
/// reset), or when it is older than the server's session lifetime.
pub async fn current_member(
    state: &AppState,
    session: &Session,
) -> Result<Option<Member>, AppError> {
    let Some(id) = session.get::<i32>(MEMBER).await.map_err(storage)? else {
        return Ok(None);
    };
    let epoch: Option<i32> = session.get(SESSION_EPOCH).await.map_err(storage)?;
    let signed_in_at: Option<i64> = session.get(SIGNED_IN_AT).await.map_err(storage)?;
    let within_lifetime = signed_in_at
        .is_some_and(|at| Utc::now().timestamp() - at < state.session_lifetime.num_seconds());
    match accounts::member(&state.db, id).await? {
        Some(member) if within_lifetime && epoch == Some(member.session_epoch) => Ok(Some(member)),
        _ => {
            session.flush().await.map_err(storage)?;
            Ok(None)
        }
    }
}

/// The member the session was signed in as, unchecked (removed since, or the session ended
/// by a sign-out elsewhere, is found out by [`current_member`]): enough to count attempts
/// per account before any work.
pub async fn claimed_member_id(session: &Session) -> Result<Option<i32>, AppError> {
    session.get::<i32>(MEMBER).await.map_err(storage)
}

/// The signed-in member, or [`AppError::SignInRequired`].
pub async fn require_member(state: &AppState, session: &Session) -> Result<Member, AppError> {
    current_member(state, session)
        .await?
        .ok_or(AppError::SignInRequired)
}

/// The domain command of `member` acting through this request, judged at this moment.
pub fn command<'a>(state: &'a AppState, member: &'a Member, source: &'a Source) -> Command<'a> {
    Command::new(&state.db, &state.authz, member, source, Utc::now())
}

/// A request from a signed-in member: what a server function for members starts from.
pub struct SignedIn {
    pub state: AppState,
    pub session: Session,
    pub member: Member,
    /// Where the request came from, for the audit log.
    pub source: Source,
}

/// The state, the session and the signed-in member, or [`AppError::SignInRequired`].
pub async fn signed_in() -> Result<SignedIn, AppError> {
    let state = crate::state::app_state()?;
    let session = session().await?;
    let member = require_member(&state, &session).await?;
    Ok(SignedIn {
        state,
        session,
        member,
        source: request_source(),
    })
}

/// A request from a member who passed the password step and owes a second factor.
pub struct PendingMember {
    pub state: AppState,
    pub session: Session,
    pub pending: PendingSignIn,
    pub member: Member,
    /// Where the request came from, for the audit log.
    pub source: Source,
}

/// The state, the session and the member owing a second factor, or
/// [`AppError::SignInRequired`] when the password step is not (or no longer) passed.
pub async fn pending_member() -> Result<PendingMember, AppError> {
    let state = crate::state::app_state()?;
    let session = session().await?;
    let pending = pending_second_factor(&session)
        .await?
        .ok_or(AppError::SignInRequired)?;
    let member = accounts::member(&state.db, pending.member_id)
        .await?
        .ok_or(AppError::SignInRequired)?;
    Ok(PendingMember {
        state,
        session,
        pending,
        member,
        source: request_source(),
    })
}

/// Why a session limited by `limit` reaches only the member's MFA settings, and what lifts
/// it, as the member reads it (the banner on their backup-codes page, and every refusal).
pub fn limit_explained(limit: SessionLimit) -> &'static str {
    match limit {
        SessionLimit::MfaSettings => {
            "You signed in with a backup code. Generate new codes or set up your authenticator again first: until then only your MFA settings are available."
        }
        SessionLimit::NewSet => {
            "You signed in with a backup code and your codes are running low. Your organization asks you to generate a new set first: until then only your MFA settings are available."
        }
        SessionLimit::CodesRequired => {
            "Your organization requires backup codes, and the date to generate them has passed. Generate a set first: until then only your MFA settings are available."
        }
    }
}

/// The refusal of everything beyond the member's own MFA settings, sign-out and the public
/// pages, while this session is limited to them ([`session_limit`]). The server refuses
/// such requests in one layer, before any route runs (`server::restriction`), with this.
pub fn beyond_mfa_settings(limit: SessionLimit) -> AppError {
    AppError::Refused(limit_explained(limit).into())
}

/// Like [`signed_in`], for a sensitive change: an administrator's (members, policy,
/// recovery codes) or a member's own to how they sign in (a new authenticator). Refused
/// with [`AppError::ReauthenticationRequired`] unless the member proved who they are within
/// the re-authentication window, so that a session left open is not enough to change who
/// may do what, or to see and replace a second factor.
pub async fn sensitive_change() -> Result<SignedIn, AppError> {
    let signed_in = signed_in().await?;
    if !recently_authenticated(&signed_in.state, &signed_in.session).await? {
        return Err(AppError::ReauthenticationRequired);
    }
    Ok(signed_in)
}

/// `next` if it is a path of this site to go back to after a step, else `/account`: never
/// another site (`//evil.example`, `https://…`), so the parameter cannot send people away,
/// and never with a form error in it ([`crate::without_form_error`]): the redirect to it
/// would otherwise carry that error as one this server sent, and a crafted `next` would put
/// its sentence on Lifeline's page.
pub fn local_path(next: &str) -> String {
    let safe = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && next.chars().all(|c| c.is_ascii_graphic());
    if !safe {
        return "/account".to_owned();
    }
    let (address, fragment) = match next.split_once('#') {
        Some((address, fragment)) => (address, Some(fragment)),
        None => (next, None),
    };
    let mut path = match address.split_once('?') {
        Some((path, query)) => match crate::without_form_error(query) {
            query if query.is_empty() => path.to_owned(),
            query => format!("{path}?{query}"),
        },
        None => address.to_owned(),
    };
    if let Some(fragment) = fragment {
        path.push('#');
        path.push_str(fragment);
    }
    path
}

/// The session's key for `limit`, when a backup-code sign-in sets it; `None` for
/// [`SessionLimit::CodesRequired`], which is the member's standing, read on every request.
fn limit_key(limit: SessionLimit) -> Option<&'static str> {
    match limit {
        SessionLimit::MfaSettings => Some(ONLY_MFA_SETTINGS),
        SessionLimit::NewSet => Some(NEW_SET_OWED),
        SessionLimit::CodesRequired => None,
    }
}

/// How a backup-code sign-in limited this session to MFA settings, if it did: a new set
/// owed first, being the stricter.
pub async fn session_limit(session: &Session) -> Result<Option<SessionLimit>, AppError> {
    for limit in [SessionLimit::NewSet, SessionLimit::MfaSettings] {
        let Some(key) = limit_key(limit) else {
            continue;
        };
        if session.get::<bool>(key).await.map_err(storage)? == Some(true) {
            return Ok(Some(limit));
        }
    }
    Ok(None)
}

/// How this session is limited to MFA settings now, if it is: by its backup-code sign-in
/// ([`session_limit`]), else by the member's standing under "Required" once their deadline
/// has passed ([`domain::org_policy::grace`]), read from the database on each call so that
/// it binds sessions signed in before the deadline and lifts the moment they comply.
pub async fn limit_now(
    state: &AppState,
    session: &Session,
) -> Result<Option<SessionLimit>, AppError> {
    if let Some(limit) = session_limit(session).await? {
        return Ok(Some(limit));
    }
    let Some(member) = current_member(state, session).await? else {
        return Ok(None);
    };
    Ok(codes_required(&deadline_of(state, &member).await?))
}

/// `member`'s deadline under "Required", if they do not comply and it sets a date.
pub async fn deadline_of(
    state: &AppState,
    member: &Member,
) -> Result<Option<domain::org_policy::grace::Deadline>, AppError> {
    Ok(
        domain::org_policy::grace::member_deadline(&state.db, &state.authz, member, Utc::now())
            .await?,
    )
}

/// [`SessionLimit::CodesRequired`] once `deadline` has passed.
pub fn codes_required(
    deadline: &Option<domain::org_policy::grace::Deadline>,
) -> Option<SessionLimit> {
    deadline
        .is_some_and(|deadline| deadline.passed())
        .then_some(SessionLimit::CodesRequired)
}

/// Limits this session to MFA settings after a sign-in with a backup code
/// ([`domain::sign_in::BackupSignIn::limit`]).
///
/// It also closes the recent-authentication window that the sign-in opened: a backup code
/// is not the password typed again, and lifting the limit asks for that
/// ([`confirm_recent_authentication`] before new codes, [`may_lift_session_limit`] before a
/// new authenticator).
pub async fn limit_session(session: &Session, limit: SessionLimit) -> Result<(), AppError> {
    let key = limit_key(limit).ok_or_else(|| {
        AppError::Internal.logged(
            "limit_session",
            &format!("{limit:?} is not kept in sessions"),
        )
    })?;
    session
        .remove_value(AUTHENTICATED_AT)
        .await
        .map_err(storage)?;
    session.insert(key, true).await.map_err(storage)
}

/// What the member did to secure their account again after a backup-code sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secured {
    /// A new set of backup codes: lifts every limit.
    NewCodes,
    /// A new authenticator: lifts [`SessionLimit::MfaSettings`], not a new set owed.
    NewAuthenticator,
}

/// Lifts the limits on this session that what the member did (`secured`) answers.
pub async fn lift_session_limit(session: &Session, secured: Secured) -> Result<(), AppError> {
    let lifted: &[SessionLimit] = match secured {
        Secured::NewCodes => &[SessionLimit::MfaSettings, SessionLimit::NewSet],
        Secured::NewAuthenticator => &[SessionLimit::MfaSettings],
    };
    for key in lifted.iter().filter_map(|limit| limit_key(*limit)) {
        session.remove_value(key).await.map_err(storage)?;
    }
    Ok(())
}

/// `Ok` when the change about to be made may lift this session's limit to MFA settings:
/// the session is not limited, or the member typed their password again since the sign-in
/// with a backup code (which opened no recent-authentication window). Otherwise
/// [`AppError::ReauthenticationRequired`], whose message links to confirming the password.
pub async fn may_lift_session_limit(state: &AppState, session: &Session) -> Result<(), AppError> {
    if session_limit(session).await?.is_some() && !recently_authenticated(state, session).await? {
        return Err(AppError::ReauthenticationRequired);
    }
    Ok(())
}

/// Remembers the email typed at the first step.
pub async fn remember_email(session: &Session, email: &str) -> Result<(), AppError> {
    session
        .remove_value(SIGN_IN_PENDING)
        .await
        .map_err(storage)?;
    session.insert(SIGN_IN_EMAIL, email).await.map_err(storage)
}

/// The email typed at the first step, if the member got that far.
pub async fn remembered_email(session: &Session) -> Result<Option<String>, AppError> {
    session.get(SIGN_IN_EMAIL).await.map_err(storage)
}

/// Records that the password was right and a second factor is owed. The session id
/// changes here already, so an id planted before the password step is useless for the code
/// step.
pub async fn await_second_factor(session: &Session, member: &Member) -> Result<(), AppError> {
    session.cycle_id().await.map_err(storage)?;
    let pending = PendingSignIn {
        member_id: member.id,
        since: Utc::now().timestamp(),
        failures: 0,
    };
    session
        .insert(SIGN_IN_PENDING, pending)
        .await
        .map_err(storage)
}

/// Counts a wrong code; after `allowed_attempts` (the organization's lockout setting) the
/// pending sign-in is dropped and the password must be typed again, so each batch of
/// guesses costs an argon2 verification. Returns whether the member may still try.
/// (Per-account lockout across sessions is the hardening issue's.)
pub async fn count_wrong_code(
    session: &Session,
    mut pending: PendingSignIn,
    allowed_attempts: u8,
) -> Result<bool, AppError> {
    pending.failures = pending.failures.saturating_add(1);
    if pending.failures >= allowed_attempts {
        session
            .remove_value(SIGN_IN_PENDING)
            .await
            .map_err(storage)?;
        return Ok(false);
    }
    session
        .insert(SIGN_IN_PENDING, pending)
        .await
        .map_err(storage)?;
    Ok(true)
}

/// The member owing a second factor, if the password step was passed recently enough.
pub async fn pending_second_factor(session: &Session) -> Result<Option<PendingSignIn>, AppError> {
    let pending: Option<PendingSignIn> = session.get(SIGN_IN_PENDING).await.map_err(storage)?;
    Ok(pending.filter(|p| Utc::now().timestamp() - p.since <= PENDING_LIMIT_SECONDS))
}

/// Signs `member` in: a new session id (so a session fixed before sign-in is worthless),
/// the sign-in steps forgotten, the member and the time remembered, and this browser given
/// the member's device cookie.
pub async fn complete_sign_in(
    state: &AppState,
    session: &Session,
    member: &Member,
    source: &domain::audit::Source,
) -> Result<(), AppError> {
    remember_device(state, member, source);
    session.cycle_id().await.map_err(storage)?;
    session.remove_value(SIGN_IN_EMAIL).await.map_err(storage)?;
    session
        .remove_value(SIGN_IN_PENDING)
        .await
        .map_err(storage)?;
    // A sign-in starts unlimited: new codes lift every limit, so the same keys go.
    lift_session_limit(session, Secured::NewCodes).await?;
    session.insert(MEMBER, member.id).await.map_err(storage)?;
    session
        .insert(SESSION_EPOCH, member.session_epoch)
        .await
        .map_err(storage)?;
    let now = Utc::now().timestamp();
    session.insert(SIGNED_IN_AT, now).await.map_err(storage)?;
    session.insert(AUTHENTICATED_AT, now).await.map_err(storage)
}

/// Whether the member proved who they are within the server's re-authentication window
/// (`AppState::reauthenticate_after`, ten minutes unless configured).
pub async fn recently_authenticated(state: &AppState, session: &Session) -> Result<bool, AppError> {
    let at: Option<i64> = session.get(AUTHENTICATED_AT).await.map_err(storage)?;
    Ok(at.is_some_and(|at| Utc::now().timestamp() - at < state.reauthenticate_after.num_seconds()))
}

/// `Ok` if the member authenticated recently, or proves it now with `password`, which then
/// starts a new recent-authentication window. Otherwise a message for the password field.
pub async fn confirm_recent_authentication(
    state: &AppState,
    session: &Session,
    member: &Member,
    password: Option<&str>,
) -> Result<(), AppError> {
    if recently_authenticated(state, session).await? {
        return Ok(());
    }
    let invalid = |message: &str| AppError::Invalid {
        field: "password".into(),
        message: message.into(),
    };
    let password = password
        .filter(|p| !p.is_empty())
        .ok_or_else(|| invalid("Enter your password again to confirm it is you."))?;
    // No account has a longer password; refusing it spares an argon2 run on megabytes.
    if password.chars().count() > accounts::MAX_PASSWORD_CHARS {
        return Err(invalid("That password is not correct."));
    }
    let password = domain::secrets::Password::new(password);
    if !accounts::confirm_password(
        &state.db,
        &state.hasher,
        member,
        &password,
        &request_source(),
        Utc::now(),
    )
    .await?
    {
        return Err(invalid("That password is not correct."));
    }
    session
        .insert(AUTHENTICATED_AT, Utc::now().timestamp())
        .await
        .map_err(storage)
}

/// The address a request comes from: the TCP peer, or the client a trusted proxy names. The
/// server works it out once per request (`server::client_ip`) and puts it on the request;
/// the throttle and the audit log both read it from there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub std::net::IpAddr);

/// Where the current request came from, for the audit log: the client's address (the full
/// address, where the throttle groups IPv6 ones by network) and the browser's user agent.
pub fn request_source() -> domain::audit::Source {
    let Some(parts) = leptos::prelude::use_context::<http::request::Parts>() else {
        return domain::audit::Source::default();
    };
    source_of(&parts)
}

/// Where the request with these `parts` came from, for the audit log: for the server's own
/// routes, outside server functions.
pub fn source_of(parts: &http::request::Parts) -> domain::audit::Source {
    let ip = parts
        .extensions
        .get::<ClientAddress>()
        .map(|ClientAddress(ip)| ip.to_string());
    let user_agent = parts
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|agent| agent.to_str().ok())
        .map(str::to_owned);
    domain::audit::Source {
        ip,
        user_agent,
        device: request_device(parts),
    }
}

/// The device cookie a browser gets when it completes a sign-in ([`domain::device`]).
const DEVICE_COOKIE: &str = "lifeline_device";
/// How long a browser stays a known device of the account after its last sign-in.
const DEVICE_COOKIE_DAYS: i64 = 180;

/// The device this request's cookie names, if this server signed it.
fn request_device(parts: &http::request::Parts) -> Option<domain::device::Device> {
    let state = leptos::prelude::use_context::<AppState>()?;
    device_of(&state.secret_key, &parts.headers)
}

/// The device named by the `lifeline_device` cookie among `headers`, if `key` signed it.
pub fn device_of(
    key: &domain::secrets::SecretKey,
    headers: &http::HeaderMap,
) -> Option<domain::device::Device> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|header| header.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == DEVICE_COOKIE)
        .and_then(|cookie| domain::device::Device::from_cookie_value(key, cookie.value()))
}

/// Gives this browser the device cookie of `member`, who just completed a sign-in: the
/// device it had for them, or a new one. Their sign-in attempts from this browser are
/// counted apart from strangers' from now on.
fn remember_device(state: &AppState, member: &Member, source: &domain::audit::Source) {
    let device = source
        .device
        .clone()
        .filter(|device| device.member_id == member.id)
        .unwrap_or_else(|| domain::device::Device::new(member.id));
    let cookie = cookie::Cookie::build((DEVICE_COOKIE, device.cookie_value(&state.secret_key)))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .secure(state.secure_cookies)
        .max_age(cookie::time::Duration::days(DEVICE_COOKIE_DAYS))
        .build();
    if let (Some(response), Ok(value)) = (
        leptos::prelude::use_context::<leptos_axum::ResponseOptions>(),
        http::HeaderValue::from_str(&cookie.to_string()),
    ) {
        response.append_header(http::header::SET_COOKIE, value);
    }
}

/// Signs out: this session is deleted from the store and its cookie cleared, and the
/// member's other sessions (other browsers, other devices) end too.
pub async fn sign_out(state: &AppState, session: &Session) -> Result<(), AppError> {
    if let Some(id) = session.get::<i32>(MEMBER).await.map_err(storage)? {
        accounts::end_sessions(&state.db, id).await?;
    }
    session.flush().await.map_err(storage)
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn only_paths_of_this_site_are_followed_after_a_step() {
        for kept in [
            "/admin/members",
            "/admin/audit?days=7&outcome=denied",
            "/",
            "/admin/groups?exception=1#group-exception",
        ] {
            assert_eq!(local_path(kept), kept);
        }
        // A form error never travels in a `next`, however its names are written.
        for (with_error, clean) in [
            (
                "/admin/members?__path=%2Fapi%2Fx&__err=eyJ9",
                "/admin/members",
            ),
            (
                "/admin/audit?days=7&%5F%5Ferr=a&__path=b",
                "/admin/audit?days=7",
            ),
            (
                "/admin/groups?__err=a&exception=1#group-exception",
                "/admin/groups?exception=1#group-exception",
            ),
        ] {
            assert_eq!(local_path(with_error), clean, "{with_error}");
        }
        for sent_home in [
            "//evil.example/admin",
            "https://evil.example",
            "/\\evil.example",
            "admin/members",
            "",
            "/admin members",
            "javascript:alert(1)",
        ] {
            assert_eq!(local_path(sent_home), "/account", "{sent_home}");
        }
    }
}
