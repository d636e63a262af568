//! The image pipeline: bytes in, safe variants out. Pure and synchronous:
//! no AWS, no Lambda, so it is tested and benchmarked on its own.
//!
//! Sniff the real format from magic bytes; read dimensions from the header
//! and refuse bombs before decoding; decode (JPEG with DCT-domain
//! shrink-on-load when the largest variant is much smaller); apply the EXIF
//! orientation; re-encode from pixels only, so no metadata (EXIF, GPS, XMP,
//! ICC) survives; resize with `fast_image_resize` (SIMD); encode JPEG and
//! WebP; compute a BlurHash placeholder.

use std::io::Cursor;

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

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

/// How JPEG variants are encoded (`jpeg-encoder`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JpegSettings {
    pub quality: u8,
    /// Huffman tables fitted to the image (a second pass over the
    /// coefficients; off by default in `jpeg-encoder`).
    pub optimize_huffman: bool,
    pub progressive: bool,
    /// 4:2:0 chroma (halved both ways) instead of 4:4:4.
    pub subsample_chroma: bool,
}

/// How WebP variants are encoded (libwebp).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WebpSettings {
    pub quality: f32,
    /// 0 (fast) to 6 (smallest).
    pub method: i32,
    /// libwebp's sharp RGB->YUV conversion (crisper chroma edges).
    pub sharp_yuv: bool,
}

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
            // Optimised Huffman tables: 5% smaller at no cost in quality;
            // q80 then matches sharp's JPEG bytes at its quality.
            jpeg: JpegSettings {
                quality: 80,
                optimize_huffman: true,
                progressive: false,
                subsample_chroma: true,
            },
            // q79 at method 4: below sharp's WebP bytes, above its quality;
            // method 6 saves 3% more but would make us slower than sharp.
            webp: WebpSettings {
                quality: 79.0,
                method: 4,
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

fn header_dimensions(bytes: &[u8], format: Format) -> Result<(u32, u32), PipelineError> {
    if format == Format::Jpeg {
        let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
        decoder.read_info().map_err(corrupt)?;
        let info = decoder
            .info()
            .ok_or_else(|| corrupt("no JPEG frame header"))?;
        return Ok((u32::from(info.width), u32::from(info.height)));
    }
    ImageReader::with_format(Cursor::new(bytes), format.image_format())
        .into_dimensions()
        .map_err(corrupt)
}

/// JPEG through `jpeg-decoder`, which can run the inverse DCT at 1/2, 1/4 or
/// 1/8 scale: a 12 MP photo whose largest variant is 1600 px decodes at
/// 2000x1500, a quarter of the pixels.
fn decode_jpeg(
    bytes: &[u8],
    width: u32,
    height: u32,
    largest: u32,
) -> Result<(RgbImage, Orientation), PipelineError> {
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    decoder.read_info().map_err(corrupt)?;
    let (tw, th) = fit(width, height, largest);
    decoder
        .scale(
            tw.min(u32::from(u16::MAX)) as u16,
            th.min(u32::from(u16::MAX)) as u16,
        )
        .map_err(corrupt)?;
    let data = decoder.decode().map_err(corrupt)?;
    let info = decoder
        .info()
        .ok_or_else(|| corrupt("no JPEG frame header"))?;
    let orientation = decoder
        .exif_data()
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    let rgb: Vec<u8> = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => data,
        jpeg_decoder::PixelFormat::L8 => data.iter().flat_map(|&l| [l, l, l]).collect(),
        jpeg_decoder::PixelFormat::L16 => data
            .chunks_exact(2)
            .flat_map(|l| [l[0], l[0], l[0]])
            .collect(),
        // Adobe CMYK JPEGs store inverted values.
        jpeg_decoder::PixelFormat::CMYK32 => data
            .chunks_exact(4)
            .flat_map(|p| {
                let k = u16::from(p[3]);
                [p[0], p[1], p[2]].map(|c| ((u16::from(c) * k) / 255) as u8)
            })
            .collect(),
    };
    let image = RgbImage::from_raw(w, h, rgb).ok_or_else(|| corrupt("JPEG pixel data is short"))?;
    Ok((image, orientation))
}

/// PNG, GIF (first frame) and WebP through `image`, with allocation limits.
fn decode_other(
    bytes: &[u8],
    format: Format,
    max_pixels: u64,
) -> Result<(RgbImage, Orientation), PipelineError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_pixels * 8);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let image = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    Ok((flatten(image), orientation))
}

