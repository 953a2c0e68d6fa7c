//! Approvals: whether a call runs, is refused, or waits for the user. `[permissions]`
//! rules (per tool, with a glob on the command or path) come first; without one,
//! reads and workspace writes run, `bash` runs inside the sandbox, and is asked about
//! when there is no sandbox or the command wants the network (approved, it runs with
//! the network on). The decision itself is taken by an [`Approver`]: the terminal for
//! `keel run`, the browser for `keel serve`, a fixed answer for `keel mcp`.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use globset::{Glob, GlobMatcher};
use serde_json::Value;
use tokio::sync::oneshot;

/// What a rule or the default says about a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Ask,
    Deny,
}

impl Action {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "allow" => Some(Self::Allow),
            "ask" => Some(Self::Ask),
            "deny" => Some(Self::Deny),
            _ => None,
        }
    }
}

/// One `[[permissions.rules]]` entry.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Tool name, or `*` for any.
    pub tool: String,
    /// Glob over the call's subject (the `bash` command, a file tool's path, `git`'s
    /// subcommand and arguments); `None` matches every call of the tool.
    pattern: Option<(String, GlobMatcher)>,
    pub action: Action,
}

impl Rule {
    pub fn new(tool: &str, pattern: Option<&str>, action: Action) -> Result<Self, String> {
        let pattern = match pattern {
            Some(p) => {
                let glob = Glob::new(p).map_err(|e| format!("invalid pattern `{p}`: {e}"))?;
                Some((p.to_string(), glob.compile_matcher()))
            }
            None => None,
        };
        Ok(Self {
            tool: tool.to_string(),
            pattern,
            action,
        })
    }

    fn matches(&self, tool: &str, subject: &str) -> bool {
        (self.tool == "*" || self.tool == tool)
            && self
                .pattern
                .as_ref()
                .is_none_or(|(_, glob)| glob.is_match(subject))
    }

    fn describe(&self) -> String {
        match &self.pattern {
            Some((p, _)) => format!("the rule for {} `{p}`", self.tool),
            None => format!("the rule for {}", self.tool),
        }
    }
}

/// The rules and what the defaults depend on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Permissions<'a> {
    pub rules: &'a [Rule],
    /// Commands run unsandboxed (the sandbox is off or unavailable).
    pub unsandboxed: bool,
    /// The sandbox lets commands use the network anyway.
    pub network: bool,
}

/// The verdict on one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub action: Action,
    /// Why, for the approval request or the refusal.
    pub reason: String,
    /// Approved, the command gets the network for this call.
    pub grants_network: bool,
    /// A `[permissions]` rule decided (not a default).
    pub from_rule: bool,
}

/// Programs and subcommands that reach the network.
const NETWORK_COMMANDS: &[&str] = &[
    "curl",
    "wget",
    "ssh",
    "scp",
    "sftp",
    "rsync",
    "nc",
    "ncat",
    "telnet",
    "ftp",
    "git clone",
    "git fetch",
    "git pull",
    "git push",
    "git ls-remote",
    "git submodule update",
    "pip install",
    "pip3 install",
    "pip download",
    "python -m pip install",
    "python3 -m pip install",
    "uv pip install",
    "uv sync",
    "uv add",
    "poetry install",
    "poetry add",
    "npm install",
    "npm i",
    "npm ci",
    "npm publish",
    "npx",
    "yarn add",
    "yarn install",
    "pnpm install",
    "pnpm add",
    "cargo install",
    "cargo fetch",
    "cargo update",
    "cargo publish",
    "cargo add",
    "go get",
    "go mod download",
    "go install",
    "apt install",
    "apt-get install",
    "apt update",
    "apt-get update",
    "docker pull",
    "docker push",
    "gem install",
    "bundle install",
];

/// Whether a shell command names a network program at the start of one of its
/// pipeline or list segments.
pub fn wants_network(command: &str) -> bool {
    command_words(command).any(|words| {
        let segment = words.join(" ");
        NETWORK_COMMANDS
            .iter()
            .any(|c| segment == *c || segment.starts_with(&format!("{c} ")))
    })
}

