//! What a phone on a cellular link should not pay for twice: validators and
//! cache headers, and compression, for every JSON answer. API Gateway HTTP
//! APIs do neither themselves.
//!
//! - Every answer says how it may be cached: `no-store` for public routes
//!   (token responses among them, as OAuth requires), `private, no-cache`
//!   for a caller's own data (a phone may keep it, and revalidates).
//! - A `GET` answered `200` with a body carries a strong `ETag` (a hash of
//!   the body); `If-None-Match` with it answers `304` with no body.
//! - A JSON body over [`COMPRESS_ABOVE`] bytes is sent compressed when the
//!   client accepts it: Brotli if it says `br`, else gzip; `Vary:
//!   Accept-Encoding` says so to caches.

use std::io::Write;

use lambda_http::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, ETAG, IF_NONE_MATCH, VARY,
};
use lambda_http::http::{HeaderMap, HeaderValue, Method};
use lambda_http::{Body, Response};
use sha2::{Digest, Sha256};

use crate::Access;

/// Smaller bodies fit one packet anyway; compressing them only costs CPU.
pub const COMPRESS_ABOVE: usize = 1024;

/// The request's side of delivery: what it accepts and already holds.
#[derive(Debug, Default)]
pub(crate) struct Negotiation {
    method: Method,
    if_none_match: Option<String>,
    accepts_br: bool,
    accepts_gzip: bool,
    access: Option<Access>,
}

impl Negotiation {
    pub(crate) fn of(method: &Method, headers: &HeaderMap, access: Option<Access>) -> Self {
        let header = |name| {
            headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let accepted = header(ACCEPT_ENCODING).unwrap_or_default();
        let accepts = |coding: &str| {
            accepted.split(',').any(|part| {
                let mut pieces = part.split(';');
                let name = pieces.next().unwrap_or("").trim();
                let refused = pieces.any(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.trim().parse::<f32>().ok())
                        == Some(0.0)
                });
                name.eq_ignore_ascii_case(coding) && !refused
            })
        };
        Self {
            method: method.clone(),
            if_none_match: header(IF_NONE_MATCH),
            accepts_br: accepts("br"),
            accepts_gzip: accepts("gzip"),
            access,
        }
    }

    /// The response as delivered: cache headers, validator or `304`, and
    /// the body compressed if that pays.
    pub(crate) fn deliver(&self, response: Response<Body>) -> Response<Body> {
        let (mut parts, body) = response.into_parts();
        let cache = match self.access {
            Some(Access::Session) => "private, no-cache",
            _ => "no-store",
        };
        parts
            .headers
            .insert(CACHE_CONTROL, HeaderValue::from_static(cache));
        let Body::Text(text) = body else {
            return Response::from_parts(parts, body);
        };
        parts
            .headers
            .insert(VARY, HeaderValue::from_static("accept-encoding"));
        if self.method == Method::GET && parts.status == 200 {
            let tag = etag(text.as_bytes());
            if let Ok(value) = HeaderValue::from_str(&tag) {
                parts.headers.insert(ETAG, value);
            }
            if self
                .if_none_match
                .as_deref()
                .is_some_and(|held| matches_etag(held, &tag))
            {
                parts.status = lambda_http::http::StatusCode::NOT_MODIFIED;
                parts.headers.remove("content-type");
                return Response::from_parts(parts, Body::Empty);
            }
        }
        let compressed = if text.len() <= COMPRESS_ABOVE {
            None
        } else if self.accepts_br {
            brotli_bytes(text.as_bytes()).map(|bytes| ("br", bytes))
        } else if self.accepts_gzip {
            gzip_bytes(text.as_bytes()).map(|bytes| ("gzip", bytes))
        } else {
            None
        };
        match compressed {
            Some((coding, bytes)) if bytes.len() < text.len() => {
                parts
                    .headers
                    .insert(CONTENT_ENCODING, HeaderValue::from_static(coding));
                Response::from_parts(parts, Body::Binary(bytes))
            }
            _ => Response::from_parts(parts, Body::Text(text)),
        }
    }
}

/// A strong validator: the first 16 bytes of the body's SHA-256, in hex.
pub fn etag(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// `If-None-Match`: `*`, or a list of tags one of which is ours (a weak
/// `W/` form compares equal, as RFC 9110's weak comparison for GET).
fn matches_etag(held: &str, ours: &str) -> bool {
    held.split(',').any(|tag| {
        let tag = tag.trim();
        tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == ours
    })
}

fn gzip_bytes(body: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::new(6),
    );
    encoder.write_all(body).ok()?;
    encoder.finish().ok()
}

