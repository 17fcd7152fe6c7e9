//! What `/metrics` shows (OpenMetrics text, which Prometheus scrapes): this worker's runs by
//! result and their durations, the Graph retries and throttled waits its runs reported, and,
//! read from the store at each scrape, the queue's depth and the served tenants by status.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use m365sync_store::queue::TenantStatus;
use m365sync_wit::types::SyncReport;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabel {
    tenant: String,
}

/// The worker's metrics.
pub struct Metrics {
    registry: Registry,
    runs: Family<ResultLabel, Counter>,
    duration: Histogram,
    retries: Counter,
    throttled: Counter<f64, AtomicU64>,
    queue_depth: Gauge,
    tenants: Family<StatusLabel, Gauge>,
    secret_days_left: Family<TenantLabel, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("m365sync");
        let runs = Family::<ResultLabel, Counter>::default();
        // 1 s to about 4.5 h.
        let duration = Histogram::new(exponential_buckets(1.0, 2.0, 15));
        let retries = Counter::default();
        let throttled = Counter::<f64, AtomicU64>::default();
        let queue_depth = Gauge::default();
        let tenants = Family::<StatusLabel, Gauge>::default();
        registry.register(
            "runs",
            "Syncs this worker ran, by result (ok, failed, interrupted, refused)",
            runs.clone(),
        );
        registry.register(
            "run_duration_seconds",
            "How long this worker's syncs took",
            duration.clone(),
        );
        registry.register(
            "graph_retries",
            "Graph requests this worker's syncs sent again (throttling, transient failures)",
            retries.clone(),
        );
        registry.register(
            "throttled_wait_seconds",
            "Time this worker's syncs waited before retrying Graph (Retry-After and backoff)",
            throttled.clone(),
        );
        registry.register(
            "queue_depth",
            "Queued jobs in the store (all workers')",
            queue_depth.clone(),
        );
        registry.register("tenants", "Served tenants by status", tenants.clone());
        let secret_days_left = Family::<TenantLabel, Gauge>::default();
        registry.register(
            "client_secret_days_left",
            "Days until the tenant's soonest-ending known credential ends (the config's \
             client_secret_expires, or the app registration's secrets and certificates \
             ending within 30 days, read from Graph daily; negative once ended)",
            secret_days_left.clone(),
        );
        Metrics {
            registry,
            runs,
            duration,
            retries,
            throttled,
            queue_depth,
            tenants,
            secret_days_left,
        }
    }

    /// A run ended with `result` after `elapsed`; `report` is what it did (when known).
    pub fn run_ended(&self, result: &str, elapsed: Duration, report: Option<&SyncReport>) {
        self.runs
            .get_or_create(&ResultLabel {
                result: result.to_string(),
            })
            .inc();
        self.duration.observe(elapsed.as_secs_f64());
        if let Some(report) = report {
            self.retries.inc_by(u64::from(report.retries));
            self.throttled
                .inc_by(Duration::from_millis(report.retry_wait_ms).as_secs_f64());
        }
    }

    /// The metrics as OpenMetrics text, with the store's figures of now: `queued` jobs and
    /// the tenants' `statuses`; and the days left of each tenant's client secret whose
    /// end the config knows (`secret_days_left`: tenant, days).
    pub fn encode(
        &self,
        queued: usize,
        statuses: &[TenantStatus],
        secret_days_left: &[(String, i64)],
    ) -> String {
        self.secret_days_left.clear();
        for (tenant, days) in secret_days_left {
            self.secret_days_left
                .get_or_create(&TenantLabel {
                    tenant: tenant.clone(),
                })
                .set(*days);
        }
        self.queue_depth
            .set(i64::try_from(queued).unwrap_or(i64::MAX));
        for status in TenantStatus::ALL {
            let count = statuses.iter().filter(|s| **s == status).count();
            self.tenants
                .get_or_create(&StatusLabel {
                    status: status.name().to_string(),
                })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_and_tenants_are_counted_in_openmetrics_text() {
        let metrics = Metrics::new();
        metrics.run_ended("ok", Duration::from_secs(3), None);
        metrics.run_ended("failed", Duration::from_secs(1), None);
        metrics.run_ended("ok", Duration::from_secs(2), None);
        let text = metrics.encode(
            2,
            &[
                TenantStatus::Healthy,
                TenantStatus::Healthy,
                TenantStatus::Paused,
            ],
            &[("contoso".to_string(), 12)],
        );
        assert!(
            text.contains("m365sync_runs_total{result=\"ok\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("m365sync_runs_total{result=\"failed\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("m365sync_run_duration_seconds_count 3"),
            "{text}"
        );
        assert!(text.contains("m365sync_queue_depth 2"), "{text}");
        assert!(
            text.contains("m365sync_tenants{status=\"healthy\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("m365sync_tenants{status=\"needs-attention\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("m365sync_client_secret_days_left{tenant=\"contoso\"} 12"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
