//! SchemaStore's schema of Traefik v3's dynamic configuration (`schemas/`), checked on
//! every route document before it is written: Traefik's file provider drops a whole
//! document it cannot read, so one the schema refuses stays with Phoenix (the route
//! Stalled, `InvalidRouteDocument`, the schema's complaints in the message) rather than
//! reaching Traefik. The schema is a lint, not ground truth (`http.serversTransports`
//! passes unchecked); the real Traefik runs the routes in the tests.

use serde_json::Value;
use std::sync::LazyLock;

const SCHEMA: &str = include_str!("../../schemas/traefik-v3-file-provider.schema.json");

static VALIDATOR: LazyLock<Result<jsonschema::Validator, String>> = LazyLock::new(|| {
    let schema: Value = serde_json::from_str(SCHEMA).map_err(|e| e.to_string())?;
    jsonschema::validator_for(&schema).map_err(|e| e.to_string())
});

/// Ok, or each place the schema refuses as `/json/path: why`.
pub fn check(document: &Value) -> Result<(), String> {
    let validator = VALIDATOR
        .as_ref()
        .map_err(|e| format!("Traefik's schema does not compile: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(document)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    match errors.is_empty() {
        true => Ok(()),
        false => Err(errors.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::check;
    use crate::traefik_service::render::{Route, document};
    use serde_json::json;

    fn route(server: &str, prefix: &str, middlewares: &[&str], tls: bool) -> Route {
        Route {
            id: "default_granite-embedding".into(),
            host: "embedding.internal.thinkheads.ai".into(),
            path_prefix: prefix.into(),
            server: server.into(),
            middlewares: middlewares.iter().map(|m| m.to_string()).collect(),
            tls,
            root: String::new(),
        }
    }

    #[test]
    fn every_kind_of_route_document_passes_the_schema() {
        for route in [
            route("http://10.0.0.102:6333", "/", &[], true),
            route("https://10.0.0.141:8000", "/v1", &["compress"], true),
            route(
                "https://10.0.0.141:8000",
                "/",
                &["compress", "secure-headers@file"],
                false,
            ),
            route("http://[fd00::5]:80", "/a$b", &[], false),
        ] {
            let doc = document(&route);
            assert_eq!(check(&doc), Ok(()), "{doc:#}");
        }
    }

    #[test]
    fn a_document_traefik_would_drop_is_refused_with_the_place() {
        let mut doc = document(&route("http://10.0.0.102:6333", "/", &[], true));
        doc["http"]["routers"]["default_granite-embedding"]["prority"] = json!(1);
        let refused = check(&doc).unwrap_err();
        assert!(
            refused.contains("/http/routers/default_granite-embedding")
                && refused.contains("prority"),
            "{refused}"
        );
        assert!(check(&json!({"tcp": {"routers": {"x": {"rule": 5}}}})).is_err());
    }
}
