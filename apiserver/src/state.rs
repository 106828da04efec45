//! What every request handler and background controller shares: the store, the registry
//! of served types kept in step with the stored CRDs, and the server's credentials.

use crate::error::{ApiError, ApiResult};
use crate::request::Client;
use crate::resources::{Builtin, Registry, ResourceType};
use crate::store::Store;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Everything a request handler needs.
pub struct State {
    pub store: Store,
    pub registry: Registry,
    pub token: String,
    pub address: String,
    /// Open watches per client, bounded.
    pub watches: WatchBudget,
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
            watches: WatchBudget::new(usize::MAX),
        }
    }

    /// At most `max` watches open at once from one client.
    pub fn with_watches_per_client(mut self, max: usize) -> Self {
        self.watches = WatchBudget::new(max);
        self
    }

    /// Re-reads the CRDs from the store into the registry.
    pub fn refresh_registry(&self) {
        self.registry.rebuild(&stored_crds(&self.store));
    }
}

/// How many watches each client has open, up to a bound.
pub struct WatchBudget {
    max: usize,
    open: Arc<Mutex<HashMap<Client, usize>>>,
}

/// One open watch of a client; dropping it gives the place back.
pub struct WatchSlot {
    client: Client,
    open: Arc<Mutex<HashMap<Client, usize>>>,
}

impl WatchBudget {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            open: Arc::default(),
        }
    }

    /// A place for one more watch of `client`, or 429 when it has `max` open. Requests
    /// without a client (not over the network) are not counted.
    pub fn take(&self, client: Option<Client>) -> ApiResult<Option<WatchSlot>> {
        let Some(client) = client else {
            return Ok(None);
        };
        let mut open = lock(&self.open);
        let count = open.entry(client).or_default();
        if *count >= self.max {
            return Err(ApiError::too_many_requests(format!(
                "too many watches from {}: limit is {}",
                client.0, self.max
            )));
        }
        *count += 1;
        Ok(Some(WatchSlot {
            client,
            open: self.open.clone(),
        }))
    }
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.open);
        if let Some(count) = open.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
