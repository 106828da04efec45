//! The verbs on resources: get, list, create, update, patch (merge, JSON, strategic,
//! server-side apply), delete and deletecollection, all through one write pipeline:
//! prepare metadata → type-specific admission → schema validation → field ownership →
//! no-op detection → durable write.

use crate::error::{ApiError, ApiResult};
use crate::objects::{self, meta_mut, name_of};
use crate::patch::{self, PatchError, PatchType};
use crate::presentation::{list_raw, present, present_raw, table};
use crate::request::{Filter, Req, Target};
use crate::resources::{Builtin, ResourceType};
use crate::response::{Body, respond, respond_raw, with_warnings};
use crate::ssa::{self, ApplyOutcome, Scope};
use crate::state::{State, storage_type};
use crate::store::{StoreError, Stored, Write};
use crate::validation::{FieldValidation, Rejection};
use crate::{builtins, events};
use base64::Engine;
use hyper::Response;
use serde_json::{Value, json};
use std::sync::Arc;

fn decode_body(t: &Target, req: &Req) -> ApiResult<Value> {
    let ct = req.content_type.split(';').next().unwrap_or("").trim();
    let value: Value = match ct {
        "application/vnd.kubernetes.protobuf" => crate::protobuf::decode(&t.rt.kind, &req.body)?,
        "application/yaml" | "application/apply-patch+yaml" => serde_yaml_ng::from_slice(&req.body)
            .map_err(|e| {
                ApiError::bad_request(format!("the body of the request is not valid YAML: {e}"))
            })?,
        ""
        | "application/json"
        | "*/*"
        | "application/merge-patch+json"
        | "application/json-patch+json"
        | "application/strategic-merge-patch+json" => {
            serde_json::from_slice(&req.body).map_err(|e| {
                ApiError::bad_request(format!("the body of the request was not valid JSON: {e}"))
            })?
        }
        other => {
            return Err(ApiError::unsupported_media_type(
                other,
                &[
                    "application/json",
                    "application/yaml",
                    "application/vnd.kubernetes.protobuf",
                ],
            ));
        }
    };
    Ok(match t.rt.builtin {
        Some(Builtin::EventsV1) if value.is_object() => events::to_core(&value),
        _ => value,
    })
}

fn field_validation(req: &Req) -> ApiResult<FieldValidation> {
    match req.param("fieldValidation") {
        None | Some("Warn") => Ok(FieldValidation::Warn),
        Some("Strict") => Ok(FieldValidation::Strict),
        Some("Ignore") => Ok(FieldValidation::Ignore),
        Some(other) => Err(ApiError::bad_request(format!(
            "fieldValidation must be one of Ignore, Warn, Strict; got {other:?}"
        ))),
    }
}

fn key_of(rt: &ResourceType, t: &Target, name: &str) -> String {
    rt.key(t.namespace.as_deref(), name)
}

fn not_found(rt: &ResourceType, name: &str) -> ApiError {
    ApiError::not_found(&rt.group, &rt.plural, name)
}

fn store_error(rt: &ResourceType, name: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict => ApiError {
            lost_race: true,
            ..ApiError::conflict(&rt.group, &rt.plural, name)
        },
        StoreError::Exists => ApiError::already_exists(&rt.group, &rt.plural, name),
        StoreError::NotFound => not_found(rt, name),
        other => other.into(),
    }
}

pub fn get(state: &Arc<State>, t: &Target, req: &Req) -> ApiResult<Response<Body>> {
    let rt = storage_type(state, &t.rt);
    let name = t.name.as_deref().unwrap_or_default();
    let stored = state
        .store
        .get(&key_of(&rt, t, name))
        .ok_or_else(|| not_found(&t.rt, name))?;
    if req.wants_table() {
        let object = present(&t.rt, &stored.value());
        let list_meta = json!({"resourceVersion": stored.rev.to_string()});
        return Ok(respond(
            200,
            &table::table(
                &t.rt,
                [object],
                list_meta,
                req.param("includeObject").unwrap_or("Metadata"),
                true,
            ),
        ));
    }
    Ok(respond_raw(200, present_raw(&t.rt, &stored)))
}

