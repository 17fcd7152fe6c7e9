//! Conformance cases of what `serve` workers share besides the queue: tenant states and
//! their status, runs' ends, the next run, the workers themselves, and webhook delivery
//! positions with their leases.

use std::time::Duration;

use super::Subject;
use super::fixtures::{commit_all, create, saved};
use super::serve_fixtures::*;
use crate::StoreError;
use crate::queue::{Delivery, JobKind, TenantStatus, WebhookState};

pub async fn tenant_status_follows_leases_failures_attention_and_pauses(subject: &Subject) {
    let store = &*subject.store;
    serve(store, &[("a", APP)]).await;
    let status = |now_ms: i64, failing_after: u32| async move {
        state_of(store, "a", now_ms).await.status(failing_after)
    };
    assert_eq!(status(0, 3).await, TenantStatus::Healthy);
    let id = queued(store, &job("a", JobKind::Manual, 0)).await;
    assert_eq!(claimed_id(store, "w1", 1_000).await, Some(id));
    assert_eq!(
        status(1_000, 3).await,
        TenantStatus::Running,
        "a live lease"
    );
    let lapsed = state_of(store, "a", 1_000 + LEASE_MS).await;
    assert!(!lapsed.running, "a lapsed lease is no run");
    assert!(end(store, id, "w1", succeeded(), 2_000).await);
    assert_eq!(status(2_000, 3).await, TenantStatus::Healthy);
    record_run_end(store, "a", &run_end(false, 1, 2_000, None)).await;
    record_run_end(store, "a", &run_end(false, 2, 3_000, None)).await;
    assert_eq!(status(3_000, 3).await, TenantStatus::Healthy);
    assert_eq!(status(3_000, 2).await, TenantStatus::Failing);
    let consent = "grant admin consent to the app";
    record_run_end(store, "a", &run_end(false, 3, 4_000, Some(consent))).await;
    let state = state_of(store, "a", 4_000).await;
    assert_eq!(state.consecutive_failures, 3);
    assert_eq!(state.status(3), TenantStatus::NeedsAttention);
    let paused = store.set_paused("a", true, 4_000).await.expect("pausing");
    let paused = paused.expect("a is served");
    assert_eq!(paused.status(3), TenantStatus::Paused, "a pause wins");
    assert_eq!(paused.attention.as_deref(), Some(consent), "kept");
}

pub async fn a_successful_run_clears_failures_and_attention(subject: &Subject) {
    let store = &*subject.store;
    serve(store, &[("a", APP)]).await;
    record_run_end(
        store,
        "a",
        &run_end(false, 1, 100, Some("renew the secret")),
    )
    .await;
    record_run_end(store, "a", &run_end(false, 2, 200, None)).await;
    let failing = state_of(store, "a", 200).await;
    assert_eq!(
        (
            failing.consecutive_failures,
            failing.attention.as_deref(),
            failing.last_run_id,
            failing.last_run_ms,
            failing.last_run_ok
        ),
        (2, Some("renew the secret"), Some(2), Some(200), Some(false)),
        "a failure without an attention keeps the one before"
    );
    record_run_end(store, "a", &run_end(true, 3, 300, None)).await;
    let again = subject.reopen().await;
    let healthy = state_of(&*again, "a", 300).await;
    assert_eq!(
        (
            healthy.consecutive_failures,
            healthy.attention.as_deref(),
            healthy.last_run_id,
            healthy.last_run_ms,
            healthy.last_run_ok
        ),
        (0, None, Some(3), Some(300), Some(true))
    );
    // A tenant not served is not recorded.
    record_run_end(store, "nobody", &run_end(false, 4, 400, None)).await;
    assert_eq!(
        store.tenant_state("nobody", 400).await.expect("reading"),
        None
    );
}

