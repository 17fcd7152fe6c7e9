//! Microsoft's product names for licence SKUs, from the published table "Product names
//! and service plan identifiers for licensing"
//! (<https://learn.microsoft.com/en-us/entra/identity/users/licensing-service-plan-reference>),
//! shipped as `guest/data/products.csv` (String_Id, GUID, Product_Display_Name), which is
//! generated from that table; its header says from which version and how.
//!
//! `build.rs` compiles the file into a table sorted by GUID (`product_rows.rs` reads it;
//! a row it cannot use fails the build): a lookup by skuId is a binary search on a `u128`,
//! and a sandbox reads nothing first. The fallback by part number (for a SKU whose id
//! Microsoft changed, or a tenant in another cloud) answers only when the part number is
//! unambiguous: the table lists some String IDs under several GUIDs with different names,
//! and picking one of them would name a licence after a product it may not be.

use crate::ids::parse_guid;

/// One product: skuId, skuPartNumber (String_Id), product name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub guid: u128,
    pub part_number: &'static str,
    pub name: &'static str,
}

/// The table, compiled from the file by `build.rs`.
fn table() -> &'static [Product] {
    PRODUCTS
}

include!(concat!(env!("OUT_DIR"), "/products.rs"));

/// The product name of `part_number` if every row with that part number (case-insensitive)
/// gives the same name; `None` if no row has it or the rows disagree.
fn name_by_part_number<'t>(t: &'t [Product], part: &str) -> Option<&'t str> {
    let mut found: Option<&str> = None;
    for p in t
        .iter()
        .filter(|p| p.part_number.eq_ignore_ascii_case(part))
    {
        match found {
            None => found = Some(p.name),
            Some(name) if name == p.name => {}
            Some(_) => return None,
        }
    }
    found
}

/// Microsoft's product name of a SKU, by skuId, else by an unambiguous part number
/// (case-insensitive).
pub fn product_name(sku_id: &str, part_number: &str) -> Option<&'static str> {
    let t = table();
    if let Some(guid) = parse_guid(sku_id.trim())
        && let Ok(i) = t.binary_search_by_key(&guid, |p| p.guid)
    {
        return Some(t[i].name);
    }
    let part = part_number.trim();
    if part.is_empty() {
        return None;
    }
    name_by_part_number(t, part)
}

