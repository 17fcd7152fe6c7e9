//! Microsoft's clouds and their documented sign-in and Graph hosts.
//!
//! Source: "National cloud deployments", Microsoft Graph documentation
//! (microsoft-graph-docs-contrib, concepts/deployments.md): each national cloud has its own
//! Microsoft Entra endpoint and Graph endpoint.

use m365sync_wit::types::{Cloud, Endpoints};

/// The documented login and Graph base URLs of `cloud`.
pub fn endpoints(cloud: Cloud) -> Endpoints {
    let (login, graph) = match cloud {
        Cloud::Global => (
            "https://login.microsoftonline.com",
            "https://graph.microsoft.com",
        ),
        Cloud::UsGov => (
            "https://login.microsoftonline.us",
            "https://graph.microsoft.us",
        ),
        Cloud::UsGovDod => (
            "https://login.microsoftonline.us",
            "https://dod-graph.microsoft.us",
        ),
        Cloud::China => (
            "https://login.chinacloudapi.cn",
            "https://microsoftgraph.chinacloudapi.cn",
        ),
    };
    Endpoints {
        login: login.to_string(),
        graph: graph.to_string(),
    }
}

/// Base URLs of the hosts this cloud's Graph redirects usage-report downloads to
/// (pre-authenticated URLs: the sandbox may GET them without credentials only).
///
/// Global: every report page's example answers `302 Found` with
/// `Location: https://reports.office.com/data/download/...` (microsoft-graph-docs-contrib,
/// api-reference/v1.0/api/reportroot-getmailboxusagedetail.md and its siblings). The
/// documentation names no download host for the national clouds, so none is assumed:
/// set `[tenant.endpoints] reports = [...]` for them, or the sandbox refuses the
/// redirect and the error names the host to add.
pub fn report_download_urls(cloud: Cloud) -> Vec<String> {
    match cloud {
        Cloud::Global => vec!["https://reports.office.com".to_string()],
        Cloud::UsGov | Cloud::UsGovDod | Cloud::China => Vec::new(),
    }
}
