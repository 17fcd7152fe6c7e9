//! Webhook delivery: each `[[webhook]]` gets the change feed's events it asks for, POSTed as
//! JSON and signed, at least once and in feed order, by one worker of the fleet at a time.
//!
//! - One task per webhook ([`run`]), beside the syncs: a slow or dead receiver delays only
//!   its own deliveries, never a run.
//! - The fleet shares each webhook's position (its cursor) and a lease in the store
//!   ([`Queue::claim_webhook`]): the holder delivers and renews; another worker waits until
//!   the lease lapses (its holder died) and then carries on from the stored cursor.
//! - A delivery is the webhook's events among the next [`MAX_EVENTS_PER_DELIVERY`] of the
//!   feed; the cursor moves past the events it filters out too. A 2xx answer moves the
//!   cursor ([`Delivery::Delivered`]); anything else is recorded in words
//!   ([`Delivery::Failed`]: the status or the error, the receiver named by its origin only,
//!   never the secret) and the same events are sent again after an exponential backoff
//!   with jitter. A crash between a receiver's 2xx and the store's record sends them again:
//!   receivers dedupe by event `cursor`.
//! - Signatures as Stripe and GitHub make them: `M365sync-Signature: t=<unix seconds>,
//!   v1=<hex HMAC-SHA256 of "<t>.<body>">`, which receivers check with [`verify`] (or its
//!   equivalent in their language); each POST has its own `M365sync-Delivery` id.
//! - The client is hyper-util's, on rustls with Mozilla's roots; it follows no redirect, so
//!   the URLs of the config are the only places events go; it times out connecting and
//!   answering.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http::header::{CONTENT_TYPE, USER_AGENT};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use m365sync_config::{SecretSource, WebhookTarget};
use m365sync_runtime::capabilities::secrets;
use m365sync_store::StoreError;
use m365sync_store::feed::{ChangeEvent, ChangeFeed};
use m365sync_store::queue::{Delivery, Queue};
use m365sync_store::time::unix_now_ms;
use m365sync_wit::SecretError;

/// The signature header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub const SIGNATURE_HEADER: &str = "m365sync-signature";
/// Each POST's own id, a UUID v4.
pub const DELIVERY_HEADER: &str = "m365sync-delivery";
/// The most events one POST carries.
pub const MAX_EVENTS_PER_DELIVERY: u32 = 100;
/// A tolerance for [`verify`]'s timestamp check: Stripe's default, room for clock skew and
/// a slow network, short enough that a captured request cannot be replayed much later.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);
/// The most of a receiver's answer that is read (and discarded, so the connection can be
/// reused).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A POST's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// The webhook's name.
    pub webhook: String,
    /// Its events, in feed order (at most [`MAX_EVENTS_PER_DELIVERY`]).
    pub events: Vec<ChangeEvent>,
}

/// How a delivery task behaves.
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// How often the feed is read when there is nothing to deliver, and how often a worker
    /// whose webhook another worker holds looks again (default 5 s).
    pub poll: Duration,
    /// The webhook's lease, renewed every third of it while held (`[serve] lease_secs`;
    /// default 60 s).
    pub lease: Duration,
    /// The longest a connection may take to open (default 10 s).
    pub connect_timeout: Duration,
    /// The longest a POST may take, connecting included, until its answer's head and body
    /// are in (default 30 s).
    pub request_timeout: Duration,
    /// The wait after a first failure, doubled after each next one (default 1 s) ...
    pub retry_first: Duration,
    /// ... up to this (default 5 min). Each wait is drawn between its half and itself, so
    /// workers do not retry in step.
    pub retry_max: Duration,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            poll: Duration::from_secs(5),
            lease: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            retry_first: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
        }
    }
}

