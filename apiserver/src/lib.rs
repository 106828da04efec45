//! Phoenix's embedded Kubernetes-compatible API server: the etcd-less local store behind
//! `phoenix up`, serving Phoenix's resources (and the built-ins controllers need) to the
//! stock kubectl and kube-rs, unmodified.
//!
//! Layers, bottom up: [`store`] (SQLite, one global revision, watch fan-out) →
//! [`resources`] (what is served) → [`objects`], [`validation`], [`builtins`], [`patch`],
//! [`ssa`] (write semantics, pure) → [`state`] (what requests share), [`request`],
//! [`response`], [`presentation`] (the vocabulary of the HTTP API) → [`handlers`],
//! [`watch`], [`discovery`], [`openapi`] (the HTTP API), [`cleanup`], [`bootstrap`] (the
//! server's own writes) → [`http`] (authentication, routing) → [`server`] (TLS, the
//! listener, background tasks).

pub mod bootstrap;
pub mod builtins;
pub mod cleanup;
pub mod discovery;
pub mod error;
pub mod events;
pub mod fuzzing;
pub mod handlers;
pub mod http;
pub mod objects;
pub mod openapi;
pub mod patch;
pub mod presentation;
pub mod protobuf;
pub mod request;
pub mod resources;
pub mod response;
pub mod selectors;
pub mod server;
pub mod ssa;
pub mod state;
pub mod store;
pub mod tls;
pub mod validation;
pub mod watch;

pub use server::{Config, Limits, Running, start};
