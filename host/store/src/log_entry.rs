//! The report a sync-log entry keeps: a versioned, serde-derived copy of the engine's
//! `sync-report`, so what a database holds changes only when this type does (never with the
//! CLI's output). Version 1 is the shape the first sync logs were written in; rows without
//! a `version` are version 1.

use std::collections::BTreeMap;

use m365sync_wit::types::{
    DataSet, DataSetReport, MatchConflict, MatchState, OrganizationMatch, SyncMode, SyncReport,
};
use serde::{Deserialize, Serialize};

/// The version this host writes.
pub const VERSION: u32 = 1;

fn version_1() -> u32 {
    1
}

/// A run's report as stored in the sync log (and shown by `logs --json` and the API).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunReport {
    #[serde(default = "version_1")]
    pub version: u32,
    pub tenant: String,
    /// full or incremental.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub mode: SyncMode,
    pub started_at: String,
    pub elapsed_ms: u64,
    pub requests: u32,
    pub retries: u32,
    #[serde(default)]
    pub retry_wait_ms: u64,
    pub dry_run: bool,
    pub data_sets: Vec<DataSetEntry>,
    #[serde(default)]
    pub warnings: Vec<WarningEntry>,
    #[serde(default)]
    pub conflicts: Vec<ConflictEntry>,
    #[serde(default)]
    pub organization: Option<OrganizationEntry>,
}

/// One data set's counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DataSetEntry {
    /// users, groups, group-members, subscriptions, organization, domains, mailboxes, usage.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub data_set: DataSet,
    pub pages: u32,
    pub read: u64,
    pub written: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub linked: u64,
    pub removed: u64,
    pub conflicts: u64,
    /// Accounts left out, per reason.
    #[serde(default)]
    pub filtered_out: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WarningEntry {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConflictEntry {
    pub key: String,
    pub object_ids: Vec<String>,
    pub message: String,
}

/// The tenant's organization match at the end of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrganizationEntry {
    pub tenant: String,
    pub tenant_name: String,
    /// matched, suggested, unmatched or ignored.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub state: MatchState,
    pub organization: Option<OrganizationRef>,
    #[serde(default)]
    pub suggestions: Vec<SuggestionEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrganizationRef {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SuggestionEntry {
    pub id: String,
    pub name: String,
    /// Similarity, 0 to 1, to three decimals.
    pub score: f64,
}

impl From<&DataSetReport> for DataSetEntry {
    fn from(r: &DataSetReport) -> Self {
        DataSetEntry {
            data_set: r.data_set,
            pages: r.pages,
            read: r.read,
            written: r.written,
            created: r.created,
            updated: r.updated,
            unchanged: r.unchanged,
            linked: r.linked,
            removed: r.removed,
            conflicts: r.conflicts,
            filtered_out: r
                .filtered_out
                .iter()
                .map(|f| (f.reason.clone(), f.count))
                .collect(),
        }
    }
}

impl From<&MatchConflict> for ConflictEntry {
    fn from(c: &MatchConflict) -> Self {
        ConflictEntry {
            key: c.key.clone(),
            object_ids: c.object_ids.clone(),
            message: c.message.clone(),
        }
    }
}

impl From<&OrganizationMatch> for OrganizationEntry {
    fn from(m: &OrganizationMatch) -> Self {
        OrganizationEntry {
            tenant: m.tenant_key.clone(),
            tenant_name: m.tenant_name.clone(),
            state: m.state,
            organization: m.organization.as_ref().map(|o| OrganizationRef {
                id: o.id.clone(),
                name: o.name.clone(),
            }),
            suggestions: m
                .suggestions
                .iter()
                .map(|s| SuggestionEntry {
                    id: s.organization.id.clone(),
                    name: s.organization.name.clone(),
                    score: (f64::from(s.score) * 1000.0).round() / 1000.0,
                })
                .collect(),
        }
    }
}

impl From<&SyncReport> for RunReport {
    fn from(r: &SyncReport) -> Self {
        RunReport {
            version: VERSION,
            tenant: r.tenant_key.clone(),
            mode: r.mode,
            started_at: r.started_at.clone(),
            elapsed_ms: r.elapsed_ms,
            requests: r.requests,
            retries: r.retries,
            retry_wait_ms: r.retry_wait_ms,
            dry_run: r.dry_run,
            data_sets: r.data_sets.iter().map(DataSetEntry::from).collect(),
            warnings: r
                .warnings
                .iter()
                .map(|w| WarningEntry {
                    code: w.code.clone(),
                    message: w.message.clone(),
                })
                .collect(),
            conflicts: r.conflicts.iter().map(ConflictEntry::from).collect(),
            organization: r.organization.as_ref().map(OrganizationEntry::from),
        }
    }
}

impl RunReport {
    /// The text a back end stores.
    pub fn to_stored(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string())
    }

    /// A stored report, or None when it cannot be read as any known version.
    pub fn from_stored(text: &str) -> Option<RunReport> {
        serde_json::from_str(text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report as the first sync logs stored it (before the type had a version).
    const VERSION_1_ROW: &str = r#"{"tenant":"t","mode":"full","started_at":"2026-01-01T00:00:00.000Z",
        "elapsed_ms":5,"requests":3,"retries":0,"retry_wait_ms":0,"dry_run":false,
        "data_sets":[{"data_set":"users","pages":1,"read":2,"written":2,"created":2,"updated":0,
        "unchanged":0,"linked":0,"removed":0,"conflicts":0,"filtered_out":{"disabled":1}}],
        "warnings":[],"conflicts":[],"organization":null}"#;

    #[test]
    fn a_row_without_a_version_reads_as_version_1_and_round_trips() {
        let report = RunReport::from_stored(VERSION_1_ROW).expect("version 1 parses");
        assert_eq!(report.version, 1);
        assert_eq!(report.data_sets[0].data_set, DataSet::Users);
        assert_eq!(report.data_sets[0].filtered_out["disabled"], 1);
        let again = RunReport::from_stored(&report.to_stored()).unwrap();
        assert_eq!(again, report);
    }
}
