//! Groups: `GET /groups` (paged, `$select`, `$top`), `GET /groups/{id}` and
//! `GET /groups/delta` with `members@delta`.
//!
//! Pages cited (microsoftgraph/microsoft-graph-docs-contrib):
//! api-reference/v1.0/api/group-list.md, group-get.md, group-delta.md,
//! resources/group.md, resources/groups-overview.md,
//! concepts/delta-query-groups.md and concepts/delta-query-overview.md.
//!
//! groups/delta follows users/delta (state tokens, `$select` encoded in
//! them, `Prefer: odata.maxpagesize`, `return=minimal`, `$deltatoken=latest`,
//! 410 after `Simulator::expire_delta_tokens`) and adds membership:
//! * "You can use `$select=members` to get membership changes … Only the
//!   **id** property of the related resource is returned" (group-delta.md);
//!   entries are `{"@odata.type": "#microsoft.graph.user", "id"}`.
//! * "The `members@delta` property is included in group objects by default,
//!   when the `$select` query parameter has not been specified"; a group
//!   without members has no `members@delta` (delta-query-groups.md).
//! * A removed member — "either by removing the membership or by deleting the
//!   user object itself" — is an entry with `"@removed": {"reason":
//!   "deleted"}` (delta-query-groups.md, deltaLink response).
//! * "Paging through members in a large group": a page may hold "just one
//!   group object, with a large list of members"; "When you follow the
//!   `nextLink` you may receive a response again containing the same group
//!   object. The same property values will be returned but the expanded
//!   `members@delta` property now contains a different list of users". The
//!   simulator counts every group and every `members@delta` entry against the
//!   page size, and continues a group that does not fit on the next page.
//! * Deleted groups: `{"id", "@removed": {"reason": "changed"}}` for a
//!   Microsoft 365 group (restorable), `"deleted"` for other kinds
//!   (delta-query-overview.md, "Resource representation in the delta query
//!   response").

use serde_json::{Map, Value, json};

use crate::delta::{self, Collection, Kind as TokenKind, Prefer, State};
use crate::directory::{Directory, GroupRecord};
use crate::graph::{DELTA_DEFAULT_PAGE, DELTA_MAX_PAGE, Reply, Set, context, decode_state};
use crate::odata::{GraphError, MAX_TOP, Query};
use crate::paging;
use crate::server::Shared;
use crate::tenant::GroupKind;
use crate::userprops::security_identifier;

/// The group properties `$select` accepts (resources/group.md), and the
/// `members` relationship (groups/delta only).
const CATALOGUE: &[&str] = &[
    "id",
    "classification",
    "createdDateTime",
    "creationOptions",
    "deletedDateTime",
    "description",
    "displayName",
    "expirationDateTime",
    "groupTypes",
    "isAssignableToRole",
    "mail",
    "mailEnabled",
    "mailNickname",
    "membershipRule",
    "membershipRuleProcessingState",
    "onPremisesLastSyncDateTime",
    "onPremisesSecurityIdentifier",
    "onPremisesSyncEnabled",
    "preferredDataLocation",
    "preferredLanguage",
    "proxyAddresses",
    "renewedDateTime",
    "resourceBehaviorOptions",
    "resourceProvisioningOptions",
    "securityEnabled",
    "securityIdentifier",
    "theme",
    "visibility",
    "members",
];

const MEMBERS: &str = "members";

/// Default page size of the group list (as users: 100, at most 999).
const DEFAULT_TOP: usize = 100;

/// A `$select` item's code in a state token.
pub fn select_code(name: &str) -> Option<u8> {
    if name == "*" {
        return Some(crate::userprops::STAR_CODE);
    }
    CATALOGUE
        .iter()
        .position(|n| n.eq_ignore_ascii_case(name))
        .and_then(|i| u8::try_from(i).ok())
}

/// The `$select` item a code stands for.
pub fn select_name(code: u8) -> Option<&'static str> {
    if code == crate::userprops::STAR_CODE {
        return Some("*");
    }
    CATALOGUE.get(code as usize).copied()
}

