//! Microsoft Graph: sign-in ([`token`]), requests with retries and error mapping
//! ([`client`]), and paging by `@odata.nextLink` ([`paging`]).

pub mod client;
pub mod paging;
pub mod token;

pub use client::{GraphClient, Need, RetryPolicy, Stats};
