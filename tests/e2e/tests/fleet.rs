//! Many tenants through the host library's `sync_many`, as `m365sync sync` runs a config's
//! tenants: the runs proceed side by side on the runtime's threads (the engine's work is
//! CPU, so runs that took turns on one thread made a fleet use one core), and each tenant
//! is stored whole.

use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use futures::StreamExt;
use m365sync_e2e::{TestStore, people_count, runtime, simulator, tenant_run, users};
use m365sync_service::runtime::{CancelToken, EventSink};
use m365sync_service::store::StoreBackend;
use m365sync_service::sync_many;
use m365sync_service::wit::Level;
use m365sync_service::wit::types::DataSet;

/// A sink whose first event of each run waits, holding its thread as the engine's own work
/// does, until the other run is waiting there too (or 10 s have passed).
#[derive(Default)]
struct Meeting {
    state: Mutex<Met>,
    changed: Condvar,
}

#[derive(Default)]
struct Met {
    arrived: HashSet<String>,
    waiting: usize,
    together: bool,
}

impl Meeting {
    fn arrive(&self, tenant: &str) {
        let mut state = self.state.lock().unwrap();
        if !state.arrived.insert(tenant.to_string()) {
            return;
        }
        state.waiting += 1;
        if state.waiting == 2 {
            state.together = true;
            self.changed.notify_all();
        }
        let (mut state, _) = self
            .changed
            .wait_timeout_while(state, Duration::from_secs(10), |s| !s.together)
            .unwrap();
        state.waiting -= 1;
    }
}

impl EventSink for Meeting {
    fn log(&self, tenant: &str, _level: Level, _message: &str) {
        self.arrive(tenant);
    }

    fn progress(&self, tenant: &str, _phase: DataSet, _done: u64, _total: Option<u64>) {
        self.arrive(tenant);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_of_sync_many_proceed_side_by_side_and_store_each_tenant() {
    let sim = simulator(40).await;
    let db = TestStore::sqlite().await;
    let runs: Vec<_> = ["fabrikam", "northwind"]
        .into_iter()
        .map(|key| {
            let mut run = tenant_run(&sim);
            run.tenant.key = key.to_string();
            run
        })
        .collect();
    let store: Arc<dyn StoreBackend> = Arc::from(
        m365sync_service::open_store(&db.location)
            .await
            .expect("opening the store"),
    );
    let meeting = Arc::new(Meeting::default());
    let outcomes: Vec<_> = sync_many(
        Arc::new(runtime()),
        runs,
        store,
        2,
        meeting.clone(),
        CancelToken::new(),
    )
    .collect()
    .await;
    assert!(
        meeting.state.lock().unwrap().together,
        "the two runs were never running at once: they took turns on one thread"
    );
    let tenants: Vec<&str> = outcomes.iter().map(|o| o.tenant.as_str()).collect();
    assert_eq!(tenants, ["fabrikam", "northwind"]);
    for outcome in &outcomes {
        let result = outcome.result.as_ref().expect("started");
        let report = result
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {e}", outcome.tenant));
        let created = users(report).created;
        assert!(created > 0, "{report:?}");
        let stored = people_count(&db, &outcome.tenant).await;
        assert_eq!(
            u64::try_from(stored).unwrap(),
            created,
            "{}",
            outcome.tenant
        );
    }
}
