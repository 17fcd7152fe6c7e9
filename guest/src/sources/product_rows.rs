//! Reading `guest/data/products.csv` (String_Id, GUID, Product_Display_Name): shared by the
//! build script, which turns the file into the table compiled into the engine and fails
//! the build on any row it cannot use, and by the engine's tests, which check that table
//! against the file read with the engine's own GUID parser. Depends on `csv` and
//! `thiserror` only, as the build script does.

/// One usable row: skuId, skuPartNumber (String_Id), product name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub guid: u128,
    pub part_number: String,
    pub name: String,
}

/// A row of the product file that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    #[error("products.csv line {line}: unreadable CSV: {reason}")]
    Csv { line: u64, reason: String },
    #[error(
        "products.csv line {line}: expected 3 fields (String_Id, GUID, Product_Display_Name), found {found}"
    )]
    Fields { line: u64, found: usize },
    #[error("products.csv line {line}: empty String_Id")]
    EmptyPartNumber { line: u64 },
    #[error("products.csv line {line}: GUID {value:?} is not a GUID")]
    Guid { line: u64, value: String },
    #[error("products.csv line {line}: empty Product_Display_Name")]
    EmptyName { line: u64 },
    #[error("products.csv line {line}: GUID {guid} repeats line {first} with another product")]
    ConflictingGuid { line: u64, first: u64, guid: String },
}

/// Reads a product file: the usable rows, sorted by GUID with repeats of the same product
/// dropped, and every row that could not be used. GUIDs are read with `parse_guid`.
pub fn parse(text: &str, parse_guid: fn(&str) -> Option<u128>) -> (Vec<Row>, Vec<RowError>) {
    let mut rows: Vec<(Row, u64)> = Vec::new();
    let mut errors = Vec::new();
    let mut reader = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .flexible(true)
        .from_reader(text.as_bytes());
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                errors.push(RowError::Csv {
                    line,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != 3 {
            errors.push(RowError::Fields {
                line,
                found: record.len(),
            });
            continue;
        }
        let (part, guid, name) = (record[0].trim(), record[1].trim(), record[2].trim());
        if part.is_empty() {
            errors.push(RowError::EmptyPartNumber { line });
        } else if name.is_empty() {
            errors.push(RowError::EmptyName { line });
        } else if let Some(g) = parse_guid(guid) {
            rows.push((
                Row {
                    guid: g,
                    part_number: part.to_owned(),
                    name: name.to_owned(),
                },
                line,
            ));
        } else {
            errors.push(RowError::Guid {
                line,
                value: guid.to_owned(),
            });
        }
    }
    rows.sort_by_key(|(p, line)| (p.guid, *line));
    let mut table: Vec<Row> = Vec::with_capacity(rows.len());
    let mut first_line = 0;
    for (p, line) in rows {
        match table.last() {
            Some(prev) if prev.guid == p.guid => {
                if prev.part_number != p.part_number || prev.name != p.name {
                    errors.push(RowError::ConflictingGuid {
                        line,
                        first: first_line,
                        guid: format_guid(p.guid),
                    });
                }
            }
            _ => {
                first_line = line;
                table.push(p);
            }
        }
    }
    (table, errors)
}

/// The canonical lowercase text of a GUID, for messages.
pub fn format_guid(g: u128) -> String {
    let h = format!("{g:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