fn canonical(name: &str) -> String {
    CATALOGUE
        .iter()
        .find(|n| n.eq_ignore_ascii_case(name))
        .map_or_else(|| name.to_string(), |n| n.to_string())
}

/// Resolves `$select` names; `members` only on delta.
fn resolve(names: &[String], delta: bool) -> Result<Vec<&'static str>, GraphError> {
    let mut out: Vec<&'static str> = Vec::new();
    for name in names {
        if name == "*" {
            for n in CATALOGUE.iter().filter(|n| **n != MEMBERS) {
                if !out.contains(n) {
                    out.push(n);
                }
            }
            continue;
        }
        let n = CATALOGUE
            .iter()
            .find(|n| n.eq_ignore_ascii_case(name))
            .copied()
            .ok_or_else(|| {
                GraphError::bad_request(format!(
                    "Could not find a property named '{name}' on type 'microsoft.graph.group'."
                ))
            })?;
        if n == MEMBERS && !delta {
            return Err(GraphError::bad_request(
                "'members' is a navigation property: select it on groups/delta.",
            ));
        }
        if !out.contains(&n) {
            out.push(n);
        }
    }
    Ok(out)
}

/// Every property of a group, as JSON.
fn properties(g: &GroupRecord) -> Map<String, Value> {
    let gr = &g.group;
    let kind = gr.kind;
    let unified = kind == GroupKind::Microsoft365;
    // Microsoft 365 groups are "Public" or "Private" (resources/group.md,
    // visibility); deterministic from the id.
    let visibility = unified.then(|| {
        if gr.id.as_bytes().first().is_some_and(|b| b % 4 == 0) {
            "Private"
        } else {
            "Public"
        }
    });
    let proxies: Vec<String> = gr.mail.iter().map(|m| format!("SMTP:{m}")).collect();
    let v = json!({
        "id": gr.id,
        "classification": null,
        "createdDateTime": gr.created_date_time,
        "creationOptions": [],
        "deletedDateTime": null,
        "description": gr.description,
        "displayName": gr.display_name,
        "expirationDateTime": null,
        "groupTypes": kind.group_types(),
        "isAssignableToRole": null,
        "mail": gr.mail,
        "mailEnabled": kind.mail_enabled(),
        "mailNickname": gr.mail_nickname,
        "membershipRule": null,
        "membershipRuleProcessingState": null,
        "onPremisesLastSyncDateTime": null,
        "onPremisesSecurityIdentifier": null,
        "onPremisesSyncEnabled": null,
        "preferredDataLocation": null,
        "preferredLanguage": null,
        "proxyAddresses": proxies,
        "renewedDateTime": gr.created_date_time,
        "resourceBehaviorOptions": [],
        "resourceProvisioningOptions": [],
        "securityEnabled": kind.security_enabled(),
        "securityIdentifier": security_identifier(&gr.id),
        "theme": null,
        "visibility": visibility,
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The selected properties of `all` (in `props` order); nulls left out when
/// `skip_null` ("If the property has never been set before it will not be
/// included in the response at all", group-delta.md).
fn project(all: &Map<String, Value>, props: &[&str], skip_null: bool) -> Map<String, Value> {
    let mut out = Map::new();
    for p in props.iter().filter(|p| **p != MEMBERS) {
        let v = all.get(*p).cloned().unwrap_or(Value::Null);
        if skip_null && v.is_null() {
            continue;
        }
        out.insert((*p).to_string(), v);
    }
    out
}

fn not_found(key: &str) -> GraphError {
    GraphError::new(
        404,
        "Request_ResourceNotFound",
        format!(
            "Resource '{key}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

fn to_reply(v: &Value) -> Result<Reply, GraphError> {
    serde_json::to_vec(v)
        .map(Reply::Json)
        .map_err(|e| GraphError::new(500, "generalException", e.to_string()))
}

fn list_props(q: &Query) -> Result<(Vec<&'static str>, Option<Vec<String>>), GraphError> {
    match &q.select {
        Some(names) => Ok((
            resolve(names, false)?,
            Some(names.iter().map(|n| canonical(n)).collect()),
        )),
        None => Ok((
            CATALOGUE
                .iter()
                .copied()
                .filter(|n| *n != MEMBERS)
                .collect(),
            None,
        )),
    }
}

/// `GET /groups` (group-list.md): live groups in creation order, `$top`
/// (1–999, default 100) and `$skiptoken` paging as for users.
pub fn list(shared: &Shared, q: &Query) -> Result<Reply, GraphError> {
    let (props, selected) = list_props(q)?;
    let top = q.top.unwrap_or(DEFAULT_TOP).min(MAX_TOP);
    let dir = shared.dir();
    let groups = &dir.groups;
    let offset = match &q.skiptoken {
        Some(token) => paging::decode(shared.skip_key ^ 0x6209, token)
            .filter(|&o| o <= groups.len())
            .ok_or_else(|| GraphError::bad_request("Invalid Skip Token"))?,
        None => 0,
    };
    let mut values = Vec::new();
    let mut end = offset;
    while end < groups.len() && values.len() < top {
        if groups[end].is_live() {
            values.push(Value::Object(project(
                &properties(&groups[end]),
                &props,
                false,
            )));
        }
        end += 1;
    }
    while end < groups.len() && !groups[end].is_live() {
        end += 1;
    }
    let names: Option<Vec<&str>> = selected
        .as_ref()
        .map(|n| n.iter().map(String::as_str).collect());
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Value::String(context(shared, Set::Groups, names.as_deref(), false)),
    );
    if end < groups.len() {
        let mut url = format!("{}/v1.0/groups?", shared.graph_url);
        for (k, v) in &q.passthrough {
            url.push_str(&format!("{k}={v}&"));
        }
        if let Some(n) = &names {
            url.push_str(&format!("$select={}&", n.join(",")));
        }
        if let Some(t) = q.top {
            url.push_str(&format!("$top={t}&"));
        }
        url.push_str(&format!(
            "$skiptoken={}",
            paging::encode_for_url(shared.skip_key ^ 0x6209, end)
        ));
        body.insert("@odata.nextLink".into(), Value::String(url));
    }
    body.insert("value".into(), Value::Array(values));
    to_reply(&Value::Object(body))
}

/// `GET /groups/{id}` (group-get.md).
pub fn get(shared: &Shared, key: &str, q: &Query) -> Result<Reply, GraphError> {
    let (props, selected) = list_props(q)?;
    let dir = shared.dir();
    let gi = dir.live_group(key).ok_or_else(|| not_found(key))?;
    let names: Option<Vec<&str>> = selected
        .as_ref()
        .map(|n| n.iter().map(String::as_str).collect());
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Value::String(context(shared, Set::Groups, names.as_deref(), true)),
    );
    body.extend(project(&properties(&dir.groups[gi]), &props, false));
    to_reply(&Value::Object(body))
}

/// `GET /groups/{id}/members` (group-list-members.md): the members as
/// directoryObjects (users, each with `@odata.type`), paged like the user list
/// (`$top` 1–999, default 100), `$select` over user properties.
pub fn members(shared: &Shared, key: &str, q: &Query) -> Result<Reply, GraphError> {
    let props = match &q.select {
        Some(names) => crate::userprops::resolve(names, true)?,
        None => crate::userprops::default_props(),
    };
    if props
        .iter()
        .any(|p| p.is_manager() || p.is_sign_in_activity())
    {
        return Err(GraphError::bad_request(
            "The property is not supported on group members.",
        ));
    }
    let top = q.top.unwrap_or(DEFAULT_TOP).min(MAX_TOP);
    let dir = shared.dir();
    let gi = dir.live_group(key).ok_or_else(|| not_found(key))?;
    let list = &dir.groups[gi].members;
    let skip_key = shared.skip_key ^ 0x3E3B_E125;
    let offset = match &q.skiptoken {
        Some(token) => paging::decode(skip_key, token)
            .filter(|&o| o <= list.len())
            .ok_or_else(|| GraphError::bad_request("Invalid Skip Token"))?,
        None => 0,
    };
    let end = (offset + top).min(list.len());
    let mut values = Vec::with_capacity(end - offset);
    for &m in &list[offset..end] {
        let view = crate::userprops::UserView {
            user: &dir.records[m as usize].user,
            props: &props,
            ctx: crate::graph::ctx(shared),
        };
        let mut v = serde_json::to_value(&view)
            .map_err(|e| GraphError::new(500, "generalException", e.to_string()))?;
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "@odata.type".into(),
                Value::String("#microsoft.graph.user".into()),
            );
        }
        values.push(v);
    }
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Value::String(format!(
            "{}/v1.0/$metadata#directoryObjects",
            shared.graph_url
        )),
    );
    if end < list.len() {
        let mut url = format!("{}/v1.0/groups/{key}/members?", shared.graph_url);
        if let Some(names) = &q.select {
            let names: Vec<String> = names
                .iter()
                .map(|n| crate::userprops::canonical(n))
                .collect();
            url.push_str(&format!("$select={}&", names.join(",")));
        }
        if let Some(t) = q.top {
            url.push_str(&format!("$top={t}&"));
        }
        url.push_str(&format!(
            "$skiptoken={}",
            paging::encode_for_url(skip_key, end)
        ));
        body.insert("@odata.nextLink".into(), Value::String(url));
    }
    body.insert("value".into(), Value::Array(values));
    to_reply(&Value::Object(body))
}

fn member_ref(dir: &Directory, user: u32, removed: bool) -> Value {
    let id = dir.records[user as usize].user.id.as_str();
    if removed {
        json!({"@odata.type": "#microsoft.graph.user", "id": id, "@removed": {"reason": "deleted"}})
    } else {
        json!({"@odata.type": "#microsoft.graph.user", "id": id})
    }
}

/// What the page builder needs to know about the request.
struct Shape<'a> {
    props: &'a [&'static str],
    members: bool,
    minimal: bool,
}

