//! Webhook delivery against a local receiver (hyper, on 127.0.0.1) and the memory store:
//! signatures, filtering, the 100-event cap, retries through failures, one deliverer per
//! webhook, and error words that name the receiver's origin only.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Mutex;

use http::{HeaderMap, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use m365sync_config::ReceiverUrl;
use m365sync_store::conformance::fixtures::{commit_all, create, person, saved, upsert};
use m365sync_store::feed::ChangeKind;
use m365sync_store::memory::MemoryStore;
use m365sync_store::queue::WebhookState;
use m365sync_wit::types::Change;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::*;

const SECRET: &str = "whsec_test-signing-secret";
/// A receiver path with a credential in it, which no error may show.
const PATH: &str = "/hooks/s3cret-path?code=k3y";

/// One request a receiver got, and what it answered.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
    status: StatusCode,
}

/// What the receiver answers to its `n`th request (from 0).
type Answer = Arc<dyn Fn(usize) -> Response<Full<Bytes>> + Send + Sync>;

struct Receiver {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    task: JoinHandle<()>,
}

impl Receiver {
    async fn start(answer: Answer) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let log = log.clone();
                let answer = answer.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: hyper::Request<Incoming>| {
                        let log = log.clone();
                        let answer = answer.clone();
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            let mut log = log.lock().unwrap();
                            let response = answer(log.len());
                            log.push(Received {
                                headers: parts.headers,
                                body,
                                status: response.status(),
                            });
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver {
            addr,
            received,
            task,
        }
    }