/// Deliver `target`'s events from `store`'s feed as worker `worker_id` until `cancel`,
/// with the default [`DeliveryOptions`].
pub async fn run<S>(
    store: Arc<S>,
    target: WebhookTarget,
    worker_id: String,
    cancel: CancellationToken,
) where
    S: Queue + ChangeFeed + ?Sized + 'static,
{
    run_with(store, target, worker_id, cancel, DeliveryOptions::default()).await
}

/// [`run`] with `options`.
pub async fn run_with<S>(
    store: Arc<S>,
    target: WebhookTarget,
    worker_id: String,
    cancel: CancellationToken,
    options: DeliveryOptions,
) where
    S: Queue + ChangeFeed + ?Sized + 'static,
{
    let client = match client(&options) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(webhook = %target.name, "webhook deliveries cannot start: {error}");
            return;
        }
    };
    let deliverer = Deliverer {
        store,
        target,
        worker: worker_id,
        options,
        client,
    };
    deliverer.run(&cancel).await;
}

/// The `M365sync-Signature` value of `body` sent at `timestamp` (Unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Why a signature was refused. The texts name no secret and no signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is malformed: {0}")]
    Malformed(&'static str),
    #[error("no signature of the header matches the body with this secret")]
    Mismatch,
    #[error(
        "the signature was made {age_secs} s from now, beyond the {tolerance_secs} s \
         tolerance (a replayed request, or a clock that is off)"
    )]
    Stale { age_secs: i64, tolerance_secs: u64 },
}

/// Check an `M365sync-Signature` header against `body` and `secret`: one of its `v1`
/// signatures must match (compared in constant time), and its `t` be within `tolerance`
/// of `now`.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: Timestamp,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => {
                let value = value
                    .parse::<i64>()
                    .map_err(|_| SignatureError::Malformed("t is not a number of seconds"))?;
                timestamp = Some(value);
            }
            Some(("v1", value)) => signatures.push(value),
            // Other schemes (a future v2) are not this verifier's.
            Some(_) => {}
            None => return Err(SignatureError::Malformed("an item is not key=value")),
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed("no t= timestamp"))?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed("no v1= signature"));
    }
    let matches = signatures.iter().any(|signature| {
        hex::decode(signature)
            .is_ok_and(|bytes| mac(secret, timestamp, body).verify_slice(&bytes).is_ok())
    });
    if !matches {
        return Err(SignatureError::Mismatch);
    }
    let age_secs = now.as_second().saturating_sub(timestamp);
    let tolerance_secs = tolerance.as_secs();
    if age_secs.unsigned_abs() > tolerance_secs {
        return Err(SignatureError::Stale {
            age_secs,
            tolerance_secs,
        });
    }
    Ok(())
}

/// HMAC-SHA256 of `"<timestamp>.<body>"`.
fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length (a long one is hashed first): this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The HTTPS client: rustls with ring and Mozilla's roots (as the runtime's sender), plain
/// http only where the config allowed it (loopback), connect timeout, pooled connections.
fn client(options: &DeliveryOptions) -> Result<HttpClient, String> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(options.connect_timeout));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .map_err(|error| format!("TLS is not available: {error}"))?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(https))
}

/// What one step of the delivery loop did.
enum Step {
    /// Nothing new in the feed.
    Idle,
    /// Events delivered (or filtered out): look again at once.
    Moved,
    /// The delivery failed, for the `n`th time in a row.
    Failed(u32),
    /// Another worker holds the webhook now.
    Lost,
}

struct Deliverer<S: ?Sized> {
    store: Arc<S>,
    target: WebhookTarget,
    worker: String,
    options: DeliveryOptions,
    client: HttpClient,
}

