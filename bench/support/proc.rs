//! Memory, CPU, threads and descriptors of running processes, from /proc,
//! summed over a set of processes (the websocat baseline is one process
//! per feed).
//!
//! CPU is each thread's `se.sum_exec_runtime` (`/proc/PID/task/TID/schedstat`,
//! nanoseconds): clock ticks (10 ms) are too coarse for an agent that
//! uses a few milliseconds a second, and `perf stat` is not available on
//! every machine. Threads that end between two samples take their time
//! with them; the processes sampled here keep their threads.

use std::collections::BTreeMap;
use std::path::Path;

/// One sample of a set of processes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub rss_kib: u64,
    pub pss_kib: u64,
    pub anon_kib: u64,
    /// Pages referenced since the last [`clear_refs`] (the working set).
    pub referenced_kib: u64,
    pub threads: u64,
    pub fds: u64,
    pub cpu_ns: u64,
}

/// The number after `name` in a `/proc/PID/<file>` of `key: value` lines
/// (0 when absent or unreadable).
fn proc_field(pid: u32, file: &str, name: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn status_field(pid: u32, name: &str) -> u64 {
    proc_field(pid, "status", name)
}

fn rollup_field(pid: u32, name: &str) -> u64 {
    proc_field(pid, "smaps_rollup", name)
}

/// On-CPU nanoseconds of every thread of `pid`.
pub fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

/// Samples every process in `pids` and adds them up.
pub fn sample(pids: &[u32]) -> Sample {
    let mut s = Sample::default();
    for &pid in pids {
        s.rss_kib += status_field(pid, "VmRSS:");
        s.threads += status_field(pid, "Threads:");
        s.pss_kib += rollup_field(pid, "Pss:");
        s.anon_kib += rollup_field(pid, "Anonymous:");
        s.referenced_kib += rollup_field(pid, "Referenced:");
        s.fds += fds(pid);
        s.cpu_ns += cpu_ns(pid);
    }
    s
}

/// Clears the referenced bits of every page of `pids`, so that a later
/// [`Sample::referenced_kib`] counts the pages touched since (needs to own
/// the processes or be root; silently nothing otherwise).
pub fn clear_refs(pids: &[u32]) {
    for pid in pids {
        let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "1");
    }
}

/// `Name=value` of the `[Service]` keys of the shipped unit, for the scale
/// table's limits.
pub fn unit_setting(key: &str) -> Option<String> {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/brokerguard.service");
    let text = std::fs::read_to_string(unit).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
}

/// `nproc`, total memory and the kernel, for the report's header.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|r| r.split_whitespace().next()?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpus} CPUs, {:.1} GiB, Linux {}",
        mem_kib as f64 / 1048576.0,
        kernel.trim()
    )
}

/// Where a process's resident pages are, by kind of mapping: the binary's
/// text, read-only data, relocated read-only data (RELRO, dirtied by the
/// relocation at start), its data; the heap and malloc's arenas; thread
/// stacks; shared libraries; other anonymous memory (large buffers).
/// (kind, resident KiB, referenced KiB since the last [`clear_refs`]).
pub fn page_classes(pid: u32) -> Vec<(String, u64, u64)> {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else {
        return Vec::new();
    };
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out: Vec<(String, u64, u64)> = Vec::new();
    let mut add =
        |kind: &str, rss: u64, referenced: u64| match out.iter_mut().find(|(k, _, _)| k == kind) {
            Some(e) => {
                e.1 += rss;
                e.2 += referenced;
            }
            None => out.push((kind.to_string(), rss, referenced)),
        };
    let mut header: Option<(u64, u64, String, String)> = None;
    let mut rss = 0;
    let mut anon = 0;
    let mut flush =
        |h: &Option<(u64, u64, String, String)>, rss: u64, anon: u64, referenced: u64| {
            let Some((start, end, perms, path)) = h else {
                return;
            };
            if rss == 0 {
                return;
            }
            let size_kib = (end - start) / 1024;
            let kind = if path == &exe {
                match perms.as_str() {
                    "r-xp" => "binary text",
                    "r--p" if anon > 0 => "binary RELRO (relocated at start)",
                    "r--p" => "binary read-only data",
                    _ => "binary data and bss",
                }
            } else if path == "[heap]" {
                "heap and malloc arenas"
            } else if path == "[stack]" {
                "main thread stack"
            } else if path.starts_with('[') {
                "kernel (vdso, vvar)"
            } else if !path.is_empty() {
                "shared libraries"
            } else if start % (64 << 20) == 0 {
                "heap and malloc arenas"
            } else if size_kib == 512 || size_kib == 128 || size_kib == 2048 {
                "thread stacks"
            } else {
                "other anonymous"
            };
            add(kind, rss, referenced);
        };
    let mut referenced = 0;
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) {
                flush(&header, rss, anon, referenced);
                let mut parts = line.split_whitespace();
                let _ = parts.next();
                let perms = parts.next().unwrap_or("").to_string();
                let path = parts.nth(3).unwrap_or("").to_string();
                header = Some((start, end, perms, path));
                rss = 0;
                anon = 0;
                referenced = 0;
                continue;
            }
        }
        let value = || {
            line.split_whitespace()
                .nth(1)
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        if line.starts_with("Rss:") {
            rss = value();
        } else if line.starts_with("Anonymous:") {
            anon = value();
        } else if line.starts_with("Referenced:") {
            referenced = value();
        }
    }
    flush(&header, rss, anon, referenced);
    out.sort_by_key(|e| std::cmp::Reverse(e.1));
    out
}

/// Context switches (voluntary and not) of every thread of `pid` by
/// thread name, numbers stripped (`feed-f3` counts as `feed-f*`): each
/// voluntary switch is a wake-up after a sleep.
pub fn switches_by_thread(pid: u32) -> BTreeMap<String, (u64, u64)> {
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let name: String = {
            let c = comm.trim();
            let stem = c.trim_end_matches(|ch: char| ch.is_ascii_digit());
            if stem.len() < c.len() {
                format!("{stem}*")
            } else {
                c.to_string()
            }
        };
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        let field = |n: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(n))
                .and_then(|r| r.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let e = out.entry(name).or_default();
        e.0 += field("voluntary_ctxt_switches:");
        e.1 += 1;
    }
    out
}

/// Thread stacks of `pid` by size (the sizes `brokerguard::threads` sets):
/// (reserved KiB, how many, most resident KiB of one). A stack's resident
/// pages are its high-water mark: the kernel does not take them back.
pub fn stack_high_water(pid: u32) -> Vec<(u64, u64, u64)> {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else {
        return Vec::new();
    };
    let sizes = [
        (brokerguard::threads::FEED_STACK / 1024) as u64,
        (brokerguard::threads::SMALL_STACK / 1024) as u64,
    ];
    let mut out: Vec<(u64, u64, u64)> = sizes.iter().map(|s| (*s, 0, 0)).collect();
    let mut current: Option<usize> = None;
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let first = parts.next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) {
                let perms = parts.next().unwrap_or("");
                let path = parts.nth(3).unwrap_or("");
                let size = (end - start) / 1024;
                current = (perms == "rw-p" && path.is_empty())
                    .then(|| sizes.iter().position(|s| *s == size))
                    .flatten();
                continue;
            }
        }
        if let (Some(i), Some(rest)) = (current, line.strip_prefix("Rss:")) {
            let rss: u64 = rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            out[i].1 += 1;
            out[i].2 = out[i].2.max(rss);
        }
    }
    out
}
