//! The tolerant reader: a complete reply → prose and calls, in every form small models
//! write (see the module comment of [`calls`](super)).

use serde_json::Value;

use super::scan::json_extent;
use super::{CLOSE, CallForm, MalformedCall, OPEN, ParsedCall, ParsedResponse};
use crate::parse_lenient_json;

const NAME_OPEN: &str = "<name>";
const NAME_CLOSE: &str = "</name>";
/// The name element as the 1.5B wrote it once, copying the Hermes prompt's
/// `<function-name>` placeholder: `<function-name>write</function-name> <arguments>{…}`.
const FUNCTION_NAME_OPEN: &str = "<function-name>";
const FUNCTION_NAME_CLOSE: &str = "</function-name>";
/// `<function name="read" arguments='{…}'/>`, a form the 1.5B wrote inside `<tools>`.
const FUNCTION_OPEN: &str = "<function ";
const FENCE: &str = "```";
/// Keys small models use for the arguments object.
const ARGUMENT_KEYS: [&str; 3] = ["arguments", "input", "parameters"];

type Call = Result<ParsedCall, MalformedCall>;

/// What was found at one place of the reply.
struct Found {
    start: usize,
    end: usize,
    calls: Vec<(Call, CallForm)>,
    /// Prose inside the span (a fence around calls with words in it).
    prose: String,
}

/// Splits a complete response into prose and tool calls.
pub fn parse_response(text: &str) -> ParsedResponse {
    let mut response = ParsedResponse::default();
    let mut prose = String::new();
    let mut at = 0;
    while let Some(found) = next_call(text, at) {
        prose.push_str(&text[at..found.start]);
        prose.push_str(&found.prose);
        for (call, form) in found.calls {
            response.calls.push(call);
            response.forms.push(form);
        }
        at = found.end;
    }
    prose.push_str(&text[at..]);
    response.prose = tidy(&prose);
    response
}

/// Stray closing tags and blank runs left where calls were taken out; fenced blocks
/// stay exactly as written (a file's content).
fn tidy(prose: &str) -> String {
    let mut out = String::with_capacity(prose.len());
    let mut blank = 0;
    // The backticks of the fence the line is inside.
    let mut fence = 0;
    for line in prose.trim().lines() {
        let ticks = line.bytes().take_while(|&b| b == b'`').count();
        if fence > 0 {
            out.push_str(line);
            out.push('\n');
            if ticks >= fence && line.trim_end().len() == ticks {
                fence = 0;
            }
            continue;
        }
        if ticks >= 3 {
            fence = ticks;
        }
        let line = line.replace(CLOSE, "");
        if line.trim().is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.trim_end().to_string()
}

fn at_line_start(text: &str, i: usize) -> bool {
    text[..i]
        .rsplit('\n')
        .next()
        .is_none_or(|line| line.trim().is_empty())
}

/// The first call at or after byte `from`.
fn next_call(text: &str, from: usize) -> Option<Found> {
    let mut i = from;
    while i < text.len() {
        let rest = &text[i..];
        let next = rest
            .char_indices()
            .find(|&(_, c)| matches!(c, '<' | '`' | '{'))
            .map(|(k, _)| i + k)?;
        i = next;
        let rest = &text[i..];
        if rest.starts_with(OPEN) {
            return Some(wrapped(text, i));
        }
        if (rest.starts_with(NAME_OPEN) || rest.starts_with(FUNCTION_NAME_OPEN))
            && let Some(found) = unwrapped(text, i)
        {
            return Some(found);
        }
        if rest.starts_with(FUNCTION_OPEN)
            && let Some(found) = attributed(text, i)
        {
            return Some(found);
        }
        if rest.starts_with(FENCE) && at_line_start(text, i) {
            match fenced(text, i) {
                Fence::Calls(found) => return Some(found),
                Fence::Skip(end) => {
                    i = end;
                    continue;
                }
            }
        }
        if rest.starts_with('{')
            && at_line_start(text, i)
            && let Some(found) = bare(text, i)
        {
            return Some(found);
        }
        i += rest.chars().next().map_or(1, char::len_utf8);
    }
    None
}

fn shorten(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}…")
}

