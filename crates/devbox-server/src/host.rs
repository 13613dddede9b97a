//! What the machine can grant a devbox: read once at start from the kernel.

use devbox_model::{ByteSize, ResourceLimits};

/// CPUs from the scheduler's view of this process, memory from `/proc/meminfo`.
pub fn limits() -> ResourceLimits {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| parse_mem_total(&s))
        .unwrap_or(ByteSize::gib(1));
    ResourceLimits {
        max_cpus: cpus as f64,
        max_memory: memory,
    }
}

fn parse_mem_total(meminfo: &str) -> Option<ByteSize> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(ByteSize(kib * 1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_total_is_read_in_kib() {
        let s = "MemTotal:       24576000 kB\nMemFree: 1 kB\n";
        assert_eq!(parse_mem_total(s), Some(ByteSize(24_576_000 * 1024)));
        assert_eq!(parse_mem_total("nothing"), None);
    }
}