    fn url(&self) -> ReceiverUrl {
        ReceiverUrl::parse(&format!("http://{}{PATH}", self.addr)).unwrap()
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn answer(status: StatusCode) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap()
}

/// Fails the first `n` requests with a 500, then answers 200.
fn failing_first(n: usize) -> Answer {
    Arc::new(move |index| {
        answer(if index < n {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        })
    })
}

fn target(url: ReceiverUrl, events: &[ChangeKind], tenants: Option<&[&str]>) -> WebhookTarget {
    WebhookTarget {
        name: "crm".to_string(),
        url,
        secret: SecretSource::Value(SECRET.to_string()),
        events: events.to_vec(),
        tenants: tenants.map(|t| t.iter().map(|s| s.to_string()).collect()),
    }
}

fn options() -> DeliveryOptions {
    DeliveryOptions {
        poll: Duration::from_millis(20),
        lease: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        retry_first: Duration::from_millis(10),
        retry_max: Duration::from_millis(80),
    }
}

fn start(
    store: &Arc<MemoryStore>,
    target: WebhookTarget,
    worker: &str,
    cancel: &CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(run_with(
        store.clone(),
        target,
        worker.to_string(),
        cancel.clone(),
        options(),
    ))
}

/// A person `<id>@x.test` holding licence `sku`: a person.created and a licence.assigned.
fn licensed(id: &str, sku: &str) -> Change {
    let upn = format!("{id}@x.test");
    let mut stored = person(id, &upn);
    stored.person.licences = vec![sku.to_string()];
    upsert(stored, None, &upn)
}

/// Commit 150 people (5 licensed) and a group's members to contoso, 20 people to
/// fabrikam; the webhook `crm` exists first, so it starts before them.
async fn fill(store: &MemoryStore) {
    store.webhook_state("crm").await.unwrap();
    let mut contoso: Vec<Change> = (0..145).map(|i| create(&format!("c{i}"))).collect();
    contoso.extend((0..5).map(|i| licensed(&format!("l{i}"), "sku-e3")));
    contoso.push(m365sync_store::conformance::fixtures::members(
        "g",
        &["c1", "c2"],
        &[],
    ));
    commit_all(store, "contoso", vec![saved(contoso)]).await;
    let fabrikam = (0..20).map(|i| create(&format!("f{i}"))).collect();
    commit_all(store, "fabrikam", vec![saved(fabrikam)]).await;
}

/// Wait (up to 20 s) until the webhook's state passes `done`.
async fn until(store: &MemoryStore, done: impl Fn(&WebhookState) -> bool) -> WebhookState {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = store.webhook_state("crm").await.unwrap();
        if done(&state) {
            return state;
        }
        assert!(Instant::now() < deadline, "timed out at {state:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn stop(cancel: &CancellationToken, tasks: Vec<JoinHandle<()>>) {
    cancel.cancel();
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the delivery task stops when cancelled")
            .unwrap();
    }
}

/// The payloads the receiver got with a 2xx answer, and every request's checks.
fn payloads(received: &[Received]) -> Vec<(StatusCode, Payload)> {
    received
        .iter()
        .map(|r| {
            let signature = r.headers[SIGNATURE_HEADER].to_str().unwrap();
            verify(
                SECRET.as_bytes(),
                signature,
                &r.body,
                Timestamp::now(),
                DEFAULT_TOLERANCE,
            )
            .expect("every POST is signed");
            let id = r.headers[DELIVERY_HEADER].to_str().unwrap();
            assert_eq!(
                uuid::Uuid::parse_str(id).unwrap().get_version_num(),
                4,
                "{id}"
            );
            assert_eq!(r.headers[CONTENT_TYPE], "application/json");
            assert_eq!(
                r.headers[http::header::CONTENT_LENGTH].to_str().unwrap(),
                r.body.len().to_string(),
                "a body of known length is sent with its length"
            );
            let payload: Payload = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(payload.webhook, "crm");
            assert!(
                !payload.events.is_empty()
                    && payload.events.len() <= MAX_EVENTS_PER_DELIVERY as usize,
                "{} events in one POST",
                payload.events.len()
            );
            (r.status, payload)
        })
        .collect()
}

#[test]
fn signatures_verify_and_refuse_what_was_changed() {
    let body = br#"{"webhook":"crm","events":[]}"#;
    let now = Timestamp::from_second(1_780_000_000).unwrap();
    let header = sign(SECRET.as_bytes(), now.as_second(), body);
    assert!(header.starts_with("t=1780000000,v1="), "{header}");
    assert_eq!(header.len(), "t=1780000000,v1=".len() + 64);
    let check = |secret: &str, header: &str, body: &[u8], now: Timestamp| {
        verify(secret.as_bytes(), header, body, now, DEFAULT_TOLERANCE)
    };
    assert_eq!(check(SECRET, &header, body, now), Ok(()));
    // Within the tolerance either way.
    let later = Timestamp::from_second(now.as_second() + 299).unwrap();
    assert_eq!(check(SECRET, &header, body, later), Ok(()));
    assert_eq!(
        check(SECRET, &header, br#"{"webhook":"crm","events":[1]}"#, now),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        check("another secret", &header, body, now),
        Err(SignatureError::Mismatch)
    );
    let replayed = Timestamp::from_second(now.as_second() + 301).unwrap();
    assert_eq!(
        check(SECRET, &header, body, replayed),
        Err(SignatureError::Stale {
            age_secs: 301,
            tolerance_secs: 300
        })
    );
    // The timestamp is signed: moving it breaks the signature.
    let moved = header.replace("t=1780000000", "t=1780000299");
    assert_eq!(
        check(SECRET, &moved, body, now),
        Err(SignatureError::Mismatch)
    );
    // Several signatures (a secret being rotated): one match is enough.
    let v1 = header.split("v1=").nth(1).unwrap();
    let two = format!("t=1780000000,v1={},v1={v1}", "0".repeat(64));
    assert_eq!(check(SECRET, &two, body, now), Ok(()));
    for bad in ["", "t=1780000000", "v1=abcd", "t=soon,v1=abcd", "garbage"] {
        assert!(
            matches!(
                check(SECRET, bad, body, now),
                Err(SignatureError::Malformed(_))
            ),
            "{bad}"
        );
    }
    assert_eq!(
        check(SECRET, "t=1780000000,v1=not-hex", body, now),
        Err(SignatureError::Mismatch)
    );
    let error = check(SECRET, &moved, body, now).unwrap_err().to_string();
    assert!(!error.contains(SECRET) && !error.contains(v1), "{error}");
}

#[test]
fn backoff_doubles_from_the_first_wait_to_the_cap_with_jitter() {
    let options = DeliveryOptions {
        retry_first: Duration::from_secs(1),
        retry_max: Duration::from_secs(300),
        ..DeliveryOptions::default()
    };
    for (failures, full) in [(1, 1), (2, 2), (3, 4), (9, 256), (10, 300), (1000, 300)] {
        for _ in 0..20 {
            let wait = backoff(&options, failures);
            let full = Duration::from_secs(full);
            assert!(
                wait >= full / 2 && wait <= full,
                "{failures} failures: {wait:?}"
            );
        }
    }
}

#[tokio::test]
async fn every_wanted_event_arrives_at_least_once_through_failures() {
    let store = Arc::new(MemoryStore::new());
    fill(&store).await;
    let feed = store.changes(0, 1000, None).await.unwrap();
    let last = store.last_cursor().await.unwrap();
    let wanted = [ChangeKind::PersonCreated, ChangeKind::LicenceAssigned];
    let expected: BTreeSet<i64> = feed
        .iter()
        .filter(|e| e.tenant == "contoso" && wanted.contains(&e.kind))
        .map(|e| e.cursor)
        .collect();
    assert_eq!(expected.len(), 155, "145 + 5 people created, 5 licences");
    assert!(feed.len() > expected.len(), "some events are not wanted");

    let receiver = Receiver::start(failing_first(3)).await;
    let cancel = CancellationToken::new();
    let task = start(
        &store,
        target(receiver.url(), &wanted, Some(&["contoso"])),
        "worker-a",
        &cancel,
    );
    let state = until(&store, |s| s.cursor == last).await;
    stop(&cancel, vec![task]).await;

    let received = payloads(&receiver.received());
    assert!(
        received.len() >= 5,
        "3 failures, then 2 deliveries at least"
    );
    assert!(
        received[..3]
            .iter()
            .all(|(status, _)| *status == StatusCode::INTERNAL_SERVER_ERROR)
    );
    let mut delivered = BTreeSet::new();
    for (status, payload) in &received {
        for event in &payload.events {
            assert!(
                event.tenant == "contoso" && wanted.contains(&event.kind),
                "{event:?} is filtered out"
            );
            if status.is_success() {
                delivered.insert(event.cursor);
            }
        }
        let cursors: Vec<i64> = payload.events.iter().map(|e| e.cursor).collect();
        assert!(cursors.windows(2).all(|w| w[0] < w[1]), "in feed order");
    }
    assert_eq!(delivered, expected, "every wanted event, delivered");
    assert_eq!(
        state.cursor, last,
        "the cursor ends at the feed's last event"
    );
    assert_eq!(state.delivered, 155);
    assert_eq!((state.failures, state.last_error.as_deref()), (0, None));
    assert_eq!(state.worker.as_deref(), Some("worker-a"));
}

#[tokio::test]
async fn one_worker_delivers_while_another_waits_for_its_lease() {
    let store = Arc::new(MemoryStore::new());
    let receiver = Receiver::start(failing_first(0)).await;
    let cancel = CancellationToken::new();
    let a = start(
        &store,
        target(receiver.url(), &ChangeKind::ALL, None),
        "a",
        &cancel,
    );
    let holder = until(&store, |s| s.worker.is_some()).await.worker;
    let b = start(
        &store,
        target(receiver.url(), &ChangeKind::ALL, None),
        "b",
        &cancel,
    );
    fill(&store).await;
    let last = store.last_cursor().await.unwrap();
    let state = until(&store, |s| s.cursor == last).await;
    stop(&cancel, vec![a, b]).await;

    assert_eq!(state.worker, holder, "the first holder kept the lease");
    let mut seen = Vec::new();
    for (status, payload) in payloads(&receiver.received()) {
        assert!(status.is_success());
        seen.extend(payload.events.iter().map(|e| e.cursor));
    }
    let all: Vec<i64> = (1..=last).collect();
    assert_eq!(seen, all, "every event once, in order: no second deliverer");
}

#[tokio::test]
async fn events_a_webhook_does_not_take_move_its_cursor_without_a_post() {
    let store = Arc::new(MemoryStore::new());
    store.webhook_state("crm").await.unwrap();
    let people = (0..30).map(|i| create(&format!("c{i}"))).collect();
    commit_all(&*store, "contoso", vec![saved(people)]).await;
    let receiver = Receiver::start(failing_first(0)).await;
    let cancel = CancellationToken::new();
    let task = start(
        &store,
        target(receiver.url(), &ChangeKind::ALL, Some(&["fabrikam"])),
        "a",
        &cancel,
    );
    let state = until(&store, |s| s.cursor == 30).await;
    stop(&cancel, vec![task]).await;
    assert!(receiver.received().is_empty());
    assert_eq!(state.delivered, 0);
}

/// The webhook's state once it has failed twice with `target`.
async fn failing(target: WebhookTarget) -> WebhookState {
    let store = Arc::new(MemoryStore::new());
    fill(&store).await;
    let cancel = CancellationToken::new();
    let task = start(&store, target, "a", &cancel);
    let state = until(&store, |s| s.failures >= 2).await;
    stop(&cancel, vec![task]).await;
    assert_eq!(state.cursor, 0, "nothing delivered: the cursor stays");
    state
}

fn assert_words(state: &WebhookState, parts: &[&str]) {
    let error = state.last_error.as_deref().unwrap_or_default();
    for part in parts {
        assert!(error.contains(part), "{part:?} missing from {error:?}");
    }
    for secret in [SECRET, "s3cret-path", "k3y", "/hooks"] {
        assert!(!error.contains(secret), "{secret:?} shown in {error:?}");
    }
}

#[tokio::test]
async fn a_failing_receiver_is_recorded_in_words_naming_its_origin_only() {
    let receiver = Receiver::start(Arc::new(|_| answer(StatusCode::SERVICE_UNAVAILABLE))).await;
    let state = failing(target(receiver.url(), &ChangeKind::ALL, None)).await;
    let origin = format!("http://{}", receiver.addr);
    assert_words(&state, &[&origin, "answered HTTP 503 Service Unavailable"]);
    assert!(receiver.received().len() >= 2, "the same events sent again");
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let receiver = Receiver::start(Arc::new(|_| {
        Response::builder()
            .status(StatusCode::FOUND)
            .header(http::header::LOCATION, "http://127.0.0.1:9/elsewhere")
            .body(Full::new(Bytes::new()))
            .unwrap()
    }))
    .await;
    let state = failing(target(receiver.url(), &ChangeKind::ALL, None)).await;
    assert_words(&state, &["HTTP 302 Found", "redirects are not followed"]);
}

#[tokio::test]
async fn an_unreachable_receiver_or_an_unreadable_secret_is_a_failure_in_words() {
    // A port nothing listens on.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let url = ReceiverUrl::parse(&format!("http://{addr}{PATH}")).unwrap();
    let state = failing(target(url, &ChangeKind::ALL, None)).await;
    assert_words(&state, &[&format!("could not connect to http://{addr}")]);

    let receiver = Receiver::start(failing_first(0)).await;
    let mut unset = target(receiver.url(), &ChangeKind::ALL, None);
    unset.secret = SecretSource::Env("M365SYNC_TEST_WEBHOOK_SECRET_NOT_SET".to_string());
    let state = failing(unset).await;
    assert_words(
        &state,
        &[
            "signing secret could not be read from environment variable M365SYNC_TEST_WEBHOOK_SECRET_NOT_SET (not set)",
        ],
    );
    assert!(receiver.received().is_empty(), "nothing unsigned is sent");
}

/// A store the host holds as a trait object (as `serve` does) spawns a delivery task too.
#[tokio::test]
async fn a_store_held_as_a_trait_object_runs_deliveries() {
    trait ServeStore: Queue + ChangeFeed {}
    impl ServeStore for MemoryStore {}
    let store: Arc<dyn ServeStore> = Arc::new(MemoryStore::new());
    let receiver = Receiver::start(failing_first(0)).await;
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run(
        store.clone(),
        target(receiver.url(), &ChangeKind::ALL, None),
        "a".to_string(),
        cancel.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.webhook_state("crm").await.unwrap().worker.is_none() {
        assert!(Instant::now() < deadline, "the task takes the lease");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop(&cancel, vec![task]).await;
}
