//! Sending many statements in one round trip: tokio-postgres pipelines the requests of
//! futures polled together, and the server runs them in the order they were sent. The
//! futures here are polled in order, each once before any is awaited again, so the order
//! they are given in is the order the server applies them.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;

use deadpool_postgres::Object;
use m365sync_wit::StorageError;

use crate::batch::Statement;
use crate::error::message;

/// A boxed future of the pipeline.
pub(crate) type Step<'a, T> = Pin<Box<dyn Future<Output = Result<T, StorageError>> + Send + 'a>>;

/// Run `steps` together, their requests sent in order; their outputs in order, or the
/// first error in order (the later steps' errors follow from it: the transaction is
/// aborted).
pub(crate) async fn in_order<T>(steps: Vec<Step<'_, T>>) -> Result<Vec<T>, StorageError> {
    let mut steps: Vec<Option<Step<'_, T>>> = steps.into_iter().map(Some).collect();
    let mut outputs: Vec<Option<T>> = steps.iter().map(|_| None).collect();
    poll_fn(|cx| {
        let mut pending = false;
        for (slot, output) in steps.iter_mut().zip(outputs.iter_mut()) {
            let Some(step) = slot else { continue };
            match step.as_mut().poll(cx) {
                Poll::Ready(Ok(value)) => {
                    *output = Some(value);
                    *slot = None;
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => pending = true,
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    })
    .await?;
    Ok(outputs.into_iter().flatten().collect())
}

/// Prepare the statements of `sqls` this connection has not prepared yet (together), then
/// return them in order.
pub(crate) async fn prepare(
    client: &Object,
    sqls: &[&str],
) -> Result<Vec<tokio_postgres::Statement>, StorageError> {
    let steps: Vec<Step<'_, tokio_postgres::Statement>> = sqls
        .iter()
        .map(|sql| -> Step<'_, tokio_postgres::Statement> {
            Box::pin(async move {
                client.prepare_cached(sql).await.map_err(|e| {
                    StorageError::Unavailable(format!("preparing a statement: {}", message(&e)))
                })
            })
        })
        .collect();
    in_order(steps).await
}

/// Execute `statements` in order, in one round trip (after preparing those not prepared
/// yet); `begin` opens a transaction first. The error names the first statement that
/// failed.
pub(crate) async fn execute(
    client: &Object,
    begin: bool,
    statements: &[Statement],
) -> Result<Vec<u64>, StorageError> {
    let mut sqls: Vec<&str> = Vec::new();
    for statement in statements {
        if !sqls.contains(&statement.sql) {
            sqls.push(statement.sql);
        }
    }
    let prepared = prepare(client, &sqls).await?;
    let prepared: Vec<(&str, tokio_postgres::Statement)> = sqls.into_iter().zip(prepared).collect();
    let mut steps: Vec<Step<'_, u64>> = Vec::with_capacity(statements.len() + 1);
    if begin {
        steps.push(Box::pin(async move {
            client
                .batch_execute("BEGIN")
                .await
                .map(|()| 0)
                .map_err(|e| crate::error::unavailable("starting a transaction", &e))
        }));
    }
    for statement in statements {
        let prepared = prepared
            .iter()
            .find(|(sql, _)| *sql == statement.sql)
            .map(|(_, prepared)| prepared.clone());
        steps.push(Box::pin(async move {
            let Some(prepared) = prepared else {
                return Err(StorageError::Unavailable(format!(
                    "{}: its statement was not prepared",
                    statement.what
                )));
            };
            client
                .execute(&prepared, &statement.param_refs())
                .await
                .map_err(|e| crate::error::refused(&statement.what, &e))
        }));
    }
    let counts = in_order(steps).await?;
    // The first output is BEGIN's.
    Ok(counts.into_iter().skip(usize::from(begin)).collect())
}
