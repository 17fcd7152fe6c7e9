//! The change feed and webhooks of `m365sync serve`, with the real binary on every store
//! back end: after a full sync and an incremental one over the directory's changes (users
//! created, updated, deleted), the feed (`GET /v1/changes`, `m365sync changes --json`) holds
//! exactly those changes, under growing cursors, each page after the previous; and a
//! webhook receiver that refuses its first deliveries (an outage) gets every event of the
//! feed, each POST signed so that `webhooks::verify` accepts it with the right secret and
//! refuses it with any other.

mod cli_process;
mod serve_process;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use m365sync_service::webhooks::{DEFAULT_TOLERANCE, SignatureError, verify};
use m365sync_simulator::Simulator;
use serde_json::Value;
use serve_process::{
    Backend, Fleet, Receiver, Server, TenantOptions, feed_pages, run_with_deadline,
};

const LIMIT: Duration = Duration::from_secs(120);

/// What the test did to a directory between the two syncs.
struct Mutations {
    created: BTreeSet<String>,
    updated: BTreeSet<String>,
    deleted: BTreeSet<String>,
}

/// Create 3 users, give 4 a new job title, delete 2 (soft: to the deleted items). The
/// deleted and updated users manage nobody, so no one else's record changes with them.
fn mutate(simulator: &Simulator) -> Mutations {
    let users = simulator.tenant().users;
    let managers: HashSet<&str> = users
        .iter()
        .filter_map(|u| u.manager_id.as_deref())
        .collect();
    let mut plain = users
        .iter()
        .filter(|u| !managers.contains(u.id.as_str()))
        .map(|u| u.id.clone());
    let updated: BTreeSet<String> = plain.by_ref().take(4).collect();
    let deleted: BTreeSet<String> = plain.take(2).collect();
    assert_eq!((updated.len(), deleted.len()), (4, 2), "enough plain users");
    let created: BTreeSet<String> = simulator.create_users(3).into_iter().collect();
    let ids: Vec<String> = updated.iter().cloned().collect();
    simulator.update_users(&ids, |u| {
        u.job_title = Some("Change feed tester".to_string());
    });
    let ids: Vec<String> = deleted.iter().cloned().collect();
    simulator.delete_users(&ids, false);
    Mutations {
        created,
        updated,
        deleted,
    }
}

/// The first sync of every tenant of `server` has ended well.
fn wait_synced(server: &Server) {
    server.wait("every tenant's first sync", LIMIT, || {
        server
            .tenants()
            .values()
            .all(|t| t["last_run"]["ok"] == true)
            .then_some(())
    });
}

/// Sync `tenant` now, and wait for that run to end well: its second.
fn sync_again(server: &Server, tenant: &str) {
    let reply = server.post(&format!("/v1/tenants/{tenant}/sync"));
    assert_eq!(reply.status, 202, "{}", reply.text());
    server.wait(&format!("{tenant}'s second sync"), LIMIT, || {
        let runs = server.runs_of(tenant);
        match runs.len() {
            2 if runs[1]["status"] == "ok" => Some(()),
            2 | 1 => None,
            _ => panic!("{tenant}: {runs:#?}"),
        }
    });
}

fn ids_of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a str> {
    events
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| e["object_id"].as_str().unwrap())
        .collect()
}

fn set<'a>(ids: &[&'a str]) -> BTreeSet<&'a str> {
    ids.iter().copied().collect()
}

fn strings(ids: &BTreeSet<String>) -> BTreeSet<&str> {
    ids.iter().map(String::as_str).collect()
}

/// Cursors grow strictly, each event once.
fn assert_strictly_increasing(events: &[Value]) {
    for pair in events.windows(2) {
        assert!(
            pair[0]["cursor"].as_i64() < pair[1]["cursor"].as_i64(),
            "cursors grow: {} then {}",
            pair[0],
            pair[1]
        );
    }
}