pub async fn the_next_run_is_set_and_cleared(subject: &Subject) {
    let store = &*subject.store;
    serve(store, &[("a", APP)]).await;
    assert!(
        store
            .set_next_run("a", None, Some(5_000))
            .await
            .expect("setting")
    );
    let again = subject.reopen().await;
    assert_eq!(state_of(&*again, "a", 0).await.next_run_ms, Some(5_000));
    // A compare-and-set: of two workers moving the same due run on, one does.
    assert!(
        !again
            .set_next_run("a", None, Some(9_000))
            .await
            .expect("stale")
    );
    assert!(
        !again
            .set_next_run("a", Some(4_000), Some(9_000))
            .await
            .expect("stale")
    );
    assert!(
        again
            .set_next_run("a", Some(5_000), Some(9_000))
            .await
            .expect("moving")
    );
    assert!(
        !store
            .set_next_run("a", Some(5_000), Some(9_500))
            .await
            .expect("second")
    );
    assert_eq!(state_of(store, "a", 0).await.next_run_ms, Some(9_000));
    assert!(
        store
            .set_next_run("a", Some(9_000), None)
            .await
            .expect("clearing")
    );
    assert_eq!(state_of(store, "a", 0).await.next_run_ms, None);
    assert!(
        !store
            .set_next_run("nobody", None, Some(1))
            .await
            .expect("a tenant not served")
    );
    assert_eq!(
        store.tenant_state("nobody", 0).await.expect("reading"),
        None
    );
}

pub async fn workers_join_refresh_and_are_listed_by_heartbeat(subject: &Subject) {
    let store = &*subject.store;
    let here = crate::model::host_name();
    let pid = std::process::id();
    let minute = Duration::from_secs(60);
    let listed = |now_ms: i64| async move {
        let workers = store
            .workers(now_ms, minute)
            .await
            .expect("listing workers");
        workers
            .into_iter()
            .map(|w| (w.id, w.heartbeat_ms))
            .collect::<Vec<_>>()
    };
    let first = worker("w1", &here, pid, 1_000);
    store.join(&first).await.expect("joining");
    let refreshed = crate::queue::WorkerInfo {
        heartbeat_ms: 5_000,
        ..first.clone()
    };
    store
        .join(&refreshed)
        .await
        .expect("the same worker joining again");
    let again = subject.reopen().await;
    let workers = again.workers(5_000, minute).await.expect("listing workers");
    assert_eq!(workers, vec![refreshed.clone()]);
    assert_eq!(
        listed(5_000 + 59_999).await,
        vec![("w1".to_string(), 5_000)]
    );
    assert_eq!(
        listed(5_000 + 60_000).await,
        vec![],
        "a minute old is stale"
    );
    // A second process: a store many workers share lists both; one that only one process
    // may serve refuses it, naming the first.
    let second = worker("w2", "elsewhere.example", 1, 6_000);
    match store.join(&second).await {
        Ok(()) => assert_eq!(
            listed(6_000).await,
            vec![("w1".to_string(), 5_000), ("w2".to_string(), 6_000)]
        ),
        Err(StoreError::Busy(message)) => {
            assert!(
                message.contains(&format!("pid {pid} on {here}")),
                "{message}"
            );
            assert_eq!(listed(6_000).await, vec![("w1".to_string(), 5_000)]);
        }
        Err(other) => panic!("a second worker joins, or is refused as busy: {other:?}"),
    }
    store.leave("w1").await.expect("leaving");
    store.join(&second).await.expect("the first worker left");
    assert_eq!(listed(6_000).await, vec![("w2".to_string(), 6_000)]);
    store.leave("w2").await.expect("leaving");
    store
        .leave("never-joined")
        .await
        .expect("leaving twice is no error");
    assert_eq!(listed(6_000).await, vec![]);
}