/// The words of each simple command in a shell line (split at pipes, lists and
/// subshells), without leading variable assignments and `sudo` / `env` / `time`.
pub(crate) fn command_words(command: &str) -> impl Iterator<Item = Vec<&str>> {
    command
        .split(['|', ';', '&', '\n', '(', ')'])
        .map(|segment| {
            segment
                .split_whitespace()
                .skip_while(|w| w.contains('=') || ["sudo", "env", "time"].contains(w))
                .collect()
        })
}

/// What a rule's pattern is matched against.
fn subject(tool: &str, arguments: &Value) -> String {
    let text = |key: &str| {
        arguments
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    match tool {
        "bash" => text("command"),
        "git" => {
            let mut parts = vec![text("command").unwrap_or_default()];
            if let Some(args) = arguments.get("args").and_then(Value::as_array) {
                parts.extend(args.iter().filter_map(Value::as_str).map(str::to_string));
            }
            Some(parts.join(" "))
        }
        _ => text("path"),
    }
    .unwrap_or_else(|| arguments.to_string())
}

impl Permissions<'_> {
    /// The verdict on a call of `tool` (read-only or not) with `arguments`.
    pub fn decide(&self, tool: &str, arguments: &Value, read_only: bool) -> Verdict {
        let subject = subject(tool, arguments);
        let network = tool == "bash" && !self.network && wants_network(&subject);
        if let Some(rule) = self.rules.iter().find(|r| r.matches(tool, &subject)) {
            return Verdict {
                action: rule.action,
                reason: format!("{} says {:?}", rule.describe(), rule.action).to_lowercase(),
                grants_network: network,
                from_rule: true,
            };
        }
        if read_only || tool != "bash" {
            return Verdict {
                action: Action::Allow,
                reason: String::new(),
                grants_network: false,
                from_rule: false,
            };
        }
        if self.unsandboxed {
            return Verdict {
                action: Action::Ask,
                reason: "commands run without a sandbox, with your full rights".into(),
                grants_network: false,
                from_rule: false,
            };
        }
        if network {
            return Verdict {
                action: Action::Ask,
                reason: "the command wants the network; approved, it runs with the network on"
                    .into(),
                grants_network: true,
                from_rule: false,
            };
        }
        Verdict {
            action: Action::Allow,
            reason: String::new(),
            grants_network: false,
            from_rule: false,
        }
    }
}

/// A call waiting for a decision.
#[derive(Debug, Clone)]
pub struct ApprovalRequest {
    pub session_id: String,
    pub call_id: String,
    pub name: String,
    pub arguments: Value,
    pub reason: String,
}

/// A decision and who took it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub by: String,
}

/// Takes the decision on an approval request.
#[async_trait]
pub trait Approver: Send + Sync {
    async fn decide(&self, request: &ApprovalRequest) -> Decision;
}

/// The same answer to every request (`--yes`, or `keel mcp`'s configured answer).
pub struct FixedApprover {
    pub allow: bool,
    pub by: String,
}

#[async_trait]
impl Approver for FixedApprover {
    async fn decide(&self, _request: &ApprovalRequest) -> Decision {
        Decision {
            allowed: self.allow,
            by: self.by.clone(),
        }
    }
}

/// Requests wait until someone answers them by id (`keel serve`'s endpoint).
#[derive(Default)]
pub struct PendingApprovals {
    waiting: Mutex<HashMap<(String, String), oneshot::Sender<bool>>>,
}

impl PendingApprovals {
    /// Answers the request `call_id` of `session_id`; false when none waits.
    pub fn answer(&self, session_id: &str, call_id: &str, allow: bool) -> bool {
        let sender = self
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(session_id.to_string(), call_id.to_string()));
        sender.is_some_and(|s| s.send(allow).is_ok())
    }
}

