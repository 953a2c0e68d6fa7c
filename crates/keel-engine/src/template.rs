//! Built-in chat templates, rendered as parts rather than one string: template markup is
//! tokenised with special tokens recognised, message text without (so a file that
//! contains `<end_of_turn>` cannot end a turn), and the model's own replies can be put
//! back as the token ids it generated — which keeps the prompt's token prefix identical
//! from turn to turn, so the KV cache is reused.

use keel_protocol::{Message, Role};

use crate::EngineError;

/// A chat format keel knows how to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatTemplate {
    /// `<start_of_turn>user … <end_of_turn>`; no system role (it opens the first user turn).
    Gemma,
    /// `<|im_start|>role … <|im_end|>` (Qwen, Hermes, many fine-tunes).
    ChatMl,
    /// `<|start_header_id|>role<|end_header_id|> … <|eot_id|>`.
    Llama3,
}

/// One piece of a rendered prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// The model's beginning-of-sequence token, where its vocabulary wants one.
    Bos,
    /// Template markup: special tokens are recognised.
    Markup(String),
    /// Message text: tokenised literally.
    Text(String),
    /// An earlier reply of the model: its generated ids are used when the engine has them.
    Reply(String),
}

impl ChatTemplate {
    pub const NAMES: &'static str = "gemma, chatml, llama3";

    pub fn name(self) -> &'static str {
        match self {
            ChatTemplate::Gemma => "gemma",
            ChatTemplate::ChatMl => "chatml",
            ChatTemplate::Llama3 => "llama3",
        }
    }

    /// A template by configured name.
    pub fn by_name(name: &str) -> Result<Self, EngineError> {
        match name.to_ascii_lowercase().as_str() {
            "gemma" | "gemma3" => Ok(ChatTemplate::Gemma),
            "chatml" | "qwen" | "qwen2" => Ok(ChatTemplate::ChatMl),
            "llama3" | "llama-3" => Ok(ChatTemplate::Llama3),
            other => Err(EngineError::Template(format!(
                "unknown chat template `{other}` (known: {})",
                Self::NAMES
            ))),
        }
    }

    /// The template a model's GGUF template text is written for, recognised by its
    /// markup.
    pub fn recognise(gguf_template: &str) -> Option<Self> {
        if gguf_template.contains("<start_of_turn>") {
            Some(ChatTemplate::Gemma)
        } else if gguf_template.contains("<|im_start|>") {
            Some(ChatTemplate::ChatMl)
        } else if gguf_template.contains("<|start_header_id|>") {
            Some(ChatTemplate::Llama3)
        } else {
            None
        }
    }

    /// The template for a `general.architecture` value.
    pub fn for_architecture(arch: &str) -> Option<Self> {
        let arch = arch.to_ascii_lowercase();
        if arch.starts_with("gemma") {
            Some(ChatTemplate::Gemma)
        } else if arch.starts_with("qwen") || arch.starts_with("phi3") || arch == "internlm2" {
            Some(ChatTemplate::ChatMl)
        } else if arch == "llama" {
            Some(ChatTemplate::Llama3)
        } else {
            None
        }
    }

    /// Renders system/user/assistant messages (tool traffic already folded into text)
    /// and opens the model's turn.
    pub fn render(self, messages: &[Message]) -> Vec<Part> {
        let mut parts = vec![Part::Bos];
        match self {
            ChatTemplate::Gemma => {
                let mut pending_system: Option<&str> = None;
                for m in messages {
                    match m.role {
                        Role::System => pending_system = Some(&m.content),
                        Role::Assistant => {
                            parts.push(Part::Markup("<start_of_turn>model\n".into()));
                            parts.push(Part::Reply(m.content.trim().to_string()));
                            parts.push(Part::Markup("<end_of_turn>\n".into()));
                        }
                        Role::User | Role::Tool => {
                            parts.push(Part::Markup("<start_of_turn>user\n".into()));
                            let text = match pending_system.take() {
                                Some(system) => format!("{system}\n\n{}", m.content.trim()),
                                None => m.content.trim().to_string(),
                            };
                            parts.push(Part::Text(text));
                            parts.push(Part::Markup("<end_of_turn>\n".into()));
                        }
                    }
                }
                if let Some(system) = pending_system {
                    parts.push(Part::Markup("<start_of_turn>user\n".into()));
                    parts.push(Part::Text(system.trim().to_string()));
                    parts.push(Part::Markup("<end_of_turn>\n".into()));
                }
                parts.push(Part::Markup("<start_of_turn>model\n".into()));
            }
            ChatTemplate::ChatMl => {
                for m in messages {
                    let role = role_name(m.role);
                    parts.push(Part::Markup(format!("<|im_start|>{role}\n")));
                    parts.push(body(m));
                    parts.push(Part::Markup("<|im_end|>\n".into()));
                }
                parts.push(Part::Markup("<|im_start|>assistant\n".into()));
            }
            ChatTemplate::Llama3 => {
                for m in messages {
                    let role = role_name(m.role);
                    parts.push(Part::Markup(format!(
                        "<|start_header_id|>{role}<|end_header_id|>\n\n"
                    )));
                    parts.push(body(m));
                    parts.push(Part::Markup("<|eot_id|>".into()));
                }
                parts.push(Part::Markup(
                    "<|start_header_id|>assistant<|end_header_id|>\n\n".into(),
                ));
            }
        }
        parts
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User | Role::Tool => "user",
        Role::Assistant => "assistant",
    }
}

fn body(m: &Message) -> Part {
    if m.role == Role::Assistant {
        Part::Reply(m.content.trim().to_string())
    } else {
        Part::Text(m.content.trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(parts: &[Part]) -> String {
        parts
            .iter()
            .map(|p| match p {
                Part::Bos => "<bos>",
                Part::Markup(s) | Part::Text(s) | Part::Reply(s) => s.as_str(),
            })
            .collect()
    }

    #[test]
    fn gemma_folds_the_system_prompt_into_the_first_user_turn() {
        let msgs = [
            Message::system("SYS"),
            Message::user("hi"),
            Message::assistant("hello ", vec![]),
            Message::user("more"),
        ];
        assert_eq!(
            flat(&ChatTemplate::Gemma.render(&msgs)),
            "<bos><start_of_turn>user\nSYS\n\nhi<end_of_turn>\n<start_of_turn>model\nhello<end_of_turn>\n<start_of_turn>user\nmore<end_of_turn>\n<start_of_turn>model\n"
        );
    }

    #[test]
    fn chatml_and_llama3_keep_roles() {
        let msgs = [Message::system("S"), Message::user("U")];
        assert_eq!(
            flat(&ChatTemplate::ChatMl.render(&msgs)),
            "<bos><|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            flat(&ChatTemplate::Llama3.render(&msgs)),
            "<bos><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nU<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
        );
    }

    #[test]
    fn templates_are_recognised_and_named() {
        assert_eq!(
            ChatTemplate::recognise("{{ '<|im_start|>' + role }}"),
            Some(ChatTemplate::ChatMl)
        );
        assert_eq!(
            ChatTemplate::for_architecture("gemma3"),
            Some(ChatTemplate::Gemma)
        );
        assert_eq!(ChatTemplate::for_architecture("mamba"), None);
        assert!(ChatTemplate::by_name("vicuna").is_err());
        assert_eq!(ChatTemplate::by_name("qwen").unwrap(), ChatTemplate::ChatMl);
    }
}