pub async fn a_new_webhook_starts_at_the_end_of_the_feed(subject: &Subject) {
    let store = &*subject.store;
    commit_all(store, "t", vec![saved(vec![create("a"), create("b")])]).await;
    let end = last_cursor(store).await;
    assert!(end > 0, "the feed has events: {end}");
    let state = store.webhook_state("hook").await.expect("reading");
    assert_eq!(
        state,
        WebhookState {
            name: "hook".to_string(),
            cursor: end,
            ..WebhookState::default()
        }
    );
    commit_all(store, "t", vec![saved(vec![create("c")])]).await;
    let again = subject.reopen().await;
    let kept = again.webhook_state("hook").await.expect("reading");
    assert_eq!(kept.cursor, end, "it stays where it started");
    let later = again.webhook_state("later").await.expect("reading");
    assert_eq!(later.cursor, last_cursor(store).await);
    assert!(later.cursor > end);
}

pub async fn a_webhook_lease_is_held_by_one_worker_at_a_time(subject: &Subject) {
    let store = &*subject.store;
    let take = |worker: &'static str, now_ms: i64| async move {
        (store.claim_webhook("hook", worker, now_ms, LEASE).await).expect("claiming the webhook")
    };
    assert!(take("w1", 1_000).await);
    let held = store.webhook_state("hook").await.expect("reading");
    assert_eq!(
        (held.worker.as_deref(), held.lease_until_ms),
        (Some("w1"), Some(1_000 + LEASE_MS))
    );
    assert!(
        !take("w2", 1_000 + LEASE_MS - 1).await,
        "w1's lease is live"
    );
    assert!(take("w1", 5_000).await, "the holder renews it");
    assert!(!take("w2", 5_000 + LEASE_MS - 1).await);
    assert!(take("w2", 5_000 + LEASE_MS).await, "lapsed: taken over");
    let taken = store.webhook_state("hook").await.expect("reading");
    assert_eq!(taken.worker.as_deref(), Some("w2"));
    let delivered = Delivery::Delivered {
        cursor: 5,
        events: 5,
    };
    let recorded = (store
        .record_delivery("hook", "w1", &delivered, 15_100)
        .await)
        .expect("recording");
    assert!(!recorded, "w1 no longer holds it");
    assert_eq!(store.webhook_state("hook").await.expect("reading"), taken);
}

pub async fn deliveries_move_the_cursor_and_failures_keep_their_error(subject: &Subject) {
    let store = &*subject.store;
    let deliver = |worker: &'static str, delivery: Delivery, now_ms: i64| async move {
        (store
            .record_delivery("hook", worker, &delivery, now_ms)
            .await)
            .expect("recording")
    };
    let failed = |error: &str| Delivery::Failed {
        error: error.to_string(),
    };
    assert!(
        !deliver("w1", failed("not held"), 900).await,
        "nobody holds it"
    );
    assert!((store.claim_webhook("hook", "w1", 1_000, LEASE).await).expect("claiming the webhook"));
    let start = store.webhook_state("hook").await.expect("reading").cursor;
    assert!(deliver("w1", failed("HTTP 500"), 1_100).await);
    assert!(deliver("w1", failed("timed out"), 1_200).await);
    let failing = store.webhook_state("hook").await.expect("reading");
    assert_eq!(
        (
            failing.cursor,
            failing.delivered,
            failing.failures,
            failing.last_error.as_deref(),
            failing.last_delivered_ms
        ),
        (start, 0, 2, Some("timed out"), None)
    );
    let delivered = Delivery::Delivered {
        cursor: start + 7,
        events: 3,
    };
    assert!(deliver("w1", delivered, 1_300).await);
    let more = Delivery::Delivered {
        cursor: start + 9,
        events: 2,
    };
    assert!(deliver("w1", more, 1_400).await);
    let again = subject.reopen().await;
    let state = again.webhook_state("hook").await.expect("reading");
    assert_eq!(
        (
            state.cursor,
            state.delivered,
            state.failures,
            state.last_error.as_deref(),
            state.last_delivered_ms
        ),
        (start + 9, 5, 0, None, Some(1_400))
    );
    assert!(!deliver("w2", failed("not the holder"), 1_500).await);
    assert_eq!(store.webhook_state("hook").await.expect("reading"), state);
}