/// Where the next page starts.
struct Next {
    pos: u64,
    sub: u64,
    stop: u64,
}

/// Appends one group with `entries` — (user record, removed) — from `from`
/// on to the page, within `budget`. Returns how many entries it carried, or `None` when the page is
/// too full to start the group.
fn emit(
    dir: &Directory,
    items: &mut Vec<Value>,
    budget: &mut usize,
    mut obj: Map<String, Value>,
    entries: &[(u32, bool)],
    from: usize,
) -> Option<usize> {
    let remaining = entries.len().saturating_sub(from);
    let need = 1 + usize::from(remaining > 0);
    if *budget < need && !items.is_empty() {
        return None;
    }
    *budget = budget.saturating_sub(1);
    let take = remaining.min((*budget).max(1));
    if remaining > 0 {
        let slice = &entries[from..from + take];
        obj.insert(
            "members@delta".into(),
            Value::Array(
                slice
                    .iter()
                    .map(|&(u, removed)| member_ref(dir, u, removed))
                    .collect(),
            ),
        );
        *budget = budget.saturating_sub(take);
    }
    items.push(Value::Object(obj));
    Some(take)
}

fn initial_page(
    dir: &Directory,
    state: &State,
    shape: &Shape<'_>,
    page_size: usize,
) -> (Vec<Value>, Option<Next>) {
    let groups = &dir.groups;
    let stop = (state.stop as usize).min(groups.len());
    let mut i = (state.pos as usize).min(stop);
    let mut sub = state.sub as usize;
    let mut budget = page_size;
    let mut items = Vec::new();
    while i < stop {
        let g = &groups[i];
        if !g.is_live() {
            i += 1;
            sub = 0;
            continue;
        }
        let entries: Vec<(u32, bool)> = if shape.members {
            g.members.iter().map(|&m| (m, false)).collect()
        } else {
            Vec::new()
        };
        let obj = project(&properties(g), shape.props, true);
        let Some(took) = emit(dir, &mut items, &mut budget, obj, &entries, sub) else {
            break;
        };
        sub += took;
        if sub < entries.len() {
            // The rest of this group's members go on the next page.
            return (
                items,
                Some(Next {
                    pos: i as u64,
                    sub: sub as u64,
                    stop: state.stop,
                }),
            );
        }
        i += 1;
        sub = 0;
        if budget == 0 {
            break;
        }
    }
    while i < stop && !groups[i].is_live() {
        i += 1;
    }
    let next = (i < stop).then_some(Next {
        pos: i as u64,
        sub: 0,
        stop: state.stop,
    });
    (items, next)
}