fn the_feed_holds_exactly_the_directorys_changes(backend: Backend) {
    let Some(mut fleet) = Fleet::new(backend) else {
        return;
    };
    fleet.add("feed", 60, |_| {}, TenantOptions::default());
    fleet.add("other", 10, |_| {}, TenantOptions::default());
    let config = fleet.config("feed.toml", "lease_secs = 10", "");
    let server = fleet.serve(&config, &[], &[]);
    wait_synced(&server);

    // The first sync: everyone created, in each tenant.
    let first = feed_pages(&server, 0, 1000, None);
    assert_strictly_increasing(&first);
    for tenant in ["feed", "other"] {
        let events: Vec<Value> = first
            .iter()
            .filter(|e| e["tenant"] == tenant)
            .cloned()
            .collect();
        let created = ids_of(&events, "person.created");
        let truth: BTreeSet<String> = fleet
            .sim(tenant)
            .tenant()
            .users
            .into_iter()
            .map(|u| u.id)
            .collect();
        assert_eq!(created.len(), truth.len(), "{tenant}: each created once");
        assert_eq!(set(&created), strings(&truth), "{tenant}");
        for kind in ["person.updated", "person.removed", "person.linked"] {
            assert!(
                ids_of(&events, kind).is_empty(),
                "{tenant}: no {kind} in a first sync"
            );
        }
    }
    let after_first = first.last().unwrap()["cursor"].as_i64().unwrap();

    // The directory changes; an incremental sync reads just that.
    let mutations = mutate(fleet.sim("feed"));
    sync_again(&server, "feed");
    let second = server.runs_of("feed").pop().unwrap();
    assert_eq!(second["mode"], "incremental", "{second}");

    // Paged two at a time, by next_after: exactly the mutations.
    let changes = feed_pages(&server, after_first, 2, Some("feed"));
    assert_strictly_increasing(&changes);
    assert!(changes.iter().all(|e| e["tenant"] == "feed"));
    let created = ids_of(&changes, "person.created");
    assert_eq!(created.len(), 3, "{changes:#?}");
    assert_eq!(set(&created), strings(&mutations.created));
    let updated = ids_of(&changes, "person.updated");
    assert_eq!(updated.len(), 4, "{changes:#?}");
    assert_eq!(set(&updated), strings(&mutations.updated));
    for event in changes.iter().filter(|e| e["kind"] == "person.updated") {
        assert_eq!(
            event["fields"],
            serde_json::json!(["job-title"]),
            "the changed field, by its platform name: {event}"
        );
    }
    let removed = ids_of(&changes, "person.removed");
    assert_eq!(removed.len(), 2, "{changes:#?}");
    assert_eq!(set(&removed), strings(&mutations.deleted));
    assert!(ids_of(&changes, "person.linked").is_empty(), "{changes:#?}");
    let touched: BTreeSet<&str> = [&mutations.created, &mutations.updated, &mutations.deleted]
        .into_iter()
        .flat_map(|ids| ids.iter().map(String::as_str))
        .collect();
    for event in &changes {
        assert!(
            touched.contains(event["object_id"].as_str().unwrap()),
            "an event about someone the test did not change: {event}"
        );
    }

    // Paging returns every event once: small pages equal one big page, whole feed too.
    assert_eq!(
        changes,
        feed_pages(&server, after_first, 1000, Some("feed")),
        "pages of 2 = one page"
    );
    let whole = feed_pages(&server, 0, 1000, None);
    assert_eq!(
        feed_pages(&server, 0, 7, None),
        whole,
        "pages of 7 = one page"
    );
    assert_strictly_increasing(&whole);
    let tail: Vec<Value> = whole
        .iter()
        .filter(|e| e["cursor"].as_i64().unwrap() > after_first && e["tenant"] == "feed")
        .cloned()
        .collect();
    assert_eq!(
        tail, changes,
        "the tenant filter keeps the feed's events and order"
    );
    let cursors: HashSet<i64> = whole
        .iter()
        .map(|e| e["cursor"].as_i64().unwrap())
        .collect();
    assert_eq!(cursors.len(), whole.len(), "each cursor once");

    // `m365sync changes --json` pages the same feed the same way.
    let changes_cli = |after: i64, limit: u32, tenant: Option<&str>| -> Value {
        let mut command = fleet.command(&["changes", "--json", "--db", &fleet.db()]);
        command.args(["--after", &after.to_string(), "--limit", &limit.to_string()]);
        if let Some(tenant) = tenant {
            command.args(["--tenant", tenant]);
        }
        let output = run_with_deadline(command, Duration::from_secs(60));
        assert!(output.status.success(), "{}", cli_process::text(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let page = changes_cli(after_first, 1000, Some("feed"));
    assert_eq!(page["events"], Value::Array(changes.clone()));
    assert_eq!(page["next_after"], changes.last().unwrap()["cursor"]);
    let api_page = server.get_json(&format!("/v1/changes?after={after_first}&limit=5"));
    assert_eq!(
        changes_cli(after_first, 5, None),
        api_page,
        "the CLI's page = the API's"
    );
    let mut paged = Vec::new();
    let mut cursor = 0;
    loop {
        let page = changes_cli(cursor, 25, None);
        let events = page["events"].as_array().unwrap();
        let next = page["next_after"].as_i64().unwrap();
        if events.is_empty() {
            assert_eq!(next, cursor);
            break;
        }
        paged.extend(events.iter().cloned());
        cursor = next;
    }
    assert_eq!(
        paged, whole,
        "m365sync changes, paged by next_after: every event once"
    );
    let mut text = fleet.command(&["changes", "--db", &fleet.db(), "--tenant", "feed"]);
    text.args(["--after", &after_first.to_string()]);
    let output = run_with_deadline(text, Duration::from_secs(60));
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(
        shown.contains("person.updated") && shown.contains("fields job-title"),
        "{shown}"
    );
}

mod the_feed_holds_exactly_the_directorys_changes {
    use super::*;

    #[test]
    fn sqlite() {
        the_feed_holds_exactly_the_directorys_changes(Backend::Sqlite);
    }

    #[test]
    fn postgres() {
        the_feed_holds_exactly_the_directorys_changes(Backend::Postgres);
    }
}

const HOOK_SECRET: &str = "whsec-e2e-0123456789abcdef";
/// Deliveries the receiver refuses (503) before it accepts any.
const OUTAGE: usize = 3;

fn a_webhook_gets_every_event_signed_despite_an_outage(backend: Backend) {
    let Some(mut fleet) = Fleet::new(backend) else {
        return;
    };
    fleet.add("hooked", 40, |_| {}, TenantOptions::default());
    let receiver = Receiver::start(&fleet, HOOK_SECRET, OUTAGE);
    // The webhook is added before any sync: it starts at the feed's beginning.
    let state = fleet
        .block_on(fleet.store().store.webhook_state("platform"))
        .expect("register the webhook");
    assert_eq!(state.cursor, 0);
    let webhook = format!(
        "[[webhook]]\nname = \"platform\"\nurl = \"{}\"\nsecret_env = \"M365SYNC_E2E_HOOK_SECRET\"\n",
        receiver.url
    );
    let config = fleet.config("hooks.toml", "lease_secs = 10", &webhook);
    let server = fleet.serve(&config, &[], &[("M365SYNC_E2E_HOOK_SECRET", HOOK_SECRET)]);
    wait_synced(&server);

    // During the outage the webhook shows as failing, naming the receiver by its origin.
    let failing = server.wait("the webhook failing during the outage", LIMIT, || {
        let views = server.get_json("/v1/webhooks");
        let view = views.as_array().unwrap().first().cloned()?;
        (view["failures"].as_u64() >= Some(1)).then_some(view)
    });
    assert_eq!(failing["name"], "platform", "{failing}");
    assert_eq!(failing["status"], "failing", "{failing}");
    let error = failing["last_error"].as_str().unwrap();
    assert!(error.contains("503"), "{failing}");
    assert!(
        !failing.to_string().contains("path-credential"),
        "the receiver's path and query are not shown: {failing}"
    );

    mutate(fleet.sim("hooked"));
    sync_again(&server, "hooked");
    let feed = feed_pages(&server, 0, 1000, None);
    assert!(feed.len() > 40, "{} events", feed.len());
    let last = feed.last().unwrap()["cursor"].as_i64().unwrap();

    // Every event of the feed reaches the receiver.
    server.wait("the receiver has every event", LIMIT, || {
        let got: HashSet<i64> = receiver
            .received()
            .accepted_events()
            .iter()
            .map(|e| e["cursor"].as_i64().unwrap())
            .collect();
        feed.iter()
            .all(|e| got.contains(&e["cursor"].as_i64().unwrap()))
            .then_some(())
    });
    let received = receiver.received();
    let statuses: Vec<u16> = received.posts.iter().map(|p| p.status).collect();
    assert_eq!(
        statuses[..OUTAGE],
        [503; OUTAGE],
        "the outage: {statuses:?}"
    );
    assert!(statuses[OUTAGE..].iter().all(|s| *s == 200), "{statuses:?}");
    let mut deliveries = HashSet::new();
    for post in &received.posts {
        assert_eq!(
            post.verified,
            Ok(()),
            "every POST is signed with the secret"
        );
        assert_eq!(post.content_type.as_deref(), Some("application/json"));
        let delivery = post.delivery.clone().expect("an M365sync-Delivery id");
        assert!(
            deliveries.insert(delivery),
            "each POST has its own delivery id"
        );
        let payload = post.payload();
        assert_eq!(payload["webhook"], "platform");
        let events = payload["events"].as_array().unwrap();
        assert!(
            !events.is_empty() && events.len() <= 100,
            "{}",
            events.len()
        );
        assert_strictly_increasing(events);
    }
    // The refused events came again; accepted ones are the feed's, as the API shows them.
    let by_cursor: BTreeMap<i64, Value> = received
        .accepted_events()
        .into_iter()
        .map(|e| (e["cursor"].as_i64().unwrap(), e))
        .collect();
    for event in &feed {
        assert_eq!(
            by_cursor.get(&event["cursor"].as_i64().unwrap()),
            Some(event),
            "delivered as the feed has it"
        );
    }
    for refused in &received.posts[..OUTAGE] {
        for event in refused.payload()["events"].as_array().unwrap() {
            assert!(by_cursor.contains_key(&event["cursor"].as_i64().unwrap()));
        }
    }

    // The webhook's state: delivering again, at the feed's end.
    let view = server.wait("the webhook at the feed's end", LIMIT, || {
        let view = server.get_json("/v1/webhooks")[0].clone();
        (view["cursor"] == last).then_some(view)
    });
    assert_eq!(view["status"], "delivering", "{view}");
    assert_eq!(view["failures"], 0, "{view}");
    assert!(
        view["delivered"].as_u64() >= Some(feed.len() as u64),
        "{view}"
    );

    // A receiver with another secret refuses every one of these POSTs, and a body changed
    // on the way is refused too; a replay after the tolerance is stale.
    let post = received.posts.last().unwrap();
    let signature = post.signature.as_deref().unwrap();
    let now = jiff::Timestamp::now();
    for wrong in [
        &b"whsec-e2e-another-secret"[..],
        b"",
        HOOK_SECRET.to_uppercase().as_bytes(),
    ] {
        assert_eq!(
            verify(wrong, signature, &post.body, now, DEFAULT_TOLERANCE),
            Err(SignatureError::Mismatch)
        );
    }
    let mut tampered = post.body.clone();
    let at = tampered.iter().position(|b| *b == b'"').unwrap();
    tampered.insert(at, b' ');
    assert_eq!(
        verify(
            HOOK_SECRET.as_bytes(),
            signature,
            &tampered,
            now,
            DEFAULT_TOLERANCE
        ),
        Err(SignatureError::Mismatch)
    );
    let later = now + jiff::SignedDuration::from_secs(3600);
    assert!(matches!(
        verify(
            HOOK_SECRET.as_bytes(),
            signature,
            &post.body,
            later,
            DEFAULT_TOLERANCE
        ),
        Err(SignatureError::Stale { .. })
    ));
    assert_eq!(
        verify(
            HOOK_SECRET.as_bytes(),
            signature,
            &post.body,
            now,
            DEFAULT_TOLERANCE
        ),
        Ok(())
    );
    assert!(
        !server.stderr().contains(HOOK_SECRET),
        "the secret is never logged"
    );
}

mod a_webhook_gets_every_event_signed_despite_an_outage {
    use super::*;

    #[test]
    fn sqlite() {
        a_webhook_gets_every_event_signed_despite_an_outage(Backend::Sqlite);
    }

    #[test]
    fn postgres() {
        a_webhook_gets_every_event_signed_despite_an_outage(Backend::Postgres);
    }
}
