//! Path containment: every path a tool touches is resolved the way the kernel would
//! (following each symlink, component by component, even dangling ones) and refused
//! unless the result lies inside the workspace root or an explicitly allowed root.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use crate::ToolError;

/// Symlink hops followed before a path is considered a loop (Linux uses 40).
const MAX_LINKS: usize = 40;

#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
    extra_roots: Vec<PathBuf>,
}

impl Workspace {
    /// A workspace rooted at `root`, which must exist.
    pub fn new(root: &Path) -> std::io::Result<Self> {
        Ok(Self {
            root: root.canonicalize()?,
            extra_roots: Vec::new(),
        })
    }

    /// Also allows paths under `root` (explicit widening from configuration).
    pub fn allow(mut self, root: &Path) -> std::io::Result<Self> {
        self.extra_roots.push(root.canonicalize()?);
        Ok(self)
    }

    /// The canonical workspace root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Resolves a path given by the model (relative to the root, or absolute) to the
    /// real location it names, refusing anything outside the allowed roots.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, ToolError> {
        let outside = || ToolError::OutsideWorkspace {
            path: path.to_string(),
        };
        let joined = self.root.join(path);
        let resolved = real_path(&joined).ok_or_else(outside)?;
        if self.contains(&resolved) {
            Ok(resolved)
        } else {
            Err(outside())
        }
    }

    /// Opens a path [`Workspace::resolve`] returned for reading, beneath the root that
    /// holds it: a symlink swapped in since the check cannot lead the open outside.
    pub fn open_read(&self, resolved: &Path) -> std::io::Result<std::fs::File> {
        let (root, relative) = self.split(resolved)?;
        crate::beneath::open(root, relative, libc::O_RDONLY)
    }

    /// Opens a resolved path for writing (created or truncated), beneath its root.
    pub fn open_write(&self, resolved: &Path) -> std::io::Result<std::fs::File> {
        let (root, relative) = self.split(resolved)?;
        crate::beneath::open(
            root,
            relative,
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW,
        )
    }

    /// Whether a resolved path is one a file tool may not write: inside `.git` or
    /// `.keel` of the workspace or an allowed root (what runs next — hooks, git and
    /// keel configuration — is not the agent's to plant).
    pub fn is_protected(&self, resolved: &Path) -> bool {
        std::iter::once(&self.root)
            .chain(&self.extra_roots)
            .any(|root| {
                [".git", ".keel"]
                    .iter()
                    .any(|name| resolved.starts_with(root.join(name)))
            })
    }

    fn split<'a>(&'a self, resolved: &'a Path) -> std::io::Result<(&'a Path, &'a Path)> {
        std::iter::once(&self.root)
            .chain(&self.extra_roots)
            .filter_map(|root| Some((root.as_path(), resolved.strip_prefix(root).ok()?)))
            .max_by_key(|(root, _)| root.as_os_str().len())
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    "the path is outside the workspace",
                )
            })
    }

    /// The roots allowed besides the workspace (canonical).
    pub fn extra_roots(&self) -> &[PathBuf] {
        &self.extra_roots
    }

    pub fn contains(&self, resolved: &Path) -> bool {
        resolved.starts_with(&self.root) || self.extra_roots.iter().any(|r| resolved.starts_with(r))
    }

    /// How a resolved path is shown to the model: relative to the root when inside it.
    pub fn display(&self, resolved: &Path) -> String {
        match resolved.strip_prefix(&self.root) {
            Ok(relative) if relative.as_os_str().is_empty() => ".".to_string(),
            Ok(relative) => relative.display().to_string(),
            Err(_) => resolved.display().to_string(),
        }
    }
}

/// How keel walks a project: `.gitignore`-aware (even outside a git repository),
/// hidden files included, `.git` itself never. Used by `glob`, `grep`, the project
/// context and change tracking, so they all see the same files.
pub fn walker(base: &Path) -> ignore::WalkBuilder {
    let mut builder = ignore::WalkBuilder::new(base);
    builder
        .hidden(false)
        .require_git(false)
        .filter_entry(|entry| entry.file_name() != ".git");
    builder
}

/// Resolves every symlink in an absolute path, including a dangling final one.
/// Components that do not exist are taken literally. `None` on a symlink loop.
fn real_path(path: &Path) -> Option<PathBuf> {
    let mut pending: VecDeque<OsString> = VecDeque::new();
    push_components(&mut pending, path, false);
    let mut resolved = PathBuf::from("/");
    let mut links = 0;
    while let Some(component) = pending.pop_front() {
        if component == "." {
            continue;
        }
        if component == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&component);
        match std::fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return None;
                }
                let target = std::fs::read_link(&candidate).ok()?;
                if target.is_absolute() {
                    resolved = PathBuf::from("/");
                }
                push_components(&mut pending, &target, true);
            }
            _ => resolved = candidate,
        }
    }
    Some(resolved)
}

