//! Operating-system plumbing: file-descriptor limits and `/proc` sampling.
//!
//! The relay's memory and CPU are read from `/proc` rather than from its
//! `/metrics` endpoint on purpose: the kernel's numbers cannot be flattered by
//! the process being measured, and they work before the relay exports any
//! metric at all.

use std::io;
use std::path::Path;

/// One reading of a process's resident memory and consumed CPU time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcSample {
    /// `VmRSS` from `/proc/PID/status`, in KiB.
    pub rss_kib: u64,
    /// `utime + stime` from `/proc/PID/stat`, in clock ticks
    /// (see [`clock_ticks_per_sec`]).
    pub cpu_ticks: u64,
}

impl ProcSample {
    /// Reads `/proc/<pid>/status` and `/proc/<pid>/stat`.
    pub fn read(pid: u32) -> io::Result<ProcSample> {
        Self::read_at(Path::new(&format!("/proc/{pid}")))
    }

    /// The sum of several processes' readings (the relays of a cluster):
    /// `None` when there are none or one of them is missing.
    pub fn sum(samples: &[Option<ProcSample>]) -> Option<ProcSample> {
        let mut total = ProcSample {
            rss_kib: 0,
            cpu_ticks: 0,
        };
        for s in samples {
            let s = (*s)?;
            total.rss_kib += s.rss_kib;
            total.cpu_ticks += s.cpu_ticks;
        }
        (!samples.is_empty()).then_some(total)
    }

    /// The calling process (the load generator itself), so a report can say
    /// how much of the shared machine the generator used.
    pub fn read_self() -> io::Result<ProcSample> {
        Self::read_at(Path::new("/proc/self"))
    }

    fn read_at(dir: &Path) -> io::Result<ProcSample> {
        let status = std::fs::read_to_string(dir.join("status"))?;
        let stat = std::fs::read_to_string(dir.join("stat"))?;
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
        Ok(ProcSample {
            rss_kib: parse_vm_rss_kib(&status).ok_or_else(|| bad("no VmRSS in status"))?,
            cpu_ticks: parse_stat_cpu_ticks(&stat).ok_or_else(|| bad("unparsable stat"))?,
        })
    }
}

/// Extracts `VmRSS:   12345 kB` from the text of `/proc/PID/status`.
pub fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => Some(value),
        Some(_) => None,
    }
}

/// Extracts `utime + stime` (fields 14 and 15) from `/proc/PID/stat`.
///
/// Field 2 is the command name in parentheses and may itself contain spaces
/// and parentheses, so the fields are counted from the *last* `)`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    // `after` starts at field 3 (state); utime is field 14, stime field 15.
    let mut fields = after.split_whitespace().skip(14 - 3);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `sysconf(_SC_CLK_TCK)`: the unit of the CPU times in `/proc/PID/stat`.
pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// Raises `RLIMIT_NOFILE` as far as this process may: every WebSocket is a
/// file descriptor, and a 20,000-connection run needs more than the usual
/// soft limit of 1,024. As root the hard limit itself is raised (up to
/// `fs.nr_open`). Returns the soft limit now in force.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<libc::rlim_t>().ok());
    if let Some(ceiling) = nr_open.filter(|&c| c > lim.rlim_max) {
        // Only succeeds with CAP_SYS_RESOURCE (root); otherwise keep the
        // existing hard limit.
        let wanted = libc::rlimit {
            rlim_cur: ceiling,
            rlim_max: ceiling,
        };
        // SAFETY: `wanted` is a valid rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } == 0 {
            return Ok(ceiling);
        }
    }
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: `lim` is a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim.rlim_cur)
}

/// The soft `RLIMIT_NOFILE` in force: how many file descriptors (sockets
/// included) this process may hold.
pub fn nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim.rlim_cur)
}

/// Number of ephemeral ports per source address
/// (`net.ipv4.ip_local_port_range`); one outgoing connection to the relay's
/// single address and port uses one of them, hence `--source-ips`.
pub fn ephemeral_port_count() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    parse_port_range(&s)
}

/// Parses `"32768\t60999\n"` into the number of ports in the range.
pub fn parse_port_range(s: &str) -> Option<u64> {
    let mut it = s.split_whitespace().map(|w| w.parse::<u64>());
    let lo = it.next()?.ok()?;
    let hi = it.next()?.ok()?;
    (hi >= lo).then(|| hi - lo + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status =
            "Name:\tferrochat-relay\nVmPeak:\t  999 kB\nVmRSS:\t   52344 kB\nRssAnon:\t 1 kB\n";
        assert_eq!(parse_vm_rss_kib(status), Some(52344));
        assert_eq!(parse_vm_rss_kib("Name:\tx\n"), None);
        assert_eq!(parse_vm_rss_kib("VmRSS:\t 12 MB\n"), None);
    }

    #[test]
    fn stat_cpu_ticks_skip_a_tricky_command_name() {
        // comm contains spaces and a ')' to make naive splitting fail.
        let stat = "4242 (evil) name (x) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    1234 567 0 0 20 0 9 0 12345 1000000 500 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(1234 + 567));
        assert_eq!(parse_stat_cpu_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn own_process_can_be_sampled() {
        let s = ProcSample::read_self().unwrap();
        assert!(s.rss_kib > 0);
        let same = ProcSample::read(std::process::id()).unwrap();
        assert!(same.rss_kib > 0);
        assert!(clock_ticks_per_sec() >= 1);
        assert!(nofile_limit().unwrap() >= 3);
    }

    #[test]
    fn samples_of_several_processes_add_up_or_are_left_out() {
        let at = |rss_kib, cpu_ticks| Some(ProcSample { rss_kib, cpu_ticks });
        assert_eq!(ProcSample::sum(&[at(10, 1), at(5, 2)]), at(15, 3));
        assert_eq!(ProcSample::sum(&[at(10, 1)]), at(10, 1));
        assert_eq!(ProcSample::sum(&[at(10, 1), None]), None);
        assert_eq!(ProcSample::sum(&[]), None);
    }

    #[test]
    fn port_range_counts_inclusively() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some(28232));
        assert_eq!(parse_port_range("10 9"), None);
        assert_eq!(parse_port_range(""), None);
    }
}
