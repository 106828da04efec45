//! The vocabulary of a request on a resource: the parsed request, the resource path it
//! names, and the label and field selectors it carries.

use crate::error::{ApiError, ApiResult};
use crate::events;
use crate::resources::{Builtin, ResourceType};
use crate::selectors::{FieldSelector, LabelSelector};
use bytes::Bytes;
use hyper::Method;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// The remote address a request came from: what per-client limits count by (all clients
/// share the one admin token).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Client(pub std::net::IpAddr);

/// One parsed request, as the handlers see it.
pub struct Req {
    /// None for requests that did not come over the network.
    pub client: Option<Client>,
    pub method: Method,
    pub query: HashMap<String, String>,
    pub accept: String,
    pub content_type: String,
    pub user_agent: String,
    pub body: Bytes,
}

impl Req {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn wants_table(&self) -> bool {
        self.accept
            .split(',')
            .next()
            .is_some_and(|first| first.contains("as=Table"))
    }

    pub fn dry_run(&self) -> bool {
        self.param("dryRun") == Some("All")
    }

    /// The field manager of a write: `fieldManager`, else the User-Agent's program name.
    pub fn manager(&self) -> String {
        self.param("fieldManager")
            .map(str::to_owned)
            .unwrap_or_else(|| match self.user_agent.split('/').next() {
                Some(program) if !program.is_empty() => program.to_owned(),
                _ => "unknown".to_owned(),
            })
    }
}
/// What a resource path names.
pub struct Target {
    pub rt: Arc<ResourceType>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Label and field selectors of a list, watch or deletecollection.
pub struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    pub fn from_request(rt: &ResourceType, req: &Req) -> ApiResult<Self> {
        let supported: &[&str] = match rt.builtin {
            Some(Builtin::CoreEvent | Builtin::EventsV1) => &events::SELECTABLE,
            Some(Builtin::Secret) => &["type"],
            Some(Builtin::Namespace) => &["status.phase"],
            _ => &[],
        };
        Ok(Self {
            labels: LabelSelector::parse(req.param("labelSelector").unwrap_or(""))
                .map_err(ApiError::bad_request)?,
            fields: FieldSelector::parse(req.param("fieldSelector").unwrap_or(""), supported)
                .map_err(ApiError::bad_request)?,
        })
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }

    /// The name a selector pins when it says nothing else (`kubectl wait`, kube-runtime's
    /// `await_condition`): matched on the key, without parsing.
    pub fn only_name(&self) -> Option<&str> {
        (self.labels == LabelSelector::default())
            .then(|| self.fields.only_name())
            .flatten()
    }

    /// No selector at all: everything matches without looking.
    pub fn is_empty(&self) -> bool {
        self.labels == LabelSelector::default() && self.fields == FieldSelector::default()
    }
}