#[async_trait]
impl Approver for PendingApprovals {
    async fn decide(&self, request: &ApprovalRequest) -> Decision {
        let (sender, receiver) = oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                (request.session_id.clone(), request.call_id.clone()),
                sender,
            );
        match receiver.await {
            Ok(allowed) => Decision {
                allowed,
                by: "user".into(),
            },
            Err(_) => Decision {
                allowed: false,
                by: "nobody answered".into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_allow_reads_writes_and_sandboxed_commands() {
        let p = Permissions::default();
        assert_eq!(
            p.decide("read", &json!({"path": "a"}), true).action,
            Action::Allow
        );
        assert_eq!(
            p.decide("write", &json!({"path": "a"}), false).action,
            Action::Allow
        );
        assert_eq!(
            p.decide("bash", &json!({"command": "pytest -q"}), false)
                .action,
            Action::Allow
        );
        let net = p.decide(
            "bash",
            &json!({"command": "cd x && pip install requests"}),
            false,
        );
        assert_eq!((net.action, net.grants_network), (Action::Ask, true));
        // With the sandbox's network on, nothing to ask.
        let open = Permissions {
            network: true,
            ..Permissions::default()
        };
        assert_eq!(
            open.decide("bash", &json!({"command": "curl x"}), false)
                .action,
            Action::Allow
        );
        // Without a sandbox every command is asked.
        let off = Permissions {
            unsandboxed: true,
            ..Permissions::default()
        };
        assert_eq!(
            off.decide("bash", &json!({"command": "ls"}), false).action,
            Action::Ask
        );
    }

    #[test]
    fn the_first_matching_rule_wins() {
        let rules = [
            Rule::new("bash", Some("rm *"), Action::Deny).unwrap(),
            Rule::new("bash", Some("git push*"), Action::Allow).unwrap(),
            Rule::new("write", Some("docs/**"), Action::Ask).unwrap(),
            Rule::new("*", Some("*.env"), Action::Deny).unwrap(),
        ];
        let p = Permissions {
            rules: &rules,
            ..Permissions::default()
        };
        let deny = p.decide("bash", &json!({"command": "rm -rf build"}), false);
        assert_eq!(deny.action, Action::Deny);
        assert!(deny.reason.contains("rm *"), "{}", deny.reason);
        assert_eq!(
            p.decide("bash", &json!({"command": "git push origin"}), false)
                .action,
            Action::Allow
        );
        assert_eq!(
            p.decide("write", &json!({"path": "docs/a/b.md"}), false)
                .action,
            Action::Ask
        );
        assert_eq!(
            p.decide("read", &json!({"path": "prod.env"}), true).action,
            Action::Deny
        );
        assert_eq!(
            p.decide("read", &json!({"path": "src/a.py"}), true).action,
            Action::Allow
        );
        assert!(Rule::new("bash", Some("[unclosed"), Action::Deny).is_err());
    }

    #[test]
    fn network_commands_are_recognised_anywhere_in_a_pipeline() {
        for yes in [
            "curl -s x",
            "ls && git clone u",
            "FOO=1 pip install x",
            "sudo apt-get install y",
            "echo a | nc host 80",
            "npx something",
        ] {
            assert!(wants_network(yes), "{yes}");
        }
        for no in [
            "pytest -q",
            "echo curl",
            "git status",
            "pip list",
            "cargo test",
            "grep wget file",
        ] {
            assert!(!wants_network(no), "{no}");
        }
    }

    #[tokio::test]
    async fn pending_requests_wait_for_their_answer() {
        let pending = std::sync::Arc::new(PendingApprovals::default());
        let request = ApprovalRequest {
            session_id: "s".into(),
            call_id: "c1".into(),
            name: "bash".into(),
            arguments: json!({}),
            reason: String::new(),
        };
        let waiting = {
            let pending = std::sync::Arc::clone(&pending);
            tokio::spawn(async move { pending.decide(&request).await })
        };
        while !pending.answer("s", "c1", true) {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            waiting.await.unwrap(),
            Decision {
                allowed: true,
                by: "user".into()
            }
        );
        assert!(!pending.answer("s", "c1", false), "answered twice");
    }
}