fn brotli_bytes(body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len() / 4);
    // Quality 5: most of the ratio for a fraction of the CPU of 11.
    let params = brotli::enc::BrotliEncoderParams {
        quality: 5,
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &body[..], &mut out, &params).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn json_response(body: &str) -> Response<Body> {
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(Body::Text(body.to_string()))
            .unwrap()
    }

    fn negotiation(method: Method, headers: &[(&str, &str)], access: Access) -> Negotiation {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(
                lambda_http::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        Negotiation::of(&method, &map, Some(access))
    }

    fn big() -> String {
        let items: Vec<String> = (0..100)
            .map(|i| format!(r#"{{"mediaId":"m-{i}","status":"ready","width":1600}}"#))
            .collect();
        format!("[{}]", items.join(","))
    }

    #[test]
    fn large_bodies_are_compressed_as_accepted_and_small_ones_are_not() {
        let gzip = negotiation(
            Method::GET,
            &[("accept-encoding", "gzip, deflate")],
            Access::Session,
        )
        .deliver(json_response(&big()));
        assert_eq!(gzip.headers()[CONTENT_ENCODING], "gzip");
        assert_eq!(gzip.headers()[VARY], "accept-encoding");
        let Body::Binary(bytes) = gzip.body() else {
            panic!("compressed")
        };
        let mut text = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, big());

        let br = negotiation(
            Method::GET,
            &[("accept-encoding", "gzip, br")],
            Access::Session,
        )
        .deliver(json_response(&big()));
        assert_eq!(br.headers()[CONTENT_ENCODING], "br");
        let Body::Binary(bytes) = br.body() else {
            panic!("compressed")
        };
        let mut text = Vec::new();
        brotli::BrotliDecompress(&mut &bytes[..], &mut text).unwrap();
        assert_eq!(String::from_utf8(text).unwrap(), big());

        let refused = negotiation(
            Method::GET,
            &[("accept-encoding", "br;q=0, identity")],
            Access::Session,
        )
        .deliver(json_response(&big()));
        assert!(refused.headers().get(CONTENT_ENCODING).is_none());
        let small = negotiation(Method::GET, &[("accept-encoding", "gzip")], Access::Session)
            .deliver(json_response(r#"{"status":"ok"}"#));
        assert!(small.headers().get(CONTENT_ENCODING).is_none());
        let none = negotiation(Method::GET, &[], Access::Session).deliver(json_response(&big()));
        assert!(none.headers().get(CONTENT_ENCODING).is_none());
    }

    #[test]
    fn a_held_etag_answers_304_without_a_body() {
        let first = negotiation(Method::GET, &[], Access::Session).deliver(json_response(&big()));
        let tag = first.headers()[ETAG].to_str().unwrap().to_string();
        assert_eq!(tag, etag(big().as_bytes()));
        assert!(
            tag.starts_with('"') && tag.len() == 34,
            "a strong tag: {tag}"
        );
        for held in [
            tag.clone(),
            format!("W/{tag}"),
            format!("\"other\", {tag}"),
            "*".into(),
        ] {
            let again = negotiation(Method::GET, &[("if-none-match", &held)], Access::Session)
                .deliver(json_response(&big()));
            assert_eq!(again.status(), 304, "{held}");
            assert!(matches!(again.body(), Body::Empty));
            assert_eq!(again.headers()[ETAG], tag.as_str());
            assert_eq!(again.headers()[CACHE_CONTROL], "private, no-cache");
        }
        let changed = negotiation(
            Method::GET,
            &[("if-none-match", "\"other\"")],
            Access::Session,
        )
        .deliver(json_response(&big()));
        assert_eq!(changed.status(), 200);
        // Only GETs carry validators.
        let post = negotiation(Method::POST, &[("if-none-match", &tag)], Access::Session)
            .deliver(json_response(&big()));
        assert_eq!(post.status(), 200);
        assert!(post.headers().get(ETAG).is_none());
    }

    #[test]
    fn public_answers_are_not_stored_and_private_ones_revalidate() {
        let tokens = negotiation(Method::POST, &[], Access::Public)
            .deliver(json_response(r#"{"accessToken":"t"}"#));
        assert_eq!(tokens.headers()[CACHE_CONTROL], "no-store");
        let me = negotiation(Method::GET, &[], Access::Session).deliver(json_response("{}"));
        assert_eq!(me.headers()[CACHE_CONTROL], "private, no-cache");
    }
}
