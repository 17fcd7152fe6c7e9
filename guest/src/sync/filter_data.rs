//! Reads what attribute filters test against before the users are filtered: the tenant's
//! SKUs (product-name and sku filters) and the members of the groups a group filter names.
//! A small number of requests, made only when such a filter is set.

use super::Run;
use crate::filter::{self, FilterData};
use crate::graph::{GraphClient, Need};
use crate::ids::IdSet;
use crate::sources::{objects, skus};
use crate::types::{AccountFilter, SyncError};

impl Run<'_> {
    pub(super) fn filter_data(
        &mut self,
        graph: &mut GraphClient<'_>,
        f: &AccountFilter,
    ) -> Result<FilterData, SyncError> {
        let (need_skus, group_patterns) = filter::needs(f);
        let mut data = FilterData::default();
        if need_skus {
            self.each_page(
                graph,
                skus::url(graph.graph()),
                Need {
                    feature: "filter on licences",
                    ..skus::NEED
                },
                "list of subscribed SKUs (for the licence filter)",
                skus::parse_page,
                |_, items| {
                    data.skus.extend(items.into_iter().map(|s| {
                        let s = s.subscription;
                        (s.sku_id, s.sku_part_number, s.product_name)
                    }));
                    Ok(())
                },
            )?;
        }
        if !group_patterns.is_empty() {
            let mut named = Vec::new();
            self.each_page(
                graph,
                objects::groups_url(graph.graph()),
                objects::NEED,
                "list of groups (for the group filter)",
                objects::parse_page,
                |_, items| {
                    named.extend(
                        items
                            .into_iter()
                            .filter(|g| filter::group_named(&group_patterns, &g.display_name)),
                    );
                    Ok(())
                },
            )?;
            for g in named {
                let mut members = IdSet::default();
                self.each_page(
                    graph,
                    objects::members_url(graph.graph(), &g.id),
                    objects::NEED,
                    "page of group members (for the group filter)",
                    objects::parse_page,
                    |_, items| {
                        for m in items {
                            members.insert(&m.id);
                        }
                        Ok(())
                    },
                )?;
                data.groups.push((g.display_name, members));
            }
        }
        Ok(data)
    }
}
