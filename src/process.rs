//! Start worker processes the way `multiprocessing.Process(target=f).start()` does: re-execute the
//! current binary in a named role, with the segment name passed along, and let `main` dispatch.
//!
//! ```no_run
//! use shmq::process;
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     if let Some(role) = process::role() {
//!         // Child: open the parent's segment and do the work for `role`.
//!         let seg = process::segment()?;
//!         let q = seg.queue::<u64>("q")?;
//!         if role == "producer" {
//!             q.put(42)?;
//!         }
//!         return Ok(());
//!     }
//!     // Parent.
//!     let seg = shmq::Segment::builder("my-app").queue::<u64>("q", 16).create()?;
//!     let child = process::spawn(&seg, "producer")?;
//!     assert_eq!(seg.queue::<u64>("q")?.get()?, 42);
//!     assert_eq!(child.join()?, 0);
//!     Ok(())
//! }
//! ```

use crate::error::OpenError;
use crate::Segment;
use std::fmt;
use std::io;
use std::process::{Command, ExitStatus};

/// Environment variable carrying the role of a child started by [`spawn`].
pub const ROLE_VAR: &str = "SHMQ_ROLE";
/// Environment variable carrying the segment name to a child started by [`spawn`].
pub const SEGMENT_VAR: &str = "SHMQ_SEGMENT";

/// The role this process was started in by [`spawn`], or `None` in a process started otherwise
/// (the parent).
pub fn role() -> Option<String> {
    std::env::var(ROLE_VAR).ok()
}

/// Why a child could not get its segment.
#[derive(Debug)]
pub enum ChildError {
    /// The process was not started by [`spawn`]: no segment name was passed to it.
    NoSegment,
    /// The segment named by the parent could not be opened.
    Open(OpenError),
}

impl fmt::Display for ChildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildError::NoSegment => write!(
                f,
                "no segment was passed to this process ({SEGMENT_VAR} is unset): start it with shmq::process::spawn"
            ),
            ChildError::Open(e) => write!(f, "cannot open the parent's segment: {e}"),
        }
    }
}

impl std::error::Error for ChildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ChildError::NoSegment => None,
            ChildError::Open(e) => Some(e),
        }
    }
}

/// Opens the segment the parent passed to this child.
///
/// ```
/// // In a process not started by `spawn` there is no segment to open:
/// # std::env::remove_var(shmq::process::SEGMENT_VAR);
/// assert!(matches!(shmq::process::segment(), Err(shmq::process::ChildError::NoSegment)));
/// ```
pub fn segment() -> Result<Segment, ChildError> {
    let name = std::env::var(SEGMENT_VAR).map_err(|_| ChildError::NoSegment)?;
    Segment::open(&name).map_err(ChildError::Open)
}

/// A child process started by [`spawn`].
#[derive(Debug)]
pub struct Child {
    inner: std::process::Child,
}

impl Child {
    /// The child's pid.
    pub fn id(&self) -> u32 {
        self.inner.id()
    }

    /// Waits for the child to exit and returns its exit code. A child killed by a signal is
    /// reported as `128 + signal number`, as shells do.
    pub fn join(mut self) -> io::Result<i32> {
        let status = self.inner.wait()?;
        Ok(exit_code(status))
    }

    /// Sends SIGKILL to the child.
    pub fn kill(&mut self) -> io::Result<()> {
        self.inner.kill()
    }

    /// The underlying `std::process::Child`, e.g. to take its piped stdout.
    pub fn as_std_mut(&mut self) -> &mut std::process::Child {
        &mut self.inner
    }
}

fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        (None, None) => -1,
    }
}

/// Starts the current executable again in `role`, with `seg`'s name passed along.
pub fn spawn(seg: &Segment, role: &str) -> io::Result<Child> {
    spawn_with(seg, role, |_| {})
}

/// Like [`spawn`], letting `configure` adjust the command (arguments, environment, stdio).
pub fn spawn_with(
    seg: &Segment,
    role: &str,
    configure: impl FnOnce(&mut Command),
) -> io::Result<Child> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.env(ROLE_VAR, role).env(SEGMENT_VAR, seg.name());
    configure(&mut cmd);
    Ok(Child {
        inner: cmd.spawn()?,
    })
}