/// The number of products in the table.
pub fn len() -> usize {
    table().len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::product_rows::{RowError, format_guid, parse};

    /// The file the table is compiled from.
    const CSV: &str = include_str!("../../data/products.csv");

    /// The number of table rows in the version of Microsoft's page the file was generated
    /// from (see the file's header); the file may hold fewer only by dropping exact repeats.
    const DOC_ROWS: usize = 610;

    #[test]
    fn every_row_of_the_file_parses_and_the_compiled_table_is_the_file() {
        // Read with the engine's GUID parser (the build script has its own): the table
        // compiled into the engine is the file as the engine reads ids.
        let (rows, errors) = parse(CSV, parse_guid);
        assert!(errors.is_empty(), "{errors:#?}");
        let compiled: Vec<(u128, &str, &str)> = table()
            .iter()
            .map(|p| (p.guid, p.part_number, p.name))
            .collect();
        let read: Vec<(u128, &str, &str)> = rows
            .iter()
            .map(|r| (r.guid, r.part_number.as_str(), r.name.as_str()))
            .collect();
        assert_eq!(compiled, read);
        let data_lines = csv::ReaderBuilder::new()
            .comment(Some(b'#'))
            .from_reader(CSV.as_bytes())
            .records()
            .count();
        assert_eq!(rows.len(), data_lines, "a row was dropped");
        assert_eq!(len(), rows.len());
        assert!(len() >= DOC_ROWS, "{} rows, the page has {DOC_ROWS}", len());
        for p in &rows {
            assert!(!p.name.is_empty() && !p.part_number.is_empty(), "{p:?}");
            assert_eq!(p.name.trim(), p.name, "{p:?}");
            assert!(
                !p.name.contains('<') && !p.name.contains("&amp;"),
                "markup left: {p:?}"
            );
        }
        for w in rows.windows(2) {
            assert!(
                w[0].guid < w[1].guid,
                "duplicate GUID {}",
                format_guid(w[1].guid)
            );
        }
    }

    #[test]
    fn the_file_names_its_source_and_lists_rows_in_guid_order() {
        let header: String = CSV.lines().take_while(|l| l.starts_with('#')).collect();
        for needle in [
            "https://learn.microsoft.com/en-us/entra/identity/users/licensing-service-plan-reference",
            "10/29/2025",
            "067a0c7b0bb2091db6379c757c7aca0bc4f89d4a",
            "GENERATED",
        ] {
            assert!(header.contains(needle), "header lacks {needle}");
        }
        // Sorted in the file itself, so that a regenerated file diffs row by row.
        let guids: Vec<String> = csv::ReaderBuilder::new()
            .comment(Some(b'#'))
            .from_reader(CSV.as_bytes())
            .records()
            .map(|r| r.unwrap()[1].to_owned())
            .collect();
        let mut sorted = guids.clone();
        sorted.sort();
        assert_eq!(guids, sorted);
    }

    #[test]
    fn well_known_skus_have_the_names_microsoft_gives_them() {
        for (id, part, name) in [
            (
                "05e9a617-0261-4cee-bb44-138d3ef5d965",
                "SPE_E3",
                "Microsoft 365 E3",
            ),
            (
                "06ebc4ee-1bb5-47dd-8120-11324bc54e06",
                "SPE_E5",
                "Microsoft 365 E5",
            ),
            (
                "6fd2c87f-b296-42f0-b197-1e91e994b900",
                "ENTERPRISEPACK",
                "Office 365 E3",
            ),
            (
                "c7df2760-2c81-4ef7-b578-5b5392b571df",
                "ENTERPRISEPREMIUM",
                "Office 365 E5",
            ),
            (
                "18181a46-0d4e-45cd-891e-60aabd171b4e",
                "STANDARDPACK",
                "Office 365 E1",
            ),
            (
                "cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d46",
                "SPB",
                "Microsoft 365 Business Premium",
            ),
            (
                "f8a1db68-be16-40ed-86d5-cb42ce701560",
                "POWER_BI_PRO",
                "Power BI Pro",
            ),
            (
                "d17b27af-3f49-4822-99f9-56a661538792",
                "CRMSTANDARD",
                "Microsoft Dynamics CRM Online",
            ),
            (
                "078d2b04-f1bd-4111-bbd4-b4b1b354cef4",
                "AAD_PREMIUM",
                "Microsoft Entra ID P1",
            ),
            (
                "639dec6b-bb19-468b-871c-c5c441c4b0cb",
                "Microsoft_365_Copilot",
                "Copilot for Microsoft 365",
            ),
            (
                "26124093-3d78-432b-b5dc-48bf992543d5",
                "IDENTITY_THREAT_PROTECTION",
                "Microsoft Defender Suite",
            ),
        ] {
            assert_eq!(product_name(id, ""), Some(name), "by id {id}");
            assert_eq!(product_name("", part), Some(name), "by part number {part}");
            assert_eq!(product_name(&id.to_uppercase(), "ignored"), Some(name));
        }
    }

    #[test]
    fn looks_up_by_id_then_unambiguous_part_number() {
        // An id the table does not know, a part number it does (any case).
        assert_eq!(
            product_name("00000000-0000-0000-0000-000000000001", "spb"),
            Some("Microsoft 365 Business Premium")
        );
        assert_eq!(
            product_name("not-a-guid", " CRMSTANDARD "),
            Some("Microsoft Dynamics CRM Online")
        );
        // The id wins over the part number.
        assert_eq!(
            product_name("05e9a617-0261-4cee-bb44-138d3ef5d965", "SPB"),
            Some("Microsoft 365 E3")
        );
        assert_eq!(
            product_name("00000000-0000-0000-0000-000000000001", "CONTOSO_SPECIAL"),
            None
        );
        assert_eq!(product_name("", ""), None);
    }

    #[test]
    fn a_part_number_listed_with_different_names_is_not_guessed() {
        let t = table();
        let mut parts: Vec<String> = t.iter().map(|p| p.part_number.to_lowercase()).collect();
        parts.sort();
        let mut ambiguous = 0;
        for w in parts.windows(2).filter(|w| w[0] == w[1]) {
            let names: Vec<&str> = t
                .iter()
                .filter(|p| p.part_number.eq_ignore_ascii_case(&w[0]))
                .map(|p| p.name)
                .collect();
            let by_part = product_name("", &w[0]);
            if names.iter().all(|n| *n == names[0]) {
                assert_eq!(by_part, Some(names[0]), "{}", w[0]);
            } else {
                ambiguous += 1;
                assert_eq!(by_part, None, "{} is listed as {names:?}", w[0]);
            }
        }
        // The page does list such String IDs (e.g. MCOPSTN5); each GUID still has its name.
        assert!(ambiguous > 0);
    }

    #[test]
    fn bad_rows_are_reported_with_their_line_and_reason() {
        let text = "# comment\nString_Id,GUID,Product_Display_Name\n\
            A,05e9a617-0261-4cee-bb44-138d3ef5d965,\"Name, with comma\"\n\
            ,06ebc4ee-1bb5-47dd-8120-11324bc54e06,No part\n\
            B,not-a-guid,Bad guid\n\
            C,06ebc4ee-1bb5-47dd-8120-11324bc54e07,\n\
            D,06ebc4ee-1bb5-47dd-8120-11324bc54e08\n\
            E,05E9A617-0261-4CEE-BB44-138D3EF5D965,Another name\n\
            A,05e9a617-0261-4cee-bb44-138d3ef5d965,\"Name, with comma\"\n";
        let (rows, errors) = parse(text, parse_guid);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].name, "Name, with comma");
        assert_eq!(
            errors,
            vec![
                RowError::EmptyPartNumber { line: 4 },
                RowError::Guid {
                    line: 5,
                    value: "not-a-guid".into()
                },
                RowError::EmptyName { line: 6 },
                RowError::Fields { line: 7, found: 2 },
                RowError::ConflictingGuid {
                    line: 8,
                    first: 3,
                    guid: "05e9a617-0261-4cee-bb44-138d3ef5d965".into()
                },
            ]
        );
        assert!(
            errors[1].to_string().contains("line 5")
                && errors[1].to_string().contains("not-a-guid")
        );
    }
}