/// Transparent pixels over white: the variants are opaque.
fn flatten(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    let (w, h) = rgba.dimensions();
    let data = rgba
        .pixels()
        .flat_map(|p| {
            let a = u16::from(p[3]);
            [p[0], p[1], p[2]].map(|c| ((u16::from(c) * a + 255 * (255 - a)) / 255) as u8)
        })
        .collect();
    RgbImage::from_raw(w, h, data).expect("same dimensions")
}

fn resize(
    resizer: &mut Resizer,
    source: &RgbImage,
    width: u32,
    height: u32,
    crop: Option<(f64, f64, f64)>,
) -> Result<RgbImage, PipelineError> {
    let src = Image::from_vec_u8(
        source.width(),
        source.height(),
        source.as_raw().clone(),
        PixelType::U8x3,
    )
    .map_err(corrupt)?;
    let mut dst = Image::new(width, height, PixelType::U8x3);
    let mut options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    if let Some((left, top, side)) = crop {
        options = options.crop(left, top, side, side);
    }
    resizer.resize(&src, &mut dst, &options).map_err(corrupt)?;
    RgbImage::from_raw(width, height, dst.into_vec())
        .ok_or_else(|| corrupt("resize output is short"))
}

/// `image` with an unsharp mask, if it was shrunk enough to ask for one
/// (a large downscale softens edges).
fn sharpened(
    image: &RgbImage,
    ratio: f32,
    sharpen: Option<Sharpen>,
) -> std::borrow::Cow<'_, RgbImage> {
    match sharpen {
        Some(s) if ratio >= s.min_ratio => {
            let blurred = image::imageops::blur(image, s.sigma);
            let mut out = image.clone();
            for (o, b) in out.pixels_mut().zip(blurred.pixels()) {
                for c in 0..3 {
                    let v = f32::from(o[c]) + s.amount * (f32::from(o[c]) - f32::from(b[c]));
                    o[c] = v.round().clamp(0.0, 255.0) as u8;
                }
            }
            std::borrow::Cow::Owned(out)
        }
        _ => std::borrow::Cow::Borrowed(image),
    }
}

/// A JPEG of `image` with these settings.
pub fn encode_jpeg(image: &RgbImage, settings: &JpegSettings) -> Result<Vec<u8>, PipelineError> {
    let (w, h) = image.dimensions();
    let mut jpeg = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut jpeg, settings.quality);
    encoder.set_optimized_huffman_tables(settings.optimize_huffman);
    encoder.set_progressive(settings.progressive);
    encoder.set_sampling_factor(if settings.subsample_chroma {
        jpeg_encoder::SamplingFactor::F_2_2
    } else {
        jpeg_encoder::SamplingFactor::F_1_1
    });
    encoder
        .encode(
            image.as_raw(),
            w as u16,
            h as u16,
            jpeg_encoder::ColorType::Rgb,
        )
        .map_err(corrupt)?;
    Ok(jpeg)
}

/// A WebP of `image` with these settings.
pub fn encode_webp(image: &RgbImage, settings: &WebpSettings) -> Result<Vec<u8>, PipelineError> {
    let (w, h) = image.dimensions();
    let mut config = webp::WebPConfig::new().map_err(|()| corrupt("libwebp's config"))?;
    config.quality = settings.quality;
    config.method = settings.method;
    config.use_sharp_yuv = i32::from(settings.sharp_yuv);
    let webp = webp::Encoder::from_rgb(image.as_raw(), w, h)
        .encode_advanced(&config)
        .map_err(|err| corrupt(format!("{err:?}")))?;
    Ok(webp.to_vec())
}

fn encode_both(
    out: &mut Vec<Encoded>,
    name: &str,
    image: &RgbImage,
    options: &Options,
) -> Result<(), PipelineError> {
    let (w, h) = image.dimensions();
    out.push(Encoded {
        name: format!("{name}.jpg"),
        width: w,
        height: h,
        content_type: "image/jpeg",
        bytes: encode_jpeg(image, &options.jpeg)?,
    });
    out.push(Encoded {
        name: format!("{name}.webp"),
        width: w,
        height: h,
        content_type: "image/webp",
        bytes: encode_webp(image, &options.webp)?,
    });
    Ok(())
}

