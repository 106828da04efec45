//! The registry of served resource types: the built-ins controllers and users need, plus
//! one entry per served version of every established CustomResourceDefinition. Rebuilt
//! whenever a CRD changes, so discovery, OpenAPI and the resource paths follow at once.

use crate::validation::CrdValidator;
use bytes::Bytes;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition,
};
use std::sync::{Arc, RwLock};

/// How a built-in kind differs from a plain custom resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    Namespace,
    ConfigMap,
    Secret,
    /// core/v1 Event; stored in this shape.
    CoreEvent,
    /// events.k8s.io/v1 Event: a second view of the same store.
    EventsV1,
    Lease,
    Crd,
    /// authorization.k8s.io/v1 SelfSubjectAccessReview: create-only, never stored.
    AccessReview,
}

#[derive(Debug)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub status_subresource: bool,
    pub columns: Vec<CustomResourceColumnDefinition>,
    /// `openAPIV3Schema` of a custom resource version, as JSON text: only the OpenAPI
    /// document reads it (rarely), and parsed it would be ten times the size for good.
    pub schema: Option<Bytes>,
    pub validator: Option<Arc<CrdValidator>>,
    pub builtin: Option<Builtin>,
    /// Storage prefix shared by every version (and both Event views): `group/plural`.
    pub storage: String,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn verbs(&self) -> Vec<&'static str> {
        match self.builtin {
            Some(Builtin::AccessReview) => vec!["create"],
            _ => vec![
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ],
        }
    }

    /// Custom resources (and CRDs) carry `generation`; the other built-ins do not.
    pub fn has_generation(&self) -> bool {
        matches!(self.builtin, None | Some(Builtin::Crd))
    }

    /// PUT without `resourceVersion` is refused for these (422), allowed for the rest.
    pub fn requires_rv_on_update(&self) -> bool {
        matches!(
            self.builtin,
            None | Some(Builtin::Crd) | Some(Builtin::Lease)
        )
    }

    /// Storage key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}/{}/{name}", self.storage, namespace.unwrap_or(""))
    }

    /// Storage prefix of a list, in one namespace or all.
    pub fn prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}/{ns}/", self.storage),
            _ => format!("{}/", self.storage),
        }
    }
}

fn builtin(
    group: &str,
    version: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    short: &[&str],
    b: Builtin,
) -> ResourceType {
    ResourceType {
        group: group.into(),
        version: version.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        kind: kind.into(),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: Vec::new(),
        status_subresource: matches!(b, Builtin::Namespace | Builtin::Crd),
        columns: Vec::new(),
        schema: None,
        validator: None,
        builtin: Some(b),
        storage: match b {
            Builtin::CoreEvent | Builtin::EventsV1 => "core/events".into(),
            _ => format!("{}/{plural}", if group.is_empty() { "core" } else { group }),
        },
    }
}

/// The built-in kinds, core first so that `kubectl get events` resolves to core/v1.
pub fn builtins() -> Vec<ResourceType> {
    vec![
        builtin(
            "",
            "v1",
            "namespaces",
            "Namespace",
            false,
            &["ns"],
            Builtin::Namespace,
        ),
        builtin(
            "",
            "v1",
            "configmaps",
            "ConfigMap",
            true,
            &["cm"],
            Builtin::ConfigMap,
        ),
        builtin("", "v1", "secrets", "Secret", true, &[], Builtin::Secret),
        builtin(
            "",
            "v1",
            "events",
            "Event",
            true,
            &["ev"],
            Builtin::CoreEvent,
        ),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            Builtin::Crd,
        ),
        builtin(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            true,
            &[],
            Builtin::Lease,
        ),
        builtin(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            true,
            &["ev"],
            Builtin::EventsV1,
        ),
        builtin(
            "authorization.k8s.io",
            "v1",
            "selfsubjectaccessreviews",
            "SelfSubjectAccessReview",
            false,
            &[],
            Builtin::AccessReview,
        ),
    ]
}

/// The resource types one CRD serves (one per served version).
pub fn from_crd(crd: &CustomResourceDefinition) -> Vec<ResourceType> {
    let names = &crd.spec.names;
    let categories = names.categories.clone().unwrap_or_default();
    crd.spec
        .versions
        .iter()
        .filter(|v| v.served)
        .map(|v| {
            let schema = v
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .and_then(|s| serde_json::to_value(s).ok());
            let validator = schema
                .as_ref()
                .and_then(|s| CrdValidator::from_schema(s).ok())
                .map(Arc::new);
            ResourceType {
                group: crd.spec.group.clone(),
                version: v.name.clone(),
                plural: names.plural.clone(),
                singular: names
                    .singular
                    .clone()
                    .unwrap_or_else(|| names.kind.to_lowercase()),
                kind: names.kind.clone(),
                namespaced: crd.spec.scope == "Namespaced",
                short_names: names.short_names.clone().unwrap_or_default(),
                categories: categories.clone(),
                status_subresource: v.subresources.as_ref().is_some_and(|s| s.status.is_some()),
                columns: v.additional_printer_columns.clone().unwrap_or_default(),
                schema: schema
                    .and_then(|s| serde_json::to_vec(&s).ok())
                    .map(Bytes::from),
                validator,
                builtin: None,
                storage: format!("{}/{}", crd.spec.group, names.plural),
            }
        })
        .collect()
}

/// Every served type; cheap to clone for one request.
#[derive(Default)]
pub struct Registry {
    types: RwLock<Arc<Vec<Arc<ResourceType>>>>,
}

impl Registry {
    pub fn new(crds: &[CustomResourceDefinition]) -> Self {
        let registry = Self::default();
        registry.rebuild(crds);
        registry
    }

    /// Replaces the served set with the built-ins plus these CRDs.
    pub fn rebuild(&self, crds: &[CustomResourceDefinition]) {
        let mut types: Vec<Arc<ResourceType>> = builtins().into_iter().map(Arc::new).collect();
        for crd in crds {
            types.extend(from_crd(crd).into_iter().map(Arc::new));
        }
        *self.types.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(types);
    }

    pub fn all(&self) -> Arc<Vec<Arc<ResourceType>>> {
        self.types.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.all()
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    pub fn by_kind(&self, group: &str, kind: &str) -> Option<Arc<ResourceType>> {
        self.all()
            .iter()
            .find(|t| t.group == group && t.kind == kind)
            .cloned()
    }

    /// Group names in preference order (core excluded), each with its versions.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in self.all().iter().filter(|t| !t.group.is_empty()) {
            match groups.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, versions)) if !versions.contains(&t.version) => {
                    versions.push(t.version.clone())
                }
                Some(_) => {}
                None => groups.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        groups
    }
}
