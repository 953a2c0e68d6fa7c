//! The reader against the forms small models write (several taken from real Qwen2.5-Coder
//! replies).

use serde_json::json;

use super::*;

fn ok_calls(text: &str) -> Vec<ParsedCall> {
    parse_response(text)
        .calls
        .into_iter()
        .map(|c| c.expect("well-formed call"))
        .collect()
}

fn one(text: &str) -> (ParsedCall, CallForm, String) {
    let parsed = parse_response(text);
    assert_eq!(parsed.calls.len(), 1, "{text:?} → {parsed:?}");
    let call = parsed.calls[0].clone().expect("well-formed call");
    (call, parsed.forms[0], parsed.prose)
}

#[test]
fn canonical_xml_call_with_prose_around_it() {
    let text = "I will run the tests.\n<tool_call>\n<name>bash</name>\n<input>{\"command\": \"pytest tests/\"}</input>\n</tool_call>\nThen look.";
    let (call, form, prose) = one(text);
    assert_eq!(prose, "I will run the tests.\n\nThen look.");
    assert_eq!(form, CallForm::Xml);
    assert_eq!(
        call,
        ParsedCall {
            name: "bash".into(),
            arguments: json!({"command": "pytest tests/"})
        }
    );
}

#[test]
fn hermes_call_in_its_own_dialect() {
    let text = "<tool_call>\n{\"name\": \"read\", \"arguments\": {\"path\": \"a\"}}\n</tool_call>";
    let (call, form, prose) = one(text);
    assert_eq!(form, CallForm::Hermes);
    assert!(prose.is_empty());
    assert_eq!(call.arguments, json!({"path": "a"}));
    assert!(parse_response(text).is_canonical(ToolProtocol::Hermes));
    assert!(!parse_response(text).is_canonical(ToolProtocol::Xml));
    // Double-encoded arguments.
    let text =
        "<tool_call>{\"name\": \"read\", \"arguments\": \"{\\\"path\\\": \\\"a\\\"}\"}</tool_call>";
    assert_eq!(one(text).0.arguments, json!({"path": "a"}));
}

#[test]
fn fenced_json_blocks_with_each_argument_key() {
    for key in ["arguments", "input", "parameters"] {
        for lang in ["json", "tool_call", ""] {
            let text = format!(
                "I'll edit it.\n```{lang}\n{{\"name\": \"edit\", \"{key}\": {{\"path\": \"calc/__init__.py\", \"old_string\": \"a - b\", \"new_string\": \"a + b\"}}}}\n```\n"
            );
            let (call, form, prose) = one(&text);
            assert_eq!(form, CallForm::Fenced, "{text}");
            assert_eq!(call.name, "edit");
            assert_eq!(call.arguments["new_string"], "a + b");
            assert_eq!(prose, "I'll edit it.");
        }
    }
}

#[test]
fn code_fences_that_are_not_calls_stay_prose() {
    let text = "Here is the fix:\n```python\ndef add(a, b):\n    return a + b\n```\nand a config:\n```json\n{\"name\": \"calc\", \"version\": 1}\n```";
    let parsed = parse_response(text);
    assert!(parsed.calls.is_empty(), "{parsed:?}");
    assert!(parsed.prose.contains("return a + b"));
    assert!(parsed.prose.contains("\"version\": 1"));
}

#[test]
fn bare_json_object_as_the_whole_reply_and_on_its_own_lines() {
    let (call, form, _) =
        one("{\"name\": \"bash\", \"arguments\": {\"command\": \"python -m pytest\"}}");
    assert_eq!(form, CallForm::Bare);
    assert_eq!(call.arguments, json!({"command": "python -m pytest"}));
    let text = "First the tests:\n{\"name\": \"bash\", \"arguments\": {\"command\": \"ls\"}}\n{\"name\": \"read\", \"arguments\": {\"path\": \"a\"}}";
    let parsed = parse_response(text);
    assert_eq!(parsed.calls.len(), 2);
    assert_eq!(parsed.prose, "First the tests:");
    // JSON inside a sentence, or without the call shape, is not a call.
    assert!(
        parse_response("The object {\"name\": \"x\", \"arguments\": {}} is odd")
            .calls
            .is_empty()
    );
    assert!(parse_response("{\"name\": \"x\"}").calls.is_empty());
}

#[test]
fn xml_elements_without_the_wrapper() {
    // What Qwen2.5-Coder-0.5B wrote in keel's xml prompt.
    let text = "<name>edit</name>\n<input>{\"path\": \"two_fer.py\", \"old_string\": \"pass\", \"new_string\": \"return 1\"}</input>";
    let (call, form, prose) = one(text);
    assert_eq!(form, CallForm::Unwrapped);
    assert_eq!(call.name, "edit");
    assert!(prose.is_empty());
    // A lone <name> element is prose.
    assert!(parse_response("<name>Ada</name> wrote it").calls.is_empty());
}

