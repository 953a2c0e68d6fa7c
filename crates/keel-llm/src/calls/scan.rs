//! Finding where a JSON value written by a model ends, by its structure rather than by
//! the first closing tag after it (arguments may contain `</tool_call>`, ```` ``` ````,
//! `</input>`).

/// The byte length of the JSON object or array at the start of `text`, when its
/// brackets balance. Strings are skipped with their escapes; single-quoted strings
/// (which the lenient parser repairs) are recognised where a value or key may start.
pub(crate) fn json_extent(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    if !matches!(bytes.first(), Some(b'{') | Some(b'[')) {
        return None;
    }
    let mut depth = 0usize;
    let mut i = 0;
    let mut last_significant = b' ';
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'"' => {
                i = string_end(bytes, i, b'"')?;
                last_significant = b'"';
                continue;
            }
            b'\'' if matches!(last_significant, b'{' | b'[' | b':' | b',') => {
                i = string_end(bytes, i, b'\'')?;
                last_significant = b'"';
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        if !b.is_ascii_whitespace() {
            last_significant = b;
        }
        i += 1;
    }
    None
}

/// The index just past the string that opens at `start` with `quote`.
fn string_end(bytes: &[u8], start: usize, quote: u8) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b if b == quote => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_end_at_their_matching_brace() {
        assert_eq!(json_extent(r#"{"a": 1} rest"#), Some(8));
        assert_eq!(json_extent(r#"{"a": {"b": [1, {}]}}</x>"#), Some(21));
        assert_eq!(json_extent("[1, 2]"), Some(6));
        assert_eq!(json_extent("x{}"), None);
    }

    #[test]
    fn brackets_and_tags_inside_strings_do_not_count() {
        let text = r#"{"content": "} ] </tool_call> \" {"}</tool_call>"#;
        assert_eq!(
            &text[..json_extent(text).unwrap()],
            r#"{"content": "} ] </tool_call> \" {"}"#
        );
        let text = "{'content': '}</input>', 'n': 1}!";
        assert_eq!(json_extent(text), Some(text.len() - 1));
        // An apostrophe inside a double-quoted string is not a quote.
        let text = r#"{"a": "it's {"}"#;
        assert_eq!(json_extent(text), Some(text.len()));
    }

    #[test]
    fn unbalanced_text_has_no_extent() {
        assert_eq!(json_extent(r#"{"a": "#), None);
        assert_eq!(json_extent(r#"{"a": "x}"#), None);
        assert_eq!(json_extent("{"), None);
    }
}
