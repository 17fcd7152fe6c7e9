//! Plain (not delta) collections: subscribed SKUs (feature `licences`), and the
//! organization with its domains (feature `organization`). Each is small: read whole, then
//! compared with the fingerprints the last run saved ([`Fingerprints`]), so that a record
//! counts once as created, updated or unchanged and only what differs is written, in one
//! batch with the new fingerprints. The paging helper is shared with the sign-in pass.

use super::Run;
use crate::graph::client::{BodyError, Reply};
use crate::graph::paging::Pager;
use crate::graph::{GraphClient, Need};
use crate::merge::{self, Fingerprints, Outcome};
use crate::review;
use crate::sources::organization::{self, Page};
use crate::sources::skus;
use crate::types::{Batch, Change, Checkpoint, DataSet, HttpFailure, SyncError};
use crate::url::display_url;

/// Checkpoint: the fingerprints of the stored subscriptions ([`Fingerprints`]).
pub const SUBSCRIPTIONS_FINGERPRINTS: &str = "subscriptions.fingerprints";
/// Checkpoint: the fingerprint of the stored organization record.
pub const ORGANIZATION_FINGERPRINTS: &str = "organization.fingerprints";
/// Checkpoint: the fingerprints of the stored domains.
pub const DOMAINS_FINGERPRINTS: &str = "domains.fingerprints";

/// A data set read whole, compared with what the last run saved.
struct Compared {
    /// The records that are new or differ.
    changes: Vec<Change>,
    /// The new fingerprints, when they differ from the saved ones.
    checkpoint: Option<Checkpoint>,
    created: u64,
    updated: u64,
    unchanged: u64,
}

