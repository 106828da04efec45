//! Bad input gets a clear 4xx `Status` and changes nothing; the server never answers 500
//! and keeps serving.

mod support;

use serde_json::Value;

const NS: &str = "/api/v1/namespaces/default/configmaps";
const LXC: &str = "/apis/phoenix.thinkheads.ai/v1alpha1/namespaces/default/lxcguests";

async fn send(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("Content-Type", content_type)
        .body(body)
        .unwrap();
    let response = client
        .send(request.map(kube::client::Body::from))
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn bad_requests_get_clear_4xx_statuses() {
    let server = support::ApiServer::start();
    let client = support::client(&server).await;
    let crd = serde_json::to_vec(&support::lxc_crd()).unwrap();
    assert_eq!(
        send(
            &client,
            "POST",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            "application/json",
            crd
        )
        .await
        .0,
        201
    );
    let json = "application/json";
    // (what, method, path, content type, body, expected code, text the message must contain)
    type Case<'a> = (&'a str, &'a str, &'a str, &'a str, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("malformed JSON", "POST", NS, json, b"{\"metadata\": ".to_vec(), 400, "not valid JSON"),
        ("malformed YAML", "POST", NS, "application/yaml", b"metadata: [unclosed".to_vec(), 400, "not valid YAML"),
        ("a JSON array", "POST", NS, json, b"[1,2]".to_vec(), 400, "must be a JSON object"),
        ("wrong apiVersion", "POST", NS, json, br#"{"apiVersion":"v2","kind":"ConfigMap","metadata":{"name":"a"}}"#.to_vec(), 400, "does not match the expected API version"),
        ("wrong kind", "POST", NS, json, br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"a"}}"#.to_vec(), 400, "does not match the expected kind"),
        ("invalid name", "POST", NS, json, br#"{"metadata":{"name":"Bad_Name"}}"#.to_vec(), 422, "metadata.name: Invalid value: \"Bad_Name\""),
        ("no name", "POST", NS, json, br#"{"metadata":{}}"#.to_vec(), 422, "name or generateName is required"),
        ("bad label", "POST", NS, json, br#"{"metadata":{"name":"a","labels":{"k":"bad value"}}}"#.to_vec(), 422, "metadata.labels"),
        ("bad label selector", "GET", "/api/v1/namespaces/default/configmaps?labelSelector=a%20in%20b", json, vec![], 400, "unable to parse requirement"),
        ("bad field selector", "GET", "/api/v1/namespaces/default/configmaps?fieldSelector=spec.x%3D1", json, vec![], 400, "field label not supported: spec.x"),
        ("oversized body", "POST", NS, json, vec![b' '; 4 * 1024 * 1024], 413, "Request entity too large"),
        ("wrong content type", "POST", NS, "text/plain", b"hello".to_vec(), 415, "unknown format"),
        ("protobuf garbage", "POST", NS, "application/vnd.kubernetes.protobuf", b"k8s\0\xff\xff".to_vec(), 400, "not a valid protobuf"),
        ("strategic patch on a custom resource", "PATCH", "/apis/phoenix.thinkheads.ai/v1alpha1/namespaces/default/lxcguests/x", "application/strategic-merge-patch+json", b"{}".to_vec(), 415, "unknown format"),
        ("patch of a missing object", "PATCH", "/api/v1/namespaces/default/configmaps/missing", "application/merge-patch+json", b"{}".to_vec(), 404, "configmaps \"missing\" not found"),
        ("apply without fieldManager", "PATCH", "/api/v1/namespaces/default/configmaps/a", "application/apply-patch+yaml", b"{}".to_vec(), 422, "fieldManager: Required value"),
        ("unknown path", "GET", "/apis/nosuch.io/v1/things", json, vec![], 404, "could not find the requested resource"),
        ("unsupported verb", "POST", "/api/v1/namespaces/default/configmaps/a", json, b"{}".to_vec(), 405, "does not allow this method"),
        ("bad limit", "GET", "/api/v1/namespaces/default/configmaps?limit=x", json, vec![], 400, "invalid limit"),
        ("bad continue token", "GET", "/api/v1/namespaces/default/configmaps?limit=1&continue=%%%", json, vec![], 400, "continue"),
        ("create in a missing namespace", "POST", "/api/v1/namespaces/nosuch/configmaps", json, br#"{"metadata":{"name":"a"}}"#.to_vec(), 404, "namespaces \"nosuch\" not found"),
        ("invalid custom resource", "POST", LXC, json, br#"{"apiVersion":"phoenix.thinkheads.ai/v1alpha1","kind":"LxcGuest","metadata":{"name":"x"},"spec":{"vmid":"a"}}"#.to_vec(), 422, "spec.vmid"),
        ("a vLLM model with a newline (it would add a line to the systemd unit)", "POST", LXC, json, br#"{"apiVersion":"phoenix.thinkheads.ai/v1alpha1","kind":"LxcGuest","metadata":{"name":"granite"},"spec":{"vmid":801,"source":{"clone":{"vmid":900}},"hostname":"granite","rootfs":{"storage":"fastData","size":"8G"},"provisioning":{"vllm":{"model":"granite\nExecStartPre=/bin/sh -c evil"}}}}"#.to_vec(), 422, "spec.provisioning.vllm.model: Invalid value"),
        ("bad secret data", "POST", "/api/v1/namespaces/default/secrets", json, br#"{"metadata":{"name":"s"},"data":{"k":"%%%"}}"#.to_vec(), 400, "illegal base64"),
        ("resourceVersionMatch without resourceVersion", "GET", "/api/v1/namespaces/default/configmaps?resourceVersionMatch=Exact", json, vec![], 422, "resourceVersionMatch"),
        ("an object nested 110 deep", "POST", NS, json, format!(r#"{{"metadata":{{"name":"deep"}},"data":{{"k":"v"}},"x":{}1{}}}"#, "[".repeat(110), "]".repeat(110)).into_bytes(), 400, "nested more than 100 levels"),
        ("secret data that is not a map", "POST", "/api/v1/namespaces/default/secrets", json, br#"{"metadata":{"name":"s2"},"data":"x","stringData":{"a":"b"}}"#.to_vec(), 400, "data must be a map"),
        ("a namespaced object without a namespace", "POST", "/api/v1/configmaps", json, br#"{"metadata":{"name":"a"}}"#.to_vec(), 404, "could not find the requested resource"),
        ("a CRD in a reserved group", "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json, br#"{"metadata":{"name":"leases.coordination.k8s.io"},"spec":{"group":"coordination.k8s.io","scope":"Namespaced","names":{"plural":"leases","kind":"Lease"},"versions":[{"name":"v1","served":true,"storage":true,"schema":{"openAPIV3Schema":{"type":"object"}}}]}}"#.to_vec(), 422, "reserved for built-in kinds"),
        ("orphan propagation", "DELETE", "/api/v1/namespaces/default/configmaps/missing-too?propagationPolicy=Orphan", json, vec![], 404, "not found"),
    ];
    for (what, method, path, content_type, body, code, needle) in cases {
        let (status, body) = send(&client, method, path, content_type, body).await;
        assert_eq!(status, code, "{what}: {body}");
        assert_eq!(body["kind"], "Status", "{what}: a metav1.Status");
        assert_eq!(body["code"], code, "{what}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(needle),
            "{what}: {message:?} should mention {needle:?}"
        );
    }
    // An access review whose body is not an object, absurd watch parameters: answered.
    let (status, _) = send(
        &client,
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        json,
        b"[]".to_vec(),
    )
    .await;
    assert_eq!(status, 201);
    let cm = br#"{"metadata":{"name":"orphaned"}}"#.to_vec();
    assert_eq!(send(&client, "POST", NS, json, cm).await.0, 201);
    let (status, body) = send(
        &client,
        "DELETE",
        &format!("{NS}/orphaned?propagationPolicy=Orphan"),
        json,
        vec![],
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        send(&client, "DELETE", &format!("{NS}/orphaned"), json, vec![])
            .await
            .0,
        200
    );
    for query in [
        "timeoutSeconds=18446744073709551615",
        "resourceVersion=18446744073709551615",
    ] {
        let request = http::Request::get(format!("{NS}?watch=true&{query}&timeoutSeconds=1"))
            .body(kube::client::Body::empty())
            .unwrap();
        let response = client.send(request).await.expect("the server answers");
        assert_eq!(response.status().as_u16(), 200, "{query}");
    }
    // Nothing was created by any of it, and the server still serves.
    let (status, list) = send(&client, "GET", NS, json, vec![]).await;
    assert_eq!(
        (status, list["items"].as_array().map(Vec::len)),
        (200, Some(0))
    );
}

#[tokio::test]
async fn only_health_endpoints_are_anonymous_and_secrets_stay_private() {
    use std::os::unix::fs::PermissionsExt;
    let server = support::ApiServer::start();
    for file in ["kubeconfig", "token", "server.key"] {
        let mode = std::fs::metadata(server.data_dir.join(file))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{file} is readable by its owner only");
    }
    // An anonymous client that trusts the server's CA: health answers, the API does not.
    let ca = std::fs::read(server.data_dir.join("ca.crt")).unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let anonymous = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    for path in ["/healthz", "/readyz", "/livez"] {
        let r = anonymous
            .get(format!("{}{path}", server.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(
            (r.status().as_u16(), r.text().await.unwrap()),
            (200, "ok".to_string()),
            "{path}"
        );
    }
    let r = anonymous
        .get(format!("{}/api/v1/namespaces", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let status: Value = r.json().await.unwrap();
    assert_eq!(
        (status["kind"].as_str(), status["reason"].as_str()),
        (Some("Status"), Some("Unauthorized"))
    );
}

#[tokio::test]
async fn deletecollection_honours_selectors() {
    let server = support::ApiServer::start();
    let client = support::client(&server).await;
    for (name, tier) in [("a", "web"), ("b", "web"), ("c", "db")] {
        let body = format!(r#"{{"metadata":{{"name":"{name}","labels":{{"tier":"{tier}"}}}}}}"#)
            .into_bytes();
        assert_eq!(
            send(&client, "POST", NS, "application/json", body).await.0,
            201
        );
    }
    let (status, _) = send(
        &client,
        "DELETE",
        &format!("{NS}?labelSelector=tier%3Dweb"),
        "application/json",
        vec![],
    )
    .await;
    assert_eq!(status, 200);
    let (_, list) = send(&client, "GET", NS, "application/json", vec![]).await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["c"]);
}
