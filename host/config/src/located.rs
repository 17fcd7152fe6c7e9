//! Where in a config file a value is. The file is parsed once more into toml's own spanned
//! tree (`toml::de::DeTable`), which maps an error's byte span to the key it belongs to and
//! a key back to its line, so every config error names the line and the key without
//! guessing from the text.

use std::fmt;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A key's path from the top of the file, e.g. `tenant[0].sync.removal`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Segment>);

impl KeyPath {
    /// The path of the `index`th `[[tenant]]`.
    pub fn tenant(index: usize) -> KeyPath {
        KeyPath::item("tenant", index)
    }

    /// The path of the `index`th `[[array]]` table (`[[webhook]]`).
    pub fn item(array: &str, index: usize) -> KeyPath {
        KeyPath(vec![Segment::Key(array.into()), Segment::Index(index)])
    }

    /// This path and then `key`.
    pub fn key(&self, key: &str) -> KeyPath {
        let mut path = self.clone();
        path.0.push(Segment::Key(key.to_string()));
        path
    }

    /// This path and then array element `index`.
    pub fn index(&self, index: usize) -> KeyPath {
        let mut path = self.clone();
        path.0.push(Segment::Index(index));
        path
    }

    /// The tenant index when the path is inside a `[[tenant]]`, and the rest of the path.
    pub fn split_tenant(&self) -> Option<(usize, KeyPath)> {
        self.split_item("tenant")
    }

    /// The index when the path is inside an `[[array]]` table, and the rest of the path.
    pub fn split_item(&self, array: &str) -> Option<(usize, KeyPath)> {
        match self.0.as_slice() {
            [Segment::Key(key), Segment::Index(index), rest @ ..] if key == array => {
                Some((*index, KeyPath(rest.to_vec())))
            }
            _ => None,
        }
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => write!(f, "{key}")?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// A config file's text and its spanned tree.
pub struct Document<'a> {
    text: &'a str,
    root: Spanned<DeTable<'a>>,
}

impl<'a> Document<'a> {
    /// Parse `text`; a syntax error is toml's, with its span.
    pub fn parse(text: &'a str) -> Result<Document<'a>, toml::de::Error> {
        Ok(Document {
            text,
            root: DeTable::parse(text)?,
        })
    }

    /// The 1-based line of byte `offset`.
    pub fn line(&self, offset: usize) -> usize {
        line_of_offset(self.text, offset)
    }

    /// The deepest key whose key or value holds byte `offset` (the empty path when none).
    pub fn path_at(&self, offset: usize) -> KeyPath {
        find_in_table(self.root.get_ref(), offset, &KeyPath::default()).unwrap_or_default()
    }

    /// The line of `path`, or of its deepest ancestor the file has (a key left to its
    /// default is not in the file: its table's header is the closest place).
    pub fn line_of(&self, path: &KeyPath) -> Option<usize> {
        let mut span: Option<Range<usize>> = None;
        let mut value: Option<&DeValue<'_>> = None;
        let mut table = Some(self.root.get_ref());
        for segment in &path.0 {
            let next = match (segment, table, value) {
                (Segment::Key(key), Some(table), _) => table.get(key.as_str()),
                (Segment::Index(index), _, Some(DeValue::Array(array))) => array.get(*index),
                _ => None,
            };
            let Some(next) = next else { break };
            span = Some(next.span());
            value = Some(next.get_ref());
            table = next.get_ref().as_table();
        }
        span.map(|span| self.line(span.start))
    }

    /// The `name` of the `index`th `[[array]]` table, when it has one.
    pub fn item_name(&self, array: &str, index: usize) -> Option<String> {
        let items = self.root.get_ref().get(array)?.get_ref().as_array()?;
        let name = items.get(index)?.get_ref().as_table()?.get("name")?;
        name.get_ref().as_str().map(str::to_string)
    }
}

/// The 1-based line of byte `offset` of `text`.
pub fn line_of_offset(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn holds(span: Range<usize>, offset: usize) -> bool {
    span.contains(&offset) || (span.is_empty() && span.start == offset)
}

/// Depth first, because a table's span is only its header: its keys lie elsewhere.
fn find_in_table(table: &DeTable<'_>, offset: usize, path: &KeyPath) -> Option<KeyPath> {
    for (key, value) in table {
        let here = path.key(key.get_ref());
        if let Some(deeper) = find_in_value(value.get_ref(), offset, &here) {
            return Some(deeper);
        }
        if holds(key.span(), offset) || holds(value.span(), offset) {
            return Some(here);
        }
    }
    None
}

fn find_in_value(value: &DeValue<'_>, offset: usize, path: &KeyPath) -> Option<KeyPath> {
    match value {
        DeValue::Table(table) => find_in_table(table, offset, path),
        DeValue::Array(array) => {
            for (index, element) in array.iter().enumerate() {
                let here = path.index(index);
                if let Some(deeper) = find_in_value(element.get_ref(), offset, &here) {
                    return Some(deeper);
                }
                if holds(element.span(), offset) {
                    return Some(here);
                }
            }
            None
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[host]\nsandboxes = 3\n\n[[tenant]]\nname = \"a\"\n[tenant.sync]\n\
                        removal = \"x\"\n[[tenant]]\nname = \"b\"\ndomains = [\"c\", \"d\"]\n";

    #[test]
    fn spans_map_to_key_paths_and_back() {
        let document = Document::parse(TEXT).unwrap();
        let at = |needle: &str| document.path_at(TEXT.find(needle).unwrap()).to_string();
        assert_eq!(at("3"), "host.sandboxes");
        assert_eq!(at("\"x\""), "tenant[0].sync.removal");
        assert_eq!(at("[tenant.sync]"), "tenant[0].sync");
        assert_eq!(at("\"d\""), "tenant[1].domains[1]");
        let line = |path: KeyPath| document.line_of(&path);
        assert_eq!(line(KeyPath::tenant(0).key("sync").key("removal")), Some(7));
        // A key the file leaves out: its table's header.
        assert_eq!(line(KeyPath::tenant(0).key("sync").key("mode")), Some(6));
        assert_eq!(line(KeyPath::tenant(1).key("domains").index(1)), Some(10));
        assert_eq!(document.item_name("tenant", 1).as_deref(), Some("b"));
        assert_eq!(document.item_name("tenant", 2), None);
    }
}
