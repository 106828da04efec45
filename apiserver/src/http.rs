//! The HTTP surface: authentication, reading the request, and routing Kubernetes paths to
//! discovery, OpenAPI, the handlers and watches, with failures as `metav1.Status` errors.

use crate::error::{ApiError, ApiResult};
use crate::request::{Client, Req, Target};
use crate::resources::ResourceType;
use crate::response::{Body, error_response, respond, respond_with_type, text};
use crate::state::State;
use crate::{discovery, handlers, openapi, watch};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use std::collections::HashMap;
use std::sync::Arc;

/// Request bodies above etcd's default value size are refused with 413.
pub const MAX_BODY: usize = 3 * 1024 * 1024;
/// Bodies up to this size are read to the end before a 413, so the client, still
/// sending, reads the answer instead of a reset connection; larger ones are cut off.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;

/// Entry point for every request.
pub async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    if matches!(path.as_str(), "/healthz" | "/livez" | "/readyz") {
        return text(200, "ok");
    }
    if !authorized(&state, &req) {
        return error_response(&ApiError::unauthorized());
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (accept, content_type, user_agent) = (
        header("accept"),
        header("content-type"),
        header("user-agent"),
    );
    let query: HashMap<String, String> = req
        .uri()
        .query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .filter(|(k, _)| !k.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let method = req.method().clone();
    let client = req.extensions().get::<Client>().copied();
    let body = match Limited::new(req.into_body(), DRAIN_LIMIT).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return error_response(&ApiError::too_large());
        }
        Err(e) => {
            return error_response(&ApiError::bad_request(format!(
                "reading the request body: {e}"
            )));
        }
    };
    if body.len() > MAX_BODY {
        return error_response(&ApiError::too_large());
    }
    let req = Req {
        client,
        method,
        query,
        accept,
        content_type,
        user_agent,
        body,
    };
    let started = std::time::Instant::now();
    let response = route(&state, &path, &req)
        .await
        .unwrap_or_else(|e| error_response(&e));
    tracing::debug!(method = %req.method, %path, status = response.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "request");
    response
}

