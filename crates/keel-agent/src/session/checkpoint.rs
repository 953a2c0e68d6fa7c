//! Checkpoints of the session's turns: the workspace is snapshotted (keel-checkpoint)
//! when a turn starts and when it ends, and a turn that changed files leaves a
//! `checkpoint` event. Undo and redo walk those events: the undo stack is derived from
//! the session's own events, so it survives a crash and `--resume`.

use keel_checkpoint::{CheckpointError, Checkpoints, Tree};
use keel_protocol::{Event, FileChange};

use super::{Agent, EventSink, Session};

/// A turn undone or redone: which, and the files that moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub turn: u32,
    pub files: Vec<FileChange>,
    /// Files that had changed since the turn (or the undo) left them: put back all the
    /// same, their bytes kept for the way back.
    pub changed_since: Vec<String>,
}

/// The files of `done` whose content before `restored` differs from what `expected`
/// says they held.
fn changed_since(expected: &[FileChange], restored: &[FileChange]) -> Vec<String> {
    restored
        .iter()
        .filter(|r| {
            expected
                .iter()
                .find(|e| e.path == r.path)
                .is_some_and(|e| e.after != r.before)
        })
        .map(|r| r.path.clone())
        .collect()
}

/// Why there is nothing to undo, redo or show.
#[derive(Debug, thiserror::Error)]
pub enum UndoError {
    #[error("checkpoints are off for this session (no data directory for them)")]
    Off,
    #[error("no turn of this session changed files that are not undone yet")]
    NothingToUndo,
    #[error("nothing to redo: no turn was undone since the last change")]
    NothingToRedo,
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// The turns that can be undone (oldest first) and those that can be redone (the
/// next to redo last), from a session's events.
/// A turn and the files one of its checkpoint, undo or redo events moved.
type Step<'a> = (u32, &'a [FileChange]);

fn stacks(events: &[Event]) -> (Vec<Step<'_>>, Vec<Step<'_>>) {
    let mut done = Vec::new();
    let mut undone = Vec::new();
    for event in events {
        match event {
            Event::Checkpoint { turn, files } => {
                done.push((*turn, files.as_slice()));
                undone.clear();
            }
            Event::Undo { turn, files } => {
                if done.last().is_some_and(|(t, _)| t == turn) {
                    done.pop();
                }
                undone.push((*turn, files.as_slice()));
            }
            Event::Redo { turn, files } => {
                if undone.last().is_some_and(|(t, _)| t == turn) {
                    undone.pop();
                }
                done.push((*turn, files.as_slice()));
            }
            _ => {}
        }
    }
    (done, undone)
}

/// Where each file goes when `files` is put back.
fn back(files: &[FileChange]) -> Vec<(String, Option<String>)> {
    files
        .iter()
        .map(|f| (f.path.clone(), f.before.clone()))
        .collect()
}

impl Session {
    fn checkpoints(&mut self, agent: &Agent) -> Result<&mut Checkpoints, UndoError> {
        if self.checkpoints.is_none() {
            let dir = agent.config.checkpoint_dir.as_ref().ok_or(UndoError::Off)?;
            self.checkpoints = Some(Checkpoints::open(dir, self.tool_ctx.workspace.root())?);
        }
        self.checkpoints.as_mut().ok_or(UndoError::Off)
    }

    /// The turn starts: the workspace as it is (nothing when checkpoints are off or
    /// the snapshot fails; the turn then cannot be undone).
    pub(super) fn checkpoint_start(&mut self, agent: &Agent) {
        let name = self.turn_name(self.turns());
        self.turn_tree = self.checkpoints(agent).ok().and_then(|checkpoints| {
            let tree = checkpoints.snapshot().ok()?;
            // Kept on disk until the turn ends: a crash mid-turn loses no undo.
            let _ = checkpoints.save_tree(&name, &tree);
            Some(tree)
        });
    }

    /// The name a turn's start tree is saved under.
    fn turn_name(&self, turn: u32) -> String {
        format!("{}-{turn}", self.id)
    }

    /// A resumed session whose last turn was cut off: that turn's changes, from the
    /// tree saved when it started, become its `checkpoint` (so it can be undone).
    pub(super) fn checkpoint_interrupted(&mut self, agent: &Agent, sink: &dyn EventSink) {
        let name = self.turn_name(self.turns());
        let before = self
            .checkpoints(agent)
            .ok()
            .and_then(|checkpoints| checkpoints.load_tree(&name));
        self.close_turn(agent, sink, before);
    }

    /// The turn ends: a `checkpoint` event when it changed files.
    pub(super) fn checkpoint_end(&mut self, agent: &Agent, sink: &dyn EventSink) {
        let before = self.turn_tree.take();
        self.close_turn(agent, sink, before);
    }