pub fn list(state: &Arc<State>, t: &Target, req: &Req) -> ApiResult<Response<Body>> {
    let rt = storage_type(state, &t.rt);
    let filter = Filter::from_request(&t.rt, req)?;
    if req.param("resourceVersionMatch").is_some() && req.param("resourceVersion").is_none() {
        return Err(ApiError::list_options(
            "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
        ));
    }
    if req.param("sendInitialEvents").is_some() {
        return Err(ApiError::list_options(
            "sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list",
        ));
    }
    let limit = match req.param("limit") {
        Some(l) => Some(
            l.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        )
        .filter(|l| *l > 0),
        None => None,
    };
    let (token_rev, start_after) = match req.param("continue") {
        Some(token) => decode_continue(token)?,
        None => (0, None),
    };
    if token_rev > 0 && token_rev < state.store.compacted() {
        return Err(ApiError::gone(
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
        ));
    }
    let (rev, items) = state.store.list(&rt.prefix(t.namespace.as_deref()));
    let list_rev = if token_rev > 0 { token_rev } else { rev };
    let mut matching = items
        .iter()
        .filter(|s| {
            start_after
                .as_ref()
                .is_none_or(|after| s.key.as_str() > after.as_str())
        })
        .filter(|s| filter.is_empty() || filter.matches(&s.value()));
    let page: Vec<&Arc<Stored>> = matching
        .by_ref()
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    let remaining = matching.count();
    let mut list_meta = json!({"resourceVersion": list_rev.to_string()});
    if remaining > 0 {
        let last = page.last().map_or("", |s| s.key.as_str());
        list_meta["continue"] = json!(encode_continue(list_rev, last));
        list_meta["remainingItemCount"] = json!(remaining);
    }
    if req.wants_table() {
        let objects = page.iter().map(|s| present(&t.rt, &s.value()));
        return Ok(respond(
            200,
            &table::table(
                &t.rt,
                objects,
                list_meta,
                req.param("includeObject").unwrap_or("Metadata"),
                true,
            ),
        ));
    }
    Ok(respond_raw(200, list_raw(&t.rt, &list_meta, &page)))
}

fn encode_continue(rev: u64, key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"rv": rev, "start": key}).to_string())
}

fn decode_continue(token: &str) -> ApiResult<(u64, Option<String>)> {
    let bad = || ApiError::bad_request("continue key is not valid: invalid continue token");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok((
        v["rv"].as_u64().ok_or_else(bad)?,
        v["start"].as_str().map(str::to_owned),
    ))
}

fn check_namespace(state: &State, rt: &ResourceType, namespace: Option<&str>) -> ApiResult<()> {
    let Some(ns) = namespace.filter(|_| rt.namespaced) else {
        return Ok(());
    };
    let stored = state
        .store
        .get(&format!("core/namespaces//{ns}"))
        .ok_or_else(|| ApiError::not_found("", "namespaces", ns))?;
    if objects::is_deleting(&stored.value()) {
        return Err(ApiError::forbidden(format!(
            "unable to create new content in namespace {ns} because it is being terminated"
        )));
    }
    Ok(())
}

pub async fn create(state: &Arc<State>, t: &Target, req: &Req) -> ApiResult<Response<Body>> {
    let rt = storage_type(state, &t.rt);
    let mut object = decode_body(t, req)?;
    if rt.builtin == Some(Builtin::AccessReview) {
        return Ok(respond(201, &builtins::review_access(object)));
    }
    objects::prepare_create(&rt, &mut object, t.namespace.as_deref())?;
    check_namespace(state, &rt, t.namespace.as_deref())?;
    commit_create(state, t, &rt, object, req, Some(&req.manager())).await
}

/// The end of every create (POST, or an apply that finds nothing): admission, then the
/// durable write that fails if the name was taken meanwhile.
async fn commit_create(
    state: &State,
    t: &Target,
    rt: &ResourceType,
    mut object: Value,
    req: &Req,
    track_as: Option<&str>,
) -> ApiResult<Response<Body>> {
    let warnings = admit(rt, &mut object, None, req)?;
    // Ownership is recorded for what admission kept (pruned fields are nobody's).
    if let Some(manager) = track_as {
        ssa::track_update(
            None,
            &mut object,
            manager,
            &rt.api_version(),
            scope(rt, false),
            &objects::now(),
        );
    }
    if req.dry_run() {
        return Ok(with_warnings(
            respond(201, &present(&t.rt, &object)),
            &warnings,
        ));
    }
    let name = name_of(&object).to_owned();
    let write_op = Write::Put {
        key: key_of(rt, t, &name),
        value: object,
        expect: Some(0),
    };
    let stored = write(state, rt, write_op, &name).await?;
    Ok(with_warnings(
        respond_raw(201, present_raw(&t.rt, &stored)),
        &warnings,
    ))
}

