//! Response building: JSON bodies, plain-text answers, `metav1.Status` errors and
//! warning headers.

use crate::error::ApiError;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::{Response, StatusCode};
use serde_json::Value;
use std::convert::Infallible;

pub type Body = BoxBody<Bytes, Infallible>;

fn json_body(value: &Value) -> Body {
    Full::new(Bytes::from(serde_json::to_vec(value).unwrap_or_default())).boxed()
}

pub fn respond(code: u16, value: &Value) -> Response<Body> {
    respond_with_type(code, value, "application/json")
}

/// A response whose JSON body is already encoded.
pub fn respond_raw(code: u16, body: Bytes) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::OK))
        .header("Content-Type", "application/json")
        .body(Full::new(body).boxed())
        .expect("static response parts are valid")
}

pub fn respond_with_type(code: u16, value: &Value, content_type: &str) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::OK))
        .header("Content-Type", content_type)
        .body(json_body(value))
        .expect("static response parts are valid")
}

pub fn text(code: u16, body: &'static str) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("Content-Type", "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from_static(body.as_bytes())).boxed())
        .expect("static response parts are valid")
}

pub fn error_response(e: &ApiError) -> Response<Body> {
    let mut response = respond(e.code, &e.to_status());
    // As kube-apiserver: the wait a 429 asks for is also a Retry-After header.
    if let Some(seconds) = e
        .details
        .as_ref()
        .and_then(|d| d.get("retryAfterSeconds"))
        .and_then(serde_json::Value::as_u64)
    {
        response
            .headers_mut()
            .insert("Retry-After", hyper::header::HeaderValue::from(seconds));
    }
    response
}

/// Admission warnings, as `Warning: 299` headers.
pub fn with_warnings(mut response: Response<Body>, warnings: &[String]) -> Response<Body> {
    for w in warnings {
        let value = format!("299 - {:?}", w);
        if let Ok(v) = hyper::header::HeaderValue::from_str(&value) {
            response.headers_mut().append("Warning", v);
        }
    }
    response
}
