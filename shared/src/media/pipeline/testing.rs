//! Test inputs: real JPEGs with EXIF orientation and GPS tags, built here so
//! the tests do not depend on binary fixtures.

use image::RgbImage;

/// A variant's pixels as a phone decodes them. JPEGs go through
/// `jpeg-decoder`, which reads them as libjpeg-turbo does (`image`'s
/// own decoder, zune-jpeg 0.5.15, misread some optimised Huffman
/// tables).
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
    // Baseline, as cameras write them.
    let mut jpeg = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
    jpeg.set_fastest_defaults();
    jpeg.set_size(width as usize, height as usize);
    jpeg.set_quality(90.0);
    let mut started = jpeg.start_compress(Vec::new()).expect("in memory");
    started.write_marker(mozjpeg::Marker::APP(1), &exif(orientation));
    started
        .write_scanlines(image.as_raw())
        .expect("whole scanlines");
    started.finish().expect("in memory")
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