fn replay_page(
    dir: &Directory,
    state: &State,
    shape: &Shape<'_>,
    page_size: usize,
) -> (Vec<Value>, Option<Next>) {
    let mut items = Vec::new();
    if state.pos >= state.upper {
        return (items, None);
    }
    let mut budget = page_size;
    for (&v, &gi) in dir.group_changes.range(state.pos + 1..=state.upper) {
        let g = &dir.groups[gi];
        // A group is shown once a round, at its last change in the round.
        if g.last_change_upto(state.upper) != Some(v) {
            continue;
        }
        let resume = if state.sub > 0 && state.stop == v {
            state.sub as usize
        } else {
            0
        };
        let (obj, entries) = match g.deleted {
            Some(d) if d <= state.upper => {
                let reason = if g.group.kind.restorable() {
                    "changed"
                } else {
                    "deleted"
                };
                let mut o = Map::new();
                o.insert("id".into(), Value::String(g.group.id.clone()));
                o.insert("@removed".into(), json!({"reason": reason}));
                (o, Vec::new())
            }
            _ if g.appeared > state.base => {
                let entries = if shape.members {
                    g.members.iter().map(|&m| (m, false)).collect()
                } else {
                    Vec::new()
                };
                (project(&properties(g), shape.props, true), entries)
            }
            _ => {
                let changes = if shape.members {
                    g.member_changes(state.base, state.upper)
                } else {
                    Vec::new()
                };
                if changes.is_empty() {
                    // Only membership changes are modelled; untracked here.
                    continue;
                }
                let entries: Vec<(u32, bool)> =
                    changes.iter().map(|&(u, present)| (u, !present)).collect();
                let obj = if shape.minimal {
                    let mut o = Map::new();
                    o.insert("id".into(), Value::String(g.group.id.clone()));
                    o
                } else {
                    project(&properties(g), shape.props, true)
                };
                (obj, entries)
            }
        };
        let Some(took) = emit(dir, &mut items, &mut budget, obj, &entries, resume) else {
            return (
                items,
                Some(Next {
                    pos: v - 1,
                    sub: 0,
                    stop: 0,
                }),
            );
        };
        if resume + took < entries.len() {
            return (
                items,
                Some(Next {
                    pos: v - 1,
                    sub: (resume + took) as u64,
                    stop: v,
                }),
            );
        }
        if budget == 0 {
            // More may follow: the next page starts after this version.
            let more = dir
                .group_changes
                .range(v + 1..=state.upper)
                .next()
                .is_some();
            return (
                items,
                more.then_some(Next {
                    pos: v,
                    sub: 0,
                    stop: 0,
                }),
            );
        }
    }
    (items, None)
}

