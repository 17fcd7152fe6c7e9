//! What a scenario measured, and how: wall time, CPU time and peak RSS of this process
//! (getrusage), so that each scenario runs in a process of its own and is measured alone;
//! and the CPU time of a PostgreSQL server on this machine (its processes in /proc).

use std::time::Instant;

use serde::{Deserialize, Serialize};

/// One scenario's figures, printed by the child process as one JSON line.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Figures {
    pub users: u64,
    pub wall_s: f64,
    pub cpu_s: f64,
    pub peak_rss_kb: u64,
    pub requests: u64,
    /// Scenario-specific extras (e.g. instantiate µs), by name.
    #[serde(default)]
    pub extra: Vec<(String, f64)>,
}

/// CPU seconds (user + system) of this process so far, and its peak RSS in KiB.
pub fn usage() -> (f64, u64) {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(u.ru_utime) + secs(u.ru_stime), u.ru_maxrss as u64)
}

/// Wall and CPU time of one piece of work.
pub struct Span {
    wall: Instant,
    cpu: f64,
}

impl Span {
    pub fn start() -> Span {
        Span {
            wall: Instant::now(),
            cpu: usage().0,
        }
    }

    /// (wall seconds, CPU seconds, peak RSS KiB of the process).
    pub fn stop(self) -> (f64, f64, u64) {
        let (cpu, rss) = usage();
        (self.wall.elapsed().as_secs_f64(), cpu - self.cpu, rss)
    }
}

/// CPU seconds (user + system) all `postgres` processes on this machine have used so far:
/// the server's own work for a scenario is the difference over it (its background
/// writers included). None where /proc cannot be read or no server runs here.
pub fn postgres_cpu_s() -> Option<f64> {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks <= 0 {
        return None;
    }
    let mut total = 0u64;
    let mut found = false;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": the command is in parentheses and may hold spaces.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if &stat[open + 1..close] != "postgres" {
            continue;
        }
        // After the command: state is field 3, utime field 14, stime field 15.
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let (Some(utime), Some(stime)) = (fields.get(11), fields.get(12)) else {
            continue;
        };
        if let (Ok(u), Ok(s)) = (utime.parse::<u64>(), stime.parse::<u64>()) {
            total += u + s;
            found = true;
        }
    }
    found.then(|| total as f64 / ticks as f64)
}

/// This process's resident set now, in KiB (`/proc/self/statm`), after handing the
/// allocator's free pages back to the kernel, so that what is counted is what is held.
pub fn resident_kb() -> anyhow::Result<u64> {
    // SAFETY: malloc_trim only releases free heap pages; sysconf reads a constant.
    unsafe { libc::malloc_trim(0) };
    let page_kb = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64 / 1024;
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("/proc/self/statm has no resident field: {statm:?}"))?
        .parse()?;
    Ok(pages * page_kb)
}