fn scope(rt: &ResourceType, status_write: bool) -> Scope {
    if status_write {
        Scope::Status
    } else {
        Scope::Main {
            status_is_subresource: rt.status_subresource,
        }
    }
}

/// Deepest nesting accepted: what is stored must parse again with field management on top
/// (serde_json reads up to 128 levels).
const MAX_DEPTH: usize = 100;

fn depth(value: &Value) -> usize {
    match value {
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Type-specific admission, then the CRD schema for custom resources.
fn admit(
    rt: &ResourceType,
    object: &mut Value,
    old: Option<&Value>,
    req: &Req,
) -> ApiResult<Vec<String>> {
    if depth(object) > MAX_DEPTH {
        return Err(ApiError::bad_request(format!(
            "the object is nested more than {MAX_DEPTH} levels deep"
        )));
    }
    let errors = objects::validate_metadata(rt, object);
    objects::refuse_invalid(rt, object, &errors)?;
    builtins::admit(rt, object, old)?;
    let Some(validator) = &rt.validator else {
        return Ok(Vec::new());
    };
    validator
        .admit(object, old, field_validation(req)?)
        .map_err(|rejection| match &rejection {
            Rejection::UnknownFields(_) => ApiError::bad_request(rejection.message(
                &rt.kind,
                &rt.group,
                &rt.version,
                name_of(object),
            )),
            Rejection::Invalid(errors) => {
                ApiError::invalid(&rt.kind, &rt.group, name_of(object), errors)
            }
        })
}

/// An update through admission: system fields from the stored object, then pruning,
/// defaulting and validation, then the generation (moved by what changed once defaulted).
fn admit_update(
    rt: &ResourceType,
    new: &mut Value,
    old: &Value,
    status_write: bool,
    req: &Req,
) -> ApiResult<Vec<String>> {
    objects::prepare_update(rt, new, old, status_write)?;
    let warnings = admit(rt, new, Some(old), req)?;
    objects::advance_generation(rt, new, old);
    Ok(warnings)
}

/// Writes, then finishes a deletion whose last finalizer just went, and keeps the
/// registry in step with CRDs.
async fn write(
    state: &State,
    rt: &ResourceType,
    write: Write,
    name: &str,
) -> ApiResult<Arc<Stored>> {
    let stored = state
        .store
        .write(write)
        .await
        .map_err(|e| store_error(rt, name, e))?;
    let value = stored.value();
    let stored = if objects::is_deleting(&value) && objects::finalizers(&value).is_empty() {
        let key = rt.key(objects::meta_str(&value, "namespace"), name);
        state
            .store
            .write(Write::Delete {
                key,
                expect: Some(stored.rev),
            })
            .await
            .map_err(|e| store_error(rt, name, e))?
    } else {
        stored
    };
    Ok(stored)
}

fn current(state: &State, rt: &ResourceType, t: &Target) -> ApiResult<(String, Arc<Stored>)> {
    let name = t.name.clone().unwrap_or_default();
    let stored = state
        .store
        .get(&key_of(rt, t, &name))
        .ok_or_else(|| not_found(rt, &name))?;
    Ok((name, stored))
}

/// Attempts at a write that loses races to concurrent writers before giving up with 409.
const RACE_RETRIES: usize = 5;

pub async fn update(state: &Arc<State>, t: &Target, req: &Req) -> ApiResult<Response<Body>> {
    let unconditional =
        decode_body(t, req).is_ok_and(|b| objects::meta_str(&b, "resourceVersion").is_none());
    let mut attempt = 0;
    loop {
        match update_once(state, t, req).await {
            Err(e) if e.lost_race && unconditional && attempt < RACE_RETRIES => attempt += 1,
            other => return other,
        }
    }
}

async fn update_once(state: &Arc<State>, t: &Target, req: &Req) -> ApiResult<Response<Body>> {
    let rt = storage_type(state, &t.rt);
    let (name, old) = current(state, &rt, t)?;
    let new = decode_body(t, req)?;
    match objects::meta_str(&new, "resourceVersion") {
        Some(rv) if rv != old.rev.to_string() => {
            return Err(ApiError::conflict(&rt.group, &rt.plural, &name));
        }
        None if rt.requires_rv_on_update() => {
            let kind = if rt.group.is_empty() {
                rt.kind.clone()
            } else {
                format!("{}.{}", rt.kind, rt.group)
            };
            return Err(ApiError::new(
                422,
                "Invalid",
                format!(
                    "{kind} {name:?} is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
                ),
            ));
        }
        _ => {}
    }
    finish_update(state, t, &rt, &name, &old, new, req, req.manager()).await
}

#[allow(clippy::too_many_arguments)]
async fn finish_update(
    state: &State,
    t: &Target,
    rt: &ResourceType,
    name: &str,
    old: &Stored,
    mut new: Value,
    req: &Req,
    manager: String,
) -> ApiResult<Response<Body>> {
    let status_write = t.subresource.as_deref() == Some("status");
    let old_value = old.value();
    let warnings = admit_update(rt, &mut new, &old_value, status_write, req)?;
    // Ownership is recorded for what admission kept (pruned fields are nobody's).
    ssa::track_update(
        Some(&old_value),
        &mut new,
        &manager,
        &rt.api_version(),
        scope(rt, status_write),
        &objects::now(),
    );
    commit_update(state, t, rt, name, old, new, req, &warnings).await
}

#[allow(clippy::too_many_arguments)]
async fn commit_update(
    state: &State,
    t: &Target,
    rt: &ResourceType,
    name: &str,
    old: &Stored,
    new: Value,
    req: &Req,
    warnings: &[String],
) -> ApiResult<Response<Body>> {
    if objects::unchanged(&old.value(), &new) || req.dry_run() {
        let shown = if req.dry_run() { new } else { old.value() };
        return Ok(with_warnings(
            respond(200, &present(&t.rt, &shown)),
            warnings,
        ));
    }
    let stored = write(
        state,
        rt,
        Write::Put {
            key: key_of(rt, t, name),
            value: new,
            expect: Some(old.rev),
        },
        name,
    )
    .await?;
    Ok(with_warnings(
        respond_raw(200, present_raw(&t.rt, &stored)),
        warnings,
    ))
}

pub async fn patch(state: &Arc<State>, t: &Target, req: &Req) -> ApiResult<Response<Body>> {
    let mut attempt = 0;
    loop {
        // A patch is recomputed on the fresh object; a precondition it carries still holds.
        match patch_once(state, t, req).await {
            Err(e) if e.lost_race && attempt < RACE_RETRIES => attempt += 1,
            other => return other,
        }
    }
}

async fn patch_once(state: &Arc<State>, t: &Target, req: &Req) -> ApiResult<Response<Body>> {
    let rt = storage_type(state, &t.rt);
    let kind = PatchType::from_content_type(&req.content_type).ok_or_else(|| {
        ApiError::unsupported_media_type(
            &req.content_type,
            &[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/apply-patch+yaml",
                "application/strategic-merge-patch+json",
            ],
        )
    })?;
    if kind == PatchType::Apply {
        return apply(state, t, &rt, req).await;
    }
    if req.param("force").is_some() {
        return Err(ApiError::new(
            422,
            "Invalid",
            "force: Forbidden: may not be specified for non-apply patch",
        ));
    }
    if kind == PatchType::Strategic && rt.builtin.is_none() {
        return Err(ApiError::unsupported_media_type(
            "application/strategic-merge-patch+json",
            &[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/apply-patch+yaml",
            ],
        ));
    }
    let (name, old) = current(state, &rt, t)?;
    let body: Value = serde_json::from_slice(&req.body).map_err(|e| {
        ApiError::bad_request(format!("the body of the request was not valid JSON: {e}"))
    })?;
    let mut patched = match t.rt.builtin {
        Some(Builtin::EventsV1) => events::to_events_v1(&old.value()),
        _ => old.value(),
    };
    let result = match kind {
        PatchType::Merge => patch::merge(&mut patched, &body),
        PatchType::Json => patch::json(&mut patched, &body),
        _ => patch::strategic(&mut patched, &body),
    };
    match result {
        Err(PatchError::Decode(e)) => return Err(ApiError::bad_request(e)),
        Err(PatchError::Apply(e)) => {
            return Err(ApiError::new(
                422,
                "Invalid",
                "the server rejected our request due to an error in our request",
            )
            .with_details(
                json!({"causes": [{"reason": "UnexpectedServerResponse", "message": e}]}),
            ));
        }
        Ok(()) => {}
    }
    if t.rt.builtin == Some(Builtin::EventsV1) {
        patched = events::to_core(&patched);
    }
    if objects::meta_str(&patched, "resourceVersion").is_some_and(|rv| rv != old.rev.to_string()) {
        return Err(ApiError::conflict(&rt.group, &rt.plural, &name));
    }
    finish_update(state, t, &rt, &name, &old, patched, req, req.manager()).await
}

async fn apply(
    state: &State,
    t: &Target,
    rt: &ResourceType,
    req: &Req,
) -> ApiResult<Response<Body>> {
    let Some(manager) = req.param("fieldManager").map(str::to_owned) else {
        return Err(ApiError::new(
            422,
            "Invalid",
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ));
    };
    let force = req.param("force") == Some("true");
    let mut config = decode_body(t, req)?;
    if config.pointer("/metadata/managedFields").is_some() {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }
    objects::check_type_meta(rt, &mut config)?;
    let name = t.name.clone().unwrap_or_default();
    match objects::meta_str(&config, "name") {
        None => {
            meta_mut(&mut config).insert("name".into(), json!(name));
        }
        Some(given) if given != name => {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        Some(_) => {}
    }
    let status_write = t.subresource.as_deref() == Some("status");
    let old = state.store.get(&key_of(rt, t, &name));
    let live = match &old {
        Some(o) => o.value(),
        None => {
            json!({"apiVersion": rt.api_version(), "kind": rt.kind, "metadata": {"name": name}})
        }
    };
    if let Some(rv) = objects::meta_str(&config, "resourceVersion")
        && old.as_ref().is_none_or(|o| o.rev.to_string() != rv)
    {
        return Err(ApiError::conflict(&rt.group, &rt.plural, &name));
    }
    let merged = match ssa::apply(
        &live,
        &config,
        &manager,
        force,
        &rt.api_version(),
        scope(rt, status_write),
        &objects::now(),
    ) {
        ApplyOutcome::Applied(v) => v,
        ApplyOutcome::Conflicts(conflicts) => {
            let causes: Vec<Value> = conflicts
                .iter()
                .map(|(m, p)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {m}"), "field": ssa::path_text(p)}))
                .collect();
            return Err(
                ApiError::new(409, "Conflict", ssa::conflict_message(&conflicts)).with_details(
                    json!({"name": name, "group": rt.group, "kind": rt.plural, "causes": causes}),
                ),
            );
        }
    };
    let Some(old) = old else {
        if status_write {
            return Err(not_found(rt, &name));
        }
        let mut object = merged;
        let managed = object.pointer("/metadata/managedFields").cloned();
        objects::prepare_create(rt, &mut object, t.namespace.as_deref())?;
        if let Some(mf) = managed {
            meta_mut(&mut object).insert("managedFields".into(), mf);
        }
        check_namespace(state, rt, t.namespace.as_deref())?;
        return commit_create(state, t, rt, object, req, None).await;
    };
    let mut new = merged;
    let warnings = admit_update(rt, &mut new, &old.value(), status_write, req)?;
    commit_update(state, t, rt, &name, &old, new, req, &warnings).await
}

fn delete_options(req: &Req) -> ApiResult<Value> {
    let options: Value = if req.body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&req.body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request was not valid DeleteOptions: {e}"
            ))
        })?
    };
    let policy = options
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .or(req.param("propagationPolicy"));
    match policy {
        None | Some("Background") => Ok(options),
        // Refused rather than silently treated as Background, which would delete dependents.
        Some(other) => Err(ApiError::new(
            422,
            "Invalid",
            format!(
                "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: {other:?}: the embedded API server supports \"Background\""
            ),
        )),
    }
}

