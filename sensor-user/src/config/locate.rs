//! Where a dotted field name (`output.sinks[0].url`) sits in the config text, so that a
//! validation error can name the line as a parse error does.

use toml::{
    Spanned,
    de::{DeTable, DeValue},
};

/// The 1-based line of the deepest part of `field` found in `text`; 1 when the text does not
/// parse or the field is not written (a default that is wrong only with other values).
pub fn field_line(text: &str, field: &str) -> usize {
    let Ok(root) = DeTable::parse(text) else {
        return 1;
    };
    let mut span = None;
    let mut table = Some(root.get_ref());
    let mut value: Option<&DeValue<'_>> = None;
    for segment in field.split('.') {
        let (key, indices) = split_indices(segment);
        let nested = match value {
            Some(DeValue::Table(t)) => Some(t),
            _ => None,
        };
        let Some(current) = table.take().or(nested) else {
            break;
        };
        let Some((_, found)) = current.iter().find(|(k, _)| k.get_ref().as_ref() == key) else {
            break;
        };
        span = Some(found.span());
        value = Some(found.get_ref());
        for index in indices {
            let Some(DeValue::Array(items)) = value else {
                break;
            };
            let Some(item) = items.get(index) else {
                break;
            };
            span = Some(item.span());
            value = Some(item.get_ref());
        }
    }
    span.map_or(1, |s| line_of(text, s.start))
}

/// The dotted name of the innermost key whose key or value covers byte `offset` of `text`
/// (`capture.ring_buffer_bytes`, `output.sinks[1].url`); `None` when no key does, or the text
/// does not parse (then the parser's own message is all there is).
pub fn field_at(text: &str, offset: usize) -> Option<String> {
    let root = DeTable::parse(text).ok()?;
    let mut name = String::new();
    find_in_table(root.get_ref(), offset, &mut name).then_some(name)
}

// A `[section]` header's span covers the header only, not the keys below it: tables are
// searched whatever their span, keys and plain values by theirs.
fn find_in_table(table: &DeTable<'_>, offset: usize, name: &mut String) -> bool {
    for (key, value) in table.iter() {
        let len = name.len();
        if !name.is_empty() {
            name.push('.');
        }
        name.push_str(key.get_ref());
        if key.span().contains(&offset) || find_in_value(value, offset, name) {
            return true;
        }
        name.truncate(len);
    }
    false
}

fn find_in_value(value: &Spanned<DeValue<'_>>, offset: usize, name: &mut String) -> bool {
    match value.get_ref() {
        DeValue::Table(inner) => {
            find_in_table(inner, offset, name) || value.span().contains(&offset)
        }
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = name.len();
                name.push_str(&format!("[{i}]"));
                if find_in_value(item, offset, name) {
                    return true;
                }
                name.truncate(len);
            }
            value.span().contains(&offset)
        }
        _ => value.span().contains(&offset),
    }
}

/// `sinks[0][1]` into `sinks` and `[0, 1]`; a segment without brackets has no indices.
fn split_indices(segment: &str) -> (&str, Vec<usize>) {
    let Some(open) = segment.find('[') else {
        return (segment, Vec::new());
    };
    let indices = segment[open..]
        .split(['[', ']'])
        .filter_map(|i| i.parse().ok())
        .collect();
    (&segment[..open], indices)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(1, |before| {
        before.bytes().filter(|&b| b == b'\n').count() + 1
    })
}

#[cfg(test)]
mod tests {
    use super::field_line;

    #[test]
    fn finds_nested_fields_and_array_items() {
        let text = "# c\n[capture]\nring_buffer_bytes = 3\n\n[[output.sinks]]\ntype = \"stdout\"\n\
                    [[output.sinks]]\ntype = \"file\"\npath = \"x\"\n";
        assert_eq!(field_line(text, "capture.ring_buffer_bytes"), 3);
        assert_eq!(field_line(text, "output.sinks[1].path"), 9);
        assert_eq!(field_line(text, "output.sinks[0].type"), 6);
        assert_eq!(field_line(text, "detect.families[0]"), 1);
    }

    #[test]
    fn names_the_key_at_an_offset() {
        let text = "[capture]\nring_buffer_bytes = \"big\"\n[[output.sinks]]\ntype = \"file\"\n\
                    [[output.sinks]]\nurl = 5\n";
        let at = |needle: &str| super::field_at(text, text.find(needle).expect("needle"));
        assert_eq!(at("\"big\"").as_deref(), Some("capture.ring_buffer_bytes"));
        assert_eq!(at("ring_").as_deref(), Some("capture.ring_buffer_bytes"));
        assert_eq!(at("5").as_deref(), Some("output.sinks[1].url"));
    }

    #[test]
    fn inline_arrays_point_at_the_item() {
        let text = "[rules.webroot_script_write]\nweb_roots = [\n  \"/a\",\n  \"**/x\",\n]\n";
        assert_eq!(
            field_line(text, "rules.webroot_script_write.web_roots[1]"),
            4
        );
    }
}
