//! How much CPU the process may use: the CPUs it may run on and the quota
//! of its control group (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us`), as
//! Kubernetes sets them from a pod's CPU limit. Parsing only, over the
//! text of `/proc/self/cgroup`, `/proc/self/mountinfo` and the quota files;
//! `os::cpu_budget` reads them.

use std::path::PathBuf;

/// What limits the process's CPU time.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuBudget {
    /// CPUs in the process's affinity mask (`taskset`, a cpuset cgroup).
    pub usable_cpus: usize,
    /// The tightest quota of its cgroup and their ancestors, in CPUs
    /// (quota / period); `None` when none is set or none could be read.
    pub quota_cpus: Option<f64>,
}

/// A cgroup hierarchy mounted on this system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    /// Where it is mounted.
    pub point: PathBuf,
    /// The cgroup at the mount's root (not `/` inside a container whose
    /// cgroup namespace shows the host's paths).
    pub root: String,
    /// cgroup v2 (the unified hierarchy) rather than a v1 controller.
    pub unified: bool,
    /// A v1 hierarchy with the `cpu` controller.
    pub cpu_controller: bool,
}

/// The cgroup mounts listed in `/proc/self/mountinfo`: v2 ones and v1
/// ones with the `cpu` controller.
pub fn cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            // "ID PARENT MAJ:MIN ROOT POINT OPTIONS [TAGS...] - FSTYPE SOURCE SUPER"
            let (before, after) = line.split_once(" - ")?;
            let fields: Vec<&str> = before.split(' ').collect();
            let (root, point) = (*fields.get(3)?, *fields.get(4)?);
            let mut after = after.split(' ');
            let fstype = after.next()?;
            let super_options = after.nth(1).unwrap_or("");
            let unified = fstype == "cgroup2";
            let cpu_controller =
                fstype == "cgroup" && super_options.split(',').any(|option| option == "cpu");
            (unified || cpu_controller).then(|| CgroupMount {
                point: PathBuf::from(unescape_mount_path(point)),
                root: unescape_mount_path(root),
                unified,
                cpu_controller,
            })
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as octal escapes.
fn unescape_mount_path(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|digits| bytes[i] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)));
        match octal.and_then(|digits| u8::from_str_radix(std::str::from_utf8(digits).ok()?, 8).ok())
        {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The process's cgroup paths from `/proc/self/cgroup`: the unified (v2)
/// one, and the v1 one of the `cpu` controller.
pub fn own_cgroups(proc_self_cgroup: &str) -> (Option<String>, Option<String>) {
    let mut unified = None;
    let mut cpu = None;
    for line in proc_self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            unified = Some(path.to_string());
        } else if controllers.split(',').any(|c| c == "cpu") {
            cpu = Some(path.to_string());
        }
    }
    (unified, cpu)
}

/// The directories whose quota applies to a process in cgroup `path` under
/// `mount`: its own and each ancestor's up to the mount point, innermost
/// first. A path outside the mount's root (another namespace's view) is
/// looked up from the mount point only.
pub fn quota_dirs(mount: &CgroupMount, path: &str) -> Vec<PathBuf> {
    let root = mount.root.trim_end_matches('/');
    let relative = match path.strip_prefix(root) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ => "",
    };
    let mut dir = mount.point.clone();
    let mut dirs = vec![dir.clone()];
    for part in relative
        .split('/')
        .filter(|part| !part.is_empty() && *part != "..")
    {
        dir.push(part);
        dirs.push(dir.clone());
    }
    dirs.reverse();
    dirs
}

/// A v2 `cpu.max` ("QUOTA PERIOD", or "max PERIOD" for none), in CPUs.
pub fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut fields = text.split_whitespace();
    let quota = fields.next()?;
    let period = fields
        .next()
        .map_or(Some(100_000.0), |p| p.parse::<f64>().ok())?;
    cpus(quota.parse::<f64>().ok()?, period)
}

