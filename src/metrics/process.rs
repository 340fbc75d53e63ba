//! The process's own resources (CPU, memory, open files), read from `/proc` at scrape time
//! under the standard `process_*` names. Elsewhere than Linux they stay absent.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

/// Clock ticks per second in `/proc/<pid>/stat`: USER_HZ, 100 on every Linux ABI.
const TICKS_PER_SECOND: f64 = 100.0;

pub(super) struct ProcessMetrics {
    cpu: Counter<f64, AtomicU64>,
    /// The CPU seconds already counted (a counter only goes up by what was added since).
    cpu_counted: Mutex<f64>,
    resident: Gauge,
    open_fds: Gauge,
}

impl ProcessMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let cpu = Counter::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "process_cpu",
            "User and system CPU time spent",
            Unit::Seconds,
            cpu.clone(),
        );
        let resident = Gauge::default();
        registry.register_with_unit(
            "process_resident_memory",
            "Resident memory size",
            Unit::Bytes,
            resident.clone(),
        );
        let open_fds = Gauge::default();
        registry.register(
            "process_open_fds",
            "Open file descriptors",
            open_fds.clone(),
        );
        Self {
            cpu,
            cpu_counted: Mutex::new(0.0),
            resident,
            open_fds,
        }
    }

    pub(super) fn refresh(&self) {
        if let Some(seconds) = cpu_seconds() {
            let mut counted = self.cpu_counted.lock().unwrap_or_else(|e| e.into_inner());
            if seconds > *counted {
                self.cpu.inc_by(seconds - *counted);
                *counted = seconds;
            }
        }
        if let Some(bytes) = resident_bytes() {
            self.resident.set(bytes);
        }
        if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(entries.count() as i64);
        }
    }
}

/// utime + stime of `/proc/self/stat`, in seconds.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after it are plain.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of the whole line are the 12th and 13th after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// VmRSS of `/proc/self/status`, in bytes.
fn resident_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