fn push_components(queue: &mut VecDeque<OsString>, path: &Path, front: bool) {
    let parts: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::CurDir => Some(OsString::from(".")),
            Component::RootDir | Component::Prefix(_) => None,
        })
        .collect();
    if front {
        for part in parts.into_iter().rev() {
            queue.push_front(part);
        }
    } else {
        queue.extend(parts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, tempfile::TempDir, Workspace) {
        let ws = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(ws.path().join("src")).unwrap();
        std::fs::write(ws.path().join("src/lib.rs"), "x").unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        let workspace = Workspace::new(ws.path()).unwrap();
        (ws, outside, workspace)
    }

    fn is_outside(result: Result<PathBuf, ToolError>) -> bool {
        matches!(result, Err(ToolError::OutsideWorkspace { .. }))
    }

    #[test]
    fn relative_paths_resolve_inside() {
        let (ws, _o, workspace) = setup();
        let root = ws.path().canonicalize().unwrap();
        assert_eq!(
            workspace.resolve("src/lib.rs").unwrap(),
            root.join("src/lib.rs")
        );
        assert_eq!(
            workspace.resolve("./src/../src/new.rs").unwrap(),
            root.join("src/new.rs")
        );
        assert_eq!(
            workspace.resolve("a/b/c.txt").unwrap(),
            root.join("a/b/c.txt")
        );
        assert_eq!(workspace.resolve(".").unwrap(), root);
        let absolute = root.join("src/lib.rs");
        assert_eq!(
            workspace.resolve(absolute.to_str().unwrap()).unwrap(),
            absolute
        );
    }

    #[test]
    fn dot_dot_and_absolute_paths_outside_are_refused() {
        let (_ws, outside, workspace) = setup();
        assert!(is_outside(workspace.resolve("../x")));
        assert!(is_outside(workspace.resolve("src/../../x")));
        assert!(is_outside(workspace.resolve("/etc/passwd")));
        assert!(is_outside(
            workspace.resolve(outside.path().join("secret").to_str().unwrap())
        ));
        let message = workspace.resolve("../x").unwrap_err().to_string();
        assert!(message.contains("outside the workspace"), "{message}");
    }

    #[test]
    fn symlinks_leading_outside_are_refused() {
        let (ws, outside, workspace) = setup();
        symlink(outside.path().join("secret"), ws.path().join("file_link")).unwrap();
        symlink(outside.path(), ws.path().join("dir_link")).unwrap();
        symlink(outside.path().join("missing"), ws.path().join("dangling")).unwrap();
        symlink("../../escape", ws.path().join("src/relative_dangling")).unwrap();
        assert!(is_outside(workspace.resolve("file_link")));
        assert!(is_outside(workspace.resolve("dir_link/secret")));
        assert!(is_outside(workspace.resolve("dir_link/new_file")));
        assert!(is_outside(workspace.resolve("dangling")));
        assert!(is_outside(workspace.resolve("src/relative_dangling")));
    }

    #[test]
    fn symlinks_inside_are_followed() {
        let (ws, _o, workspace) = setup();
        symlink("src/lib.rs", ws.path().join("inner_link")).unwrap();
        symlink("src", ws.path().join("src_link")).unwrap();
        let root = ws.path().canonicalize().unwrap();
        assert_eq!(
            workspace.resolve("inner_link").unwrap(),
            root.join("src/lib.rs")
        );
        assert_eq!(
            workspace.resolve("src_link/lib.rs").unwrap(),
            root.join("src/lib.rs")
        );
        // `..` after a symlinked directory is applied to the link's target.
        assert_eq!(
            workspace.resolve("src_link/../src").unwrap(),
            root.join("src")
        );
    }

    #[test]
    fn symlink_loops_are_refused() {
        let (ws, _o, workspace) = setup();
        symlink("loop_b", ws.path().join("loop_a")).unwrap();
        symlink("loop_a", ws.path().join("loop_b")).unwrap();
        assert!(is_outside(workspace.resolve("loop_a")));
    }

    #[test]
    fn extra_roots_widen_explicitly() {
        let (_ws, outside, workspace) = setup();
        let secret = outside.path().join("secret");
        let secret = secret.to_str().unwrap();
        assert!(is_outside(workspace.resolve(secret)));
        let widened = workspace.allow(outside.path()).unwrap();
        assert!(widened.resolve(secret).is_ok());
    }
}
