//! AVIF beside our WebP, at equal quality: should the pipeline add AVIF
//! variants? The rule (docs/cost.md): only if, at equal mean SSIMULACRA2,
//! they save at least a quarter of our WebP's bytes for no more than twice
//! its encode time.
//!
//! Every photo of the corpus, upright, is downscaled as the pipeline does
//! (Lanczos3) to each long edge the apps view; that image is the reference
//! each encoding is scored against and the input of every encoder, so the
//! encoders alone differ. Ours: libwebp with the pipeline's settings, and
//! rav1e (`ravif`) at several qualities and speeds; sharp's: libaom through
//! libheif at the same qualities (infra/bench/sharp-avif.js, which also
//! decodes every AVIF to PNG). All encoders run on one thread; a time is
//! the best of three runs, or of those that fit in a second.
//!
//! Usage:
//!   avif_bench encode CORPUS_DIR WORK_DIR   references, WebP and our AVIFs
//!   avif_bench qualities                    the qualities, for sharp-avif.js
//!   avif_bench score WORK_DIR               the tables (after sharp-avif.js)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use image::RgbImage;
use shared::media::pipeline::testing::decode_variant;
use shared::media::pipeline::{Options, SMALL_VARIANT_EDGE, WebpSettings, encode_webp, fit};
use ssimulacra2::compute_frame_ssimulacra2;

#[path = "scoring/mod.rs"]
mod scoring;
use scoring::{frame, load, reference};

/// The long edges measured: the feed's 320 px, the 800 px and the 1600 px
/// a photo is opened at.
const EDGES: [u32; 3] = [1600, 800, 320];

/// The qualities tried, ours and sharp's (each encoder's own 0-100 scale).
const QUALITIES: [u8; 5] = [50, 60, 70, 80, 90];

/// rav1e's speeds tried: 6 (its encoder's default for stills is 4) and
/// 10, the fastest.
const SPEEDS: [u8; 2] = [6, 10];

/// The best time of three runs, or of as many as fit in a second.
fn best_time<T>(mut encode: impl FnMut() -> T) -> (T, Duration) {
    let mut best = Duration::MAX;
    let mut out = None;
    let started = Instant::now();
    for _ in 0..3 {
        let run = Instant::now();
        out = Some(encode());
        best = best.min(run.elapsed());
        if started.elapsed() > Duration::from_secs(1) {
            break;
        }
    }
    (out.unwrap(), best)
}

fn webp_settings(edge: u32) -> WebpSettings {
    let webp = Options::default().webp;
    if edge <= SMALL_VARIANT_EDGE {
        WebpSettings {
            quality: webp.small_quality,
            ..webp
        }
    } else {
        webp
    }
}

