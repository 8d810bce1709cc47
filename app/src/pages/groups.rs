//! `/admin/groups`: the organization's groups of members; adding members to one from a CSV
//! of emails (previewed row by row, then added all at once or not at all); a group's
//! exception from the backup-code setting; and the groups each help-desk member assists.

use leptos::{prelude::*, server_fn::ServerFn};
use leptos_meta::Title;
use leptos_router::{components::Redirect, hooks::use_query_map};

use crate::{
    api::groups::{
        AddGroupCsv, CreateGroup, CsvPreviewForm, CsvPreviewView, DeleteGroup, GroupRow,
        GroupsOverview, ScopeRow, SetGroupException, SetHelpDeskScope, get_groups,
        preview_group_csv,
    },
    error::AppError,
    forms::{FieldMessage, FormMessage, Notice, invalid, last_error},
};

/// `/admin/groups`.
#[component]
pub fn GroupsPage() -> impl IntoView {
    let create = ServerAction::<CreateGroup>::new();
    let delete = ServerAction::<DeleteGroup>::new();
    let add = ServerAction::<AddGroupCsv>::new();
    let scope = ServerAction::<SetHelpDeskScope>::new();
    // The group whose exception the form opens on: the one a row's "Change exception" chose
    // (`?exception=<id>`); else the first.
    let exception_group = use_query_map()
        .with_untracked(|query| query.get("exception").and_then(|id| id.parse::<i32>().ok()));
    let overview = Resource::new(
        move || {
            (
                create.version().get(),
                delete.version().get(),
                add.version().get(),
                scope.version().get(),
            )
        },
        |_| get_groups(),
    );
    // Present only while the server renders its answer to the "Preview" form's post.
    let posted = use_context::<CsvPreviewForm>();
    let previewed = Resource::new(
        || (),
        move |()| {
            let posted = posted.clone();
            async move {
                let form = posted?;
                let preview = preview_group_csv(form.group_id, form.csv.clone()).await;
                Some((form, preview))
            }
        },
    );
    let actions = GroupActions {
        create,
        delete,
        add,
        scope,
        exception_group,
    };
    view! {
        <Title text="Groups" />
        <Suspense>
            {move || {
                let previewed = previewed.get()?;
                overview
                    .get()
                    .map(|overview| match overview {
                        Err(AppError::SignInRequired) => {
                            view! { <Redirect path="/sign-in" /> }.into_any()
                        }
                        Err(error) => {
                            view! {
                                <section class="panel">
                                    <h1>"Groups"</h1>
                                    <p class="form-error">{error.to_string()}</p>
                                </section>
                            }
                                .into_any()
                        }
                        Ok(overview) => {
                            view! { <GroupsPanels overview actions previewed=previewed.clone() /> }
                                .into_any()
                        }
                    })
            }}
        </Suspense>
    }
}

/// The page's actions, shared by its panels.
#[derive(Clone, Copy)]
struct GroupActions {
    create: ServerAction<CreateGroup>,
    delete: ServerAction<DeleteGroup>,
    add: ServerAction<AddGroupCsv>,
    scope: ServerAction<SetHelpDeskScope>,
    exception_group: Option<i32>,
}

#[component]
fn GroupsPanels(
    overview: GroupsOverview,
    actions: GroupActions,
    previewed: Option<Previewed>,
) -> impl IntoView {
    let delete_error = last_error(actions.delete);
    let manage = overview.may_manage;
    let choices: Vec<(i32, String)> = overview
        .groups
        .iter()
        .map(|group| (group.id, group.name.clone()))
        .collect();
    let exception_choices = overview.groups.clone();
    let csv_groups = overview.groups.clone();
    view! {
        <section class="panel wide">
            <h1>"Groups"</h1>
            <p>
                "Groups of members, such as a team or your contractors. A group may have its own exception from the organization's backup-code setting (a member's own exception still wins), and a help-desk member may be scoped to groups: they then issue recovery codes for, and unlock, those groups' members alone."
            </p>
            <FormMessage error=delete_error />
            {if overview.groups.is_empty() {
                view! { <p>"No groups yet."</p> }.into_any()
            } else {
                view! {
                    <table class="members groups">
                        <thead>
                            <tr>
                                <th scope="col">"Group"</th>
                                <th scope="col">"Members"</th>
                                <th scope="col">"Backup codes"</th>
                                <th scope="col">"Help desk scoped to it"</th>
                                {manage.then(|| view! { <th scope="col">"Actions"</th> })}
                            </tr>
                        </thead>
                        <tbody>
                            {overview
                                .groups
                                .into_iter()
                                .map(|group| {
                                    view! {
                                        <GroupLine
                                            group
                                            manage
                                            delete=actions.delete
                                        />
                                    }
                                })
                                .collect_view()}
                        </tbody>
                    </table>
                }
                    .into_any()
            }}
        </section>
        {manage
            .then(|| {
                view! {
                    <CreatePanel create=actions.create max=overview.max_groups />
                    <CsvPanel
                        add=actions.add
                        groups=csv_groups
                        max_rows=overview.max_csv_rows
                        previewed
                    />
                    <ExceptionPanel
                        groups=exception_choices
                        chosen=actions.exception_group
                        error=last_error(ServerAction::<SetGroupException>::new()).get_untracked()
                    />
                    <ScopePanel scope=actions.scope help_desk=overview.help_desk choices />
                }
            })}
    }
    .into_any()
}

