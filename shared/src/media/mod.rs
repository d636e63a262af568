//! Photos from upload to phone: the upload policy S3 enforces, the image
//! pipeline that makes the variants, and the CloudFront signed URLs that
//! serve them.

#[cfg(feature = "cdn")]
pub mod cdn;
#[cfg(feature = "pipeline")]
pub mod pipeline;
#[cfg(feature = "s3")]
pub mod presign;