fn skip_ws(text: &str, i: usize) -> usize {
    i + (text[i..].len() - text[i..].trim_start().len())
}

/// Skips an opening fence line (```` ```json ````) at `i`, if there is one.
fn skip_open_fence(text: &str, i: usize) -> usize {
    let rest = &text[i..];
    match rest.strip_prefix(FENCE) {
        Some(after) => {
            let line = after.split('\n').next().unwrap_or("");
            if line
                .trim()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                skip_ws(text, i + FENCE.len() + line.len())
            } else {
                i
            }
        }
        None => i,
    }
}

/// Skips a closing fence at `i` (after whitespace), if there is one.
fn skip_close_fence(text: &str, i: usize) -> usize {
    let j = skip_ws(text, i);
    match text[j..].strip_prefix(FENCE) {
        Some(after) if !after.starts_with(|c: char| c.is_ascii_alphanumeric()) => j + FENCE.len(),
        _ => i,
    }
}

/// Consumes `tag` after optional whitespace at `i`; where it is not there, `i`.
fn skip_tag(text: &str, i: usize, tag: &str) -> (usize, bool) {
    let j = skip_ws(text, i);
    if text[j..].starts_with(tag) {
        (j + tag.len(), true)
    } else {
        (i, false)
    }
}

/// A JSON object starting at `i`: its end, when it balances.
fn json_at(text: &str, i: usize) -> Option<usize> {
    json_extent(&text[i..]).map(|n| i + n)
}

/// `<tool_call>` at `start`: a JSON body (Hermes) or `<name>`/`<input>` elements (xml).
fn wrapped(text: &str, start: usize) -> Found {
    let body = start + OPEN.len();
    let lead = skip_open_fence(text, skip_ws(text, body));
    let found = |end: usize, call: Call, form: CallForm| Found {
        start,
        end,
        calls: vec![(call, form)],
        prose: String::new(),
    };
    // Hermes: a JSON object whose end is found by its structure.
    if text[lead..].starts_with('{')
        && let Some(json_end) = json_at(text, lead)
    {
        let after = skip_close_fence(text, json_end);
        let (end, _) = skip_tag(text, after, CLOSE);
        let raw = &text[start..end];
        let call = call_from_json(&text[lead..json_end]).map_err(|problem| MalformedCall {
            name: None,
            problem,
            raw: shorten(raw, 300),
        });
        return found(end, call, CallForm::Hermes);
    }
    // xml elements.
    if text[lead..].starts_with(NAME_OPEN)
        && let Some((elements_end, call)) = elements(text, lead)
    {
        let (end, _) = skip_tag(text, elements_end, CLOSE);
        let call = call.map_err(|(name, problem)| MalformedCall {
            name,
            problem,
            raw: shorten(&text[start..end], 300),
        });
        return found(end, call, CallForm::Xml);
    }
    // Anything else up to the closing tag (or the next opening, or the end): the old,
    // text-based reading, which also explains what is wrong.
    let region_end = [text[body..].find(CLOSE), text[body..].find(OPEN)]
        .into_iter()
        .flatten()
        .min()
        .map_or(text.len(), |n| body + n);
    let (end, _) = skip_tag(text, region_end, CLOSE);
    let inner = &text[body..region_end];
    let raw = shorten(&format!("{OPEN}{inner}{CLOSE}"), 300);
    let form = if inner.contains(NAME_OPEN) {
        CallForm::Xml
    } else {
        CallForm::Hermes
    };
    found(end, text_block(inner, raw), form)
}

/// The text-based reading of a block whose structure could not be followed.
fn text_block(body: &str, raw: String) -> Call {
    let malformed = |name: Option<String>, problem: String| MalformedCall {
        name,
        problem,
        raw: raw.clone(),
    };
    let body = body.trim();
    if let Some(at) = body.find(NAME_OPEN) {
        return match elements(body, at) {
            Some((_, call)) => call.map_err(|(name, problem)| malformed(name, problem)),
            None => Err(malformed(None, "the <name> element is not closed".into())),
        };
    }
    let json = strip_json_fence(body);
    if json.is_empty() {
        return Err(malformed(
            None,
            "the block is empty: it has no tool name".into(),
        ));
    }
    match parse_lenient_json(json) {
        Ok(_) => call_from_json(json).map_err(|p| malformed(None, p)),
        Err(e) if json.starts_with('{') => Err(malformed(
            name_in(json),
            format!("the call is not valid JSON ({e})"),
        )),
        Err(_) => Err(malformed(
            None,
            "the block has no <name> element and no JSON call".into(),
        )),
    }
}