#[test]
fn the_hermes_placeholder_as_a_name_element() {
    // The 1.5B copied `<function-name>` from the Hermes prompt's call template.
    let text = "<function-name>write</function-name> <arguments>{\"path\": \"names.py\", \"content\": \"def display_name(first, last):\\n    return f'{first} {last}'\"}</arguments>";
    let (call, form, prose) = one(text);
    assert_eq!(form, CallForm::Unwrapped);
    assert_eq!(call.name, "write");
    assert_eq!(
        call.arguments["content"],
        "def display_name(first, last):\n    return f'{first} {last}'"
    );
    assert!(prose.is_empty());
}

#[test]
fn function_elements_with_their_arguments_as_an_attribute() {
    // Two calls the 1.5B wrote inside `<tools>` in one reply, arguments single-quoted.
    let text = "<tools>\n  <function name=\"read\" arguments='{\"path\": \"shop/orders/totals.py\", \"offset\": 6, \"limit\": 2}'/>\n  <function name=\"grep\" arguments='{\"pattern\": \"it's\", \"path\": \"shop\"}'/>\n</tools>";
    let calls = ok_calls(text);
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].name, "read");
    assert_eq!(
        calls[0].arguments,
        json!({"path": "shop/orders/totals.py", "offset": 6, "limit": 2})
    );
    // The attribute's quote inside the JSON does not end it.
    assert_eq!(
        calls[1].arguments,
        json!({"pattern": "it's", "path": "shop"})
    );
    // With a closing element, and double quotes around the name.
    let calls = ok_calls("<function name='bash' arguments='{\"command\": \"ls\"}'></function>");
    assert_eq!(calls[0].name, "bash");
    // Not a call without its arguments, or when they are not an object.
    assert!(parse_response("<function name=\"read\"/>").calls.is_empty());
    assert!(
        parse_response("<function name=\"read\" arguments='[1]'/>")
            .calls
            .is_empty()
    );
}

#[test]
fn closing_tags_inside_arguments_are_kept() {
    let content = "docs: a call ends with </tool_call> and input with </input>\n```\nfence\n```\n";
    let args = json!({"path": "FORMAT.md", "content": content});
    for protocol in [ToolProtocol::Xml, ToolProtocol::Hermes] {
        let text = format!("Writing.\n{}\nDone.", render_call(protocol, "write", &args));
        let (call, _, prose) = one(&text);
        assert_eq!(call.arguments, args, "{protocol:?}");
        assert_eq!(prose, "Writing.\n\nDone.");
    }
    let fenced = format!(
        "```json\n{}\n```",
        json!({"name": "write", "arguments": args})
    );
    assert_eq!(one(&fenced).0.arguments, args);
    let bare = json!({"name": "write", "arguments": args}).to_string();
    assert_eq!(one(&bare).0.arguments, args);
    let unwrapped = format!("<name>write</name><input>{args}</input>");
    assert_eq!(one(&unwrapped).0.arguments, args);
}

#[test]
fn several_calls_in_one_response() {
    let text = "<tool_call><name>read</name><input>{\"path\": \"a\"}</input></tool_call>\n<tool_call>\n{\"name\": \"read\", \"arguments\": {\"path\": \"b\"}}\n</tool_call>";
    let paths: Vec<_> = ok_calls(text)
        .into_iter()
        .map(|c| c.arguments["path"].clone())
        .collect();
    assert_eq!(paths, [json!("a"), json!("b")]);
}

#[test]
fn code_fences_around_the_block() {
    let text = "Reading:\n```xml\n<tool_call>\n<name>read</name>\n<input>{\"path\": \"x\"}</input>\n</tool_call>\n```\nDone.";
    let parsed = parse_response(text);
    assert_eq!(parsed.calls.len(), 1);
    assert!(parsed.calls[0].is_ok());
    assert_eq!(parsed.prose, "Reading:\n\nDone.");
    let text = "<tool_call><name>read</name><input>\n```json\n{\"path\": \"x\"}\n```\n</input></tool_call>";
    assert_eq!(ok_calls(text)[0].arguments, json!({"path": "x"}));
}

#[test]
fn missing_final_close_at_end_of_stream() {
    let text = "<tool_call>\n<name>glob</name>\n<input>{\"pattern\": \"**/*.rs\"}</input>\n";
    assert_eq!(ok_calls(text)[0].name, "glob");
    let text = "<tool_call>\n<name>glob</name>\n<input>{\"pattern\": \"*.rs\"}";
    assert_eq!(ok_calls(text)[0].arguments, json!({"pattern": "*.rs"}));
    let text = "<tool_call>\n{\"name\": \"glob\", \"arguments\": {\"pattern\": \"*.rs\"}}";
    assert_eq!(ok_calls(text)[0].arguments, json!({"pattern": "*.rs"}));
}

