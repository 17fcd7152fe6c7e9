//! Microsoft Graph: sign-in ([`token`]), requests with retries and error mapping
//! ([`client`]), JSON batches of GETs ([`batch`]), and paging by `@odata.nextLink`
//! ([`paging`]).

pub mod batch;
pub mod client;
pub mod paging;
pub mod token;

pub use client::{GraphClient, Need, RetryPolicy, Stats};