/// A delete that loses a race with another writer (a controller's status patch while the
/// object is being marked) is redone from a fresh read, as kube-apiserver does; a client's
/// preconditions still fail with 409 (they come back as conflicts, not lost races).
pub async fn delete(state: &Arc<State>, t: &Target, req: &Req) -> ApiResult<Response<Body>> {
    let mut attempt = 0;
    loop {
        match delete_once(state, t, req).await {
            Err(e) if e.lost_race && attempt < RACE_RETRIES => attempt += 1,
            other => return other,
        }
    }
}

async fn delete_once(state: &Arc<State>, t: &Target, req: &Req) -> ApiResult<Response<Body>> {
    let rt = storage_type(state, &t.rt);
    let (name, old) = current(state, &rt, t)?;
    let options = delete_options(req)?;
    if let Some(pre) = options.get("preconditions") {
        let uid_ok = pre
            .get("uid")
            .and_then(Value::as_str)
            .is_none_or(|u| Some(u) == objects::meta_str(&old.value(), "uid"));
        let rv_ok = pre
            .get("resourceVersion")
            .and_then(Value::as_str)
            .is_none_or(|rv| rv == old.rev.to_string());
        if !uid_ok || !rv_ok {
            return Err(ApiError::conflict(&rt.group, &rt.plural, &name));
        }
    }
    let dry_run = req.dry_run()
        || options
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    match delete_object(state, &rt, &old, dry_run).await? {
        Deleted::Gone(last) => Ok(respond(
            200,
            &json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "group": rt.group, "kind": rt.plural, "uid": objects::meta_str(&last, "uid")},
            }),
        )),
        Deleted::Pending(object) => Ok(respond(200, &present(&t.rt, &object))),
    }
}

