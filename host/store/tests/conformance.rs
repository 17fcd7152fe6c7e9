//! The conformance suite on the in-memory reference store, and a check that the suite's
//! macro lists every case.

use m365sync_store::StoreBackend;
use m365sync_store::conformance::{Reopen, Subject};
use m365sync_store::memory::MemoryStore;

/// A fresh memory store; another handle on it is a clone (the same store).
async fn subject() -> Option<Subject> {
    let store = MemoryStore::new();
    let shared = store.clone();
    let reopen: Reopen = Box::new(move || {
        let handle: Box<dyn StoreBackend> = Box::new(shared.clone());
        Box::pin(async move { handle })
    });
    Some(Subject::new(Box::new(store), reopen, ()))
}

m365sync_store::conformance_suite!(subject());

/// The case modules' sources and the macro's: a case missing from the macro would never
/// run on any back end.
#[test]
fn the_suite_lists_every_case() {
    let macro_source = include_str!("../src/conformance.rs");
    let cases = [
        include_str!("../src/conformance/tenant.rs"),
        include_str!("../src/conformance/batches.rs"),
        include_str!("../src/conformance/log.rs"),
        include_str!("../src/conformance/read.rs"),
        include_str!("../src/conformance/jobs.rs"),
        include_str!("../src/conformance/service.rs"),
        include_str!("../src/conformance/feed.rs"),
        include_str!("../src/conformance/onboarding.rs"),
        include_str!("../src/conformance/notices.rs"),
    ];
    let mut count = 0;
    for source in cases {
        for line in source.lines() {
            let Some(rest) = line.strip_prefix("pub async fn ") else {
                continue;
            };
            let name = rest.split('(').next().unwrap_or_default();
            count += 1;
            assert!(
                macro_source.contains(&format!("            {name},\n")),
                "conformance case {name} is not listed in conformance_suite!"
            );
        }
    }
    assert!(count > 70, "found {count} cases");
}