fn authorized(state: &State, req: &Request<Incoming>) -> bool {
    let Some(value) = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(token) = value.strip_prefix("Bearer ") else {
        return false;
    };
    // Constant-time comparison: the token is the only credential.
    let (a, b) = (token.trim().as_bytes(), state.token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn route(state: &Arc<State>, path: &str, req: &Req) -> ApiResult<Response<Body>> {
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let get_only = || {
        if req.method == Method::GET {
            Ok(())
        } else {
            Err(ApiError::method_not_allowed())
        }
    };
    match segments.as_slice() {
        ["version"] => {
            get_only()?;
            Ok(respond(200, &discovery::version()))
        }
        ["api"] | ["apis"] if discovery::aggregated_version(&req.accept).is_some() => {
            get_only()?;
            let version = discovery::aggregated_version(&req.accept).unwrap_or("v2");
            let doc = discovery::aggregated(&state.registry, segments[0] == "api", version);
            let content_type = format!(
                "application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"
            );
            Ok(respond_with_type(200, &doc, &content_type))
        }
        ["api"] => {
            get_only()?;
            Ok(respond(200, &discovery::api_versions(&state.address)))
        }
        ["apis"] => {
            get_only()?;
            Ok(respond(200, &discovery::api_group_list(&state.registry)))
        }
        ["apis", group] => {
            get_only()?;
            discovery::api_group(&state.registry, group)
                .map(|d| respond(200, &d))
                .ok_or_else(ApiError::no_route)
        }
        ["api", "v1"] => {
            get_only()?;
            discovery::resource_list(&state.registry, "", "v1")
                .map(|d| respond(200, &d))
                .ok_or_else(ApiError::no_route)
        }
        ["apis", group, version] => {
            get_only()?;
            discovery::resource_list(&state.registry, group, version)
                .map(|d| respond(200, &d))
                .ok_or_else(ApiError::no_route)
        }
        ["openapi", "v2"]
            if req.accept.is_empty()
                || req.accept.contains("json")
                || req.accept.contains("*/*") =>
        {
            get_only()?;
            Ok(respond(200, &openapi::v2(&state.registry)))
        }
        ["openapi", "v3"] => {
            get_only()?;
            Ok(respond(200, &openapi::root(&state.registry)))
        }
        ["openapi", "v3", "api", version] => {
            get_only()?;
            openapi::document(&state.registry, "", version)
                .map(|d| respond(200, &d))
                .ok_or_else(ApiError::no_route)
        }
        ["openapi", "v3", "apis", group, version] => {
            get_only()?;
            openapi::document(&state.registry, group, version)
                .map(|d| respond(200, &d))
                .ok_or_else(ApiError::no_route)
        }
        ["api", "v1", rest @ ..] => resource(state, "", "v1", rest, req).await,
        ["apis", group, version, rest @ ..] => resource(state, group, version, rest, req).await,
        _ => Err(ApiError::no_route()),
    }
}

fn target(state: &State, group: &str, version: &str, rest: &[&str]) -> ApiResult<Target> {
    let find = |plural: &str| {
        state
            .registry
            .find(group, version, plural)
            .ok_or_else(ApiError::no_route)
    };
    let build = |rt: Arc<ResourceType>,
                 namespace: Option<&str>,
                 name: Option<&str>,
                 sub: Option<&str>| Target {
        rt,
        namespace: namespace.map(str::to_owned),
        name: name.map(str::to_owned),
        subresource: sub.map(str::to_owned),
    };
    let namespaced_path = |rest: &[&str]| -> ApiResult<Target> {
        let (ns, plural, tail) = (rest[1], rest[2], &rest[3..]);
        let rt = find(plural)?;
        if !rt.namespaced {
            return Err(ApiError::no_route());
        }
        match tail {
            [] => Ok(build(rt, Some(ns), None, None)),
            [name] => Ok(build(rt, Some(ns), Some(name), None)),
            [name, sub] => Ok(build(rt, Some(ns), Some(name), Some(sub))),
            _ => Err(ApiError::no_route()),
        }
    };
    match rest {
        // `/api/v1/namespaces/{name}[/status|finalize]` is the Namespace itself.
        ["namespaces", name, sub @ ("status" | "finalize")] if group.is_empty() => {
            Ok(build(find("namespaces")?, None, Some(name), Some(sub)))
        }
        ["namespaces", _, _, ..] => namespaced_path(rest),
        [plural] => Ok(build(find(plural)?, None, None, None)),
        [plural, name] => Ok(build(find(plural)?, None, Some(name), None)),
        [plural, name, sub] => Ok(build(find(plural)?, None, Some(name), Some(sub))),
        _ => Err(ApiError::no_route()),
    }
}

async fn resource(
    state: &Arc<State>,
    group: &str,
    version: &str,
    rest: &[&str],
    req: &Req,
) -> ApiResult<Response<Body>> {
    let t = target(state, group, version, rest)?;
    if let Some(sub) = &t.subresource {
        let allowed = (sub == "status" && t.rt.status_subresource)
            || (sub == "finalize" && t.rt.plural == "namespaces");
        if !allowed {
            return Err(ApiError::no_route());
        }
    }
    if t.rt.namespaced && t.namespace.is_none() && (t.name.is_some() || req.method != Method::GET) {
        // Across namespaces a namespaced kind can only be listed and watched.
        return Err(ApiError::no_route());
    }
    let watching = matches!(req.param("watch"), Some("true" | "1"));
    match (&req.method, &t.name) {
        (&Method::GET, None) if watching => watch::serve(state.clone(), t, req),
        (&Method::GET, None) => handlers::list(state, &t, req),
        (&Method::POST, None) => handlers::create(state, &t, req).await,
        (&Method::DELETE, None) => handlers::delete_collection(state, &t, req).await,
        (&Method::GET, Some(_)) if watching => Err(ApiError::method_not_allowed()),
        (&Method::GET, Some(_)) => handlers::get(state, &t, req),
        (&Method::PUT, Some(_)) => handlers::update(state, &t, req).await,
        (&Method::PATCH, Some(_)) => handlers::patch(state, &t, req).await,
        (&Method::DELETE, Some(_)) => handlers::delete(state, &t, req).await,
        _ => Err(ApiError::method_not_allowed()),
    }
}