#[component]
fn GroupLine(group: GroupRow, manage: bool, delete: ServerAction<DeleteGroup>) -> impl IntoView {
    let id = group.id;
    let scoped = if group.scoped_help_desk.is_empty() {
        "—".to_owned()
    } else {
        group.scoped_help_desk.join(", ")
    };
    let exception = match group.exception_reason {
        Some(reason) => format!("{} ({reason})", group.exception),
        None => group.exception,
    };
    view! {
        <tr>
            <th scope="row">
                <a href=format!("/admin/members?group={}", group.id)>{group.name.clone()}</a>
            </th>
            <td>{group.members}</td>
            <td>{exception}</td>
            <td>{scoped}</td>
            {manage
                .then(|| {
                    view! {
                        <td>
                            <a href=format!("/admin/groups?exception={id}#group-exception")>
                                {format!("Change exception of {}", group.name)}
                            </a>
                            <ActionForm action=delete>
                                <input type="hidden" name="group_id" value=group.id.to_string() />
                                <button type="submit" class="danger">
                                    {format!("Delete {}", group.name)}
                                </button>
                            </ActionForm>
                        </td>
                    }
                })}
        </tr>
    }
    .into_any()
}

#[component]
fn CreatePanel(create: ServerAction<CreateGroup>, max: u64) -> impl IntoView {
    let error = last_error(create);
    view! {
        <section class="panel" id="create-group">
            <h2>"Create a group"</h2>
            <ActionForm action=create>
                <FormMessage error />
                <label for="group-name">"Name"</label>
                <input
                    id="group-name"
                    name="name"
                    type="text"
                    maxlength="100"
                    required
                    aria-describedby="name-error"
                    aria-invalid=invalid(error, "name")
                />
                <FieldMessage error field="name" />
                <p class="hint">{format!("Up to {max} groups; names are unique, whatever their case.")}</p>
                <button type="submit" class="primary">"Create group"</button>
            </ActionForm>
        </section>
    }
    .into_any()
}

/// The group choice of a form.
#[component]
fn GroupChoice(
    id: &'static str,
    choices: Vec<(i32, String)>,
    /// The group chosen already, if any.
    chosen: Option<i32>,
) -> impl IntoView {
    view! {
        <label for=id>"Group"</label>
        <select id=id name="group_id" required>
            {choices
                .into_iter()
                .map(|(id, name)| {
                    view! {
                        <option value=id.to_string() selected=Some(id) == chosen>
                            {name}
                        </option>
                    }
                })
                .collect_view()}
        </select>
    }
}

/// A CSV's preview as the server rendered it in answer to the "Preview" form's post: the
/// form as posted, and what adding it would do (or why it cannot be read).
type Previewed = (CsvPreviewForm, Result<CsvPreviewView, AppError>);

