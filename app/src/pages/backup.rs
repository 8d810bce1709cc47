//! `/admin/backup`, for owners (and admins when the policy lets them): "Request data backup".
//! A complete backup of the organization, encrypted to a passphrase the requester chooses,
//! built in the background while the page shows its progress (reloading itself every two
//! seconds while one is being built), then downloadable for a week.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;

use crate::{
    api::backups::{BackupRow, BackupsOverview, DeleteBackup, RequestBackup, get_backups},
    error::AppError,
    forms::{FieldMessage, FormMessage, invalid, last_error},
};

/// `/admin/backup`.
#[component]
pub fn BackupPage() -> impl IntoView {
    let request = ServerAction::<RequestBackup>::new();
    let delete = ServerAction::<DeleteBackup>::new();
    let overview = Resource::new(
        move || (request.version().get(), delete.version().get()),
        |_| get_backups(),
    );
    let query = leptos_router::hooks::use_query_map();
    let requested = move || query.with(|q| q.get("requested").is_some());
    let deleted = move || query.with(|q| q.get("deleted").is_some());
    view! {
        <Title text="Data backup" />
        <Transition>
            {move || {
                overview
                    .get()
                    .map(|overview| match overview {
                        Err(AppError::SignInRequired) => {
                            view! { <Redirect path="/sign-in" /> }.into_any()
                        }
                        Err(error) => {
                            view! {
                                <section class="panel">
                                    <h1>"Data backup"</h1>
                                    <p class="form-error" role="alert">{error.to_string()}</p>
                                </section>
                            }
                                .into_any()
                        }
                        Ok(overview) => {
                            view! {
                                <BackupPanel
                                    overview
                                    request
                                    delete
                                    requested=requested()
                                    deleted=deleted()
                                />
                            }
                                .into_any()
                        }
                    })
            }}
        </Transition>
    }
}

#[component]
fn BackupPanel(
    overview: BackupsOverview,
    request: ServerAction<RequestBackup>,
    delete: ServerAction<DeleteBackup>,
    requested: bool,
    deleted: bool,
) -> impl IntoView {
    let request_error = last_error(request);
    let delete_error = last_error(delete);
    let building = overview.building();
    let used_up = overview.requested_today >= overview.per_day;
    view! {
        // The page follows a backup being built by reloading itself.
        {building.then(|| view! { <meta http-equiv="refresh" content="2" /> })}
        <section class="panel">
            <h1>"Data backup"</h1>
            <p class="lead">
                "A complete backup of your organization: its members and roles, their password hashes, authenticator secrets and backup codes, every policy version and exception, the whole audit log and its signed head, alerts and webhooks — read at one instant, and encrypted to a passphrase you choose."
            </p>
            <p>
                {format!(
                    "It is built in the background; you are told in the app and by email when it is ready. Only you can download it, for {} days, then it is deleted. Your organization may request {} a day ({} in the last 24 hours).",
                    overview.kept_days,
                    overview.per_day,
                    overview.requested_today,
                )}
            </p>
            {requested
                .then(|| {
                    view! {
                        <p class="status ok" role="status">
                            "Backup requested: it is being built below."
                        </p>
                    }
                })}
            {deleted
                .then(|| view! { <p class="status ok" role="status">"Backup deleted."</p> })}
            <FormMessage error=delete_error />
            <BackupList backups=overview.backups delete />
        </section>
        <section class="panel" id="request-backup">
            <h2>"Request a backup"</h2>
            <p>
                "Choose a passphrase that is hard to guess (four or more unrelated words work well) and keep it apart from the file: without it, nobody can open the backup — not you, not us."
            </p>
            <ActionForm action=request>
                <FormMessage error=request_error />
                <fieldset disabled=used_up>
                    <label for="backup-passphrase">"Passphrase"</label>
                    <input
                        id="backup-passphrase"
                        name="passphrase"
                        type="password"
                        autocomplete="new-password"
                        minlength="12"
                        required
                        aria-describedby="passphrase-error"
                        aria-invalid=invalid(request_error, "passphrase")
                    />
                    <FieldMessage error=request_error field="passphrase" />
                    <label for="backup-passphrase-again">"Passphrase again"</label>
                    <input
                        id="backup-passphrase-again"
                        name="passphrase_again"
                        type="password"
                        autocomplete="new-password"
                        required
                        aria-describedby="passphrase_again-error"
                        aria-invalid=invalid(request_error, "passphrase_again")
                    />
                    <FieldMessage error=request_error field="passphrase_again" />
                    <button type="submit" class="primary">"Request backup"</button>
                </fieldset>
            </ActionForm>
        </section>
    }
}

#[component]
fn BackupList(backups: Vec<BackupRow>, delete: ServerAction<DeleteBackup>) -> impl IntoView {
    if backups.is_empty() {
        return view! { <p>"No backups requested yet."</p> }.into_any();
    }
    view! {
        <table class="members backups">
            <thead>
                <tr>
                    <th scope="col">"Requested"</th>
                    <th scope="col">"State"</th>
                    <th scope="col">"Archive"</th>
                    <th scope="col">"Actions"</th>
                </tr>
            </thead>
            <tbody>
                {backups
                    .into_iter()
                    .map(|row| view! { <BackupEntry row delete /> })
                    .collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

#[component]
fn BackupEntry(row: BackupRow, delete: ServerAction<DeleteBackup>) -> impl IntoView {
    let percent = (row.rows_total > 0)
        .then(|| (row.rows_written.saturating_mul(100) / row.rows_total).clamp(0, 100));
    let state = match row.state.as_str() {
        "Building" => {
            let (value, max) = (
                row.rows_written.to_string(),
                row.rows_total.max(1).to_string(),
            );
            let words = match percent {
                Some(percent) => {
                    format!(
                        "{} of {} rows ({percent}%)",
                        row.rows_written, row.rows_total
                    )
                }
                None => "Starting…".to_owned(),
            };
            let label = format!("Backup {} progress", row.id);
            view! {
                <progress value=value max=max aria-label=label></progress>
                <span class="progress-words">{words}</span>
            }
            .into_any()
        }
        "Ready" => view! { {format!("Ready — kept until {}", row.expires_at)} }.into_any(),
        "Failed" => view! { {format!("Failed: {}", row.error)} }.into_any(),
        other => view! { {other.to_owned()} }.into_any(),
    };
    let archive = (!row.size.is_empty()).then(|| {
        let sha = row.sha256.clone();
        view! {
            {format!(
                "{} · {} download{}",
                row.size,
                row.downloads,
                if row.downloads == 1 { "" } else { "s" },
            )}
            <br />
            <small>"SHA-256 " <code class="digest">{sha}</code></small>
        }
    });
    let download = (row.mine && row.state == "Ready").then(|| {
        let href = format!("/admin/backup/{}/download", row.id);
        view! {
            <a href=href rel="external" download="">
                "Download"
            </a>
        }
    });
    let remove = row.may_delete.then(|| {
        let id = row.id.to_string();
        view! {
            <ActionForm action=delete>
                <input type="hidden" name="backup_id" value=id />
                <button type="submit" class="danger">"Delete"</button>
            </ActionForm>
        }
    });
    view! {
        <tr>
            <td>{format!("{} by {}", row.requested_at, row.requested_by)}</td>
            <td>{state}</td>
            <td>{archive}</td>
            <td>{download} {remove}</td>
        </tr>
    }
}
