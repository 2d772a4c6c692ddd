//! How busy the machine is with work other than this backfill: the share of all CPUs that the
//! rest of the machine used since the last reading, from Linux's /proc/stat minus this process's
//! own time (/proc/self/stat). The worker paces its batches by it (`worker::Pacer`). Elsewhere
//! than Linux nothing is known and the worker does not pace by load.

use std::time::{Duration, Instant};

/// Readings closer together than this say little: the kernel counts CPU time in ticks of 10 ms.
const WINDOW: Duration = Duration::from_millis(250);

#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    /// All CPUs' time, in clock ticks.
    total: u64,
    idle: u64,
    /// This process's time.
    own: u64,
}

#[derive(Default)]
pub struct CpuMeter {
    last: Option<Sample>,
    cpus: f64,
}

/// What the last full window showed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// Share of all CPUs (0..1) the rest of the machine used.
    pub others: f64,
    /// How many CPUs the rest of the machine left unused.
    pub spare_cpus: f64,
}

impl CpuMeter {
    /// A new reading when a window has passed since the last one, None otherwise (and always
    /// when /proc cannot be read).
    pub fn read(&mut self) -> Option<Load> {
        let now = sample()?;
        if self.cpus == 0.0 {
            self.cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        }
        let Some(last) = self.last else {
            self.last = Some(now);
            return None;
        };
        if now.at.duration_since(last.at) < WINDOW {
            return None;
        }
        self.last = Some(now);
        let total = now.total.saturating_sub(last.total);
        if total == 0 {
            return None;
        }
        let busy = total.saturating_sub(now.idle.saturating_sub(last.idle));
        let others = busy.saturating_sub(now.own.saturating_sub(last.own)) as f64 / total as f64;
        Some(Load { others, spare_cpus: self.cpus * (1.0 - others) })
    }
}

fn sample() -> Option<Sample> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let own = std::fs::read_to_string("/proc/self/stat").ok()?;
    let (total, idle) = parse_stat(&stat)?;
    Some(Sample { at: Instant::now(), total, idle, own: parse_own(&own)? })
}

/// The first line of /proc/stat, "cpu user nice system idle iowait irq softirq steal …": all
/// the time (guest time is already in user and nice) and the idle time (idle + iowait).
fn parse_stat(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().next()?;
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let v: Vec<u64> = fields.take(8).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    if v.len() < 5 {
        return None;
    }
    Some((v.iter().sum(), v[3] + v[4]))
}

/// utime + stime of /proc/self/stat (fields 14 and 15, counted after the command name, which
/// may itself hold spaces and parentheses).
fn parse_own(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state)
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn parses_proc_stat_and_own_times() {
        let stat = "cpu  100 5 50 800 20 1 2 3 0 0\ncpu0 50 2 25 400 10 0 1 1 0 0\n";
        assert_eq!(parse_stat(stat), Some((981, 820)));
        let own = "4242 (postgres: pg_migrate (job) 1) S 1 4242 4242 0 -1 4194560 100 0 0 0 37 5 0 0 20 0 1 0";
        assert_eq!(parse_own(own), Some(42));
        assert_eq!(parse_stat("intr 1 2 3"), None);
    }

    #[pg_test]
    fn this_machine_is_measured() {
        let mut meter = CpuMeter::default();
        assert_eq!(meter.read(), None, "the first reading only starts a window");
        std::thread::sleep(WINDOW + Duration::from_millis(50));
        let load = meter.read().expect("a second reading after a window (Linux)");
        assert!((0.0..=1.0).contains(&load.others), "{load:?}");
        assert!(load.spare_cpus >= 0.0, "{load:?}");
    }
}
