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

    pub fn to_wit(self) -> WitCloud {
        match self {
            Cloud::Global => WitCloud::Global,
            Cloud::UsGov => WitCloud::UsGov,
            Cloud::UsGovDod => WitCloud::UsGovDod,
            Cloud::China => WitCloud::China,
        }
    }
}
