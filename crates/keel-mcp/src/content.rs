//! An MCP tool result as the text a model reads: text blocks as they are, other blocks
//! as a short line saying what they were, structured content when there is nothing
//! else; capped like every other tool output.

use keel_tools::{CappedOutput, ToolOutput};
use rmcp::model::{CallToolResult, ContentBlock, ResourceContents};

pub(crate) fn render(result: &CallToolResult, limit: usize) -> ToolOutput {
    let mut parts: Vec<String> = result.content.iter().map(block).collect();
    if parts.is_empty()
        && let Some(structured) = &result.structured_content
    {
        parts.push(structured.to_string());
    }
    let text = parts.join("\n");
    let mut capped = CappedOutput::new(limit);
    capped.push(text.as_bytes());
    let text = capped.render();
    if result.is_error == Some(true) {
        ToolOutput::error(if text.is_empty() {
            "the tool reported an error without a message".to_string()
        } else {
            text
        })
    } else {
        ToolOutput::ok(text)
    }
}

fn block(content: &ContentBlock) -> String {
    match content {
        ContentBlock::Text(text) => text.text.clone(),
        ContentBlock::Image(image) => format!(
            "[image: {}, {} bytes]",
            image.mime_type,
            base64_len(&image.data)
        ),
        ContentBlock::Audio(audio) => format!(
            "[audio: {}, {} bytes]",
            audio.mime_type,
            base64_len(&audio.data)
        ),
        ContentBlock::Resource(embedded) => match &embedded.resource {
            ResourceContents::TextResourceContents { uri, text, .. } => {
                format!("[resource {uri}]\n{text}")
            }
            ResourceContents::BlobResourceContents {
                uri,
                mime_type,
                blob,
                ..
            } => format!(
                "[resource {uri}: {}, {} bytes]",
                mime_type.as_deref().unwrap_or("binary"),
                base64_len(blob)
            ),
            _ => "[resource of a kind keel does not know]".to_string(),
        },
        ContentBlock::ResourceLink(link) => {
            format!("[resource link: {} ({})]", link.uri, link.name)
        }
        _ => "[content of a kind keel does not know]".to_string(),
    }
}

/// Decoded size of base64 data.
fn base64_len(data: &str) -> usize {
    let padding = data.bytes().rev().take_while(|&b| b == b'=').count();
    (data.len() / 4 * 3).saturating_sub(padding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_blocks_joined_and_errors_kept() {
        let ok = CallToolResult::success(vec![ContentBlock::text("a"), ContentBlock::text("b")]);
        assert_eq!(render(&ok, 1000), ToolOutput::ok("a\nb"));
        let err = CallToolResult::error(vec![ContentBlock::text("Access denied")]);
        assert_eq!(render(&err, 1000), ToolOutput::error("Access denied"));
        let empty = CallToolResult::error(vec![]);
        assert!(render(&empty, 1000).content.contains("without a message"));
    }

    #[test]
    fn long_output_is_capped() {
        let big = CallToolResult::success(vec![ContentBlock::text("x\n".repeat(100_000))]);
        let out = render(&big, 2000);
        assert!(out.content.len() < 2500);
        assert!(out.content.contains("cut from the middle"));
    }

    #[test]
    fn base64_sizes() {
        assert_eq!(base64_len("aGVsbG8="), 5);
        assert_eq!(base64_len("aGk="), 2);
        assert_eq!(base64_len(""), 0);
    }
}
