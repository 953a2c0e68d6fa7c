//! What the keel-tools test files share: finding the processes a command left behind.
#![allow(dead_code)]

/// Host processes whose command line holds `marker` (pids inside the sandbox are
/// namespaced, so tests find their processes by what they run).
pub fn running(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z');
        if cmdline.contains(marker) && !zombie {
            found.push(pid);
        }
    }
    found
}

/// Waits up to 10 s for every process holding `marker` to be gone.
pub fn gone(marker: &str) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !running(marker).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    running(marker).is_empty()
}
