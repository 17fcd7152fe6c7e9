//! The conformance suite (`m365sync_store::conformance`) on PostgreSQL: each case on a
//! store in a fresh schema, reopened as another process would (another `open` of the same
//! URL), the schema dropped when the case ends.

use m365sync_store::StoreBackend;
use m365sync_store::conformance::{Reopen, Subject};

use crate::PostgresStore;
use crate::testing;

async fn subject() -> Option<Subject> {
    let schema = testing::schema().await?;
    let store = PostgresStore::open(&schema.url)
        .await
        .expect("opening the store");
    let url = schema.url.clone();
    let reopen: Reopen = Box::new(move || {
        let url = url.clone();
        Box::pin(async move {
            let store = PostgresStore::open(&url)
                .await
                .expect("reopening the store");
            Box::new(store) as Box<dyn StoreBackend>
        })
    });
    Some(Subject::new(Box::new(store), reopen, schema))
}

m365sync_store::conformance_suite!(subject());