    /// The current turn's changes since `before` (its start), as a `checkpoint` event
    /// when there are any; the saved start tree goes.
    fn close_turn(&mut self, agent: &Agent, sink: &dyn EventSink, before: Option<Tree>) {
        let turn = self.turns();
        let name = self.turn_name(turn);
        let Some(before) = before else { return };
        let Ok(checkpoints) = self.checkpoints(agent) else {
            return;
        };
        let Ok(after) = checkpoints.snapshot() else {
            return;
        };
        let files = checkpoints.changes(&before, &after);
        checkpoints.drop_tree(&name);
        if !files.is_empty() {
            self.emit(sink, Event::Checkpoint { turn, files });
        }
    }

    /// The session's turns so far (its user messages).
    pub fn turns(&self) -> u32 {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::User { .. }))
            .count() as u32
    }

    /// Puts back every file the last turn not yet undone changed (by any tool) as it was
    /// before that turn, removing the files it created. What the files held at the undo
    /// is kept, for `redo`.
    pub fn undo(&mut self, agent: &Agent, sink: &dyn EventSink) -> Result<Restored, UndoError> {
        self.step(agent, sink, true)
    }

    /// Takes back the last undo: the files as they were when it was made.
    pub fn redo(&mut self, agent: &Agent, sink: &dyn EventSink) -> Result<Restored, UndoError> {
        self.step(agent, sink, false)
    }

    /// One undo (the top of the done stack) or redo (the top of the undone stack): the
    /// step's files go back to their `before`, and what was there becomes the new
    /// event's `before`, for the way back.
    fn step(
        &mut self,
        agent: &Agent,
        sink: &dyn EventSink,
        undo: bool,
    ) -> Result<Restored, UndoError> {
        let (done, undone) = stacks(&self.events);
        let (stack, empty) = if undo {
            (done, UndoError::NothingToUndo)
        } else {
            (undone, UndoError::NothingToRedo)
        };
        let (turn, expected) = stack
            .last()
            .map(|(turn, files)| (*turn, files.to_vec()))
            .ok_or(empty)?;
        let files = self.checkpoints(agent)?.restore(&back(&expected))?;
        let changed_since = changed_since(&expected, &files);
        let event = if undo {
            Event::Undo {
                turn,
                files: files.clone(),
            }
        } else {
            Event::Redo {
                turn,
                files: files.clone(),
            }
        };
        self.emit(sink, event);
        Ok(Restored {
            turn,
            files,
            changed_since,
        })
    }

    /// The last turn that changed files and is not undone: its number, its files and
    /// their unified diff.
    pub fn last_diff(
        &mut self,
        agent: &Agent,
    ) -> Result<(u32, Vec<FileChange>, String), UndoError> {
        let (done, _) = stacks(&self.events);
        let (turn, files) = done
            .last()
            .map(|(turn, files)| (*turn, files.to_vec()))
            .ok_or(UndoError::NothingToUndo)?;
        let diff = self.checkpoints(agent)?.diff(&files)?;
        Ok((turn, files, diff))
    }
}

/// The unified diff of the changes turn `turn` made, from a session's events (the
/// checkpoint event, whether undone since or not). `None` for a turn without one.
pub fn turn_diff(
    checkpoint_dir: &std::path::Path,
    events: &[Event],
    turn: u32,
) -> Result<Option<(Vec<FileChange>, String)>, CheckpointError> {
    let Some(files) = events.iter().rev().find_map(|e| match e {
        Event::Checkpoint { turn: t, files } if *t == turn => Some(files),
        _ => None,
    }) else {
        return Ok(None);
    };
    // Only the blobs are needed: no workspace index is loaded.
    let objects = keel_checkpoint::Objects::of(checkpoint_dir)?;
    Ok(Some((files.clone(), objects.diff(files)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(path: &str) -> Vec<FileChange> {
        vec![FileChange {
            path: path.into(),
            before: None,
            after: None,
            added: None,
            removed: None,
        }]
    }

    #[test]
    fn undo_walks_back_turn_by_turn_and_a_new_turn_clears_redo() {
        let checkpoint = |turn| Event::Checkpoint {
            turn,
            files: change("a"),
        };
        let undo = |turn| Event::Undo {
            turn,
            files: change("a"),
        };
        let redo = |turn| Event::Redo {
            turn,
            files: change("a"),
        };
        let turns = |events: &[Event]| {
            let (done, undone) = stacks(events);
            (
                done.iter().map(|d| d.0).collect::<Vec<_>>(),
                undone.iter().map(|d| d.0).collect::<Vec<_>>(),
            )
        };
        let mut events = vec![checkpoint(1), checkpoint(2), undo(2), undo(1)];
        assert_eq!(turns(&events), (vec![], vec![2, 1]));
        events.push(redo(1));
        assert_eq!(turns(&events), (vec![1], vec![2]));
        events.push(checkpoint(4));
        assert_eq!(turns(&events), (vec![1, 4], vec![]));
    }
}