/// "Add members to a group from a CSV". "Preview" is a plain form posted to the page itself
/// (`POST /admin/groups`), which the server answers with the page and the preview, row by
/// row, with or without JavaScript; "Add" then posts to its server function, which lands on
/// `?added=<group id>`: the group it filled, with its count read from the page's own data.
#[component]
fn CsvPanel(
    add: ServerAction<AddGroupCsv>,
    groups: Vec<GroupRow>,
    max_rows: usize,
    previewed: Option<Previewed>,
) -> impl IntoView {
    let add_error = last_error(add);
    let added = use_query_map()
        .with_untracked(|query| query.get("added").and_then(|id| id.parse::<i32>().ok()))
        .and_then(|id| groups.iter().find(|group| group.id == id))
        .map(|group| {
            format!(
                "Added to {}, which now has {}.",
                group.name,
                members(group.members as usize)
            )
        });
    let choices: Vec<(i32, String)> = groups
        .iter()
        .map(|group| (group.id, group.name.clone()))
        .collect();
    let empty = choices.is_empty();
    let (posted, preview) = previewed.unzip();
    let preview_error = Signal::stored(
        preview
            .as_ref()
            .and_then(|preview| preview.as_ref().err().cloned()),
    );
    let preview = preview.and_then(Result::ok);
    let (chosen, csv) = posted.map_or((None, String::new()), |form| {
        (Some(form.group_id), form.csv)
    });
    view! {
        <section class="panel" id="add-to-group">
            <h2>"Add members to a group from a CSV"</h2>
            <p>
                {format!("One email address per line, in the first column (a first line reading \"email\" is skipped); up to {max_rows} lines. Preview first: nobody is added unless every line names a member of your organization.")}
            </p>
            {empty.then(|| view! { <p>"Create a group first."</p> })}
            {added.map(|text| view! { <Notice text parameter="added".to_owned() /> })}
            <FormMessage error=add_error />
            <form method="post" action="/admin/groups#add-to-group">
                <FormMessage error=preview_error />
                <fieldset disabled=empty>
                    <GroupChoice id="csv-group" choices chosen />
                    <label for="group-csv">"CSV of email addresses"</label>
                    <textarea
                        id="group-csv"
                        name="csv"
                        rows="8"
                        required
                        aria-describedby="csv-error"
                        aria-invalid=invalid(preview_error, "csv")
                    >
                        {csv}
                    </textarea>
                    <FieldMessage error=preview_error field="csv" />
                    <button type="submit">"Preview"</button>
                </fieldset>
            </form>
            {preview.map(|preview| view! { <CsvPreview preview /> })}
        </section>
    }
    .into_any()
}

