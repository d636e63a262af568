//! The image pipeline: bytes in, safe variants out. Pure and synchronous:
//! no AWS, no Lambda, so it is tested and benchmarked on its own.
//!
//! Sniff the real format from magic bytes; read dimensions from the header
//! and refuse bombs before decoding; decode (JPEG with DCT-domain
//! shrink-on-load when the largest variant is much smaller); apply the EXIF
//! orientation; re-encode from pixels only, so no metadata (EXIF, GPS, XMP,
//! ICC) survives; resize with `fast_image_resize` (SIMD); encode JPEG and
//! WebP; compute a BlurHash placeholder.

use fast_image_resize::Resizer;
use image::DynamicImage;
use image::metadata::Orientation;

#[derive(Debug, Clone)]
pub struct Options {
    /// Long-edge sizes of the resized variants; never upscaled.
    pub long_edges: Vec<u32>,
    /// Side of the square thumbnail.
    pub thumbnail: u32,
    pub max_pixels: u64,
    pub jpeg: JpegSettings,
    pub webp: WebpSettings,
    /// Unsharp mask applied to variants shrunk by `min_ratio` or more.
    pub sharpen: Option<Sharpen>,
}

/// How JPEG variants are encoded: libjpeg-turbo's encoder, as built into
/// mozjpeg (always 4:2:0 chroma and Huffman tables fitted to the image).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JpegSettings {
    pub quality: u8,
    /// mozjpeg's trellis quantisation, with its own quantisation tables and
    /// deringing, instead of libjpeg-turbo's plain encoder: about 17% fewer
    /// bytes at equal quality for five times the encoding time.
    pub trellis: bool,
    /// Progressive scans (with `trellis`, mozjpeg's search for the smallest
    /// scan script).
    pub progressive: bool,
}

/// How WebP variants are encoded (libwebp).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WebpSettings {
    pub quality: f32,
    /// The quality of variants whose long edge is at most
    /// [`SMALL_VARIANT_EDGE`]: a few hundred bytes buy back what libwebp
    /// loses on small pictures.
    pub small_quality: f32,
    /// 0 (fast) to 6 (smallest).
    pub method: i32,
    /// libwebp's sharp RGB->YUV conversion (crisper chroma edges).
    pub sharp_yuv: bool,
}

/// The long edge at or below which a variant counts as small (the 320 px
/// size and the thumbnail).
pub const SMALL_VARIANT_EDGE: u32 = 320;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sharpen {
    pub sigma: f32,
    pub amount: f32,
    pub min_ratio: f32,
}