/// A tool name quoted after `"name"` in broken JSON, for the error message.
fn name_in(json: &str) -> Option<String> {
    let after = &json[json.find("\"name\"")? + 6..];
    let after = after
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    Some(after[..after.find('"')?].to_string())
}

fn strip_json_fence(text: &str) -> &str {
    let t = text.trim();
    let Some(inner) = t.strip_prefix(FENCE) else {
        return t;
    };
    let inner = inner.strip_prefix("json").unwrap_or(inner);
    inner.strip_suffix(FENCE).unwrap_or(inner).trim()
}

/// `<name>…</name>` then optionally `<input>…</input>` (or `<arguments>`) at `at`.
/// Returns where the elements end and the call, or `None` when `</name>` is missing.
#[allow(clippy::type_complexity)]
fn elements(
    text: &str,
    at: usize,
) -> Option<(usize, Result<ParsedCall, (Option<String>, String)>)> {
    let (open, close) = name_tags(text, at);
    let name_start = at + open.len();
    let name_len = text[name_start..].find(close)?;
    let name = text[name_start..name_start + name_len].trim().to_string();
    let after_name = name_start + name_len + close.len();
    if name.is_empty() {
        return Some((
            after_name,
            Err((None, "the <name> element is empty".into())),
        ));
    }
    if name.contains(char::is_whitespace) || name.contains('<') {
        return Some((
            after_name,
            Err((None, format!("`{}` is not a tool name", shorten(&name, 40)))),
        ));
    }
    let j = skip_ws(text, after_name);
    let tag = ["input", "arguments"]
        .into_iter()
        .find(|t| text[j..].starts_with(&format!("<{t}>")));
    let Some(tag) = tag else {
        return Some((
            after_name,
            Ok(ParsedCall {
                name,
                arguments: Value::Object(Default::default()),
            }),
        ));
    };
    let close = format!("</{tag}>");
    let value_start = skip_open_fence(text, skip_ws(text, j + tag.len() + 2));
    // JSON found by its structure; else whatever stands before the closing element.
    let (value, after_value) = match json_at(text, value_start) {
        Some(json_end) if text[value_start..].starts_with('{') => (
            &text[value_start..json_end],
            skip_close_fence(text, json_end),
        ),
        _ => {
            let end = text[value_start..]
                .find(&close)
                .map_or(text.len(), |n| value_start + n);
            (text[value_start..end].trim(), end)
        }
    };
    let (end, _) = skip_tag(text, after_value, &close);
    let value = strip_json_fence(value);
    let arguments = if value.is_empty() {
        Ok(Value::Object(Default::default()))
    } else {
        parse_lenient_json(value).map_err(|e| {
            (
                Some(name.clone()),
                format!("the <input> is not valid JSON ({e})"),
            )
        })
    };
    let call = arguments.and_then(|arguments| {
        if arguments.is_object() {
            Ok(ParsedCall {
                name: name.clone(),
                arguments,
            })
        } else {
            Err((
                Some(name.clone()),
                "the <input> must be a JSON object of arguments".into(),
            ))
        }
    });
    Some((end, call))
}

/// The opening and closing name element at `at`: `<name>`, or `<function-name>`.
fn name_tags(text: &str, at: usize) -> (&'static str, &'static str) {
    if text[at..].starts_with(FUNCTION_NAME_OPEN) {
        (FUNCTION_NAME_OPEN, FUNCTION_NAME_CLOSE)
    } else {
        (NAME_OPEN, NAME_CLOSE)
    }
}

