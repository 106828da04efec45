//! Phoenix's embedded Kubernetes-compatible API server: the etcd-less local store behind
//! `phoenix up`. It will own the SQLite store (one global revision as resourceVersion,
//! watches fed from committed revisions), the registry of built-in and custom resources,
//! the HTTP surface kubectl and kube-rs use (discovery, OpenAPI, Tables, watch, patch,
//! server-side apply) and authentication. What exists today is the admission of custom
//! resources against their CRD schema ([`validation`]), which the example and fixture
//! tests already run every manifest through.

pub mod validation;