fn resolved_select(q: &Query) -> Result<Option<Vec<String>>, GraphError> {
    match &q.select {
        Some(names) => {
            resolve(names, true)?;
            Ok(Some(names.iter().map(|n| canonical(n)).collect()))
        }
        None => Ok(None),
    }
}

/// `GET /groups/delta` (group-delta.md, delta-query-groups.md; see the
/// module documentation).
pub fn delta(shared: &Shared, q: &Query, prefer: Prefer) -> Result<Reply, GraphError> {
    let page_size = prefer
        .max_page_size
        .map_or(DELTA_DEFAULT_PAGE, |n| n.min(DELTA_MAX_PAGE));
    let dir = shared.dir();
    let epoch = shared.delta_epoch();
    let deltatoken = q.deltatoken.as_deref().map(str::trim);
    let fresh = |kind: TokenKind, base: u64, stop: u64, select: &Option<Vec<String>>| State {
        collection: Collection::Groups,
        kind,
        run: shared.run_id,
        epoch,
        base,
        upper: dir.version,
        pos: if kind == TokenKind::ReplaySkip {
            base
        } else {
            0
        },
        stop,
        sub: 0,
        select: select
            .as_deref()
            .map(|n| delta::select_codes(Collection::Groups, n)),
    };
    let (state, select) = match (deltatoken, q.skiptoken.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(GraphError::bad_request(
                "Only one of $skiptoken and $deltatoken can be specified.",
            ));
        }
        (Some(t), None) if t.eq_ignore_ascii_case("latest") => {
            let select = resolved_select(q)?;
            (fresh(TokenKind::Delta, dir.version, 0, &select), select)
        }
        (Some(t), None) if !t.is_empty() => {
            let (token, token_select) = decode_state(shared, Collection::Groups, t, true)?;
            let select = match &q.select {
                Some(_) => resolved_select(q)?,
                None => token_select,
            };
            (fresh(TokenKind::ReplaySkip, token.base, 0, &select), select)
        }
        (_, Some(t)) => {
            if q.select.is_some() {
                return Err(delta::select_with_skiptoken());
            }
            decode_state(shared, Collection::Groups, t, false)?
        }
        (_, None) => {
            let select = resolved_select(q)?;
            let stop = dir.groups.len() as u64;
            (fresh(TokenKind::InitialSkip, 0, stop, &select), select)
        }
    };
    let mut props: Vec<&'static str> = match &select {
        Some(names) => resolve(names, true)?,
        // "members@delta … included in group objects by default, when the
        // $select query parameter has not been specified".
        None => CATALOGUE.to_vec(),
    };
    if !props.contains(&"id") {
        props.push("id");
    }
    let replay = state.kind == TokenKind::ReplaySkip;
    let shape = Shape {
        props: &props,
        members: props.contains(&MEMBERS),
        minimal: prefer.minimal && replay,
    };
    let latest_only = deltatoken.is_some_and(|t| t.eq_ignore_ascii_case("latest"));
    let (items, next) = if latest_only {
        (Vec::new(), None)
    } else if replay {
        replay_page(&dir, &state, &shape, page_size)
    } else {
        initial_page(&dir, &state, &shape, page_size)
    };
    let link = |s: &State, param: &str| {
        format!(
            "{}/v1.0/groups/delta?{param}={}",
            shared.graph_url,
            s.encode(shared.skip_key)
        )
    };
    let mut body = Map::new();
    let selected: Option<Vec<&str>> = select
        .as_ref()
        .map(|names| names.iter().map(String::as_str).collect());
    body.insert(
        "@odata.context".into(),
        Value::String(context(shared, Set::Groups, selected.as_deref(), false)),
    );
    match next {
        Some(n) => {
            let s = State {
                pos: n.pos,
                sub: n.sub,
                stop: n.stop,
                ..state.clone()
            };
            body.insert(
                "@odata.nextLink".into(),
                Value::String(link(&s, "$skiptoken")),
            );
        }
        None => {
            let done = State {
                kind: TokenKind::Delta,
                base: state.upper,
                pos: 0,
                stop: 0,
                sub: 0,
                ..state.clone()
            };
            body.insert(
                "@odata.deltaLink".into(),
                Value::String(link(&done, "$deltatoken")),
            );
        }
    }
    body.insert("value".into(), Value::Array(items));
    let buf = serde_json::to_vec(&Value::Object(body))
        .map_err(|e| GraphError::new(500, "generalException", e.to_string()))?;
    let mut applied = Vec::new();
    if prefer.max_page_size.is_some() {
        applied.push(format!("odata.maxpagesize={page_size}"));
    }
    if shape.minimal {
        applied.push("return=minimal".to_string());
    }
    let headers = if applied.is_empty() {
        Vec::new()
    } else {
        vec![("preference-applied", applied.join(", "))]
    };
    Ok(Reply::JsonWith(buf, headers))
}
