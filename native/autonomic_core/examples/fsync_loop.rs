//! The disk's own limit, for the ledger benchmark (`bench/ledger_bench.erl`): appends `count`
//! records of `size` bytes to a new file, each with one `write` and one `fdatasync`, and prints
//! `<count> <seconds>`. Nothing else happens per record, so no ledger can append durably faster
//! on this disk, one record per fsync.
//!
//! `cargo run --release --example fsync_loop -- <path> <count> <size>`

use std::error::Error;
use std::fs::OpenOptions;
use std::io::Write;
use std::time::Instant;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, path, count, size] = args.as_slice() else {
        return Err("usage: fsync_loop <path> <count> <size>".into());
    };
    let count: u64 = count.parse()?;
    let size: usize = size.parse()?;
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)?;
    let record = vec![0x5a_u8; size];
    let start = Instant::now();
    for _ in 0..count {
        file.write_all(&record)?;
        file.sync_data()?;
    }
    let seconds = start.elapsed().as_secs_f64();
    std::fs::remove_file(path)?;
    println!("{count} {seconds}");
    Ok(())
}
