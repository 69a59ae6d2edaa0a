//! Preparing a private PostgreSQL: whose it is, the directory, `initdb`,
//! and the server's command line.
//!
//! PostgreSQL refuses to run as root ("root execution of the PostgreSQL
//! server is not permitted"), and the project's machines run everything as
//! root. So when our effective uid is 0, `initdb` and the server run as the
//! `postgres` user that Debian's package creates: the directory is chowned
//! to it, and every directory above it gets the "search" bit for others
//! (`o+x`, nothing more) where it lacks it, since a 0700 temp dir or
//! `/root` would otherwise stop the server from reaching its own data.
//!
//! The server runs as our child with `Command::uid`/`gid` rather than
//! through `runuser … pg_ctl`: then it is our process to wait for and to
//! kill, and it dies with us (see `child`).

use crate::child::Log;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The database superuser `initdb` creates (trust authentication on
/// loopback: a private test server has no passwords).
pub const USER: &str = "ferrochat";

/// Unix socket paths are limited to 107 bytes; a deeper directory gets no
/// socket (TCP on 127.0.0.1 is what clients use anyway).
const MAX_SOCKET_DIR: usize = 80;

/// The uid and gid PostgreSQL runs as, when we are root.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Owner {
    uid: u32,
    gid: u32,
}

/// `None` when we are not root (the server runs as us); the `postgres`
/// user otherwise.
pub(crate) fn owner() -> io::Result<Option<Owner>> {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let id = |flag: &str| -> io::Result<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output()?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "running as root, and there is no `postgres` user to run PostgreSQL as \
                     (Debian's postgresql package creates it)",
                )
            })
    };
    Ok(Some(Owner {
        uid: id("-u")?,
        gid: id("-g")?,
    }))
}

/// Creates `dir` if needed and makes it the server's: owned by the owner,
/// reachable through its parents. Returns the canonical path (the
/// processes' working directory is compared with it, see
/// `child::processes_in`).
pub(crate) fn prepare_dir(dir: &Path, owner: Option<Owner>) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let dir = dir.canonicalize()?;
    if let Some(o) = owner {
        std::os::unix::fs::chown(&dir, Some(o.uid), Some(o.gid))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        for parent in dir.ancestors().skip(1) {
            let mode = std::fs::metadata(parent)?.permissions().mode();
            if mode & 0o001 == 0 {
                std::fs::set_permissions(parent, std::fs::Permissions::from_mode(mode | 0o001))?;
            }
        }
    }
    Ok(dir)
}

/// A `Command` for one of PostgreSQL's programs, run as `owner`, in `dir`.
pub(crate) fn command(program: &Path, owner: Option<Owner>, dir: &Path) -> Command {
    let mut c = Command::new(program);
    c.current_dir(dir).stdin(Stdio::null());
    if let Some(o) = owner {
        c.uid(o.uid).gid(o.gid);
    }
    c
}

/// Runs `initdb` into `data` unless it holds a cluster already.
///
/// With `--no-sync`: on a busy disk its final fsync of the new cluster
/// takes seconds, and a private cluster lost to a power cut in the next
/// moments is simply made again. The server itself runs with `fsync=on`.
pub(crate) fn initdb(bin: &Path, owner: Option<Owner>, dir: &Path, data: &Path) -> io::Result<()> {
    if data.join("PG_VERSION").is_file() {
        return Ok(());
    }
    let (log, out, err) = Log::open(&dir.join("initdb.log"))?;
    let status = command(&bin.join("initdb"), owner, dir)
        .arg("-D")
        .arg(data)
        .args([
            "-U",
            USER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ])
        .stdout(out)
        .stderr(err)
        .status()?;
    if !status.success() {
        return Err(log.error(format_args!("initdb failed ({status})")));
    }
    Ok(())
}

/// The server's arguments: everything on the command line, so no file of
/// the cluster is edited and a restart uses exactly the same settings.
pub(crate) fn server_args(data: &Path, dir: &Path, port: u16) -> Vec<String> {
    let socket_dir = match dir.to_str() {
        Some(d) if d.len() <= MAX_SOCKET_DIR => d.to_string(),
        _ => String::new(),
    };
    let mut args = vec![
        "-D".to_string(),
        data.to_string_lossy().into_owned(),
        "-p".to_string(),
        port.to_string(),
    ];
    for setting in [
        "listen_addresses=127.0.0.1".to_string(),
        format!("unix_socket_directories={socket_dir}"),
        // The cluster's guarantees are measured with these: an answer only
        // after a durable commit.
        "synchronous_commit=on".to_string(),
        "fsync=on".to_string(),
        // Several relays with pools, plus a database per test.
        "max_connections=300".to_string(),
        "shared_buffers=128MB".to_string(),
        // Logs go to our log file through stderr.
        "logging_collector=off".to_string(),
        "log_line_prefix=%m [%p] ".to_string(),
        "log_timezone=UTC".to_string(),
        "timezone=UTC".to_string(),
    ] {
        args.push("-c".to_string());
        args.push(setting);
    }
    if cfg!(target_os = "linux") {
        // Crash recovery (a start after `kill`) first syncs the whole data
        // directory: one syncfs(2) instead of an fsync per file, seconds
        // faster on a busy disk, the same guarantee (PostgreSQL 14+,
        // Linux only).
        args.push("-c".to_string());
        args.push("recovery_init_sync_method=syncfs".to_string());
    }
    args
}

/// What `postmaster.pid` says: the postmaster's pid and its status
/// (`starting`, `ready`, `stopping`; PostgreSQL 10+ writes it on line 8,
/// which is what `pg_ctl -w` waits for).
pub(crate) fn postmaster_status(data: &Path) -> Option<(u32, String)> {
    let text = std::fs::read_to_string(data.join("postmaster.pid")).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    let pid = lines.first()?.trim().parse().ok()?;
    let status = lines.get(7).map_or("", |s| s.trim()).to_string();
    Some((pid, status))
}

/// Whether a failed start's log says the port was taken.
pub(crate) fn port_taken(log: &str) -> bool {
    log.contains("Address already in use") || log.contains("could not create any TCP/IP sockets")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_separate_arguments() {
        let args = server_args(Path::new("/d/data"), Path::new("/d"), 5555);
        assert_eq!(&args[..4], ["-D", "/d/data", "-p", "5555"]);
        assert!(args.contains(&"unix_socket_directories=/d".to_string()));
        assert!(args.contains(&"synchronous_commit=on".to_string()));
        let deep = "/x".repeat(60);
        let args = server_args(Path::new("/d/data"), Path::new(&deep), 5555);
        assert!(args.contains(&"unix_socket_directories=".to_string()));
    }

    #[test]
    fn postmaster_pid_status_line() {
        let dir = std::env::temp_dir().join(format!("services-pmpid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("postmaster.pid"),
            "4242\n/d\n1700000000\n5555\n/d\n127.0.0.1\n  1234  5\nready   \n",
        )
        .unwrap();
        assert_eq!(postmaster_status(&dir), Some((4242, "ready".to_string())));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