pub enum Deleted {
    Gone(Value),
    Pending(Value),
}

/// Deletes one object as kube-apiserver does: at once without finalizers, otherwise by
/// marking it (deletionTimestamp) and leaving it to whoever holds the finalizers.
pub async fn delete_object(
    state: &State,
    rt: &ResourceType,
    old: &Stored,
    dry_run: bool,
) -> ApiResult<Deleted> {
    let name = name_of(&old.value()).to_owned();
    let key = rt.key(objects::meta_str(&old.value(), "namespace"), &name);
    if rt.builtin == Some(Builtin::Namespace)
        && ["default", "kube-system", "kube-public"].contains(&name.as_str())
    {
        return Err(ApiError::forbidden(format!(
            "namespaces {name:?} is forbidden: this namespace may not be deleted"
        )));
    }
    let mut marked = old.value();
    builtins::on_delete(rt, &mut marked);
    if objects::finalizers(&marked).is_empty() {
        if dry_run {
            return Ok(Deleted::Gone(old.value()));
        }
        let last = state
            .store
            .write(Write::Delete {
                key,
                expect: Some(old.rev),
            })
            .await
            .map_err(|e| store_error(rt, &name, e))?;
        return Ok(Deleted::Gone(last.value()));
    }
    if objects::is_deleting(&old.value()) || dry_run {
        return Ok(Deleted::Pending(old.value()));
    }
    let m = meta_mut(&mut marked);
    m.insert("deletionTimestamp".into(), json!(objects::now()));
    m.insert("deletionGracePeriodSeconds".into(), json!(0));
    if rt.has_generation() {
        let generation = m.get("generation").and_then(Value::as_i64).unwrap_or(0) + 1;
        m.insert("generation".into(), json!(generation));
    }
    let stored = state
        .store
        .write(Write::Put {
            key,
            value: marked,
            expect: Some(old.rev),
        })
        .await
        .map_err(|e| store_error(rt, &name, e))?;
    Ok(Deleted::Pending(stored.value()))
}

