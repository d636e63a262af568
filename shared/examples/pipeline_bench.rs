//! The image pipeline on a 12-megapixel JPEG and a 4000x3000 PNG: wall
//! time, CPU time and peak memory per image, in this process. Run by
//! `scripts/bench`, which runs the same work through sharp (libvips) next
//! to it. Usage: pipeline_bench OUTDIR [RUNS]

use std::time::Instant;

use shared::media::pipeline::{Options, process};

/// A photo-like test image: smooth gradients plus fine detail (noise-like
/// texture), so encoders and resamplers do representative work.
fn synthetic(width: u32, height: u32) -> image::RgbImage {
    let mut seed: u32 = 0x9E37_79B9;
    image::RgbImage::from_fn(width, height, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let noise = (seed & 0x1F) as i32 - 16;
        let r = (x * 255 / width) as i32 + noise;
        let g = (y * 255 / height) as i32 + noise;
        let b = (((x / 40 + y / 40) % 2) * 120 + 60) as i32 + noise;
        image::Rgb([
            r.clamp(0, 255) as u8,
            g.clamp(0, 255) as u8,
            b.clamp(0, 255) as u8,
        ])
    })
}

fn cpu_seconds() -> f64 {
    // utime + stime of this process, from /proc (clock ticks of 1/100 s).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outdir = std::path::PathBuf::from(args.first().map_or(".bench", String::as_str));
    let runs: u32 = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(5);
    std::fs::create_dir_all(&outdir)?;
    let photo = synthetic(4000, 3000);
    let jpeg_path = outdir.join("photo-12mp.jpg");
    let png_path = outdir.join("photo-4000x3000.png");
    if !jpeg_path.exists() {
        let settings = shared::media::pipeline::JpegSettings {
            quality: 90,
            trellis: false,
            progressive: false,
        };
        let jpeg = shared::media::pipeline::encode_jpeg(&photo, &settings)?;
        std::fs::write(&jpeg_path, jpeg)?;
    }
    if !png_path.exists() {
        photo.save(&png_path)?;
    }
    drop(photo);
    let options = Options::default();
    for path in [&jpeg_path, &png_path] {
        let bytes = std::fs::read(path)?;
        process(&bytes, &options)?; // warm up
        let (cpu0, wall0) = (cpu_seconds(), Instant::now());
        let mut out_bytes = 0;
        for _ in 0..runs {
            let processed = process(&bytes, &options)?;
            out_bytes = processed
                .variants
                .iter()
                .map(|v| v.bytes.len())
                .sum::<usize>();
        }
        let wall = wall0.elapsed().as_secs_f64() / f64::from(runs);
        let cpu = (cpu_seconds() - cpu0) / f64::from(runs);
        println!(
            "rust  {:<22} wall {:>7.1} ms  cpu {:>7.1} ms  output {:>8} bytes  peak rss {:>6.1} MB (process so far)",
            path.file_name().unwrap().to_string_lossy(),
            wall * 1000.0,
            cpu * 1000.0,
            out_bytes,
            peak_rss_mb()
        );
    }
    Ok(())
}
