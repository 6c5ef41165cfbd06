//! This process's resident memory, from `/proc/self/status` (Linux). With an
//! embedded server the database lives in this process, so its resident set
//! is the server's.
//!
//! Invariant: `None` wherever the figure is not available (not Linux, or the
//! file has no such line), never a guess.

/// Resident set size now (`VmRSS`) and at its peak (`VmHWM`), in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resident {
    pub now: u64,
    pub peak: u64,
}

/// Reads `VmRSS` and `VmHWM`.
pub fn resident() -> Option<Resident> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    Some(Resident {
        now: field_kib(&status, "VmRSS:")? * 1024,
        peak: field_kib(&status, "VmHWM:")? * 1024,
    })
}

/// The value in kB of a `Name:   123 kB` line.
fn field_kib(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(name))?;
    line[name.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_lines() {
        let s = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(field_kib(s, "VmRSS:"), Some(1024));
        assert_eq!(field_kib(s, "VmHWM:"), Some(2048));
        assert_eq!(field_kib(s, "VmSwap:"), None);
        if cfg!(target_os = "linux") {
            let r = resident().expect("VmRSS on Linux");
            assert!(r.now > 0 && r.peak >= r.now);
        }
    }
}
