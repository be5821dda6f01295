//! A fault-injecting proxy in front of a registry, for benchmarks: `fault-proxy UPSTREAM PERCENT
//! SEED [KINDS]` prints `listening on ADDR`, then deals faults at random (see `TestProxy::chaos`)
//! until killed, writing the number dealt so far to `STATS` (when given as the fifth argument) every
//! half second. KINDS is a comma-separated list of `unavailable,cut,stall,corrupt,damaged-request`
//! (all by default).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use wharf_testkit::{ChaosKind, TestProxy};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [upstream, percent, seed, rest @ ..] = args.as_slice() else {
        eprintln!("usage: fault-proxy UPSTREAM PERCENT SEED [KINDS [STATS]]");
        return ExitCode::from(2);
    };
    let (Ok(percent), Ok(seed)) = (percent.parse::<u32>(), seed.parse::<u64>()) else {
        eprintln!("fault-proxy: PERCENT and SEED are numbers");
        return ExitCode::from(2);
    };
    let kinds = match rest.first().filter(|k| k.as_str() != "all") {
        None => ChaosKind::ALL.to_vec(),
        Some(list) => match list
            .split(',')
            .map(ChaosKind::parse)
            .collect::<Option<Vec<_>>>()
        {
            Some(kinds) => kinds,
            None => {
                eprintln!("fault-proxy: unknown fault kind in {list:?}");
                return ExitCode::from(2);
            }
        },
    };
    let proxy = TestProxy::start(upstream, None);
    proxy.chaos(percent, &kinds, seed);
    println!("listening on {}", proxy.host());
    loop {
        std::thread::sleep(std::time::Duration::from_millis(500));
        if let Some(stats) = rest.get(1) {
            let _ = std::fs::write(stats, format!("{}\n", proxy.chaos_dealt()));
        }
    }
}
