//! Writing the variants: resizing, sharpening, and the JPEG (mozjpeg) and
//! WebP (libwebp) encoders with the settings the benchmarks chose.

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;

use super::{
    Encoded, JpegSettings, Options, PipelineError, SMALL_VARIANT_EDGE, Sharpen, WebpSettings,
    corrupt,
};

pub(super) fn resize(
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
pub(super) fn sharpened(
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
    // libjpeg reports errors by unwinding (an abort in the release
    // profile); the only ones an RGB buffer of ours can meet are sizes it
    // cannot hold, so those are refused first.
    if w == 0 || h == 0 || w > JPEG_MAX_SIDE || h > JPEG_MAX_SIDE {
        return Err(PipelineError::Corrupt(format!(
            "a {w}x{h} JPEG cannot be written"
        )));
    }
    let mut jpeg = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
    if settings.trellis {
        // mozjpeg's defaults are progressive with a scan search.
        if !settings.progressive {
            jpeg.set_optimize_scans(false);
        }
    } else {
        // libjpeg-turbo's encoder, byte for byte.
        jpeg.set_fastest_defaults();
        if settings.progressive {
            jpeg.set_progressive_mode();
        }
    }
    jpeg.set_size(w as usize, h as usize);
    jpeg.set_quality(f32::from(settings.quality));
    jpeg.set_optimize_coding(true);
    jpeg.set_chroma_sampling_pixel_sizes((2, 2), (2, 2));
    let mut started = jpeg.start_compress(Vec::new()).map_err(corrupt)?;
    started.write_scanlines(image.as_raw()).map_err(corrupt)?;
    started.finish().map_err(corrupt)
}

/// libjpeg's limit on either side.
pub(super) const JPEG_MAX_SIDE: u32 = 65_500;

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

pub(super) fn encode_both(
    out: &mut Vec<Encoded>,
    name: &str,
    image: &RgbImage,
    options: &Options,
) -> Result<(), PipelineError> {
    let (w, h) = image.dimensions();
    let webp = if w.max(h) <= SMALL_VARIANT_EDGE {
        WebpSettings {
            quality: options.webp.small_quality,
            ..options.webp
        }
    } else {
        options.webp
    };
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
        bytes: encode_webp(image, &webp)?,
    });
    Ok(())
}
