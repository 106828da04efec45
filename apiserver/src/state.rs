//! What every request handler and background controller shares: the store, the registry
//! of served types kept in step with the stored CRDs, and the server's credentials.

use crate::resources::{Builtin, Registry, ResourceType};
use crate::store::Store;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use std::sync::Arc;

/// Everything a request handler needs.
pub struct State {
    pub store: Store,
    pub registry: Registry,
    pub token: String,
    pub address: String,
}

impl State {
    /// The state over `store`, serving the CRDs it holds.
    pub fn new(store: Store, token: String, address: String) -> Self {
        let registry = Registry::new(&stored_crds(&store));
        Self {
            store,
            registry,
            token,
            address,
        }
    }

    /// Re-reads the CRDs from the store into the registry.
    pub fn refresh_registry(&self) {
        self.registry.rebuild(&stored_crds(&self.store));
    }
}

const CRD_PREFIX: &str = "apiextensions.k8s.io/customresourcedefinitions/";

fn stored_crds(store: &Store) -> Vec<CustomResourceDefinition> {
    let (_, items) = store.list(CRD_PREFIX);
    items
        .iter()
        .filter_map(|s| serde_json::from_slice(&s.raw).ok())
        .collect()
}

/// Discovery and resource paths follow a CRD change before anyone hears of it.
pub fn follow_crds(state: &Arc<State>) {
    let weak = Arc::downgrade(state);
    state.store.on_commit(Box::new(move |changes| {
        let crd_changed = changes.iter().any(|c| c.key.starts_with(CRD_PREFIX));
        if let (true, Some(state)) = (crd_changed, weak.upgrade()) {
            state.refresh_registry();
        }
    }));
}

/// The type a request is stored as: events.k8s.io Events live in the core Event store.
pub fn storage_type(state: &State, rt: &Arc<ResourceType>) -> Arc<ResourceType> {
    match rt.builtin {
        Some(Builtin::EventsV1) => state
            .registry
            .find("", "v1", "events")
            .unwrap_or_else(|| rt.clone()),
        _ => rt.clone(),
    }
}