/// The settings the equal-quality benchmark (`examples/quality_bench.rs`)
/// chose; see the README's rate-distortion table.
impl Default for Options {
    fn default() -> Self {
        Self {
            long_edges: vec![1600, 800, 320],
            thumbnail: 160,
            max_pixels: 50_000_000,
            // mozjpeg's trellis quantisation at q80, sequential: fewer bytes
            // than sharp's JPEG at a higher score, for the time WebP's
            // method 2 saves; the progressive scan search is not worth its
            // time. Why and the figures: docs/design/encoder-settings.md.
            jpeg: JpegSettings {
                quality: 80,
                trellis: true,
                progressive: false,
            },
            // Method 2 (no rate-distortion search) at q78: fewer bytes than
            // sharp's WebP (method 4, q80) at a higher score, and faster,
            // which pays for the trellis above. Small variants at q81 keep
            // thumbnails level with sharp's (docs/benchmarks.md).
            webp: WebpSettings {
                quality: 78.0,
                small_quality: 81.0,
                method: 2,
                sharp_yuv: false,
            },
            sharpen: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
    Gif,
    WebP,
}

impl Format {
    /// The format the bytes really are, whatever the upload claimed.
    pub fn sniff(bytes: &[u8]) -> Result<Format, PipelineError> {
        match bytes {
            [0xFF, 0xD8, 0xFF, ..] => Ok(Format::Jpeg),
            [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Ok(Format::Png),
            [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Ok(Format::Gif),
            [
                b'R',
                b'I',
                b'F',
                b'F',
                _,
                _,
                _,
                _,
                b'W',
                b'E',
                b'B',
                b'P',
                ..,
            ] => Ok(Format::WebP),
            [_, _, _, _, b'f', b't', b'y', b'p', brand @ ..] if is_heif(brand) => {
                Err(PipelineError::Unsupported("HEIC/HEIF/AVIF"))
            }
            _ => Err(PipelineError::NotAnImage),
        }
    }

    fn image_format(self) -> image::ImageFormat {
        match self {
            Format::Jpeg => image::ImageFormat::Jpeg,
            Format::Png => image::ImageFormat::Png,
            Format::Gif => image::ImageFormat::Gif,
            Format::WebP => image::ImageFormat::WebP,
        }
    }
}

fn is_heif(brand: &[u8]) -> bool {
    [&b"heic"[..], b"heix", b"hevc", b"mif1", b"msf1", b"avif"]
        .iter()
        .any(|b| brand.starts_with(b))
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PipelineError {
    #[error("the file is not an image")]
    NotAnImage,
    #[error("{0} images are not supported")]
    Unsupported(&'static str),
    #[error("the image is {width}x{height}, over the {limit}-pixel limit")]
    TooManyPixels { width: u32, height: u32, limit: u64 },
    #[error("the image is damaged or truncated: {0}")]
    Corrupt(String),
}

/// One encoded variant.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Processed {
    pub format: Format,
    /// Dimensions of the upright (oriented) image.
    pub width: u32,
    pub height: u32,
    pub variants: Vec<Encoded>,
    pub placeholder: String,
}

fn corrupt(err: impl std::fmt::Display) -> PipelineError {
    PipelineError::Corrupt(err.to_string())
}

/// Runs the whole pipeline on one upload.
pub fn process(bytes: &[u8], options: &Options) -> Result<Processed, PipelineError> {
    let format = Format::sniff(bytes)?;
    let (width, height) = header_dimensions(bytes, format)?;
    if width == 0 || height == 0 {
        return Err(PipelineError::Corrupt("zero-sized image".into()));
    }
    if u64::from(width) * u64::from(height) > options.max_pixels {
        return Err(PipelineError::TooManyPixels {
            width,
            height,
            limit: options.max_pixels,
        });
    }
    let largest = options
        .long_edges
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .max(options.thumbnail);
    let (pixels, orientation) = match format {
        Format::Jpeg if !jpeg_holds_enough_data(bytes, width, height) => {
            return Err(corrupt(
                "the JPEG holds less image data than its dimensions need (truncated?)",
            ));
        }
        Format::Jpeg => decode_jpeg(bytes, width, height, largest)?,
        _ => decode_other(bytes, format, options.max_pixels)?,
    };
    let mut upright = DynamicImage::ImageRgb8(pixels);
    upright.apply_orientation(orientation);
    let upright = upright.into_rgb8();
    // Dimensions of the original, upright: shrink-on-load may have decoded
    // a smaller image.
    let (width, height) = if matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    ) {
        (height, width)
    } else {
        (width, height)
    };

    let mut resizer = Resizer::new();
    let mut variants = Vec::new();
    let mut sizes: Vec<u32> = options.long_edges.clone();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    sizes.dedup();
    // Each size is resized from the previous (larger) one: cheaper, and the
    // quality loss at these ratios is invisible.
    let mut source = upright.clone();
    let mut produced = std::collections::BTreeSet::new();
    for target in sizes {
        let (w, h) = fit(upright.width(), upright.height(), target);
        if !produced.insert((w, h)) {
            continue;
        }
        let resized = resize(&mut resizer, &source, w, h, None)?;
        let ratio = upright.width() as f32 / w as f32;
        encode_both(
            &mut variants,
            &target.to_string(),
            &sharpened(&resized, ratio, options.sharpen),
            options,
        )?;
        source = resized;
    }
    let side = options.thumbnail.min(upright.width()).min(upright.height());
    let square = upright.width().min(upright.height());
    let crop = (
        f64::from(upright.width() - square) / 2.0,
        f64::from(upright.height() - square) / 2.0,
        f64::from(square),
    );
    let thumbnail = resize(&mut resizer, &upright, side, side, Some(crop))?;
    let ratio = square as f32 / side as f32;
    encode_both(
        &mut variants,
        "thumb",
        &sharpened(&thumbnail, ratio, options.sharpen),
        options,
    )?;

    // The placeholder keeps the image's aspect: from the smallest variant.
    let (pw, ph) = fit(source.width(), source.height(), 32);
    let tiny = resize(&mut resizer, &source, pw, ph, None)?;
    let rgba: Vec<u8> = tiny
        .pixels()
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect();
    let (cx, cy) = if width >= height { (4, 3) } else { (3, 4) };
    let placeholder =
        blurhash::encode(cx, cy, tiny.width(), tiny.height(), &rgba).map_err(corrupt)?;

    Ok(Processed {
        format,
        width,
        height,
        variants,
        placeholder,
    })
}

/// `(w, h)` scaled so the long edge is at most `long_edge`, never upscaled.
pub fn fit(width: u32, height: u32, long_edge: u32) -> (u32, u32) {
    let long = width.max(height);
    if long <= long_edge {
        return (width, height);
    }
    let scale = f64::from(long_edge) / f64::from(long);
    let w = ((f64::from(width) * scale).round() as u32).max(1);
    let h = ((f64::from(height) * scale).round() as u32).max(1);
    (w, h)
}

#[doc(hidden)]
pub mod testing;

mod decode;
mod encode;

#[cfg(test)]
use decode::jpeg_scan_bytes;
use decode::{decode_jpeg, decode_other, header_dimensions, jpeg_holds_enough_data};
use encode::{encode_both, resize, sharpened};
pub use encode::{encode_jpeg, encode_webp};

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use image::RgbImage;

    use super::testing::{has_app1, jpeg_with_exif};
    use super::*;
    use proptest::prelude::*;

    fn decode(bytes: &[u8]) -> RgbImage {
        super::testing::decode_variant(bytes)
    }

    #[test]
    fn orientation_6_becomes_portrait_and_metadata_is_gone() {
        let input = jpeg_with_exif(400, 300, 6);
        assert!(has_app1(&input), "the fixture carries EXIF");
        let out = process(&input, &Options::default()).unwrap();
        assert_eq!((out.width, out.height), (300, 400));
        assert_eq!(out.format, Format::Jpeg);
        let jpeg = out.variants.iter().find(|v| v.name == "1600.jpg").unwrap();
        assert_eq!((jpeg.width, jpeg.height), (300, 400), "never upscaled");
        assert!(!has_app1(&jpeg.bytes), "no EXIF/GPS in variants");
        assert!(!jpeg.bytes.windows(4).any(|w| w == b"Exif"));
        // Rotated 90° clockwise: the red top-left corner is now top-right.
        let pixels = decode(&jpeg.bytes);
        assert_eq!(pixels.dimensions(), (300, 400));
        let top_right = pixels.get_pixel(290, 10);
        let top_left = pixels.get_pixel(10, 10);
        assert!(top_right[0] > 150 && top_right[2] < 100, "{top_right:?}");
        assert!(top_left[2] > 150, "{top_left:?}");
        assert!(!out.placeholder.is_empty());
    }

    #[test]
    fn every_jpeg_setting_writes_a_jpeg_a_phone_decodes() {
        let image = RgbImage::from_fn(64, 48, |x, y| {
            image::Rgb([(x * 4) as u8, (y * 5) as u8, 90])
        });
        for trellis in [false, true] {
            for progressive in [false, true] {
                let settings = JpegSettings {
                    quality: 78,
                    trellis,
                    progressive,
                };
                let jpeg = encode_jpeg(&image, &settings).unwrap();
                assert_eq!(decode(&jpeg).dimensions(), (64, 48), "{settings:?}");
                // Start of frame: 0xC2 is progressive, 0xC0 baseline.
                let frame = if progressive { 0xC2 } else { 0xC0 };
                assert!(jpeg.windows(2).any(|w| w == [0xFF, frame]), "{settings:?}");
            }
        }
        let empty = RgbImage::new(0, 0);
        assert!(matches!(
            encode_jpeg(&empty, &Options::default().jpeg),
            Err(PipelineError::Corrupt(_))
        ));
    }

    #[test]
    fn small_variants_get_their_own_webp_quality() {
        let photo = jpeg_with_exif(1000, 750, 1);
        let webp_bytes = |small_quality: f32| {
            let options = Options {
                webp: WebpSettings {
                    small_quality,
                    ..Options::default().webp
                },
                ..Options::default()
            };
            let processed = process(&photo, &options).unwrap();
            let size = |name: &str| {
                processed
                    .variants
                    .iter()
                    .find(|v| v.name == name)
                    .map(|v| v.bytes.len())
                    .unwrap()
            };
            (size("800.webp"), size("320.webp"), size("thumb.webp"))
        };
        let (large_low, small_low, thumb_low) = webp_bytes(5.0);
        let (large_high, small_high, thumb_high) = webp_bytes(100.0);
        assert_eq!(large_low, large_high);
        assert!(small_low < small_high && thumb_low < thumb_high);
    }

    #[test]
    fn variants_have_the_designed_sizes_and_types() {
        let out = process(&jpeg_with_exif(3000, 2000, 1), &Options::default()).unwrap();
        let names: Vec<(&str, u32, u32)> = out
            .variants
            .iter()
            .map(|v| (v.name.as_str(), v.width, v.height))
            .collect();
        assert_eq!(
            names,
            vec![
                ("1600.jpg", 1600, 1067),
                ("1600.webp", 1600, 1067),
                ("800.jpg", 800, 533),
                ("800.webp", 800, 533),
                ("320.jpg", 320, 213),
                ("320.webp", 320, 213),
                ("thumb.jpg", 160, 160),
                ("thumb.webp", 160, 160),
            ]
        );
        for variant in &out.variants {
            let decoded =
                image::DynamicImage::ImageRgb8(super::testing::decode_variant(&variant.bytes));
            assert_eq!(
                (decoded.width(), decoded.height()),
                (variant.width, variant.height),
                "{}",
                variant.name
            );
            let sniffed = Format::sniff(&variant.bytes).unwrap();
            let expected = if variant.content_type == "image/jpeg" {
                Format::Jpeg
            } else {
                Format::WebP
            };
            assert_eq!(sniffed, expected);
        }
        assert_eq!((out.width, out.height), (3000, 2000));
    }

    #[test]
    fn png_with_alpha_is_flattened() {
        let image = image::RgbaImage::from_fn(50, 40, |x, _| {
            image::Rgba([0, 0, 0, if x < 25 { 0 } else { 255 }])
        });
        let mut png = Vec::new();
        image::DynamicImage::ImageRgba8(image)
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let out = process(&png, &Options::default()).unwrap();
        assert_eq!((out.width, out.height), (50, 40));
        let pixels = decode(&out.variants[0].bytes);
        assert!(pixels.get_pixel(2, 20)[0] > 200, "transparent is white");
        assert!(pixels.get_pixel(47, 20)[0] < 60, "opaque black stays black");
    }

    #[test]
    fn bad_inputs_are_named() {
        assert_eq!(
            process(b"hello world, not an image", &Options::default()).unwrap_err(),
            PipelineError::NotAnImage
        );
        assert_eq!(
            process(&[], &Options::default()).unwrap_err(),
            PipelineError::NotAnImage
        );
        let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic";
        assert_eq!(
            process(heic, &Options::default()).unwrap_err(),
            PipelineError::Unsupported("HEIC/HEIF/AVIF")
        );
        let jpeg = jpeg_with_exif(200, 100, 1);
        let truncated = &jpeg[..jpeg.len() / 2];
        assert!(matches!(
            process(truncated, &Options::default()),
            Err(PipelineError::Corrupt(_))
        ));
    }

    #[test]
    fn a_few_hundred_bytes_claiming_a_huge_jpeg_are_refused_before_decoding() {
        // The probe's file: a whole 16x16 JPEG, EOI included, whose header
        // claims 7000x7000.
        let mut jpeg = jpeg_with_exif(16, 16, 1);
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        jpeg[sof + 5..sof + 7].copy_from_slice(&7000u16.to_be_bytes());
        jpeg[sof + 7..sof + 9].copy_from_slice(&7000u16.to_be_bytes());
        assert!(jpeg.len() < 1000, "{} bytes", jpeg.len());
        assert!(matches!(
            process(&jpeg, &Options::default()),
            Err(PipelineError::Corrupt(_))
        ));
        // And cut off inside the scan.
        let sos = jpeg.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        assert!(process(&jpeg[..sos + 40], &Options::default()).is_err());
        // Whole files pass, progressive ones (many scans) included.
        assert!(jpeg_scan_bytes(&jpeg_with_exif(64, 64, 6)).is_some());
        let image = RgbImage::from_pixel(40, 30, image::Rgb([200, 10, 10]));
        for progressive in [false, true] {
            let settings = JpegSettings {
                quality: 80,
                trellis: true,
                progressive,
            };
            let encoded = encode_jpeg(&image, &settings).unwrap();
            assert!(
                jpeg_holds_enough_data(&encoded, 40, 30),
                "progressive {progressive}"
            );
            assert_eq!(jpeg_scan_bytes(&encoded[..encoded.len() - 2]), None);
        }
    }

    #[test]
    fn truncated_pngs_and_webps_are_refused_too() {
        let image =
            DynamicImage::ImageRgb8(RgbImage::from_pixel(300, 200, image::Rgb([9, 80, 200])));
        for format in [image::ImageFormat::Png, image::ImageFormat::WebP] {
            let mut bytes = Vec::new();
            image
                .write_to(&mut Cursor::new(&mut bytes), format)
                .unwrap();
            let cut = &bytes[..bytes.len() * 2 / 3];
            assert!(
                matches!(
                    process(cut, &Options::default()),
                    Err(PipelineError::Corrupt(_))
                ),
                "{format:?}"
            );
        }
    }

    #[test]
    fn bombs_are_refused_from_the_header() {
        // A header claiming 60000x60000 with almost no data: refused before
        // any decoding or allocation.
        let mut jpeg = jpeg_with_exif(16, 16, 1);
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        jpeg[sof + 5..sof + 7].copy_from_slice(&60000u16.to_be_bytes());
        jpeg[sof + 7..sof + 9].copy_from_slice(&60000u16.to_be_bytes());
        assert!(matches!(
            process(&jpeg, &Options::default()),
            Err(PipelineError::TooManyPixels { .. })
        ));
        let options = Options {
            max_pixels: 100,
            ..Options::default()
        };
        assert!(matches!(
            process(&jpeg_with_exif(20, 20, 1), &options),
            Err(PipelineError::TooManyPixels { .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2048), prefix in 0usize..5) {
            let heads: [&[u8]; 5] = [b"", &[0xFF, 0xD8, 0xFF], b"\x89PNG\r\n\x1a\n", b"GIF89a", b"RIFF\0\0\0\0WEBP"];
            let mut input = heads[prefix].to_vec();
            input.extend(bytes);
            let _ = process(&input, &Options::default());
        }

        #[test]
        fn fit_never_upscales_and_keeps_the_long_edge(w in 1u32..10_000, h in 1u32..10_000, edge in 1u32..4000) {
            let (fw, fh) = fit(w, h, edge);
            prop_assert!(fw <= w && fh <= h);
            prop_assert!(fw.max(fh) <= edge.max(w.max(h).min(edge)));
            prop_assert!(fw >= 1 && fh >= 1);
        }
    }
}
