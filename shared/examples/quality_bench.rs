//! Variants at equal quality: bytes and SSIMULACRA2 of every variant the
//! pipeline makes, under each encoder setting measured, next to sharp's
//! (libvips) defaults on the same photos. Every variant, ours and sharp's,
//! is scored against one common reference: the upright original,
//! downscaled with Lanczos3 to that variant's exact size (the thumbnail from
//! the centre square) and kept lossless.
//!
//! Usage: quality_bench CORPUS_DIR SHARP_DIR [LABEL_FILTER]
//!   CORPUS_DIR: the photos (*.jpg); SHARP_DIR: sharp's variants of each,
//!   `<photo stem>-<variant name>` (infra/bench/sharp-variants.js).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use image::RgbImage;
use shared::media::pipeline::testing::decode_variant as decode;
use shared::media::pipeline::{JpegSettings, Options, Sharpen, WebpSettings, process};
use ssimulacra2::compute_frame_ssimulacra2;

#[path = "scoring/mod.rs"]
mod scoring;
use scoring::{Photo, frame, load, reference};

/// SSIMULACRA2 of encoded `bytes` against the reference at its size.
fn score(upright: &RgbImage, bytes: &[u8]) -> (u32, u32, f64) {
    let decoded = decode(bytes);
    let (w, h) = decoded.dimensions();
    let reference = reference(upright, w, h);
    let value = compute_frame_ssimulacra2(frame(&reference), frame(&decoded)).unwrap();
    (w, h, value)
}

#[derive(Default, Clone)]
struct Row {
    bytes: usize,
    score: f64,
}

/// The settings measured: sharp's own encoder settings on our resize first,
/// then the levers one at a time from the defaults.
fn settings() -> Vec<(&'static str, Options)> {
    let defaults = Options::default();
    let (jpeg, webp) = (defaults.jpeg, defaults.webp);
    let with = |jpeg: JpegSettings, webp: WebpSettings, sharpen: Option<Sharpen>| Options {
        jpeg,
        webp,
        sharpen,
        ..Options::default()
    };
    let sharp_like = with(
        JpegSettings {
            quality: 80,
            trellis: false,
            progressive: false,
        },
        WebpSettings {
            quality: 80.0,
            small_quality: 80.0,
            method: 4,
            sharp_yuv: false,
        },
        None,
    );
    let plain = JpegSettings {
        trellis: false,
        ..jpeg
    };
    let light = Sharpen {
        sigma: 0.6,
        amount: 0.35,
        min_ratio: 3.0,
    };
    vec![
        ("sharp's settings: jpeg q80, webp q80 m4", sharp_like),
        (
            "defaults: jpeg q80 trellis, webp q78 m2 (q81 at <= 320 px)",
            defaults.clone(),
        ),
        (
            "defaults, webp q78 at every size",
            with(
                jpeg,
                WebpSettings {
                    small_quality: webp.quality,
                    ..webp
                },
                None,
            ),
        ),
        (
            "defaults, webp method 4 at q79 (sharp's method)",
            with(
                jpeg,
                WebpSettings {
                    quality: 79.0,
                    method: 4,
                    ..webp
                },
                None,
            ),
        ),
        (
            "defaults, webp method 6",
            with(jpeg, WebpSettings { method: 6, ..webp }, None),
        ),
        (
            "defaults, webp sharp YUV",
            with(
                jpeg,
                WebpSettings {
                    sharp_yuv: true,
                    ..webp
                },
                None,
            ),
        ),
        (
            "defaults, jpeg q78",
            with(
                JpegSettings {
                    quality: 78,
                    ..jpeg
                },
                webp,
                None,
            ),
        ),
        (
            "defaults, jpeg + progressive (mozjpeg's own defaults)",
            with(
                JpegSettings {
                    progressive: true,
                    ..jpeg
                },
                webp,
                None,
            ),
        ),
        (
            "defaults, jpeg without trellis (libjpeg-turbo)",
            with(plain, webp, None),
        ),
        (
            "defaults, jpeg q78 without trellis",
            with(
                JpegSettings {
                    quality: 78,
                    ..plain
                },
                webp,
                None,
            ),
        ),
        (
            "defaults, jpeg progressive without trellis",
            with(
                JpegSettings {
                    progressive: true,
                    ..plain
                },
                webp,
                None,
            ),
        ),
        (
            "defaults, light sharpening after >= 3x",
            with(jpeg, webp, Some(light)),
        ),
    ]
}

