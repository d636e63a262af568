//! Reading an upload: its dimensions from the header alone, whether its
//! data can be all there, and the decode itself, with limits set first.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use super::{Format, PipelineError, corrupt, fit};

pub(super) fn header_dimensions(bytes: &[u8], format: Format) -> Result<(u32, u32), PipelineError> {
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

/// Whether a JPEG runs to its end-of-image marker with at least the scan
/// data its dimensions need. `jpeg-decoder` fills in whatever the scans
/// lack, so a few hundred bytes claiming 7000x7000 would otherwise decode
/// as a grey photo (and cost 150 MB to do so). Every 8x8 block codes at
/// least its DC difference, one bit at the very least with Huffman coding
/// (the only kind decoded here), so the scans hold at least one bit per
/// luma block.
pub(super) fn jpeg_holds_enough_data(bytes: &[u8], width: u32, height: u32) -> bool {
    let blocks = u64::from(width.div_ceil(8)) * u64::from(height.div_ceil(8));
    jpeg_scan_bytes(bytes).is_some_and(|scanned| scanned as u64 * 8 >= blocks)
}

/// The bytes of a JPEG's entropy-coded scan data, if its segments and scans
/// run to an end-of-image marker (None for a truncated file). Segments are
/// skipped by their length (an embedded thumbnail's EOI is inside one);
/// scan data ends at the first marker that is neither a stuffed 0xFF00 nor
/// a restart.
pub(super) fn jpeg_scan_bytes(bytes: &[u8]) -> Option<usize> {
    let mut pos = 2;
    let mut scanned = None;
    while pos + 1 < bytes.len() {
        if bytes[pos] != 0xFF {
            return None;
        }
        let marker = bytes[pos + 1];
        match marker {
            0xFF => pos += 1,
            0xD9 => return scanned,
            0x01 | 0xD0..=0xD7 => pos += 2,
            _ => {
                let length = bytes.get(pos + 2..pos + 4)?;
                pos += 2 + usize::from(u16::from_be_bytes([length[0], length[1]]));
                if marker == 0xDA {
                    let start = pos;
                    let marker_at = |pos: usize| {
                        bytes[pos] == 0xFF && !matches!(bytes[pos + 1], 0x00 | 0xD0..=0xD7)
                    };
                    while pos + 1 < bytes.len() && !marker_at(pos) {
                        pos += 1;
                    }
                    scanned = Some(scanned.unwrap_or(0) + pos.saturating_sub(start));
                }
            }
        }
    }
    None
}

/// JPEG through `jpeg-decoder`, which can run the inverse DCT at 1/2, 1/4 or
/// 1/8 scale: a 12 MP photo whose largest variant is 1600 px decodes at
/// 2000x1500, a quarter of the pixels.
pub(super) fn decode_jpeg(
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
pub(super) fn decode_other(
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
pub(super) fn flatten(image: DynamicImage) -> RgbImage {
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