impl<S> Deliverer<S>
where
    S: Queue + ChangeFeed + ?Sized,
{
    async fn run(&self, cancel: &CancellationToken) {
        let name = &self.target.name;
        let mut holding = false;
        while !cancel.is_cancelled() {
            match self.take_lease().await {
                Ok(true) if !holding => {
                    holding = true;
                    tracing::info!(webhook = %name, worker = %self.worker, "delivering webhook events");
                }
                Ok(true) => {}
                Ok(false) => {
                    holding = false;
                    // Another worker delivers; look again in case it dies.
                    self.pause(self.options.poll, cancel).await;
                    continue;
                }
                Err(error) => {
                    tracing::warn!(webhook = %name, "webhook lease: {error}");
                    self.pause(self.options.poll, cancel).await;
                    continue;
                }
            }
            let wait = match self.step(cancel).await {
                Ok(Step::Moved) => continue,
                Ok(Step::Idle) => self.options.poll,
                Ok(Step::Lost) => {
                    holding = false;
                    continue;
                }
                Ok(Step::Failed(failures)) => {
                    let wait = backoff(&self.options, failures);
                    tracing::debug!(webhook = %name, failures, "next delivery attempt in {wait:?}");
                    wait
                }
                Err(error) => {
                    tracing::warn!(webhook = %name, "webhook delivery: {error}");
                    self.options.poll
                }
            };
            self.pause(wait, cancel).await;
        }
    }

    /// Take the webhook's lease, or renew it (false: another worker holds it).
    async fn take_lease(&self) -> Result<bool, StoreError> {
        (self.store)
            .claim_webhook(
                &self.target.name,
                &self.worker,
                unix_now_ms(),
                self.options.lease,
            )
            .await
    }

    /// Wait `duration` (or until `cancel`), renewing the lease every third of it.
    async fn pause(&self, duration: Duration, cancel: &CancellationToken) {
        let until = Instant::now() + duration;
        let renew_every = (self.options.lease / 3).max(Duration::from_millis(10));
        loop {
            let now = Instant::now();
            if now >= until {
                return;
            }
            let chunk = (until - now).min(renew_every);
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(chunk) => {}
            }
            if Instant::now() < until {
                // A lost lease is found at the loop's next take.
                let _ = self.take_lease().await;
            }
        }
    }

    /// Deliver the webhook's events among the next page of the feed.
    async fn step(&self, cancel: &CancellationToken) -> Result<Step, StoreError> {
        let target = &self.target;
        let state = self.store.webhook_state(&target.name).await?;
        let page = (self.store)
            .changes(state.cursor, MAX_EVENTS_PER_DELIVERY, None)
            .await?;
        let Some(last) = page.last().map(|event| event.cursor) else {
            return Ok(Step::Idle);
        };
        let events: Vec<ChangeEvent> = page
            .into_iter()
            .filter(|event| target.wants(event.kind, &event.tenant))
            .collect();
        let delivered = Delivery::Delivered {
            cursor: last,
            events: events.len() as u64,
        };
        if events.is_empty() {
            return self.record(&delivered, 0).await;
        }
        let outcome = match read_secret(&target.secret) {
            Ok(secret) => {
                let payload = Payload {
                    webhook: target.name.clone(),
                    events,
                };
                match self.post_renewing(&payload, &secret, cancel).await {
                    Some(outcome) => outcome,
                    // Stopping: the events go again from the stored cursor, next time.
                    None => return Ok(Step::Idle),
                }
            }
            Err(error) => Err(error),
        };
        match outcome {
            Ok(()) => self.record(&delivered, 0).await,
            Err(error) => {
                tracing::warn!(webhook = %target.name, "webhook delivery failed: {error}");
                let failures = state.failures.saturating_add(1);
                self.record(&Delivery::Failed { error }, failures).await
            }
        }
    }

    /// Record an attempt; `failures` is what a failure makes of the count.
    async fn record(&self, delivery: &Delivery, failures: u32) -> Result<Step, StoreError> {
        let held = (self.store)
            .record_delivery(&self.target.name, &self.worker, delivery, unix_now_ms())
            .await?;
        Ok(match (held, delivery) {
            (false, _) => Step::Lost,
            (true, Delivery::Delivered { .. }) => Step::Moved,
            (true, Delivery::Failed { .. }) => Step::Failed(failures),
        })
    }

    /// POST `payload`, renewing the lease while the receiver takes its time; None when
    /// `cancel` stops it first.
    async fn post_renewing(
        &self,
        payload: &Payload,
        secret: &str,
        cancel: &CancellationToken,
    ) -> Option<Result<(), String>> {
        let post = self.post(payload, secret);
        tokio::pin!(post);
        let renew_every = (self.options.lease / 3).max(Duration::from_millis(10));
        loop {
            tokio::select! {
                outcome = &mut post => return Some(outcome),
                () = cancel.cancelled() => return None,
                () = tokio::time::sleep(renew_every) => {
                    let _ = self.take_lease().await;
                }
            }
        }
    }

    /// POST `payload` signed with `secret`: Ok on a 2xx answer, else what went wrong in
    /// words naming the receiver's origin (its path and query may hold a credential).
    async fn post(&self, payload: &Payload, secret: &str) -> Result<(), String> {
        let origin = &self.target.url.origin().normalized;
        let body = serde_json::to_vec(payload)
            .map_err(|error| format!("the events could not be encoded as JSON: {error}"))?;
        let signature = sign(secret.as_bytes(), Timestamp::now().as_second(), &body);
        let request = http::Request::post(self.target.url.as_secret_str())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("m365sync/", env!("CARGO_PKG_VERSION")))
            .header(SIGNATURE_HEADER, signature)
            .header(DELIVERY_HEADER, uuid::Uuid::new_v4().to_string())
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| format!("a request to {origin} could not be made from its URL"))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|error| {
                let what = if error.is_connect() {
                    "could not connect to"
                } else {
                    "the request failed at"
                };
                format!("{what} {origin}: {}", self.scrubbed(&error))
            })?;
            let status = response.status();
            // Read (a bounded part of) the answer so the connection can serve the next
            // POST; what it says is not used.
            let _ = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await;
            Ok::<_, String>(status)
        };
        let timeout = self.options.request_timeout;
        let status = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| format!("{origin} did not answer within {} s", timeout.as_secs_f32()))??;
        if status.is_success() {
            return Ok(());
        }
        let redirect = if status.is_redirection() {
            " (redirects are not followed: set the webhook's url to where it points)"
        } else {
            ""
        };
        Err(format!("{origin} answered HTTP {status}{redirect}"))
    }

    /// An error's causes (hyper-util's own text, "client error (Connect)", says less than
    /// they do), with the receiver's URL (should a cause ever quote it) cut to its origin.
    fn scrubbed(&self, error: &dyn std::error::Error) -> String {
        let mut causes = Vec::new();
        let mut source = error.source();
        while let Some(cause) = source {
            causes.push(cause.to_string());
            source = cause.source();
        }
        let text = if causes.is_empty() {
            error.to_string()
        } else {
            causes.join(": ")
        };
        text.replace(
            self.target.url.as_secret_str(),
            &self.target.url.origin().normalized,
        )
    }
}

/// The signing secret, or why it could not be read (its source, never a value).
fn read_secret(source: &SecretSource) -> Result<String, String> {
    secrets::read(source).map_err(|error| match error {
        SecretError::NotFound(name) => format!("the signing secret {name} is not known"),
        SecretError::Unreadable(from) => {
            format!("the signing secret could not be read from {from}")
        }
    })
}

/// The wait after the `failures`th failure in a row: `retry_first` doubled each time up to
/// `retry_max`, drawn between its half and itself.
fn backoff(options: &DeliveryOptions, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(30);
    let full = options
        .retry_first
        .saturating_mul(1u32 << doublings)
        .min(options.retry_max);
    let half = full / 2;
    let spread = u64::try_from((full - half).as_millis()).unwrap_or(u64::MAX);
    half + Duration::from_millis(fastrand::u64(0..=spread))
}

#[cfg(test)]
mod tests;