fn main() {
    let args: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    let (corpus, sharp_dir) = (&args[0], &args[1]);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(corpus)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    paths.sort();
    let photos: Vec<Photo> = paths.iter().map(|p| load(p)).collect();

    // sharp's variants, scored once.
    let mut sharp: BTreeMap<(String, String), Row> = BTreeMap::new();
    for photo in &photos {
        for name in [
            "1600.jpg",
            "1600.webp",
            "800.jpg",
            "800.webp",
            "320.jpg",
            "320.webp",
            "thumb.jpg",
            "thumb.webp",
        ] {
            let path = sharp_dir.join(format!("{}-{name}", photo.name));
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let (_, _, value) = score(&photo.upright, &bytes);
            sharp.insert(
                (photo.name.clone(), name.into()),
                Row {
                    bytes: bytes.len(),
                    score: value,
                },
            );
        }
    }
    let total = |rows: &BTreeMap<(String, String), Row>, ext: &str| -> (usize, f64, usize) {
        let picked: Vec<&Row> = rows
            .iter()
            .filter(|((_, n), _)| n.ends_with(ext))
            .map(|(_, r)| r)
            .collect();
        let bytes = picked.iter().map(|r| r.bytes).sum();
        let mean = picked.iter().map(|r| r.score).sum::<f64>() / picked.len().max(1) as f64;
        (bytes, mean, picked.len())
    };
    let (sb, ss, count) = total(&sharp, "");
    let (sjb, sjs, _) = total(&sharp, ".jpg");
    let (swb, sws, _) = total(&sharp, ".webp");
    println!(
        "{} photos, {count} variants each side; SSIMULACRA2 (higher is better; 70 ~ high quality, 90 ~ visually lossless)\n",
        photos.len()
    );
    println!(
        "| settings | JPEG bytes | JPEG mean score | WebP bytes | WebP mean score | all bytes vs sharp | mean score vs sharp | worst variant vs sharp | ms per photo |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| sharp defaults (jpeg q80 4:2:0 optimised Huffman, webp q80 m4) | {sjb} | {sjs:.2} | {swb} | {sws:.2} | {sb} | {ss:.2} | - | - |"
    );

    let mut details = Vec::new();
    let filter = std::env::args().nth(3).unwrap_or_default();
    for (label, options) in settings() {
        if !label.contains(&filter) {
            continue;
        }
        let mut ours: BTreeMap<(String, String), Row> = BTreeMap::new();
        let started = Instant::now();
        let mut outputs = Vec::new();
        for photo in &photos {
            outputs.push(process(&photo.bytes, &options).unwrap());
        }
        let per_photo = started.elapsed().as_secs_f64() * 1000.0 / photos.len() as f64;
        for (photo, processed) in photos.iter().zip(&outputs) {
            for variant in &processed.variants {
                let (_, _, value) = score(&photo.upright, &variant.bytes);
                ours.insert(
                    (photo.name.clone(), variant.name.clone()),
                    Row {
                        bytes: variant.bytes.len(),
                        score: value,
                    },
                );
            }
        }
        let (jb, js, _) = total(&ours, ".jpg");
        let (wb, ws, _) = total(&ours, ".webp");
        let (ab, as_, _) = total(&ours, "");
        let worst = ours
            .iter()
            .filter_map(|(key, row)| sharp.get(key).map(|s| row.score - s.score))
            .fold(f64::INFINITY, f64::min);
        println!(
            "| {label} | {jb} | {js:.2} | {wb} | {ws:.2} | {:+.1}% | {:+.2} | {worst:+.2} | {per_photo:.0} |",
            (ab as f64 / sb as f64 - 1.0) * 100.0,
            as_ - ss,
        );
        details.push((label, ours));
    }

    // Variant by variant, for the settings now the default.
    let current = Options::default();
    let label = settings()
        .into_iter()
        .find(|(_, o)| {
            o.jpeg == current.jpeg && o.webp == current.webp && o.sharpen == current.sharpen
        })
        .map_or("defaults", |(l, _)| l);
    if let Some((_, ours)) = details.iter().find(|(l, _)| *l == label) {
        println!("\nVariant by variant, {label}, against sharp:\n");
        println!("| photo | variant | our bytes | sharp bytes | our score | sharp score |");
        println!("|---|---|---:|---:|---:|---:|");
        for ((photo, name), row) in ours {
            if let Some(s) = sharp.get(&(photo.clone(), name.clone())) {
                println!(
                    "| {photo} | {name} | {} | {} | {:.2} | {:.2} |",
                    row.bytes, s.bytes, row.score, s.score
                );
            }
        }
    }
}
