//! What the quality benchmarks share: the photos upright, the reference
//! each variant is scored against, and SSIMULACRA2's frames.

// Each example uses its part.
#![allow(dead_code)]

use std::path::Path;

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use shared::media::pipeline::testing::decode_variant as decode;
use ssimulacra2::{ColorPrimaries, Rgb, TransferCharacteristic};

/// The reference for a variant of `width`x`height` (square: the thumbnail).
pub fn reference(upright: &RgbImage, width: u32, height: u32) -> RgbImage {
    let src = Image::from_vec_u8(
        upright.width(),
        upright.height(),
        upright.as_raw().clone(),
        PixelType::U8x3,
    )
    .unwrap();
    let mut dst = Image::new(width, height, PixelType::U8x3);
    let mut options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    let thumbnail = width == height && upright.width() != upright.height();
    if thumbnail {
        let side = upright.width().min(upright.height());
        options = options.crop(
            f64::from(upright.width() - side) / 2.0,
            f64::from(upright.height() - side) / 2.0,
            f64::from(side),
            f64::from(side),
        );
    }
    Resizer::new().resize(&src, &mut dst, &options).unwrap();
    RgbImage::from_raw(width, height, dst.into_vec()).unwrap()
}

pub fn frame(image: &RgbImage) -> Rgb {
    let data = image
        .pixels()
        .map(|p| {
            [
                p[0] as f32 / 255.0,
                p[1] as f32 / 255.0,
                p[2] as f32 / 255.0,
            ]
        })
        .collect();
    Rgb::new(
        data,
        image.width() as usize,
        image.height() as usize,
        TransferCharacteristic::SRGB,
        ColorPrimaries::BT709,
    )
    .unwrap()
}

pub struct Photo {
    pub name: String,
    pub bytes: Vec<u8>,
    pub upright: RgbImage,
}

pub fn load(path: &Path) -> Photo {
    let bytes = std::fs::read(path).unwrap();
    let mut decoder = image::ImageReader::new(std::io::Cursor::new(&bytes))
        .with_guessed_format()
        .unwrap()
        .into_decoder()
        .unwrap();
    let orientation = image::ImageDecoder::orientation(&mut decoder).unwrap();
    drop(decoder);
    let mut image = image::DynamicImage::ImageRgb8(decode(&bytes));
    image.apply_orientation(orientation);
    Photo {
        name: path.file_stem().unwrap().to_string_lossy().into_owned(),
        bytes,
        upright: image.into_rgb8(),
    }
}