/// v1 `cpu.cfs_quota_us` (-1 for none) and `cpu.cfs_period_us`, in CPUs.
pub fn parse_cfs_quota(quota: &str, period: &str) -> Option<f64> {
    cpus(quota.trim().parse().ok()?, period.trim().parse().ok()?)
}

fn cpus(quota: f64, period: f64) -> Option<f64> {
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

/// The tightest of several quotas; `None` when none is set.
pub fn tightest(quotas: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
    quotas.into_iter().flatten().reduce(f64::min)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A cgroup v1 host (this project's CI machines) and a v2 host, as
    // their mountinfo lines read.
    const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
41 31 0:38 /kubepods/pod1 /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:40 / /mnt/with\\040space rw - cgroup2 cgroup2 rw";

    #[test]
    fn finds_v1_cpu_and_v2_mounts_only() {
        let mounts = cgroup_mounts(MOUNTINFO);
        assert_eq!(mounts.len(), 3, "{mounts:?}");
        assert_eq!(mounts[0].point, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert!(mounts[0].cpu_controller && !mounts[0].unified);
        assert_eq!(mounts[1].root, "/kubepods/pod1");
        assert!(mounts[1].unified);
        assert_eq!(mounts[2].point, PathBuf::from("/mnt/with space"));
    }

    #[test]
    fn reads_both_hierarchies_from_proc_self_cgroup() {
        let text = "12:cpuset:/\n4:cpu,cpuacct:/kubepods/burstable/pod7/abc\n1:name=systemd:/x\n0::/user.slice\n";
        assert_eq!(
            own_cgroups(text),
            (
                Some("/user.slice".to_string()),
                Some("/kubepods/burstable/pod7/abc".to_string())
            )
        );
        assert_eq!(own_cgroups("0::/\n"), (Some("/".to_string()), None));
    }

    // Every level up to the mount point can carry a quota (Kubernetes sets
    // the pod's on the pod, a runtime may set one per container).
    #[test]
    fn quota_applies_from_the_cgroup_up_to_the_mount() {
        let mount = CgroupMount {
            point: PathBuf::from("/sys/fs/cgroup"),
            root: "/".to_string(),
            unified: true,
            cpu_controller: false,
        };
        assert_eq!(
            quota_dirs(&mount, "/kubepods/pod7"),
            [
                "/sys/fs/cgroup/kubepods/pod7",
                "/sys/fs/cgroup/kubepods",
                "/sys/fs/cgroup"
            ]
            .map(PathBuf::from)
        );
        assert_eq!(quota_dirs(&mount, "/"), [PathBuf::from("/sys/fs/cgroup")]);
        // Inside a container the mount's root is the container's cgroup.
        let inner = CgroupMount {
            root: "/kubepods/pod7".to_string(),
            ..mount.clone()
        };
        assert_eq!(
            quota_dirs(&inner, "/kubepods/pod7/c1"),
            ["/sys/fs/cgroup/c1", "/sys/fs/cgroup"].map(PathBuf::from)
        );
        // A path from outside the mount's view: only the mount point's.
        assert_eq!(
            quota_dirs(&inner, "/elsewhere"),
            [PathBuf::from("/sys/fs/cgroup")]
        );
        assert_eq!(
            quota_dirs(&mount, "/a/../../etc"),
            ["/sys/fs/cgroup/a/etc", "/sys/fs/cgroup/a", "/sys/fs/cgroup"].map(PathBuf::from),
            "'..' never climbs out of the mount"
        );
    }

    #[test]
    fn parses_quotas() {
        assert_eq!(parse_cpu_max("50000 100000\n"), Some(0.5));
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("250000 100000"), Some(2.5));
        assert_eq!(parse_cpu_max(""), None);
        assert_eq!(parse_cpu_max("garbage"), None);
        assert_eq!(parse_cfs_quota("-1\n", "100000\n"), None);
        assert_eq!(parse_cfs_quota("20000\n", "100000\n"), Some(0.2));
        assert_eq!(parse_cfs_quota("20000", "0"), None);
        assert_eq!(tightest([None, Some(2.0), Some(0.5), None]), Some(0.5));
        assert_eq!(tightest([None, None]), None);
    }
}
