//! A daemon process the simulator owns: started in a process group of its own (so that
//! stopping it stops its workers too) and told to terminate when the simulator dies,
//! however it dies; its output goes to a log file beside its view.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub struct Process {
    /// Taken by `drop`, which reaps it.
    child: Option<Child>,
}

impl Process {
    /// Starts `program args…`, writing its output into `log`.
    pub fn spawn(program: &Path, args: &[String], log: &Path) -> std::io::Result<Process> {
        let out = std::fs::File::create(log)?;
        let err = out.try_clone()?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                // SIGTERM rather than SIGKILL: nginx's master then stops its workers.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(Process {
            child: Some(command.spawn()?),
        })
    }

    /// Whether it still runs.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Process {
    /// SIGTERM to the whole group; reaped in the background (Traefik may take its grace
    /// period to finish what it serves).
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let group = child.id() as libc::pid_t;
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is shared.
        unsafe {
            libc::kill(-group, libc::SIGTERM);
        }
        std::thread::spawn(move || child.wait());
    }
}
