//! Child processes that cannot outlive us, and the signals we send them.
//!
//! A test binary that is killed (a CI timeout, a developer's Ctrl-C) runs
//! no destructor, and a postmaster or a relay it left behind would keep its
//! port and its files. So every service is spawned:
//!
//! - with `PR_SET_PDEATHSIG` (Linux): the kernel sends it a signal when its
//!   parent *thread* exits. That is why all spawns happen on one thread of
//!   ours that never exits ([`spawn`] hands the `Command` to it): a server
//!   started from a test thread, or from a tokio `spawn_blocking` thread
//!   that is later retired, would otherwise die with that thread;
//! - in a process group of its own, so a Ctrl-C in the terminal reaches
//!   only the parent, which then stops the services in order (relays
//!   before the databases they write to).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::Duration;

/// A spawn request for the spawner thread: the command, the signal its
/// process gets when we die, and where to send the result.
type Request = (Command, i32, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd` in its own process group; on Linux it receives
/// `on_parent_death` (e.g. `SIGKILL`, or a server's clean-stop signal) when
/// this process exits, however it exits.
pub(crate) fn spawn(mut cmd: Command, on_parent_death: i32) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    cmd.process_group(0);
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        // The sender lives in a static, so this thread runs until the
        // process exits: exactly the lifetime PDEATHSIG must follow.
        std::thread::Builder::new()
            .name("services-spawner".into())
            .spawn(move || {
                for (mut cmd, sig, answer) in rx {
                    tie_to_parent(&mut cmd, sig);
                    let _ = answer.send(cmd.spawn());
                }
            })
            .expect("cannot start the services spawner thread");
        Mutex::new(tx)
    });
    let (answer, result) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, on_parent_death, answer))
        .map_err(|_| io::Error::other("the services spawner thread is gone"))?;
    result
        .recv()
        .map_err(|_| io::Error::other("the services spawner thread dropped a request"))?
}

/// Sets up the child, between fork and exec: a clean signal state, and
/// the parent-death signal.
fn tie_to_parent(cmd: &mut Command, sig: i32) {
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and only
    // makes async-signal-safe system calls (sigprocmask, signal, prctl,
    // getppid, _exit); it allocates nothing and takes no lock. std runs it
    // after the uid/gid change, which would otherwise clear the death
    // signal.
    unsafe {
        cmd.pre_exec(move || {
            clean_signals()?;
            die_with_parent(sig, parent)
        });
    }
}

/// Unblocks every signal and restores `SIGPIPE`'s default in the child.
///
/// std's fork path passes on both the parent's signal mask and its ignored
/// `SIGPIPE` (Rust programs ignore it): a relay started by `cargo xtask
/// cluster`, which blocks SIGINT and SIGTERM to `sigwait` for them, would
/// otherwise never see the SIGTERM that asks it to stop.
fn clean_signals() -> io::Result<()> {
    // SAFETY: called only in the forked child (single-threaded); the set
    // is a local initialised by sigemptyset before use, and sigprocmask
    // and signal are async-signal-safe.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        if libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    Ok(())
}

/// Asks the kernel to send `sig` to the child when its parent thread (the
/// spawner, which lives as long as the process) exits.
#[cfg(target_os = "linux")]
fn die_with_parent(sig: i32, parent: u32) -> io::Result<()> {
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number; getppid
    // and _exit cannot fail. Called only in the forked child.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong) != 0 {
            return Err(io::Error::last_os_error());
        }
        // The parent died between fork and prctl: nobody will signal.
        if libc::getppid() as u32 != parent {
            libc::_exit(1);
        }
    }
    Ok(())
}

/// Elsewhere there is no parent-death signal: owners' `Drop` and the exit
/// hooks are all there is.
#[cfg(not(target_os = "linux"))]
fn die_with_parent(_sig: i32, _parent: u32) -> io::Result<()> {
    Ok(())
}

/// Sends `sig` to process `pid`. Fails with the OS error (`ESRCH` if it is
/// gone).
pub(crate) fn signal(pid: u32, sig: i32) -> io::Result<()> {
    // SAFETY: kill(2) takes plain integers; a stale pid at worst signals
    // nothing (ESRCH), which is reported as an error.
    if unsafe { libc::kill(pid as libc::pid_t, sig) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sends `sig` to every process in the group `pgid` (the services run in
/// groups of their own, so this reaches a server and its workers).
pub(crate) fn signal_group(pgid: u32, sig: i32) -> io::Result<()> {
    // SAFETY: killpg(2) takes plain integers; no memory is involved.
    if unsafe { libc::killpg(pgid as libc::pid_t, sig) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Waits up to `timeout` for `child` to exit; `None` if it still runs.
pub(crate) fn wait_exit(child: &mut Child, timeout: Duration) -> io::Result<Option<ExitStatus>> {
    match crate::wait::until(timeout, "a process to exit", || child.try_wait()) {
        Ok(status) => Ok(Some(status)),
        Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(None),
        Err(e) => Err(e),
    }
}

/// Stops `child`: `sig` first, `SIGKILL` (to its whole process group, so
/// workers go too) if it has not exited within `grace`; then reaps it.
pub(crate) fn stop(child: &mut Child, sig: i32, grace: Duration) -> io::Result<ExitStatus> {
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    let _ = signal(child.id(), sig);
    if let Some(status) = wait_exit(child, grace)? {
        return Ok(status);
    }
    let _ = signal_group(child.id(), libc::SIGKILL);
    child.wait()
}

/// Kills `child` and everything in its process group at once, like a
/// crash, and reaps it.
pub(crate) fn kill_hard(child: &mut Child) -> io::Result<ExitStatus> {
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    let _ = signal_group(child.id(), libc::SIGKILL);
    let _ = signal(child.id(), libc::SIGKILL);
    child.wait()
}

/// Live (not zombie) processes whose working directory is `dir`. Reads
/// `/proc`; elsewhere, or without permission, finds nothing.
///
/// PostgreSQL's backends make themselves session leaders, so neither the
/// postmaster's pid nor its group reaches them; but every one of them runs
/// in the data directory.
pub(crate) fn processes_in(dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == dir)
                && !is_zombie(*pid)
        })
        .collect()
}

/// Whether `/proc/PID/stat` says the process has exited but is not reaped.
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // "pid (comm) S ...": the state follows the last ')'.
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

/// A log file that several runs of one service append to, and the part of
/// it the current run wrote (for error messages).
#[derive(Debug)]
pub(crate) struct Log {
    path: PathBuf,
    /// Length of the file when the current run started.
    start: u64,
}

impl Log {
    /// Opens (creating) `path` for appending; the handle goes to the
    /// child's stdout and stderr.
    pub(crate) fn open(path: &Path) -> io::Result<(Log, File, File)> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let start = out.metadata()?.len();
        let err = out.try_clone()?;
        let log = Log {
            path: path.to_path_buf(),
            start,
        };
        Ok((log, out, err))
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The last `lines` lines this run wrote, for an error message.
    pub(crate) fn tail(&self, lines: usize) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.path) {
            let _ = f.seek(SeekFrom::Start(self.start));
            let mut bytes = Vec::new();
            let _ = f.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        let all: Vec<&str> = text.lines().collect();
        let from = all.len().saturating_sub(lines);
        all[from..].join("\n")
    }

    /// An error saying `what` went wrong, with the log's tail.
    pub(crate) fn error(&self, what: impl std::fmt::Display) -> io::Error {
        io::Error::other(format!(
            "{what}; last lines of {}:\n{}",
            self.path.display(),
            self.tail(20)
        ))
    }
}
