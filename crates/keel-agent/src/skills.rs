//! Skills: instructions for one kind of job (a release checklist, how this project's
//! migrations are written), kept out of the context until they are needed. Each is a
//! `SKILL.md` under `.keel/skills/<name>/` in the project or under a skills directory of
//! the user's; its front matter gives a name and a one-line description. Only the
//! descriptions go into the project context; the `skill` tool loads a body.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use keel_tools::{Tool, ToolContext, ToolError, TypedTool, typed};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// The project's skills, under the workspace root.
pub const PROJECT_SKILLS: &str = ".keel/skills";
/// The longest skill body the tool returns.
const BODY_BYTES: usize = 16 * 1024;
/// The longest description listed.
const DESCRIPTION_CHARS: usize = 200;
/// Skills listed in the context at most.
const LISTED: usize = 50;

#[derive(Debug, Clone, PartialEq)]
pub struct Skill {
    pub name: String,
    pub description: String,
    pub path: PathBuf,
}

/// The skills of a project (`.keel/skills/*/SKILL.md` under `root`) and of the user's
/// directories (`dir/*/SKILL.md`), by name; a project skill wins over a user's of the
/// same name. A `SKILL.md` without a description is skipped.
pub fn discover(root: &Path, user_dirs: &[PathBuf]) -> Vec<Skill> {
    let mut found: BTreeMap<String, Skill> = BTreeMap::new();
    let dirs = user_dirs
        .iter()
        .cloned()
        .chain(std::iter::once(root.join(PROJECT_SKILLS)));
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path().join("SKILL.md");
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let folder = entry.file_name().to_string_lossy().to_string();
            if let Some(skill) = parse(&text, &folder, &path) {
                found.insert(skill.name.clone(), skill);
            }
        }
    }
    found.into_values().collect()
}

/// Front matter between `---` lines: `name:` (default: the folder's name) and
/// `description:`.
fn parse(text: &str, folder: &str, path: &Path) -> Option<Skill> {
    let (front, _) = front_matter(text)?;
    let field = |key: &str| {
        front.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k.trim() == key).then(|| v.trim().trim_matches(['"', '\'']).to_string())
        })
    };
    let description: String = field("description")?
        .chars()
        .take(DESCRIPTION_CHARS)
        .collect();
    if description.is_empty() {
        return None;
    }
    let name = field("name")
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| folder.to_string());
    Some(Skill {
        name,
        description,
        path: path.to_path_buf(),
    })
}

/// The front matter and the body of a `SKILL.md`.
fn front_matter(text: &str) -> Option<(&str, &str)> {
    let rest = text.trim_start_matches('\u{feff}').strip_prefix("---")?;
    let rest = rest
        .strip_prefix('\n')
        .or_else(|| rest.strip_prefix("\r\n"))?;
    let end = rest.find("\n---")?;
    let body = rest[end + 4..].trim_start_matches(['-', '\r']);
    Some((&rest[..end], body.strip_prefix('\n').unwrap_or(body)))
}

/// The lines of the project context that list the skills.
pub(crate) fn context_section(skills: &[Skill]) -> String {
    if skills.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\nSkills (instructions for a kind of job; load one with the `skill` tool when the task calls for it):\n",
    );
    for skill in skills.iter().take(LISTED) {
        out.push_str(&format!("- {}: {}\n", skill.name, skill.description));
    }
    out
}

/// The `skill` tool over these skills.
pub fn tool(skills: Vec<Skill>) -> std::sync::Arc<dyn Tool> {
    typed(SkillTool { skills })
}

struct SkillTool {
    skills: Vec<Skill>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Args {
    /// The skill's name, as the project context lists it.
    name: String,
}

#[async_trait]
impl TypedTool for SkillTool {
    type Args = Args;
    const NAME: &'static str = "skill";
    const DESCRIPTION: &'static str =
        "Load the instructions of a skill listed in the project context.";
    const READ_ONLY: bool = true;

    async fn run(
        &self,
        _ctx: &ToolContext,
        args: Args,
        _cancel: &CancellationToken,
    ) -> Result<String, ToolError> {
        let wanted = args.name.trim();
        let Some(skill) = self.skills.iter().find(|s| s.name == wanted) else {
            let names: Vec<&str> = self.skills.iter().map(|s| s.name.as_str()).collect();
            return Err(ToolError::Failed(format!(
                "no skill named `{wanted}`; the skills are: {}",
                names.join(", ")
            )));
        };
        let text = std::fs::read_to_string(&skill.path)
            .map_err(|e| ToolError::io("cannot read", &skill.path, e))?;
        let body = front_matter(&text)
            .map_or(text.as_str(), |(_, body)| body)
            .trim();
        let body = crate::compact::head_tail(body, BODY_BYTES);
        Ok(format!("Skill `{}`:\n{body}", skill.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skill(dir: &Path, folder: &str, text: &str) {
        std::fs::create_dir_all(dir.join(folder)).unwrap();
        std::fs::write(dir.join(folder).join("SKILL.md"), text).unwrap();
    }

    #[tokio::test]
    async fn skills_are_found_listed_and_loaded() {
        let root = tempfile::tempdir().unwrap();
        let user = tempfile::tempdir().unwrap();
        let project = root.path().join(PROJECT_SKILLS);
        skill(
            &project,
            "release",
            "---\nname: release\ndescription: How to cut a release of this project\n---\n1. Bump the version.\n2. Tag it.\n",
        );
        skill(
            user.path(),
            "release",
            "---\ndescription: The user's own release steps\n---\nnot this one\n",
        );
        skill(
            user.path(),
            "review",
            "---\ndescription: \"Review a change\"\n---\nLook for bugs.\n",
        );
        skill(user.path(), "broken", "no front matter\n");
        let skills = discover(root.path(), &[user.path().to_path_buf()]);
        let names: Vec<(&str, &str)> = skills
            .iter()
            .map(|s| (s.name.as_str(), s.description.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("release", "How to cut a release of this project"),
                ("review", "Review a change")
            ]
        );
        assert_eq!(
            context_section(&skills),
            "\nSkills (instructions for a kind of job; load one with the `skill` tool when the task calls for it):\n- release: How to cut a release of this project\n- review: Review a change\n"
        );
        let tool = tool(skills);
        let ctx = ToolContext::new(
            keel_tools::Workspace::new(root.path()).unwrap(),
            keel_tools::Limits::default(),
        );
        let cancel = CancellationToken::new();
        let out = tool
            .call(&ctx, serde_json::json!({"name": "release"}), &cancel)
            .await;
        assert!(!out.is_error);
        assert_eq!(
            out.content,
            "Skill `release`:\n1. Bump the version.\n2. Tag it."
        );
        let missing = tool
            .call(&ctx, serde_json::json!({"name": "deploy"}), &cancel)
            .await;
        assert!(missing.is_error);
        assert!(
            missing.content.contains("the skills are: release, review"),
            "{}",
            missing.content
        );
        assert_eq!(context_section(&[]), "");
    }
}
