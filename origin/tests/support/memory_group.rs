//! A memory cgroup of a test's own, with a limit, for a process to report that limit: made under
//! the test's own group where cgroups can be written (as root, cgroup v1 or a delegated v2),
//! and taken apart when dropped.
// Each test binary includes this module and may use a subset of it.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

/// A memory cgroup with a limit, removed (its processes moved back) when dropped.
pub struct MemoryGroup {
    path: PathBuf,
    parent: PathBuf,
}

/// The folder of this process's memory cgroup and the name of its limit file.
fn own_group() -> Option<(PathBuf, &'static str)> {
    let membership = fs::read_to_string("/proc/self/cgroup").ok()?;
    let root = Path::new("/sys/fs/cgroup");
    for line in membership.lines() {
        let mut fields = line.splitn(3, ':');
        let (id, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let relative = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "memory") {
            return Some((root.join("memory").join(relative), "memory.limit_in_bytes"));
        }
        if id == "0" && controllers.is_empty() && root.join("cgroup.controllers").exists() {
            return Some((root.join(relative), "memory.max"));
        }
    }
    None
}

impl MemoryGroup {
    /// Moves process `pid` into a new group limited to `bytes`; `None` where that cannot be
    /// done here.
    pub fn limit(pid: u32, bytes: u64) -> Option<Self> {
        let (parent, limit_file) = own_group()?;
        let path = parent.join(format!("rampart-test-{}-{pid}", std::process::id()));
        fs::create_dir(&path).ok()?;
        let group = Self { path, parent };
        fs::write(group.path.join(limit_file), bytes.to_string()).ok()?;
        fs::write(group.path.join("cgroup.procs"), pid.to_string()).ok()?;
        Some(group)
    }
}

impl Drop for MemoryGroup {
    fn drop(&mut self) {
        let members = fs::read_to_string(self.path.join("cgroup.procs")).unwrap_or_default();
        for pid in members.lines() {
            let _ = fs::write(self.parent.join("cgroup.procs"), pid);
        }
        let _ = fs::remove_dir(&self.path);
    }
}
