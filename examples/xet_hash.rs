//! Chunk + hash throughput of Larder's Xet hasher on one file, for `bench/xet-hash`.
//!
//! Reads the file into memory once (so the figures are the hasher's, not the disk's), then
//! hashes it with: the Xet hasher alone (one thread; throughput per CPU-second of that
//! thread), sha256 alone, and the store's hasher (sha256 with the Xet chunking beside it, as
//! every blob is hashed while it lands). Prints one JSON object.

use std::time::Instant;

use larder::fetch::digest::ContentHasher;
use larder::xet::XetHasher;

fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: xet_hash FILE [ROUNDS]");
    let rounds: usize = std::env::args()
        .nth(2)
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let data = std::fs::read(&path).expect("read the file");
    let mb = data.len() as f64 / 1e6;
    let step = 4 << 20;

    let mut xet_cpu = f64::MAX;
    let mut xet_wall = f64::MAX;
    let mut hash = String::new();
    for _ in 0..rounds {
        let (cpu, wall) = (thread_cpu(), Instant::now());
        let mut hasher = XetHasher::new();
        for piece in data.chunks(step) {
            hasher.update(piece);
        }
        let chunking = hasher.finish();
        xet_cpu = xet_cpu.min(thread_cpu() - cpu);
        xet_wall = xet_wall.min(wall.elapsed().as_secs_f64());
        hash = chunking.hex();
    }

    let mut sha_wall = f64::MAX;
    let mut both_wall = f64::MAX;
    for _ in 0..rounds {
        let wall = Instant::now();
        let mut hasher = ContentHasher::new(data.len() as u64, false);
        for piece in data.chunks(step) {
            hasher.update(piece);
        }
        let _ = hasher.finish();
        sha_wall = sha_wall.min(wall.elapsed().as_secs_f64());

        let wall = Instant::now();
        let mut hasher = ContentHasher::new(data.len() as u64, false).with_xet();
        for piece in data.chunks(step) {
            hasher.update(piece);
        }
        let digests = hasher.finish();
        both_wall = both_wall.min(wall.elapsed().as_secs_f64());
        assert_eq!(digests.xet.map(|x| x.hex()), Some(hash.clone()));
    }
    println!(
        "{{\"bytes\": {}, \"xet_hash\": \"{hash}\", \"xet_mb_per_cpu_s\": {:.0}, \"xet_mb_per_s\": {:.0}, \"sha256_mb_per_s\": {:.0}, \"sha256_and_xet_mb_per_s\": {:.0}}}",
        data.len(),
        mb / xet_cpu,
        mb / xet_wall,
        mb / sha_wall,
        mb / both_wall
    );
}
