//! Server CPU per answer: the CPU time (user and system, every thread) a target's processes
//! spent while a run measured, read from `/proc/<pid>/stat`, divided by the answers. CPU per
//! answer is the steadier figure on a shared machine: it counts what the server spent on a
//! request, however busy the cores were with everything else.

use std::path::Path;

/// `/proc` counts CPU time in ticks of 1/100 s (`USER_HZ`, fixed by the kernel's ABI).
const TICK_MICROS: f64 = 10_000.0;

/// The processes whose CPU time is a target's.
#[derive(Debug, Clone)]
pub struct CpuProbe {
    pids: Vec<u32>,
}

impl CpuProbe {
    /// A probe of these processes.
    pub fn new(pids: Vec<u32>) -> Self {
        Self { pids }
    }

    /// Their CPU time so far, in microseconds; `None` when one of them cannot be read.
    pub fn micros(&self) -> Option<f64> {
        let mut ticks = 0u64;
        for pid in &self.pids {
            ticks += read_ticks(&Path::new("/proc").join(pid.to_string()).join("stat"))?;
        }
        Some(ticks as f64 * TICK_MICROS)
    }
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` file. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its last `)`.
fn read_ticks(path: &Path) -> Option<u64> {
    let stat = std::fs::read_to_string(path).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// Parses `name=pid[,pid…]` from the command line.
pub fn parse_pids(text: &str) -> Result<Vec<u32>, String> {
    text.split(',')
        .map(|pid| {
            pid.trim()
                .parse()
                .map_err(|_| format!("{pid:?} is not a process id"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_cpu_time_is_read_and_grows_with_work() {
        let probe = CpuProbe::new(vec![std::process::id()]);
        let before = probe.micros().expect("readable");
        let mut x = 0u64;
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_millis(100) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let after = probe.micros().expect("readable");
        assert!(after - before >= 50_000.0, "{before} → {after}");
        assert_eq!(CpuProbe::new(vec![u32::MAX]).micros(), None);
        assert_eq!(parse_pids("1, 22"), Ok(vec![1, 22]));
        assert!(parse_pids("1,x").is_err());
    }

    #[test]
    fn a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("stat");
        std::fs::write(
            &path,
            "42 (a) (b c) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0",
        )
        .expect("write");
        assert_eq!(read_ticks(&path), Some(300));
    }
}
