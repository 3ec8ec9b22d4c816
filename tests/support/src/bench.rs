//! What the benchmarks share: wrk runs parsed, a process's CPU time, the median of runs.

use std::process::Command;

/// One wrk run: requests a second, p50 and p99 as wrk prints them, requests in all.
#[derive(Clone)]
pub struct Wrk {
    /// Requests a second.
    pub rps: f64,
    /// wrk's 50th percentile, as it prints it (`1.23ms`).
    pub p50: String,
    /// wrk's 99th percentile.
    pub p99: String,
    /// Requests completed.
    pub requests: u64,
}

/// Runs wrk on `url` with `connections` keep-alive connections for `seconds`; `extra` adds
/// arguments (`-H`, `-s script.lua`).
pub fn wrk(url: &str, connections: u32, seconds: u32, extra: &[&str]) -> Wrk {
    let out = Command::new("wrk")
        .args(["--latency", "-t", &connections.min(2).to_string(), "-c", &connections.to_string()])
        .args(["-d", &format!("{seconds}s")])
        .args(extra)
        .arg(url)
        .output()
        .expect("wrk is installed by scripts/bench.sh");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |prefix: &str| -> String {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_string()
    };
    let rps = field("Requests/sec:").parse().unwrap_or(0.0);
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Wrk { rps, p50: field("50%"), p99: field("99%"), requests }
}

/// The run with the median requests/s.
pub fn median_run(mut runs: Vec<Wrk>) -> Wrk {
    runs.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    runs.swap_remove(runs.len() / 2)
}

/// User plus system CPU time of process `pid` so far, from `/proc/PID/stat` (USER_HZ = 100 ticks
/// a second on Linux, so read it over many calls).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of the line; `rest` starts at field 3.
    (ticks(11) + ticks(12)) as f64 / 100.0
}
