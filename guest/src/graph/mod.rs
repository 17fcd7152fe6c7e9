//! Microsoft Graph: sign-in ([`token`], with a client secret or a client assertion:
//! [`assertion`]), the run's client ([`client`]: GETs, parsed
//! bodies, resync answers) and its parts (the access token and the authorised send in
//! [`session`], the retry policy in [`retry`], typed errors in [`errors`], usage report
//! downloads in [`report`]), JSON batches of GETs ([`batch`]), paging by
//! `@odata.nextLink` ([`paging`]), and reading a JSON body ([`json`]).

pub mod assertion;
pub mod batch;
pub mod client;
pub mod errors;
pub mod json;
pub mod paging;
pub mod report;
pub mod retry;
pub mod session;
pub mod token;

pub use client::{GraphClient, Need, Stats};
pub use retry::RetryPolicy;
