//! The sandbox every command keel runs for the model goes through (`bash`, the test
//! command at verification, `git`).
//!
//! The core is [`bwrap_args`]: a pure function from a [`Policy`] and the host's
//! [`Layout`] to bubblewrap's arguments, tested without running anything. [`Sandbox`]
//! adds the spawn: resource limits set in the child, a pids cgroup where the host lets
//! keel make one, and the refusal when no sandbox is available and the user has not
//! switched it off.
//!
//! What the sandbox holds (Linux, bubblewrap):
//! - a new user namespace with every capability dropped (as root, plain `bwrap` keeps
//!   them all), a new PID namespace (everything the command starts — `setsid` and
//!   double forks included — dies with it), `--die-with-parent` (nothing outlives keel)
//!   and a new session (no TIOCSTI into keel's terminal);
//! - the system read-only; the home directory hidden except the toolchains on `PATH`;
//!   a private `/tmp`; keel's own data hidden;
//! - the workspace and configured roots writable, their `.git` and `.keel` read-only;
//! - no network unless the policy allows it (a new network namespace has only a down
//!   loopback: a server on the host's `127.0.0.1` is out of reach too);
//! - rlimits for CPU time, data memory, file size and processes.
//!
//! Without bubblewrap the same policy is applied with Landlock and seccomp in the child
//! (see [`landlock`] for what that cannot express).

mod bwrap;
mod cgroup;
mod error;
pub mod landlock;
mod layout;
mod policy;
mod sandbox;
mod seccomp;

pub use bwrap::bwrap_args;
pub use error::SandboxError;
pub use layout::Layout;
pub use policy::{BackendChoice, Limits, Policy, SandboxConfig, SandboxMode};
pub use sandbox::{Backend, Sandbox};