/// Test inputs: real JPEGs with EXIF orientation and GPS tags, built here so
/// the tests do not depend on binary fixtures.
#[doc(hidden)]
pub mod testing {
    use image::RgbImage;

    /// A variant's pixels as a phone decodes them. JPEGs go through
    /// `jpeg-decoder`, which reads them as libjpeg-turbo does: `image`'s
    /// own JPEG decoder (zune-jpeg 0.5.15) misreads `jpeg-encoder`'s
    /// optimised Huffman tables (libjpeg-turbo, libvips and `jpeg-decoder`
    /// agree on the pixels).
    pub fn decode_variant(bytes: &[u8]) -> RgbImage {
        if bytes.starts_with(&[0xFF, 0xD8]) {
            let mut decoder = jpeg_decoder::Decoder::new(std::io::Cursor::new(bytes));
            let pixels = decoder.decode().expect("a JPEG variant decodes");
            let info = decoder.info().expect("a JPEG frame header");
            let rgb = match info.pixel_format {
                jpeg_decoder::PixelFormat::L8 => pixels.iter().flat_map(|&l| [l, l, l]).collect(),
                _ => pixels,
            };
            RgbImage::from_raw(u32::from(info.width), u32::from(info.height), rgb)
                .expect("whole pixels")
        } else {
            image::load_from_memory(bytes)
                .expect("a variant decodes")
                .into_rgb8()
        }
    }

    /// A `width`x`height` JPEG whose top-left quarter is red and the rest
    /// blue, tagged with EXIF `orientation` and a GPS position.
    pub fn jpeg_with_exif(width: u32, height: u32, orientation: u16) -> Vec<u8> {
        let image = RgbImage::from_fn(width, height, |x, y| {
            if x < width / 2 && y < height / 2 {
                image::Rgb([230, 20, 20])
            } else {
                image::Rgb([20, 20, 230])
            }
        });
        let mut out = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut out, 90);
        encoder
            .add_app_segment(1, exif(orientation))
            .expect("a small segment");
        encoder
            .encode(
                image.as_raw(),
                width as u16,
                height as u16,
                jpeg_encoder::ColorType::Rgb,
            )
            .expect("encodable");
        out
    }

    /// `Exif\0\0` + a little-endian TIFF with IFD0 {Orientation, GPS IFD
    /// pointer} and a GPS IFD {GPSLatitudeRef = N, GPSLongitudeRef = E}.
    fn exif(orientation: u16) -> Vec<u8> {
        let mut t: Vec<u8> = b"II*\0".to_vec();
        t.extend(8u32.to_le_bytes()); // IFD0 at 8
        t.extend(2u16.to_le_bytes()); // 2 entries
        t.extend([0x12, 0x01, 3, 0]); // 0x0112 Orientation, SHORT
        t.extend(1u32.to_le_bytes());
        t.extend(u32::from(orientation).to_le_bytes());
        t.extend([0x25, 0x88, 4, 0]); // 0x8825 GPS IFD pointer, LONG
        t.extend(1u32.to_le_bytes());
        t.extend(38u32.to_le_bytes()); // GPS IFD right after IFD0
        t.extend(0u32.to_le_bytes()); // no next IFD
        t.extend(2u16.to_le_bytes()); // GPS IFD: 2 entries
        t.extend([0x01, 0x00, 2, 0]); // GPSLatitudeRef, ASCII
        t.extend(2u32.to_le_bytes());
        t.extend([b'N', 0, 0, 0]);
        t.extend([0x03, 0x00, 2, 0]); // GPSLongitudeRef, ASCII
        t.extend(2u32.to_le_bytes());
        t.extend([b'E', 0, 0, 0]);
        t.extend(0u32.to_le_bytes());
        let mut segment = b"Exif\0\0".to_vec();
        segment.extend(t);
        segment
    }

    /// Whether JPEG bytes carry an APP1 (EXIF/XMP) segment.
    pub fn has_app1(jpeg: &[u8]) -> bool {
        let mut i = 2;
        while i + 4 <= jpeg.len() && jpeg[i] == 0xFF {
            let marker = jpeg[i + 1];
            if marker == 0xE1 {
                return true;
            }
            if marker == 0xDA {
                return false;
            }
            let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
            i += 2 + len;
        }
        false
    }
}

#[cfg(test)]
mod tests {
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
