//! Quantization throughput: `cargo run -p larder-convert --release --example quant_speed`.
//! Prints MB/s of f32 input for each type on 1 thread and on all cores (best of three runs).

use std::time::Instant;

use larder_convert::GgmlType;
use rayon::prelude::*;

fn main() {
    const COLS: usize = 4096;
    const ROWS: usize = 4096; // 64 MiB of f32
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let data: Vec<f32> = (0..ROWS * COLS)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.04
        })
        .collect();
    let mb = (data.len() * 4) as f64 / 1e6;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for ty in [
        GgmlType::F16,
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q4K,
        GgmlType::Q5K,
        GgmlType::Q6K,
        GgmlType::Q3K,
        GgmlType::Q2K,
    ] {
        let rs = ty.row_size(COLS).unwrap();
        let mut out = vec![0u8; rs * ROWS];
        let mut line = format!("{:>5}:", ty.name());
        for threads in [1, cores] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            // Best of three: the first pass also pays for faulting in `out`.
            let mut secs = f64::INFINITY;
            for _ in 0..3 {
                let t = Instant::now();
                pool.install(|| {
                    out.par_chunks_mut(rs)
                        .zip(data.par_chunks(COLS))
                        .for_each(|(d, s)| ty.quantize_row(s, d));
                });
                secs = secs.min(t.elapsed().as_secs_f64());
            }
            line += &format!("  {threads} thread(s) {:>8.1} MB/s", mb / secs);
        }
        println!("{line}");
    }
}
