//! A usage row's counts as SQLite stores them (schema 10): each count's name once in
//! `count_names`, and a row's counts a blob of (name id, value) pairs, each an unsigned
//! LEB128 varint. Until schema 9 they were a JSON object per row, its names repeated in
//! every row: 500 bytes a row on average, up to 1 KB (Skype's 25 counts), the most of a
//! 100k-user tenant's database once the usage reports were read. Exports still give the
//! JSON object every back end gives ([`m365sync_store::model::counts_json`]).

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

/// The names of counts, shared by every tenant of the database; never deleted, so an id
/// once committed names the same count for good.
pub(crate) const COUNT_NAMES_TABLE: &str = "
CREATE TABLE IF NOT EXISTS count_names (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
";

/// The ids of count names, as one writer knows them. An id found or created inside a
/// write transaction is only sure once that transaction commits (a rolled back insert
/// frees its id for another name): such ids are held apart until the writer says how the
/// transaction ended.
#[derive(Default)]
pub(crate) struct CountNames {
    committed: HashMap<String, i64>,
    pending: HashMap<String, i64>,
}

impl CountNames {
    /// The id of `name`, created in the open transaction if the database has none.
    fn id(&mut self, connection: &Connection, name: &str) -> rusqlite::Result<i64> {
        if let Some(id) = self.committed.get(name).or_else(|| self.pending.get(name)) {
            return Ok(*id);
        }
        let found: Option<i64> = connection
            .prepare_cached("SELECT id FROM count_names WHERE name = ?1")?
            .query_row(params![name], |row| row.get(0))
            .optional()?;
        let id = match found {
            Some(id) => id,
            None => {
                connection
                    .prepare_cached("INSERT INTO count_names (name) VALUES (?1)")?
                    .execute(params![name])?;
                connection.last_insert_rowid()
            }
        };
        self.pending.insert(name.to_owned(), id);
        Ok(id)
    }

    /// The stored form of `counts`, in their order.
    pub(crate) fn encode(
        &mut self,
        connection: &Connection,
        counts: &[(String, u64)],
    ) -> rusqlite::Result<Vec<u8>> {
        let mut blob = Vec::with_capacity(counts.len() * 3);
        for (name, value) in counts {
            let id = self.id(connection, name)?;
            // Ids are rowids SQLite assigned from 1 up: never negative.
            push_varint(&mut blob, id as u64);
            push_varint(&mut blob, *value);
        }
        Ok(blob)
    }

    /// The transaction the pending ids were found in committed.
    pub(crate) fn committed(&mut self) {
        self.committed.extend(self.pending.drain());
    }

    /// The transaction the pending ids were found in rolled back.
    pub(crate) fn rolled_back(&mut self) {
        self.pending.clear();
    }
}

/// Every count name by id, for reading counts back.
pub(crate) fn names_by_id(connection: &Connection) -> rusqlite::Result<HashMap<i64, String>> {
    connection
        .prepare("SELECT id, name FROM count_names")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect()
}

/// Why stored counts cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CountsError {
    #[error("the counts end inside a number")]
    Truncated,
    #[error("a count's name or value has more than 64 bits")]
    TooLong,
    #[error("count name {0} is not in count_names")]
    UnknownName(u64),
}

/// Counts as [`CountNames::encode`] stored them, named.
pub(crate) fn decode(
    blob: &[u8],
    names: &HashMap<i64, String>,
) -> Result<Vec<(String, u64)>, CountsError> {
    let mut counts = Vec::new();
    let mut rest = blob;
    while !rest.is_empty() {
        let id = read_varint(&mut rest)?;
        let value = read_varint(&mut rest)?;
        let name = i64::try_from(id)
            .ok()
            .and_then(|id| names.get(&id))
            .ok_or(CountsError::UnknownName(id))?;
        counts.push((name.clone(), value));
    }
    Ok(counts)
}

fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn read_varint(input: &mut &[u8]) -> Result<u64, CountsError> {
    let mut value = 0u64;
    for (i, &byte) in input.iter().enumerate() {
        let bits = u64::from(byte & 0x7f);
        let shift = 7 * i as u32;
        // The tenth byte may only hold the 64th bit.
        if shift >= 64 || (shift == 63 && bits > 1) {
            return Err(CountsError::TooLong);
        }
        value |= bits << shift;
        if byte & 0x80 == 0 {
            *input = &input[i + 1..];
            return Ok(value);
        }
    }
    Err(CountsError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> Connection {
        let c = Connection::open_in_memory().expect("a database");
        c.execute_batch(COUNT_NAMES_TABLE).expect("the table");
        c
    }

    #[test]
    fn counts_read_back_as_written_values_of_every_width_included() {
        let c = database();
        let mut names = CountNames::default();
        let counts: Vec<(String, u64)> = [
            ("send-count", 0),
            ("read-count", 127),
            ("receive-count", 128),
            ("storage-used-byte", 53_687_091_200),
            ("most", u64::MAX),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v))
        .collect();
        let blob = names.encode(&c, &counts).expect("encoding");
        // Five one-byte ids; values of 1, 1, 2, 6 and 10 bytes.
        assert_eq!(blob.len(), 5 + 1 + 1 + 2 + 6 + 10);
        assert_eq!(decode(&blob, &names_by_id(&c).unwrap()), Ok(counts));
        assert_eq!(decode(&[], &HashMap::new()), Ok(vec![]));
    }

    #[test]
    fn a_name_is_stored_once_for_every_row_and_writer() {
        let c = database();
        let (mut one, mut other) = (CountNames::default(), CountNames::default());
        let row = vec![
            ("call-count".to_owned(), 2),
            ("meeting-count".to_owned(), 1),
        ];
        let a = one.encode(&c, &row).unwrap();
        one.committed();
        // Another writer of the database finds the same ids.
        assert_eq!(other.encode(&c, &row).unwrap(), a);
        let stored: i64 = c
            .query_row("SELECT COUNT(*) FROM count_names", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, 2);
    }

    #[test]
    fn an_id_of_a_rolled_back_transaction_is_not_kept() {
        let c = database();
        let mut names = CountNames::default();
        c.execute_batch("BEGIN").unwrap();
        names
            .encode(&c, &[("rolled-back".to_owned(), 1)])
            .expect("encoding");
        c.execute_batch("ROLLBACK").unwrap();
        names.rolled_back();
        // The id the rolled back name had goes to the next name; the first is asked again.
        let other = names.encode(&c, &[("other".to_owned(), 1)]).unwrap();
        let again = names.encode(&c, &[("rolled-back".to_owned(), 1)]).unwrap();
        names.committed();
        let by_id = names_by_id(&c).unwrap();
        assert_eq!(decode(&other, &by_id).unwrap()[0].0, "other");
        assert_eq!(decode(&again, &by_id).unwrap()[0].0, "rolled-back");
    }

    #[test]
    fn unreadable_counts_say_why() {
        let names: HashMap<i64, String> = [(1, "a".to_owned())].into();
        assert_eq!(decode(&[1, 0x80], &names), Err(CountsError::Truncated));
        assert_eq!(decode(&[2, 5], &names), Err(CountsError::UnknownName(2)));
        assert_eq!(decode(&[1], &names), Err(CountsError::Truncated));
        let eleven = [0xffu8; 10];
        let mut blob = vec![1];
        blob.extend_from_slice(&eleven);
        blob.push(0);
        assert_eq!(decode(&blob, &names), Err(CountsError::TooLong));
        let mut max = vec![1];
        push_varint(&mut max, u64::MAX);
        assert_eq!(decode(&max, &names), Ok(vec![("a".to_owned(), u64::MAX)]));
    }
}
