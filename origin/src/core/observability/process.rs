//! The process as the kernel sees it, read at scrape time: resident memory, CPU time,
//! threads, open files (`/proc/self`), and the memory limit of its cgroup (v2 `memory.max`,
//! v1 `memory.limit_in_bytes`), reported only when one is set.

use std::path::{Path, PathBuf};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

/// Reports the process's resident memory, CPU time, threads and open files, read from `/proc`
/// at scrape time, and its cgroup's memory limit (Linux; elsewhere nothing is reported).
#[derive(Debug)]
pub struct ProcessCollector;

/// Clock ticks per second of `/proc/self/stat` (USER_HZ, 100 on every Linux platform).
const CLOCK_TICKS: f64 = 100.0;

impl ProcessCollector {
    fn rss_bytes() -> Option<i64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// User plus system CPU seconds, and threads.
    fn cpu_and_threads() -> Option<(f64, i64)> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
        Some((
            (ticks(11)? + ticks(12)?) / CLOCK_TICKS,
            fields.get(17)?.parse().ok()?,
        ))
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        if let Some(rss) = Self::rss_bytes() {
            let metric = encoder.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(rss).encode(metric)?;
        }
        if let Some((cpu, threads)) = Self::cpu_and_threads() {
            let metric = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(cpu).encode(metric)?;
            let metric = encoder.encode_descriptor(
                "process_threads",
                "OS threads of the process",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(threads).encode(metric)?;
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            let metric = encoder.encode_descriptor(
                "process_open_fds",
                "Open file descriptors",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(fds.count() as i64).encode(metric)?;
        }
        let membership = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        if let Some(limit) = memory_limit(Path::new(CGROUP_ROOT), &membership) {
            let metric = encoder.encode_descriptor(
                "process_memory_limit_bytes",
                "Memory limit of the process's cgroup, when one is set",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(i64::try_from(limit).unwrap_or(i64::MAX)).encode(metric)?;
        }
        Ok(())
    }
}

/// Where the cgroup file systems are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// cgroup v1 writes "no limit" as the largest page-aligned `i64`; anything this large is none.
const UNLIMITED_V1: u64 = 1 << 62;

/// The memory limit of the cgroup that `membership` (the text of `/proc/self/cgroup`) names,
/// under the cgroup mounts at `root`: v2 first, then v1's memory controller; each in the
/// process's own group, else at the mount's root (a container sees its own group there).
/// `None` when no limit is set or none can be read.
pub fn memory_limit(root: &Path, membership: &str) -> Option<u64> {
    let (v2, v1) = groups(membership);
    let v2_files = candidates(root, v2.as_deref(), "memory.max");
    let v1_root = root.join("memory");
    let v1_files = candidates(&v1_root, v1.as_deref(), "memory.limit_in_bytes");
    let text = v2_files
        .iter()
        .chain(&v1_files)
        .find_map(|file| std::fs::read_to_string(file).ok())?;
    parse_limit(&text)
}

/// The process's v2 group and v1 memory group, from `/proc/self/cgroup` lines
/// (`0::/path`, `4:memory:/path`).
fn groups(membership: &str) -> (Option<String>, Option<String>) {
    let (mut v2, mut v1) = (None, None);
    for line in membership.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            v2 = Some(path.to_owned());
        } else if controllers.split(',').any(|c| c == "memory") {
            v1 = Some(path.to_owned());
        }
    }
    (v2, v1)
}

/// `file` in `group` under `mount`, then at `mount` itself.
fn candidates(mount: &Path, group: Option<&str>, file: &str) -> Vec<PathBuf> {
    let mut files = Vec::with_capacity(2);
    if let Some(group) = group
        .map(|g| g.trim_start_matches('/'))
        .filter(|g| !g.is_empty())
    {
        files.push(mount.join(group).join(file));
    }
    files.push(mount.join(file));
    files
}

/// A limit file's value: bytes, or `None` for `max` (v2) and v1's "unlimited".
fn parse_limit(text: &str) -> Option<u64> {
    let bytes: u64 = text.trim().parse().ok()?;
    (bytes < UNLIMITED_V1).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, file: &str, text: &str) {
        let path = root.join(file);
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("folder");
        std::fs::write(path, text).expect("written");
    }

    #[test]
    fn a_v2_limit_is_read_from_the_process_group_and_max_means_none() {
        let root = tempfile::tempdir().expect("folder");
        write(root.path(), "memory.max", "max\n");
        assert_eq!(memory_limit(root.path(), "0::/\n"), None);
        write(root.path(), "app/memory.max", "536870912\n");
        assert_eq!(memory_limit(root.path(), "0::/app\n"), Some(536_870_912));
        assert_eq!(
            memory_limit(root.path(), "0::/elsewhere\n"),
            None,
            "falls back to the mount's own group"
        );
    }

    #[test]
    fn a_v1_limit_is_read_and_the_unlimited_value_means_none() {
        let root = tempfile::tempdir().expect("folder");
        let membership = "5:cpu,cpuacct:/\n4:memory:/docker/abc\n0::/\n";
        write(
            root.path(),
            "memory/memory.limit_in_bytes",
            "9223372036854771712\n",
        );
        assert_eq!(memory_limit(root.path(), membership), None);
        write(
            root.path(),
            "memory/docker/abc/memory.limit_in_bytes",
            "268435456\n",
        );
        assert_eq!(memory_limit(root.path(), membership), Some(268_435_456));
        assert_eq!(memory_limit(&root.path().join("none"), membership), None);
    }
}
