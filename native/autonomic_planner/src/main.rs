//! `autonomic_planner`: the planner C-node's executable (see the library's documentation).

use std::io::{BufRead, Read};
use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use autonomic_planner::log::Log;
use autonomic_planner::server::{self, Config};

const USAGE: &str = "usage: autonomic_planner NAME@HOST [--listen ADDR] [--ports MIN-MAX] \
[--net-ticktime SECONDS] [--workers N]  (the cookie is the first line of stdin)";

fn parse_args(args: &[String]) -> Result<Config, String> {
    let mut it = args.iter();
    let node = it
        .next()
        .ok_or("missing node name")?
        .parse()
        .map_err(|e| format!("bad node name: {e}"))?;
    let mut cfg = Config {
        node,
        listen: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        ports: (0, 0),
        net_ticktime: Duration::from_secs(60),
        workers: thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8)),
        epmd_port: 4369,
    };
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |what: &str| format!("bad {what}: {value}");
        match flag.as_str() {
            "--listen" => cfg.listen = value.parse().map_err(|_| bad("address"))?,
            "--ports" => {
                let (lo, hi) = value.split_once('-').ok_or_else(|| bad("port range"))?;
                cfg.ports = (
                    lo.parse().map_err(|_| bad("port range"))?,
                    hi.parse().map_err(|_| bad("port range"))?,
                );
            }
            "--net-ticktime" => {
                let s: u64 = value.parse().map_err(|_| bad("net_ticktime"))?;
                cfg.net_ticktime = Duration::from_secs(s.clamp(1, 3600));
            }
            "--workers" => {
                let n: usize = value.parse().map_err(|_| bad("worker count"))?;
                cfg.workers = n.clamp(1, 64);
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    if let Some(p) = std::env::var("ERL_EPMD_PORT")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cfg.epmd_port = p;
    }
    Ok(cfg)
}

/// The cookie: the first line of stdin, at most 1,024 bytes.
fn read_cookie() -> Result<String, String> {
    let mut line = Vec::new();
    std::io::stdin()
        .lock()
        .take(1025)
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("cannot read the cookie: {e}"))?;
    if line.last() != Some(&b'\n') {
        return Err("the cookie line is missing or too long".into());
    }
    let cookie = String::from_utf8(line).map_err(|_| "the cookie is not UTF-8")?;
    let cookie = cookie.trim_end_matches(['\n', '\r']);
    if cookie.is_empty() {
        return Err("the cookie is empty".into());
    }
    Ok(cookie.to_owned())
}

/// Exits the process when stdin (the owner's port) closes.
fn watch_owner(log: Log) -> std::io::Result<()> {
    thread::Builder::new()
        .name("owner".into())
        .spawn(move || {
            let mut buf = [0u8; 256];
            let mut stdin = std::io::stdin();
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            log.info("the owner closed the port; exiting");
            // Give the log line a moment; the owner is usually gone anyway.
            thread::sleep(Duration::from_millis(20));
            std::process::exit(0);
        })
        .map(|_| ())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match parse_args(&args) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("autonomic_planner: {e}\n{USAGE}");
            return ExitCode::from(64);
        }
    };
    let cookie = match read_cookie() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("autonomic_planner: {e}");
            return ExitCode::from(64);
        }
    };
    let log = match Log::start() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("autonomic_planner: {e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = watch_owner(log.clone()) {
        eprintln!("autonomic_planner: {e}");
        return ExitCode::from(1);
    }
    match server::run(cfg, cookie, log.clone()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log.error(format!("cannot start: {e}"));
            // Let the log thread write the line before the process ends.
            thread::sleep(Duration::from_millis(50));
            ExitCode::from(1)
        }
    }
}