impl Run<'_> {
    /// Reads a paged collection from `first`, following `@odata.nextLink` (on the Graph
    /// endpoint only), handing each page's items to `each`. Returns the pages read.
    pub(super) fn each_page<T>(
        &mut self,
        graph: &mut GraphClient<'_>,
        first: String,
        need: Need,
        what: &str,
        parse: impl Fn(&[u8], &str) -> Result<Page<T>, BodyError>,
        mut each: impl FnMut(&mut Self, Vec<T>) -> Result<(), SyncError>,
    ) -> Result<u32, SyncError> {
        let mut pager = Pager::new(graph.graph(), first);
        while let Some(url) = pager.next_url() {
            let page = match graph.get_json(&url, need, &[], what, |b| parse(b, &url))? {
                Reply::Ok(page) => page,
                Reply::Resync(f) => return Err(SyncError::Http(f)),
            };
            pager.advance(&url, page.next_link)?;
            each(self, page.items)?;
        }
        Ok(pager.pages())
    }

    /// Feature `licences`: every subscribed SKU with Microsoft's product name; SKUs the
    /// product table does not know keep their part number and are named in one
    /// `unknown-sku` warning.
    pub(super) fn licences(&mut self, graph: &mut GraphClient<'_>) -> Result<(), SyncError> {
        let r = graph.redactor().clone();
        let mut found = Vec::new();
        let pages = self.each_page(
            graph,
            skus::url(graph.graph()),
            skus::NEED,
            "list of subscribed SKUs",
            skus::parse_page,
            |_, items| {
                found.extend(items);
                Ok(())
            },
        )?;
        let mut unknown: Vec<String> = found
            .iter()
            .filter(|s| !s.known)
            .map(|s| {
                let sub = &s.subscription;
                if sub.sku_part_number.is_empty() {
                    sub.sku_id.clone()
                } else {
                    format!("{} ({})", sub.sku_part_number, sub.sku_id)
                }
            })
            .collect();
        unknown.sort();
        unknown.dedup();
        if !unknown.is_empty() {
            self.warn(
                &r,
                "unknown-sku",
                format!(
                    "{} subscribed SKU(s) are not in this engine's table of Microsoft product \
                     names, so their product name is their part number: {}. A newer engine \
                     version may know them.",
                    unknown.len(),
                    unknown.join(", ")
                ),
            );
        }
        let n = found.len() as u64;
        let compared = self.compare(
            SUBSCRIPTIONS_FINGERPRINTS,
            found.into_iter().map(|s| {
                let sub = s.subscription;
                let hash = merge::subscription_hash(&sub);
                (sub.sku_id.clone(), hash, Change::UpsertSubscription(sub))
            }),
        )?;
        self.count(DataSet::Subscriptions, pages, n, &compared);
        let Compared {
            changes,
            checkpoint,
            ..
        } = compared;
        if !changes.is_empty() || checkpoint.is_some() {
            self.hold(Batch {
                changes,
                checkpoints: checkpoint.into_iter().collect(),
                run: None,
            })?;
        }
        self.info(
            &r,
            &format!(
                "subscriptions: {n} SKU(s) read, {} without a known product name",
                unknown.len()
            ),
        );
        Ok(())
    }

    /// Feature `organization`: the organization record and every domain, in one batch.
    pub(super) fn organization(&mut self, graph: &mut GraphClient<'_>) -> Result<(), SyncError> {
        let r = graph.redactor().clone();
        let mut orgs = Vec::new();
        let org_url = organization::organization_url(graph.graph());
        let org_pages = self.each_page(
            graph,
            org_url.clone(),
            organization::ORGANIZATION_NEED,
            "organization",
            organization::parse_organizations,
            |_, items| {
                orgs.extend(items);
                Ok(())
            },
        )?;
        let Some(org) = orgs.into_iter().next() else {
            return Err(SyncError::BadResponse(HttpFailure {
                url: display_url(&org_url),
                status: Some(200),
                graph_code: None,
                message: format!(
                    "the answer to GET {} lists no organization",
                    display_url(&org_url)
                ),
            }));
        };
        let mut domains = Vec::new();
        let domain_pages = self.each_page(
            graph,
            organization::domains_url(graph.graph()),
            organization::DOMAINS_NEED,
            "list of domains",
            organization::parse_domains,
            |_, items| {
                domains.extend(items);
                Ok(())
            },
        )?;
        let n = domains.len() as u64;
        self.info(
            &r,
            &format!(
                "organization {} ({}): {n} domain(s), default {}",
                org.display_name,
                org.tenant_id,
                org.default_domain.as_deref().unwrap_or("(none)")
            ),
        );
        // The tenant's organization match, with the decisions reviewed so far.
        let (found, stale) =
            review::current(&mut *self.store, &self.tenant.key, &org.display_name)?;
        if let Some(w) = stale {
            self.warn(&r, &w.code, w.message);
        }
        self.organization = Some(found);
        let name = org.display_name.clone();
        let org_hash = merge::organization_hash(&org);
        let orgs = self.compare(
            ORGANIZATION_FINGERPRINTS,
            [(
                org.tenant_id.clone(),
                org_hash,
                Change::UpsertOrganization(org),
            )],
        )?;
        let domains = self.compare(
            DOMAINS_FINGERPRINTS,
            domains.into_iter().map(|d| {
                let hash = merge::domain_hash(&d);
                (d.name.clone(), hash, Change::UpsertDomain(d))
            }),
        )?;
        self.count(DataSet::Organization, org_pages, 1, &orgs);
        self.count(DataSet::Domains, domain_pages, n, &domains);
        let mut changes = orgs.changes;
        changes.extend(domains.changes);
        let mut checkpoints = vec![Checkpoint {
            key: review::ORGANIZATION_NAME.into(),
            value: Some(name),
        }];
        checkpoints.extend(orgs.checkpoint);
        checkpoints.extend(domains.checkpoint);
        self.hold(Batch {
            changes,
            checkpoints,
            run: None,
        })?;
        Ok(())
    }

    /// Compares a data set read whole with the fingerprints saved under `key`: records
    /// (id, fields hash, change) listed twice count once; unchanged ones are not written.
    /// Records stored before and not listed now are forgotten by the new fingerprints (the
    /// stored rows stay: these data sets have no delete).
    fn compare(
        &mut self,
        key: &str,
        records: impl IntoIterator<Item = (String, u64, Change)>,
    ) -> Result<Compared, SyncError> {
        let saved = self.fingerprints(key)?;
        let mut now = Fingerprints::default();
        let mut compared = Compared {
            changes: Vec::new(),
            checkpoint: None,
            created: 0,
            updated: 0,
            unchanged: 0,
        };
        for (id, hash, change) in records {
            if !now.insert(&id, hash) {
                continue;
            }
            match saved
                .as_ref()
                .map_or(Outcome::Created, |f| f.outcome(&id, hash))
            {
                Outcome::Created => compared.created += 1,
                Outcome::Updated => compared.updated += 1,
                Outcome::Unchanged => {
                    compared.unchanged += 1;
                    continue;
                }
            }
            compared.changes.push(change);
        }
        if saved.as_ref() != Some(&now) {
            compared.checkpoint = Some(Checkpoint {
                key: key.into(),
                value: Some(now.encode()),
            });
        }
        Ok(compared)
    }

    /// Adds a compared data set's pages and counts to its report.
    fn count(&mut self, set: DataSet, pages: u32, read: u64, c: &Compared) {
        let d = self.data_set(set);
        d.pages += pages;
        d.read += read;
        d.created += c.created;
        d.updated += c.updated;
        d.unchanged += c.unchanged;
        d.written += c.created + c.updated;
    }
}
