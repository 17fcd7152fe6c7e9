//! Graph data sets the engine reads, each turning Graph's answers (JSON pages, or a usage
//! report's CSV) into WIT records: those of a sync, and those read on request outside one
//! (a partner's delegated admin relationships, the app's own credentials).

pub mod app_credentials;
pub mod groups;
pub mod objects;
pub mod organization;
#[cfg(test)]
mod product_rows;
pub mod products;
pub mod relationships;
pub mod reports;
pub mod signins;
pub mod skus;
pub mod users;

use crate::types::{HttpFailure, SyncError};
use crate::url::display_url;

/// One page of a delta round (users or groups).
#[derive(Debug)]
pub struct DeltaPage<E> {
    pub entries: Vec<E>,
    /// More pages follow in this round.
    pub next_link: Option<String>,
    /// The round is complete; replay this link next time.
    pub delta_link: Option<String>,
}

/// The answer to GET `url` is JSON but not usable: names the URL (tokens hidden) and why.
pub fn unusable(url: &str, message: String) -> SyncError {
    SyncError::BadResponse(HttpFailure {
        url: display_url(url),
        status: Some(200),
        graph_code: None,
        message: format!(
            "the answer to GET {} is not usable: {message}",
            display_url(url)
        ),
    })
}
