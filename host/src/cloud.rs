//! Microsoft's clouds and their documented sign-in and Graph hosts.
//!
//! Source: "National cloud deployments", Microsoft Graph documentation
//! (microsoft-graph-docs-contrib, concepts/deployments.md): each national cloud has its own
//! Microsoft Entra endpoint and Graph endpoint.

use serde::{Deserialize, Serialize};

use crate::runtime::bindings::types::{Cloud as WitCloud, Endpoints};

/// A Microsoft cloud, as named in a tenant config (`cloud = "us-gov"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cloud {
    #[default]
    Global,
    UsGov,
    UsGovDod,
    China,
}

impl Cloud {
    /// The documented login and Graph base URLs of this cloud.
    pub fn endpoints(self) -> Endpoints {
        let (login, graph) = match self {
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
    pub fn report_download_urls(self) -> Vec<String> {
        match self {
            Cloud::Global => vec!["https://reports.office.com".to_string()],
            Cloud::UsGov | Cloud::UsGovDod | Cloud::China => Vec::new(),
        }
    }

    pub fn from_wit(cloud: WitCloud) -> Cloud {
        match cloud {
            WitCloud::Global => Cloud::Global,
            WitCloud::UsGov => Cloud::UsGov,
            WitCloud::UsGovDod => Cloud::UsGovDod,
            WitCloud::China => Cloud::China,
        }
    }

    pub fn to_wit(self) -> WitCloud {
        match self {
            Cloud::Global => WitCloud::Global,
            Cloud::UsGov => WitCloud::UsGov,
            Cloud::UsGovDod => WitCloud::UsGovDod,
            Cloud::China => WitCloud::China,
        }
    }
}
