//! Microsoft's product names for licence SKUs, from the published table "Product names
//! and service plan identifiers for licensing"
//! (<https://learn.microsoft.com/en-us/entra/identity/users/licensing-service-plan-reference>),
//! shipped as `guest/data/products.csv` (String_Id, GUID, Product_Display_Name; see its
//! header for when and how it was compiled).
//!
//! The file is embedded and read once per instance into a table sorted by GUID: a lookup
//! by skuId is a binary search on a `u128`; the fallback by part number (for a SKU whose
//! id Microsoft changed, or a tenant in another cloud) is a scan of the ~140 rows.

use std::sync::OnceLock;

use crate::ids::parse_guid;

/// The embedded table.
const CSV: &str = include_str!("../../data/products.csv");

/// One product: skuId, skuPartNumber (String_Id), product name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub guid: u128,
    pub part_number: String,
    pub name: String,
}

fn table() -> &'static [Product] {
    static TABLE: OnceLock<Vec<Product>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut rows: Vec<Product> = csv::ReaderBuilder::new()
            .comment(Some(b'#'))
            .from_reader(CSV.as_bytes())
            .records()
            .filter_map(|r| r.ok())
            .filter_map(|r| {
                Some(Product {
                    part_number: r.get(0)?.trim().to_owned(),
                    guid: parse_guid(r.get(1)?.trim())?,
                    name: r.get(2)?.trim().to_owned(),
                })
            })
            .collect();
        // The file is kept sorted; sorting again costs nothing and keeps lookups right.
        rows.sort_by_key(|p| p.guid);
        rows
    })
}

/// Microsoft's product name of a SKU, by skuId, else by part number (case-insensitive).
pub fn product_name(sku_id: &str, part_number: &str) -> Option<&'static str> {
    let t = table();
    if let Some(guid) = parse_guid(sku_id.trim())
        && let Ok(i) = t.binary_search_by_key(&guid, |p| p.guid)
    {
        return Some(&t[i].name);
    }
    let part = part_number.trim();
    if part.is_empty() {
        return None;
    }
    t.iter()
        .find(|p| p.part_number.eq_ignore_ascii_case(part))
        .map(|p| p.name.as_str())
}

/// The number of products in the table.
pub fn len() -> usize {
    table().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_of_the_file_is_read_and_unique() {
        let data_rows = CSV
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .count()
            - 1; // the header
        assert_eq!(len(), data_rows, "a row failed to parse");
        assert!(len() >= 100, "{}", len());
        let t = table();
        for w in t.windows(2) {
            assert!(w[0].guid < w[1].guid, "duplicate or unsorted GUID");
        }
        let mut parts: Vec<_> = t.iter().map(|p| p.part_number.to_lowercase()).collect();
        parts.sort();
        parts.dedup();
        assert_eq!(parts.len(), t.len(), "duplicate String_Id");
        assert!(
            t.iter()
                .all(|p| !p.name.is_empty() && !p.part_number.is_empty())
        );
        // The file lists its rows in GUID order (so that diffs stay readable).
        let guids: Vec<&str> = CSV
            .lines()
            .filter(|l| !l.starts_with('#'))
            .skip(1)
            .filter_map(|l| l.split(',').nth(1))
            .collect();
        let mut sorted = guids.clone();
        sorted.sort();
        assert_eq!(guids, sorted);
    }

    #[test]
    fn looks_up_by_id_then_part_number() {
        assert_eq!(
            product_name("05e9a617-0261-4cee-bb44-138d3ef5d965", "whatever"),
            Some("Microsoft 365 E3")
        );
        assert_eq!(
            product_name("6FD2C87F-B296-42F0-B197-1E91E994B900", ""),
            Some("Office 365 E3")
        );
        // An id the table does not know, a part number it does.
        assert_eq!(
            product_name("00000000-0000-0000-0000-000000000001", "spb"),
            Some("Microsoft 365 Business Premium")
        );
        assert_eq!(
            product_name("not-a-guid", "POWER_BI_PRO"),
            Some("Power BI Pro")
        );
        assert_eq!(
            product_name("00000000-0000-0000-0000-000000000001", "CONTOSO_SPECIAL"),
            None
        );
        assert_eq!(product_name("", ""), None);
        // Verified against the published table's text.
        assert_eq!(
            product_name("078d2b04-f1bd-4111-bbd4-b4b1b354cef4", "AAD_PREMIUM"),
            Some("Microsoft Entra ID P1")
        );
        assert_eq!(
            product_name("639dec6b-bb19-468b-871c-c5c441c4b0cb", ""),
            Some("Copilot for Microsoft 365")
        );
    }
}
