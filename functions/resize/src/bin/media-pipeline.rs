//! Try the pipeline on your own photos:
//! `cargo run --release -p resize --bin media-pipeline -- INPUT OUTDIR`

use std::time::Instant;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, outdir] = args.as_slice() else {
        bail!("usage: media-pipeline INPUT OUTDIR");
    };
    let bytes = std::fs::read(input).with_context(|| format!("reading {input}"))?;
    let started = Instant::now();
    let processed =
        shared::media::pipeline::process(&bytes, &shared::media::pipeline::Options::default())?;
    let elapsed = started.elapsed();
    std::fs::create_dir_all(outdir)?;
    println!(
        "{input}: {:?} {}x{} (upright), {} bytes, placeholder {}",
        processed.format,
        processed.width,
        processed.height,
        bytes.len(),
        processed.placeholder
    );
    for variant in &processed.variants {
        let path = std::path::Path::new(outdir).join(&variant.name);
        std::fs::write(&path, &variant.bytes)?;
        println!(
            "  {:<12} {:>5}x{:<5} {:>9} bytes  {}",
            variant.name,
            variant.width,
            variant.height,
            variant.bytes.len(),
            path.display()
        );
    }
    println!("pipeline: {:.1} ms", elapsed.as_secs_f64() * 1000.0);
    Ok(())
}
