//! Secrets kept away from the model and the store: tool output is scanned for private
//! keys, cloud and API keys, tokens (well-known patterns) and high-entropy values
//! assigned to secret-sounding names, and each is masked before anyone sees it; content
//! that would write such a secret into a file is refused.

use std::sync::OnceLock;

use regex::Regex;

/// One kind of secret and how to find it. The masked part is capture group `value`
/// when the pattern has one, else the whole match.
struct Kind {
    name: &'static str,
    pattern: &'static str,
    /// The value must also look random (for the generic assignments).
    entropy: bool,
}

const KINDS: &[Kind] = &[
    Kind {
        name: "private-key",
        pattern: r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\z)",
        entropy: false,
    },
    Kind {
        name: "aws-access-key-id",
        pattern: r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}\b",
        entropy: false,
    },
    Kind {
        name: "github-token",
        pattern: r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b",
        entropy: false,
    },
    Kind {
        name: "gitlab-token",
        pattern: r"\bglpat-[A-Za-z0-9_-]{20,}\b",
        entropy: false,
    },
    Kind {
        name: "slack-token",
        pattern: r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b",
        entropy: false,
    },
    Kind {
        name: "api-key",
        pattern: r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{32,}\b",
        entropy: false,
    },
    Kind {
        name: "stripe-key",
        pattern: r"\b(?:sk|rk)_live_[0-9A-Za-z]{24,}\b",
        entropy: false,
    },
    Kind {
        name: "google-api-key",
        pattern: r"\bAIza[0-9A-Za-z_-]{35}\b",
        entropy: false,
    },
    Kind {
        name: "jwt",
        pattern: r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\b",
        entropy: false,
    },
    Kind {
        name: "password-in-url",
        pattern: r"\b[a-z][a-z0-9+.-]*://[^\s:/@]+:(?P<value>[^\s:/@]{6,})@",
        entropy: false,
    },
    Kind {
        name: "secret-assignment",
        pattern: r#"(?i)\b[A-Za-z0-9_.-]*(?:secret|password|passwd|token|api[_-]?key|access[_-]?key|private[_-]?key|auth)[A-Za-z0-9_.-]*["']?\s*[:=]\s*["']?(?P<value>[A-Za-z0-9+/=_.\-~!@#$%^&*]{16,})"#,
        entropy: true,
    },
];

fn compiled() -> &'static [(&'static Kind, Regex)] {
    static COMPILED: OnceLock<Vec<(&'static Kind, Regex)>> = OnceLock::new();
    COMPILED.get_or_init(|| {
        KINDS
            .iter()
            .filter_map(|kind| Regex::new(kind.pattern).ok().map(|re| (kind, re)))
            .collect()
    })
}

/// Shannon entropy in bits per character.
fn entropy(text: &str) -> f64 {
    let mut counts = std::collections::HashMap::new();
    for c in text.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
    }
    let len = text.chars().count() as f64;
    counts
        .values()
        .map(|&n| {
            let p = n as f64 / len;
            -p * p.log2()
        })
        .sum()
}

/// Whether a value assigned to a secret-sounding name looks like a real secret: long,
/// random-looking, letters and digits mixed (not a placeholder or a word).
fn looks_random(value: &str) -> bool {
    let has_digit = value.chars().any(|c| c.is_ascii_digit());
    let has_alpha = value.chars().any(|c| c.is_ascii_alphabetic());
    has_digit && has_alpha && entropy(value) >= 3.5
}

/// The secrets found in `text`: (byte range, kind), in order, not overlapping.
pub fn find(text: &str) -> Vec<(std::ops::Range<usize>, &'static str)> {
    let mut found: Vec<(std::ops::Range<usize>, &'static str)> = Vec::new();
    for (kind, re) in compiled() {
        for captures in re.captures_iter(text) {
            let Some(m) = captures.name("value").or_else(|| captures.get(0)) else {
                continue;
            };
            if kind.entropy && !looks_random(m.as_str()) {
                continue;
            }
            let range = m.range();
            if found
                .iter()
                .any(|(r, _)| r.start < range.end && range.start < r.end)
            {
                continue;
            }
            found.push((range, kind.name));
        }
    }
    found.sort_by_key(|(r, _)| r.start);
    found
}

/// `text` with every secret replaced by `[secret masked: KIND]`, and how many.
pub fn mask(text: &str) -> (String, usize) {
    let found = find(text);
    if found.is_empty() {
        return (text.to_string(), 0);
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (range, kind) in &found {
        out.push_str(&text[last..range.start]);
        out.push_str(&format!("{MASK_PREFIX}{kind}]"));
        last = range.end;
    }
    out.push_str(&text[last..]);
    (out, found.len())
}

/// Tool output with its secrets masked and a note saying so.
pub fn mask_output(text: &str) -> String {
    match mask(text) {
        (text, 0) => text,
        (mut text, n) => {
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&if n == 1 {
                "[keel masked 1 secret in this output; the real value never reaches the model]"
                    .to_string()
            } else {
                format!("[keel masked {n} secrets in this output; the real values never reach the model]")
            });
            text
        }
    }
}

/// What a masked secret looks like in tool output.
pub const MASK_PREFIX: &str = "[secret masked: ";

/// The kinds of secret `content` holds (a write that would put one into a file).
pub fn kinds_in(content: &str) -> Vec<&'static str> {
    let mut kinds: Vec<&'static str> = find(content).into_iter().map(|(_, k)| k).collect();
    kinds.dedup();
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_secrets_are_masked() {
        let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----";
        let text = format!(
            "id:\n{key}\naws AKIAIOSFODNN7EXAMPLE and ghp_{} and xoxb-123456789012-abcdefABCDEF\nurl postgres://app:hunter2hunter2@db/x\n",
            "a1B2".repeat(9)
        );
        let (masked, n) = mask(&text);
        assert_eq!(n, 5, "{masked}");
        for gone in [
            "b3BlbnNzaC1",
            "AKIAIOSFODNN7EXAMPLE",
            "ghp_a1B2",
            "xoxb-1234",
            "hunter2hunter2",
        ] {
            assert!(!masked.contains(gone), "{gone} in {masked}");
        }
        assert!(masked.contains("[secret masked: private-key]"));
        assert!(masked.contains("postgres://app:[secret masked: password-in-url]@db/x"));
    }

    #[test]
    fn assignments_are_masked_only_when_the_value_looks_random() {
        let (masked, n) = mask(
            "API_KEY = \"Zx8fQ2mL9vR4tK7wB3nY\"\nPASSWORD=changeme_please_now\ntoken: ${TOKEN}\n",
        );
        assert_eq!(n, 1, "{masked}");
        assert!(masked.contains("API_KEY = \"[secret masked: secret-assignment]\""));
        assert!(masked.contains("PASSWORD=changeme_please_now"));
        // Ordinary code is left alone.
        let code = "def tokenize(text):\n    return text.split()\nmax_tokens = 2048\n";
        assert_eq!(mask(code), (code.to_string(), 0));
    }

    #[test]
    fn the_note_says_how_many() {
        let out = mask_output("AKIAIOSFODNN7EXAMPLE");
        assert!(
            out.ends_with(
                "[keel masked 1 secret in this output; the real value never reaches the model]"
            ),
            "{out}"
        );
        assert_eq!(mask_output("nothing here"), "nothing here");
        assert_eq!(
            kinds_in("x = 'AKIAIOSFODNN7EXAMPLE'"),
            ["aws-access-key-id"]
        );
    }
}
