//! Prints llama.cpp's pre-tokenizer fingerprint of a tokenizer.json and the
//! `tokenizer.ggml.pre` it maps to:
//! `cargo run -p larder-convert --release --example fingerprint -- tokenizer.json`

use larder_convert::chkhsh;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: fingerprint TOKENIZER_JSON")?;
    let tj: serde_json::Value = serde_json::from_slice(&std::fs::read(path)?)?;
    match chkhsh::fingerprint(&tj) {
        Some(h) => println!("{h} {}", chkhsh::lookup(&h).unwrap_or("(unknown)")),
        None => println!("unsupported tokenizer.json shape"),
    }
    Ok(())
}