pub async fn delete_collection(
    state: &Arc<State>,
    t: &Target,
    req: &Req,
) -> ApiResult<Response<Body>> {
    let rt = storage_type(state, &t.rt);
    let filter = Filter::from_request(&t.rt, req)?;
    let (_, items) = state.store.list(&rt.prefix(t.namespace.as_deref()));
    let mut deleted = Vec::new();
    for stored in items.iter().filter(|s| filter.matches(&s.value())) {
        let mut current = stored.clone();
        let mut attempt = 0;
        loop {
            match delete_object(state, &rt, &current, req.dry_run()).await {
                Ok(Deleted::Gone(v) | Deleted::Pending(v)) => deleted.push(present(&t.rt, &v)),
                // Written meanwhile: deleted from a fresh read, as a single delete is.
                Err(e) if e.lost_race && attempt < RACE_RETRIES => {
                    let key = rt.key(
                        objects::meta_str(&current.value(), "namespace"),
                        name_of(&current.value()),
                    );
                    match state.store.get(&key) {
                        Some(fresh) => current = fresh,
                        None => break,
                    }
                    attempt += 1;
                    continue;
                }
                Err(e) if e.code == 404 || e.code == 409 => {}
                Err(e) => return Err(e),
            }
            break;
        }
    }
    Ok(respond(
        200,
        &json!({"apiVersion": t.rt.api_version(), "kind": t.rt.list_kind(), "metadata": {"resourceVersion": state.store.revision().to_string()}, "items": deleted}),
    ))
}