#[component]
fn CsvPreview(preview: CsvPreviewView) -> impl IntoView {
    let summary = if preview.problems > 0 {
        let lines = if preview.problems == 1 {
            "1 line needs".to_owned()
        } else {
            format!("{} lines need", preview.problems)
        };
        format!(
            "{lines} fixing: nobody is added until every line names a member of your organization. Correct the file and preview it again."
        )
    } else {
        format!(
            "{} will be added to {}.",
            members(preview.adds),
            preview.group
        )
    };
    let ready = preview.problems == 0 && preview.adds > 0;
    view! {
        <h3>{format!("Preview for {}", preview.group)}</h3>
        <p class="preview-summary" role="status">{summary}</p>
        <table class="members csv-preview">
            <thead>
                <tr>
                    <th scope="col">"Line"</th>
                    <th scope="col">"Email address"</th>
                    <th scope="col">"What happens"</th>
                </tr>
            </thead>
            <tbody>
                {preview
                    .rows
                    .into_iter()
                    .map(|row| {
                        view! {
                            <tr class:problem=row.problem>
                                <td>{row.line}</td>
                                <td>{row.email}</td>
                                <td>{row.outcome}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
        {ready
            .then(|| {
                view! {
                    <form method="post" action=AddGroupCsv::url()>
                        <input type="hidden" name="group_id" value=preview.group_id.to_string() />
                        <input type="hidden" name="csv" value=preview.csv.clone() />
                        <button type="submit" class="primary">
                            {format!("Add {} to {}", members(preview.adds), preview.group)}
                        </button>
                    </form>
                }
            })}
    }
    .into_any()
}

/// The choices of a group's exception, as the form posts them.
const EXCEPTION_CHOICES: [(&str, &str); 3] = [
    ("follow", "Follow the organization's setting"),
    ("allow", "Allowed, whatever the setting"),
    ("deny", "Not allowed, whatever the setting"),
];

/// "A group's exception from the backup-code setting": an island, so that picking another
/// group in the form shows that group's current choice and reason (a save changes only what
/// changed). The form is a plain form's post; `chosen` is the group it opens on, and `error`
/// the one its last post left in the page's address (the server reads it for the island).
#[island]
fn ExceptionPanel(
    groups: Vec<GroupRow>,
    chosen: Option<i32>,
    error: Option<AppError>,
) -> impl IntoView {
    let error = Signal::stored(error);
    let chosen = RwSignal::new(chosen);
    let empty = groups.is_empty();
    let groups = StoredValue::new(groups);
    // The group shown: the chosen one while it exists, else the first.
    let shown = move |pick: fn(&GroupRow) -> String| {
        groups.with_value(|groups| {
            groups
                .iter()
                .find(|group| Some(group.id) == chosen.get())
                .or_else(|| groups.first())
                .map(pick)
                .unwrap_or_default()
        })
    };
    let shown_id = move || shown(|group| group.id.to_string());
    let shown_choice = move || shown(|group| group.backup_codes.clone());
    let shown_reason = move || shown(|group| group.exception_reason.clone().unwrap_or_default());
    view! {
        <section class="panel" id="group-exception">
            <h2>"A group's exception from the backup-code setting"</h2>
            <form method="post" action=SetGroupException::url()>
                <FormMessage error />
                <fieldset disabled=empty>
                    <label for="exception-group">"Group"</label>
                    <select
                        id="exception-group"
                        name="group_id"
                        required
                        on:change=move |event| {
                            chosen.set(event_target_value(&event).parse().ok());
                        }
                    >
                        {groups
                            .get_value()
                            .into_iter()
                            .map(|group| {
                                let value = group.id.to_string();
                                let is_shown = {
                                    let value = value.clone();
                                    move || shown_id() == value
                                };
                                view! {
                                    <option
                                        value=value
                                        selected=is_shown.clone()
                                        prop:selected=is_shown
                                    >
                                        {group.name}
                                    </option>
                                }
                            })
                            .collect_view()}
                    </select>
                    <p class="hint">
                        "The form shows the group's current exception. To change another group's, use the \u{201c}Change exception\u{201d} link in its row."
                    </p>
                    <fieldset>
                        <legend>"Backup codes for its members"</legend>
                        {EXCEPTION_CHOICES
                            .into_iter()
                            .map(|(value, label)| {
                                let is_shown = move || shown_choice() == value;
                                view! {
                                    <label class="check">
                                        <input
                                            type="radio"
                                            name="backup_codes"
                                            value=value
                                            checked=is_shown
                                            prop:checked=is_shown
                                        />
                                        {label}
                                    </label>
                                }
                            })
                            .collect_view()}
                    </fieldset>
                    <FieldMessage error field="backup_codes" />
                    <label for="exception-reason">"Reason"</label>
                    <input
                        id="exception-reason"
                        name="reason"
                        type="text"
                        maxlength="500"
                        value=shown_reason
                        prop:value=shown_reason
                        aria-describedby="reason-error"
                        aria-invalid=invalid(error, "reason")
                    />
                    <FieldMessage error field="reason" />
                    <button type="submit">"Save the group's exception"</button>
                </fieldset>
            </form>
        </section>
    }
    .into_any()
}

#[component]
fn ScopePanel(
    scope: ServerAction<SetHelpDeskScope>,
    help_desk: Vec<ScopeRow>,
    choices: Vec<(i32, String)>,
) -> impl IntoView {
    let error = last_error(scope);
    view! {
        <section class="panel" id="help-desk-scope">
            <h2>"Whom the help desk assists"</h2>
            <p>
                "A help-desk member with no group ticked assists every member the role allows; with groups ticked, those groups' members alone."
            </p>
            <FormMessage error />
            {if help_desk.is_empty() {
                view! { <p>"Nobody in your organization has the help-desk role."</p> }.into_any()
            } else {
                help_desk
                    .into_iter()
                    .map(|row| {
                        let choices = choices.clone();
                        view! { <ScopeForm row choices scope /> }
                    })
                    .collect_view()
                    .into_any()
            }}
        </section>
    }
    .into_any()
}

#[component]
fn ScopeForm(
    row: ScopeRow,
    choices: Vec<(i32, String)>,
    scope: ServerAction<SetHelpDeskScope>,
) -> impl IntoView {
    let email = row.email.clone();
    view! {
        <ActionForm action=scope>
            <fieldset>
                <legend>{format!("Groups {} assists", row.email)}</legend>
                <input type="hidden" name="member_id" value=row.member_id.to_string() />
                {choices
                    .into_iter()
                    .map(|(id, name)| {
                        let checked = row.groups.contains(&id);
                        let input_id = format!("scope-{}-{id}", row.member_id);
                        let label_for = input_id.clone();
                        view! {
                            <label class="check" for=label_for>
                                <input type="checkbox" id=input_id name="groups[]" value=id.to_string() checked=checked />
                                {name}
                            </label>
                        }
                    })
                    .collect_view()}
                <button type="submit">{format!("Save groups for {email}")}</button>
            </fieldset>
        </ActionForm>
    }
    .into_any()
}

/// "1 member", "3 members".
fn members(count: usize) -> String {
    if count == 1 {
        "1 member".to_owned()
    } else {
        format!("{count} members")
    }
}