/// `<name>…</name><input>…</input>` without the wrapper: a call only when the input
/// element follows the name (a lone `<name>` is prose, e.g. HTML).
fn unwrapped(text: &str, start: usize) -> Option<Found> {
    let (_, close) = name_tags(text, start);
    let name_end = text[start..].find(close)? + start + close.len();
    let next = skip_ws(text, name_end);
    if !(text[next..].starts_with("<input>") || text[next..].starts_with("<arguments>")) {
        return None;
    }
    let (elements_end, call) = elements(text, start)?;
    let (end, _) = skip_tag(text, elements_end, CLOSE);
    let call = call.map_err(|(name, problem)| MalformedCall {
        name,
        problem,
        raw: shorten(&text[start..end], 300),
    });
    Some(Found {
        start,
        end,
        calls: vec![(call, CallForm::Unwrapped)],
        prose: String::new(),
    })
}

/// `<function name="read" arguments='{"path": "a"}'/>` (or `…></function>`): a call
/// only when both attributes are there and the arguments are a JSON object, found by
/// its structure (so the quote that closes the attribute may also stand inside it).
fn attributed(text: &str, start: usize) -> Option<Found> {
    let tag = &text[start + FUNCTION_OPEN.len()..];
    let name = tag.strip_prefix("name=")?;
    let quote = name.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let name_len = name[1..].find(quote)?;
    let name = name[1..1 + name_len].trim();
    if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '<') {
        return None;
    }
    let after_name = start + FUNCTION_OPEN.len() + "name=".len() + name_len + 2;
    let at = skip_ws(text, after_name);
    let value = text[at..].strip_prefix("arguments=")?;
    let quote = value.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let json_start = at + "arguments=".len() + 1;
    let json_end = json_at(text, json_start)?;
    text[json_end..].strip_prefix(quote)?;
    let after = skip_ws(text, json_end + quote.len_utf8());
    let end = if text[after..].starts_with("/>") {
        after + 2
    } else if text[after..].starts_with('>') {
        skip_tag(text, after + 1, "</function>").0
    } else {
        return None;
    };
    let call = parse_lenient_json(&text[json_start..json_end])
        .ok()
        .filter(Value::is_object)
        .map(|arguments| ParsedCall {
            name: name.to_string(),
            arguments,
        })?;
    Some(Found {
        start,
        end,
        calls: vec![(Ok(call), CallForm::Unwrapped)],
        prose: String::new(),
    })
}

/// A JSON object that is a call: `name` and one of the argument keys.
fn call_from_json(json: &str) -> Result<ParsedCall, String> {
    let value =
        parse_lenient_json(json).map_err(|e| format!("the call is not valid JSON ({e})"))?;
    call_from_value(&value)
}

fn call_from_value(value: &Value) -> Result<ParsedCall, String> {
    // `{"function": {"name": …, "arguments": …}}`, as some templates nest it.
    let value = match value.get("function") {
        Some(inner) if inner.get("name").is_some() => inner,
        _ => value,
    };
    let name = value
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .ok_or("the call has no \"name\"")?
        .trim()
        .to_string();
    let arguments = ARGUMENT_KEYS
        .iter()
        .find_map(|k| value.get(*k))
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()));
    // Some models double-encode the arguments as a string.
    let arguments = match arguments {
        Value::String(s) if s.trim().is_empty() => Value::Object(Default::default()),
        Value::String(s) => {
            parse_lenient_json(&s).map_err(|e| format!("the arguments are not valid JSON ({e})"))?
        }
        other => other,
    };
    if !arguments.is_object() {
        return Err("the arguments must be a JSON object".into());
    }
    Ok(ParsedCall { name, arguments })
}

/// Whether a parsed object has the shape of a call (so that other JSON stays prose).
fn looks_like_call(value: &Value) -> bool {
    let value = match value.get("function") {
        Some(inner) if inner.is_object() => inner,
        _ => value,
    };
    value.get("name").is_some_and(Value::is_string)
        && ARGUMENT_KEYS.iter().any(|k| value.get(*k).is_some())
}

enum Fence {
    Calls(Found),
    /// Not a call: prose up to this index (the fence's end).
    Skip(usize),
}

