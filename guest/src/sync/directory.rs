//! Plain (not delta) collections: subscribed SKUs (feature `licences`), and the
//! organization with its domains (feature `organization`). Each is small: read whole, then
//! written as one batch. The paging helper is shared with the sign-in pass.

use super::{Run, storage_error};
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
        // Compared with the fingerprints the last run saved: only what differs is written.
        let saved = Fingerprints::parse(
            self.store
                .get_checkpoint(SUBSCRIPTIONS_FINGERPRINTS)
                .map_err(|e| storage_error("get-checkpoint", e))?
                .as_deref(),
        );
        let mut now = Fingerprints::default();
        let (mut created, mut updated, mut unchanged) = (0, 0, 0);
        let mut changes = Vec::new();
        for s in found {
            let sub = s.subscription;
            let hash = merge::subscription_hash(&sub);
            if !now.insert(&sub.sku_id, hash) {
                continue; // listed twice: counted once
            }
            match saved
                .as_ref()
                .map_or(Outcome::Created, |f| f.outcome(&sub.sku_id, hash))
            {
                Outcome::Created => created += 1,
                Outcome::Updated => updated += 1,
                Outcome::Unchanged => {
                    unchanged += 1;
                    continue;
                }
            }
            changes.push(Change::UpsertSubscription(sub));
        }
        if !changes.is_empty() || saved.as_ref() != Some(&now) {
            self.hold(Batch {
                changes,
                checkpoints: vec![Checkpoint {
                    key: SUBSCRIPTIONS_FINGERPRINTS.into(),
                    value: Some(now.encode()),
                }],
                run: None,
            })?;
        }
        let d = self.data_set(DataSet::Subscriptions);
        d.pages += pages;
        d.read += n;
        d.created += created;
        d.updated += updated;
        d.unchanged += unchanged;
        d.written += created + updated;
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
        let mut changes = Vec::with_capacity(domains.len() + 1);
        changes.push(Change::UpsertOrganization(org));
        changes.extend(domains.into_iter().map(Change::UpsertDomain));
        self.hold(Batch {
            changes,
            checkpoints: vec![Checkpoint {
                key: review::ORGANIZATION_NAME.into(),
                value: Some(name),
            }],
            run: None,
        })?;
        let o = self.data_set(DataSet::Organization);
        o.pages += org_pages;
        o.read += 1;
        o.updated += 1;
        o.written += 1;
        let d = self.data_set(DataSet::Domains);
        d.pages += domain_pages;
        d.read += n;
        d.updated += n;
        d.written += n;
        Ok(())
    }
}
