//! Lenient JSON for tool-call arguments written by small models.
//!
//! Strict JSON is tried first. When that fails, a single pass rewrites the common
//! slips — trailing commas, single-quoted strings, Python's `True`/`False`/`None` — and
//! the result is accepted only if it then parses (so an ambiguous input, such as an
//! apostrophe inside a single-quoted string, stays an error).

use serde_json::Value;

/// Parses `text` as JSON, repairing unambiguous slips. The error is the strict
/// parser's message for the original text.
pub fn parse_lenient_json(text: &str) -> Result<Value, String> {
    let trimmed = text.trim();
    let strict_error = match serde_json::from_str::<Value>(trimmed) {
        Ok(value) => return Ok(value),
        Err(e) => e.to_string(),
    };
    let repaired = repair(trimmed);
    serde_json::from_str::<Value>(&repaired).map_err(|_| strict_error)
}

fn repair(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                out.push('"');
                copy_double_quoted(&mut chars, &mut out);
            }
            '\'' => {
                out.push('"');
                convert_single_quoted(&mut chars, &mut out);
            }
            ',' => {
                // Drop the comma when only whitespace separates it from a closer.
                let rest: String = chars.clone().take_while(|c| c.is_whitespace()).collect();
                let after = chars.clone().nth(rest.chars().count());
                if !matches!(after, Some('}') | Some(']')) {
                    out.push(',');
                }
            }
            c if c.is_ascii_alphabetic() => {
                let mut word = String::from(c);
                while let Some(&next) = chars.peek() {
                    if next.is_ascii_alphanumeric() || next == '_' {
                        word.push(next);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push_str(match word.as_str() {
                    "True" => "true",
                    "False" => "false",
                    "None" => "null",
                    _ => &word,
                });
            }
            c => out.push(c),
        }
    }
    out
}

fn copy_double_quoted(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, out: &mut String) {
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                if let Some(escaped) = chars.next() {
                    out.push(escaped);
                }
            }
            '"' => {
                out.push(c);
                return;
            }
            c => push_literal(out, c),
        }
    }
}

/// A character inside a string: raw control characters (a newline in code a model
/// pasted into a JSON string) become their escapes.
fn push_literal(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
        c => out.push(c),
    }
}

fn convert_single_quoted(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, out: &mut String) {
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('\'') => out.push('\''),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            '"' => out.push_str("\\\""),
            '\'' => {
                out.push('"');
                return;
            }
            c => push_literal(out, c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strict_json_passes_through() {
        assert_eq!(
            parse_lenient_json(r#" {"a": [1, 2]} "#).unwrap(),
            json!({"a": [1, 2]})
        );
    }

    #[test]
    fn trailing_commas_are_removed() {
        assert_eq!(
            parse_lenient_json("{\"a\": [1, 2,], \"b\": \"x, }\",\n}").unwrap(),
            json!({"a": [1, 2], "b": "x, }"})
        );
    }

    #[test]
    fn single_quotes_are_converted() {
        assert_eq!(
            parse_lenient_json(r#"{'path': 'src/a.py', 'text': 'say "hi"', 'n': None}"#).unwrap(),
            json!({"path": "src/a.py", "text": "say \"hi\"", "n": null})
        );
        assert_eq!(
            parse_lenient_json(r#"{'s': 'it\'s', 'ok': True}"#).unwrap(),
            json!({"s": "it's", "ok": true})
        );
    }

    #[test]
    fn ambiguous_input_stays_an_error() {
        let err = parse_lenient_json("{'text': 'it's broken'}").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
        assert!(parse_lenient_json("{\"a\": ").is_err());
        assert!(parse_lenient_json("").is_err());
    }

    #[test]
    fn raw_newlines_inside_strings_are_escaped() {
        assert_eq!(
            parse_lenient_json("{\"content\": \"def f():\n\treturn 1\n\"}").unwrap(),
            json!({"content": "def f():\n\treturn 1\n"})
        );
    }

    #[test]
    fn words_inside_strings_are_untouched() {
        assert_eq!(
            parse_lenient_json("{'a': 'True None',}").unwrap(),
            json!({"a": "True None"})
        );
    }
}
