//! Reads the process's CPU budget: its affinity mask and its cgroup's CPU
//! quota (the parsing is in [`crate::logic::cpu_budget`]). Whatever cannot
//! be read counts as no limit: no `/proc`, no cgroup file system, a file
//! the process may not read.

use std::fs;

use crate::logic::cpu_budget::{
    cgroup_mounts, own_cgroups, parse_cfs_quota, parse_cpu_max, quota_dirs, tightest, CpuBudget,
};

/// The budget as this process sees it now.
pub fn read() -> CpuBudget {
    CpuBudget {
        usable_cpus: usable_cpus(),
        quota_cpus: quota_cpus(),
    }
}

fn usable_cpus() -> usize {
    rustix::thread::sched_getaffinity(None).map_or(usize::MAX, |set| set.count() as usize)
}

fn quota_cpus() -> Option<f64> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let cgroups = fs::read_to_string("/proc/self/cgroup").ok()?;
    let (unified, cpu) = own_cgroups(&cgroups);
    let read = |path: std::path::PathBuf| fs::read_to_string(path).ok();
    let quotas = cgroup_mounts(&mountinfo).into_iter().flat_map(|mount| {
        let own = if mount.unified { &unified } else { &cpu };
        let dirs = own
            .as_deref()
            .map_or_else(Vec::new, |path| quota_dirs(&mount, path));
        dirs.into_iter()
            .map(|dir| {
                if mount.unified {
                    read(dir.join("cpu.max")).and_then(|text| parse_cpu_max(&text))
                } else {
                    let quota = read(dir.join("cpu.cfs_quota_us"))?;
                    let period = read(dir.join("cpu.cfs_period_us"))?;
                    parse_cfs_quota(&quota, &period)
                }
            })
            .collect::<Vec<_>>()
    });
    tightest(quotas)
}
