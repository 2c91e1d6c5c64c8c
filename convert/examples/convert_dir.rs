//! Converts a local HF checkpoint directory, for manual runs and timing:
//! `cargo run -p larder-convert --release --example convert_dir -- DIR TYPE OUT.gguf [THREADS [IMATRIX]]`
//! (`TYPE` may also be `safetensors-f16` etc. for dtype conversion into OUT as a directory).

use std::time::Instant;

use larder_convert::{
    Dtype, GgufOptions, GgufType, Imatrix, SourceFiles, convert_dtype, convert_to_gguf,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, ty, out, rest @ ..] = args.as_slice() else {
        return Err("usage: convert_dir DIR TYPE OUT [THREADS]".into());
    };
    let src = SourceFiles::from_dir(dir.as_ref())?;
    let input: u64 = src
        .names()
        .filter(|n| n.ends_with(".safetensors"))
        .map(|n| std::fs::metadata(src.path(n).unwrap()).map_or(0, |m| m.len()))
        .sum();
    let t = Instant::now();
    if let Some(dtype) = ty.strip_prefix("safetensors-") {
        std::fs::create_dir_all(out)?;
        let r = convert_dtype(&src, dtype.parse::<Dtype>()?, out.as_ref())?;
        println!("{r:?}");
    } else {
        let threads = rest.first().map(|t| t.parse()).transpose()?;
        let imatrix = rest.get(1).map(|p| Imatrix::load(p.as_ref())).transpose()?;
        let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
        let opts = GgufOptions {
            threads,
            imatrix: imatrix.as_ref().map(|m| (m, rest[1].as_str())),
            ..GgufOptions::default()
        };
        let r = convert_to_gguf(&src, ty.parse::<GgufType>()?, &mut file, &opts)?;
        println!("{r:?}");
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{:.2} s, {:.1} MB/s of safetensors input",
        secs,
        input as f64 / 1e6 / secs
    );
    Ok(())
}