fn encode(corpus: &Path, work: &Path) {
    for dir in ["ref", "ours"] {
        std::fs::create_dir_all(work.join(dir)).unwrap();
    }
    let mut times: BTreeMap<String, f64> = BTreeMap::new();
    let mut photos: Vec<PathBuf> = std::fs::read_dir(corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    photos.sort();
    for path in photos {
        let photo = load(&path);
        for edge in EDGES {
            let (w, h) = fit(photo.upright.width(), photo.upright.height(), edge);
            let image = reference(&photo.upright, w, h);
            let stem = format!("{}-{edge}", photo.name);
            image
                .save(work.join("ref").join(format!("{stem}.png")))
                .unwrap();
            let (webp, took) = best_time(|| encode_webp(&image, &webp_settings(edge)).unwrap());
            let name = format!("{stem}.webp");
            std::fs::write(work.join("ours").join(&name), webp).unwrap();
            times.insert(name, took.as_secs_f64() * 1000.0);
            let pixels: Vec<ravif::RGB8> = image
                .as_raw()
                .chunks_exact(3)
                .map(|p| ravif::RGB8::new(p[0], p[1], p[2]))
                .collect();
            let img = ravif::Img::new(pixels.as_slice(), w as usize, h as usize);
            for speed in SPEEDS {
                for quality in QUALITIES {
                    let encoder = ravif::Encoder::new()
                        .with_quality(f32::from(quality))
                        .with_speed(speed)
                        .with_num_threads(Some(1));
                    let (avif, took) = best_time(|| encoder.encode_rgb(img).unwrap().avif_file);
                    let name = format!("{stem}-s{speed}-q{quality}.avif");
                    std::fs::write(work.join("ours").join(&name), avif).unwrap();
                    times.insert(name, took.as_secs_f64() * 1000.0);
                }
            }
            eprintln!("{stem}: encoded");
        }
    }
    std::fs::write(
        work.join("ours-times.json"),
        serde_json::to_vec_pretty(&times).unwrap(),
    )
    .unwrap();
}

/// One encoder at one setting, over every reference: bytes, mean score
/// and encode time, in total and per long edge.
#[derive(Default, Clone, Copy)]
struct Total {
    count: usize,
    bytes: usize,
    score: f64,
    ms: f64,
}

impl Total {
    fn add(&mut self, bytes: usize, score: f64, ms: f64) {
        self.count += 1;
        self.bytes += bytes;
        self.score += score;
        self.ms += ms;
    }

    fn mean_score(&self) -> f64 {
        self.score / self.count as f64
    }
}

#[derive(Default)]
struct Encoder {
    all: Total,
    by_edge: BTreeMap<u32, Total>,
}

fn score(work: &Path) {
    let read_times = |file: &str| -> BTreeMap<String, f64> {
        serde_json::from_slice(&std::fs::read(work.join(file)).unwrap()).unwrap()
    };
    let ours_times = read_times("ours-times.json");
    let sharp_times = read_times("sharp-times.json");
    // (encoder, speed or effort, quality): ours WebP is ("webp", 0, 0).
    let mut results: BTreeMap<(&str, u8, u8), Encoder> = BTreeMap::new();
    let mut refs: Vec<PathBuf> = std::fs::read_dir(work.join("ref"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    refs.sort();
    for path in refs {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let edge: u32 = stem.rsplit('-').next().unwrap().parse().unwrap();
        let reference = image::open(&path).unwrap().into_rgb8();
        let mut add = |key: (&'static str, u8, u8), file: PathBuf, decoded: RgbImage, ms: f64| {
            let bytes = std::fs::metadata(&file).unwrap().len() as usize;
            let value = compute_frame_ssimulacra2(frame(&reference), frame(&decoded)).unwrap();
            let entry = results.entry(key).or_default();
            entry.all.add(bytes, value, ms);
            entry.by_edge.entry(edge).or_default().add(bytes, value, ms);
        };
        let webp = work.join("ours").join(format!("{stem}.webp"));
        let decoded = decode_variant(&std::fs::read(&webp).unwrap());
        add(
            ("webp", 0, 0),
            webp,
            decoded,
            ours_times[&format!("{stem}.webp")],
        );
        for quality in QUALITIES {
            for speed in SPEEDS {
                let name = format!("{stem}-s{speed}-q{quality}.avif");
                let file = work.join("ours").join(&name);
                let decoded = image::open(work.join("ours").join(format!("{name}.png")))
                    .unwrap()
                    .into_rgb8();
                add(("rav1e", speed, quality), file, decoded, ours_times[&name]);
            }
            let name = format!("{stem}-q{quality}.avif");
            let file = work.join("sharp").join(&name);
            let decoded = image::open(work.join("sharp").join(format!("{name}.png")))
                .unwrap()
                .into_rgb8();
            add(("sharp", 4, quality), file, decoded, sharp_times[&name]);
        }
    }
    report(&results);
}

fn report(results: &BTreeMap<(&str, u8, u8), Encoder>) {
    let webp = &results[&("webp", 0, 0)];
    let photos = webp.all.count / EDGES.len();
    println!(
        "{photos} photos, {} variants each ({:?} px long edge); one thread; times the best of up to 3.\n",
        EDGES.len(),
        EDGES
    );
    println!(
        "| encoder | setting | bytes | vs our WebP | mean SSIMULACRA2 | encode ms | vs our WebP |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    let row = |label: &str, setting: String, t: &Total| {
        println!(
            "| {label} | {setting} | {} | {:+.0}% | {:.2} | {:.0} | {:.1}x |",
            t.bytes,
            (t.bytes as f64 / webp.all.bytes as f64 - 1.0) * 100.0,
            t.mean_score(),
            t.ms,
            t.ms / webp.all.ms
        );
    };
    row(
        "our WebP (libwebp)",
        "the pipeline's: q78, q81 at 320 px, method 2".into(),
        &webp.all,
    );
    for ((name, speed, quality), encoder) in results {
        match *name {
            "rav1e" => row(
                "our AVIF (rav1e)",
                format!("speed {speed}, q{quality}"),
                &encoder.all,
            ),
            "sharp" => row(
                "sharp's AVIF (libaom)",
                format!("effort 4, q{quality}"),
                &encoder.all,
            ),
            _ => {}
        }
    }

    // At equal mean quality: each AVIF encoder's lowest quality whose mean
    // score is at least our WebP's.
    println!(
        "\nAt equal mean quality (each AVIF at the lowest quality scoring at least our WebP's {:.2}):\n",
        webp.all.mean_score()
    );
    println!(
        "| encoder | setting | mean score | bytes saved | encode time | meets the rule (>= 25% saved, <= 2x time) |"
    );
    println!("|---|---|---:|---:|---:|---|");
    let mut chosen = Vec::new();
    let mut groups: BTreeMap<(&str, u8), Vec<(u8, &Encoder)>> = BTreeMap::new();
    for ((name, speed, quality), encoder) in results {
        if *name != "webp" {
            groups
                .entry((name, *speed))
                .or_default()
                .push((*quality, encoder));
        }
    }
    for ((name, speed), mut settings) in groups {
        settings.sort_by_key(|(q, _)| *q);
        let Some((quality, encoder)) = settings
            .into_iter()
            .find(|(_, e)| e.all.mean_score() >= webp.all.mean_score())
        else {
            println!("| {name} | speed {speed} | no quality tried reaches it | - | - | no |");
            continue;
        };
        let saved = 1.0 - encoder.all.bytes as f64 / webp.all.bytes as f64;
        let time = encoder.all.ms / webp.all.ms;
        let meets = saved >= 0.25 && time <= 2.0;
        let label = if name == "rav1e" {
            format!("rav1e speed {speed}, q{quality}")
        } else {
            format!("sharp effort 4, q{quality}")
        };
        println!(
            "| {name} | {label} | {:.2} | {:.0}% | {time:.1}x | {} |",
            encoder.all.mean_score(),
            saved * 100.0,
            if meets { "yes" } else { "no" }
        );
        chosen.push((label, encoder));
    }

    // What the CDN would save per 1,000 views of each size, at CloudFront's
    // $0.085 per GB (infra/pricing/aws-us-east-1.yaml, cloudfrontGbOut).
    println!(
        "\nCDN bytes per 1,000 views, by long edge (mean variant size), and the saving at $0.085 per GB:\n"
    );
    println!("| encoder | 320 px | 800 px | 1600 px | saved per 1,000 views of 320 / 1600 px |");
    println!("|---|---:|---:|---:|---:|");
    let per_view = |t: &Total| t.bytes as f64 / t.count as f64;
    let kb_per_1000 = |t: &Total| per_view(t) * 1000.0 / 1e6;
    println!(
        "| our WebP | {:.1} MB | {:.1} MB | {:.1} MB | - |",
        kb_per_1000(&webp.by_edge[&320]),
        kb_per_1000(&webp.by_edge[&800]),
        kb_per_1000(&webp.by_edge[&1600]),
    );
    for (label, encoder) in chosen {
        let saved = |edge: u32| {
            (per_view(&webp.by_edge[&edge]) - per_view(&encoder.by_edge[&edge])) * 1000.0 / 1e9
                * 0.085
        };
        println!(
            "| {label} | {:.1} MB | {:.1} MB | {:.1} MB | ${:.5} / ${:.5} |",
            kb_per_1000(&encoder.by_edge[&320]),
            kb_per_1000(&encoder.by_edge[&800]),
            kb_per_1000(&encoder.by_edge[&1600]),
            saved(320),
            saved(1600),
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["encode", corpus, work] => encode(Path::new(corpus), Path::new(work)),
        ["score", work] => score(Path::new(work)),
        ["qualities"] => println!("{}", QUALITIES.map(|q| q.to_string()).join(" ")),
        _ => {
            eprintln!("usage: avif_bench encode CORPUS_DIR WORK_DIR | qualities | score WORK_DIR");
            std::process::exit(2);
        }
    }
}