#[test]
fn unclosed_block_followed_by_another() {
    let text = "<tool_call><name>read</name><input>{\"path\": \"a\"}</input>\n<tool_call><name>read</name><input>{\"path\": \"b\"}</input></tool_call>";
    assert_eq!(ok_calls(text).len(), 2);
}

#[test]
fn repairable_json_is_repaired() {
    let text = "<tool_call><name>edit</name><input>{'path': 'a.py', 'old_string': 'x',}</input></tool_call>";
    assert_eq!(
        ok_calls(text)[0].arguments,
        json!({"path": "a.py", "old_string": "x"})
    );
    // Raw newlines in a string: code pasted into JSON.
    let text = "```json\n{\"name\": \"write\", \"arguments\": {\"path\": \"a.py\", \"content\": \"def f():\n    return 1\n\"}}\n```";
    assert_eq!(one(text).0.arguments["content"], "def f():\n    return 1\n");
}

#[test]
fn malformed_blocks_say_what_is_wrong() {
    let parsed =
        parse_response("<tool_call><name>read</name><input>{\"path\": </input></tool_call>");
    let err = parsed.calls[0].clone().unwrap_err();
    assert_eq!(err.name.as_deref(), Some("read"));
    assert!(err.problem.contains("not valid JSON"), "{}", err.problem);
    assert!(
        err.message(ToolProtocol::Xml)
            .contains("<name>TOOL_NAME</name>")
    );
    assert!(
        err.message(ToolProtocol::Hermes)
            .contains("\"name\": \"TOOL_NAME\"")
    );

    let err = parse_response("<tool_call>just words</tool_call>").calls[0]
        .clone()
        .unwrap_err();
    assert!(err.problem.contains("no <name>"), "{}", err.problem);

    let err = parse_response("<tool_call><name>read</name><input>[1]</input></tool_call>").calls[0]
        .clone()
        .unwrap_err();
    assert!(err.problem.contains("JSON object"));

    let err = parse_response("<tool_call><name>read file</name></tool_call>").calls[0]
        .clone()
        .unwrap_err();
    assert!(err.problem.contains("not a tool name"));

    let err = parse_response(
        "<tool_call>{\"name\": \"edit\", \"arguments\": {\"path\": \"a\" \"x\"}}</tool_call>",
    )
    .calls[0]
        .clone()
        .unwrap_err();
    assert!(err.problem.contains("not valid JSON"), "{}", err.problem);
    assert!(parse_response("<tool_call>{\"arguments\": {}}</tool_call>").calls[0].is_err());
}

#[test]
fn missing_input_means_no_arguments() {
    assert_eq!(
        ok_calls("<tool_call><name>git</name></tool_call>")[0].arguments,
        json!({})
    );
}

#[test]
fn no_calls_means_all_prose() {
    let parsed = parse_response("  All done: the tests pass. ");
    assert!(parsed.calls.is_empty());
    assert_eq!(parsed.prose, "All done: the tests pass.");
}

#[test]
fn rendered_replies_read_back_to_the_same_calls() {
    let calls = vec![
        Ok(ParsedCall {
            name: "bash".into(),
            arguments: json!({"command": "ls </tool_call>"}),
        }),
        Ok(ParsedCall {
            name: "read".into(),
            arguments: json!({"path": "a"}),
        }),
    ];
    for protocol in [ToolProtocol::Xml, ToolProtocol::Hermes] {
        let text = render_reply(protocol, "Let me look.", &calls);
        let parsed = parse_response(&text);
        assert_eq!(parsed.prose, "Let me look.");
        assert_eq!(parsed.calls, calls);
        assert!(parsed.is_canonical(protocol));
    }
}

#[test]
fn a_file_in_a_block_is_prose_kept_exactly_whatever_it_holds() {
    // A file written as a block: one that documents calls, with fences and blank runs
    // of its own (so a longer fence), beside a real call.
    let block = "docs/calls.md\n````markdown\nCall tools like this:\n\n\n```\n<tool_call>\n{\"name\": \"read\", \"arguments\": {\"path\": \"a\"}}\n</tool_call>\n```\n  trailing  \n````";
    let call = render_call(ToolProtocol::Hermes, "bash", &json!({"command": "ls"}));
    let parsed = parse_response(&format!("{block}\n\n\n{call}"));
    assert_eq!(ok_calls(&format!("{block}\n{call}")).len(), 1);
    assert_eq!(parsed.calls.len(), 1);
    assert_eq!(parsed.prose, block);
    // Source in a language is never read as calls, even when it opens like one.
    let python = "```python\n<tool_call>\n{\"name\": \"read\", \"arguments\": {\"path\": \"a\"}}\n</tool_call>\n```";
    let parsed = parse_response(python);
    assert!(parsed.calls.is_empty());
    assert_eq!(parsed.prose, python);
    // A fence named with its file is still a fence.
    let named = "```python calc.py\n{\"name\": \"read\", \"arguments\": {\"path\": \"a\"}}\n```";
    assert!(parse_response(named).calls.is_empty());
}
