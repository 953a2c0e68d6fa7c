//! What every request handler shares: the agent, the store, the workspace and the
//! running turns.

use std::sync::Arc;

use keel_agent::Agent;
use keel_agent::permissions::PendingApprovals;
use keel_store::Store;
use keel_tools::Workspace;

use crate::live::Turns;

pub struct App {
    pub agent: Arc<Agent>,
    pub store: Arc<Store>,
    pub workspace: Workspace,
    /// The workspace root as sessions record it.
    pub root: String,
    pub model: String,
    pub turns: Arc<Turns>,
    /// Calls waiting for the user's approval, when the agent asks through the UI.
    pub approvals: Option<Arc<PendingApprovals>>,
}

impl App {
    pub fn new(agent: Arc<Agent>, store: Arc<Store>, workspace: Workspace) -> Self {
        let root = workspace.root().display().to_string();
        let model = agent.model().info().name;
        Self {
            agent,
            store,
            workspace,
            root,
            model,
            turns: Arc::new(Turns::default()),
            approvals: None,
        }
    }
}
