//! Who decides the calls a permission says to ask about, per front end: `keel run`
//! asks on the terminal (`--yes` allows all; without a terminal the answer is no),
//! `keel mcp` answers as configured (`[permissions] mcp_approval`, default deny), and
//! `keel serve` asks in the browser (`keel_agent::permissions::PendingApprovals`).

use std::io::{BufRead, IsTerminal, Write as _};
use std::sync::Arc;

use async_trait::async_trait;
use keel_agent::permissions::{ApprovalRequest, Approver, Decision, FixedApprover};

/// The terminal: a question on stderr, the answer from stdin.
pub struct TerminalApprover;

#[async_trait]
impl Approver for TerminalApprover {
    async fn decide(&self, request: &ApprovalRequest) -> Decision {
        let what = match request.name.as_str() {
            "bash" => request
                .arguments
                .get("command")
                .and_then(|c| c.as_str())
                .map(|c| format!("bash `{c}`"))
                .unwrap_or_else(|| "bash".into()),
            name => format!("{name} {}", request.arguments),
        };
        let question = format!("Allow {what}? ({}) [y/N] ", request.reason);
        let answer = tokio::task::spawn_blocking(move || {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "{question}");
            let _ = stderr.flush();
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).map(|_| line)
        })
        .await;
        let allowed = matches!(answer, Ok(Ok(line)) if matches!(line.trim(), "y" | "Y" | "yes"));
        Decision {
            allowed,
            by: "user".into(),
        }
    }
}

/// A yes/no question on the terminal (no terminal: no).
pub fn confirm(question: &str) -> bool {
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return false;
    }
    let mut stderr = std::io::stderr().lock();
    let _ = write!(stderr, "{question} [y/N] ");
    let _ = stderr.flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).is_ok() && matches!(line.trim(), "y" | "Y" | "yes")
}

/// `keel run`'s approver.
pub fn for_run(yes: bool) -> Arc<dyn Approver> {
    if yes {
        Arc::new(FixedApprover {
            allow: true,
            by: "--yes".into(),
        })
    } else if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        Arc::new(TerminalApprover)
    } else {
        Arc::new(FixedApprover {
            allow: false,
            by: "no terminal to ask on (run with --yes to allow)".into(),
        })
    }
}

/// `keel mcp`'s approver: the configured answer.
pub fn for_mcp(allow: bool) -> Arc<dyn Approver> {
    Arc::new(FixedApprover {
        allow,
        by: if allow {
            "[permissions] mcp_approval = \"allow\"".into()
        } else {
            "keel mcp cannot ask (set [permissions] mcp_approval = \"allow\" to allow)".into()
        },
    })
}