/// A fenced block at `start` (at a line start).
fn fenced(text: &str, start: usize) -> Fence {
    let line_end = text[start..].find('\n').map_or(text.len(), |n| start + n);
    // A longer fence holds lines of backticks (a whole file written as a block).
    let ticks = text[start..].bytes().take_while(|&b| b == b'`').count();
    // The language is the info string's first word (`python calc.py` names the file).
    let lang = text[start + ticks..line_end]
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    if !lang
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Fence::Skip(start + ticks);
    }
    let content = skip_ws(text, line_end);
    // The end of the fence, found by the line that closes it: at least as many
    // backticks at a line's start.
    let close_at = |from: usize| {
        let mut k = from;
        loop {
            let found = text[k..].find(FENCE)? + k;
            let run = text[found..].bytes().take_while(|&b| b == b'`').count();
            if at_line_start(text, found) && run >= ticks {
                return Some(found);
            }
            k = found + run;
        }
    };
    let past = |close: usize| close + text[close..].bytes().take_while(|&b| b == b'`').count();
    // Source in a language is a file's content, never calls (a block the history shows
    // a write in may hold `<tool_call>` or a JSON object).
    let code = !matches!(
        lang.as_str(),
        "" | "json" | "tool_call" | "xml" | "text" | "txt"
    );
    if code {
        return Fence::Skip(close_at(content).map_or(text.len(), past));
    }
    if text[content..].starts_with('{') {
        let Some(json_end) = json_at(text, content) else {
            let close = close_at(content);
            let end = close.map_or(text.len(), past);
            if lang != "tool_call" {
                return Fence::Skip(end);
            }
            let raw = shorten(&text[start..end], 300);
            let call = text_block(&text[content..close.unwrap_or(text.len())], raw);
            return Fence::Calls(Found {
                start,
                end,
                calls: vec![(call, CallForm::Fenced)],
                prose: String::new(),
            });
        };
        let after = skip_close_fence(text, json_end);
        let parsed = parse_lenient_json(&text[content..json_end]);
        let is_call =
            parsed.as_ref().is_ok_and(looks_like_call) || (lang == "tool_call" && parsed.is_err());
        if !is_call {
            return Fence::Skip(if after > json_end {
                after
            } else {
                close_at(json_end).map_or(text.len(), past)
            });
        }
        let raw = shorten(&text[start..after], 300);
        let call = match parsed {
            Ok(value) => call_from_value(&value),
            Err(e) => Err(format!("the call is not valid JSON ({e})")),
        }
        .map_err(|problem| MalformedCall {
            name: None,
            problem,
            raw,
        });
        return Fence::Calls(Found {
            start,
            end: after,
            calls: vec![(call, CallForm::Fenced)],
            prose: String::new(),
        });
    }
    if text[content..].starts_with(OPEN) || text[content..].starts_with(NAME_OPEN) {
        // Calls inside a fence: the fence lines go, the calls keep their own form.
        let inner_end = close_at(content).unwrap_or(text.len());
        let inner = parse_response(&text[content..inner_end]);
        let end = if inner_end < text.len() {
            past(inner_end)
        } else {
            inner_end
        };
        // Written inside a fence: not the canonical form, whatever is inside.
        return Fence::Calls(Found {
            start,
            end,
            calls: inner
                .calls
                .into_iter()
                .map(|call| (call, CallForm::Fenced))
                .collect(),
            prose: inner.prose,
        });
    }
    Fence::Skip(close_at(content).map_or(text.len(), past))
}

/// A bare JSON object at `start` that has the shape of a call.
fn bare(text: &str, start: usize) -> Option<Found> {
    let end = json_at(text, start)?;
    let value = parse_lenient_json(&text[start..end]).ok()?;
    if !looks_like_call(&value) {
        return None;
    }
    let call = call_from_value(&value).map_err(|problem| MalformedCall {
        name: None,
        problem,
        raw: shorten(&text[start..end], 300),
    });
    let (end, _) = skip_tag(text, end, CLOSE);
    Some(Found {
        start,
        end,
        calls: vec![(call, CallForm::Bare)],
        prose: String::new(),
    })
}
