//! Certificates end to end against a real ACME server: Debian's `pebble`, started here on
//! 127.0.0.1 (its DNS answers 127.0.0.1 for every name, so HTTP-01 validation reaches the
//! controller's responder), `phoenix up --simulate` pointed at it, and the stock kubectl.

mod support;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams};
use phoenix_crds::Certificate;
use phoenix_sim::pebble::Pebble;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use support::ApiServer;

struct World {
    server: ApiServer,
    pebble: Pebble,
    api: Api<Certificate>,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Validating: every name resolves to 127.0.0.1, where the responder answers.
    let pebble = Pebble::start(&dir.path().join("pebble"), port, true)
        .expect("pebble (make deps installs it)");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let log = dir.path().join("phoenix.log");
    let listen = format!("127.0.0.1:{port}");
    let ca = pebble.listener_ca.display().to_string();
    let server = ApiServer::up_simulated_logged(
        &data,
        &[
            "--sim-acme-directory",
            &pebble.directory_url,
            "--sim-acme-roots",
            &pebble.roots_url,
            "--sim-acme-ca",
            &ca,
            "--acme-http01-listen",
            &listen,
        ],
        &log,
    );
    support::homelab_cluster(&server).await;
    let api = Api::namespaced(support::client(&server).await, "default");
    World {
        server,
        pebble,
        api,
        log,
        _dir: dir,
    }
}

const PORTAINER: &str = r#"
apiVersion: phoenix.thinkheads.ai/v1alpha1
kind: Certificate
metadata: {name: portainer, namespace: default}
spec:
  secretName: portainer-tls
  commonName: portainer.internal.thinkheads.ai
  dnsNames: [portainer.internal.thinkheads.ai, portainer]
  # Validated by connecting to it: loopback, where the responder answers.
  ipAddresses: [127.0.0.1]
  issuer: {clusterRef: {name: homelab}}
  install:
  - guestRef: {kind: LxcGuest, name: web}
    certPath: /etc/nginx/tls/web.crt
    keyPath: /etc/nginx/tls/web.key
    chainPath: /etc/nginx/tls/ca.crt
    reloadCommand: systemctl reload nginx
"#;

fn condition(c: &Certificate, type_: &str) -> Option<(String, String, String)> {
    c.status
        .as_ref()?
        .common
        .conditions
        .iter()
        .find(|x| x.type_ == type_)
        .map(|x| (x.status.clone(), x.reason.clone(), x.message.clone()))
}

fn ready(c: &Certificate) -> bool {
    condition(c, "Ready").is_some_and(|(s, _, _)| s == "True")
        && condition(c, "Installed").is_some_and(|(s, _, _)| s == "True")
}

/// The files installed in guest 520 and how often nginx was reloaded there.
async fn installed(w: &World) -> (String, usize) {
    let guest = support::SimAdmin::of(&w.server).guest(520).await;
    let reloads = guest["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["command"] == "systemctl reload nginx")
        .count();
    let cert = guest["files"]["/etc/nginx/tls/web.crt"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (cert, reloads)
}

/// Pebble's root, as its roots URL serves it.
async fn pebble_root(w: &World) -> String {
    reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&w.pebble.listener_ca).unwrap()).unwrap(),
        )
        .build()
        .unwrap()
        .get(&w.pebble.roots_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn revision(c: &Certificate) -> i64 {
    c.status.as_ref().and_then(|s| s.revision).unwrap_or(0)
}

async fn secret(w: &World, name: &str) -> (String, String, String) {
    let secrets: Api<Secret> = Api::namespaced(support::client(&w.server).await, "default");
    let s = secrets.get(name).await.unwrap();
    let data = s.data.unwrap();
    let text = |k: &str| String::from_utf8(data[k].0.clone()).unwrap();
    (text("tls.crt"), text("tls.key"), text("ca.crt"))
}

/// The chain verifies against pebble's root with rustls (webpki) for `name`.
fn verifies(chain_pem: &str, root_pem: &str, name: &str) -> Result<(), String> {
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(root_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
    let chain: Vec<CertificateDer> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .map(|c| c.unwrap())
        .collect();
    verifier
        .verify_server_cert(
            &chain[0],
            &chain[1..],
            &ServerName::try_from(name.to_owned()).unwrap(),
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn openssl_verify(dir: &std::path::Path, chain_pem: &str, root_pem: &str) -> String {
    let certs: Vec<&str> = chain_pem
        .split_inclusive("-----END CERTIFICATE-----\n")
        .collect();
    std::fs::write(dir.join("leaf.pem"), certs[0]).unwrap();
    std::fs::write(dir.join("intermediates.pem"), certs[1..].concat()).unwrap();
    std::fs::write(dir.join("root.pem"), root_pem).unwrap();
    let out = std::process::Command::new("openssl")
        .args([
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "intermediates.pem",
            "leaf.pem",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_is_issued_renewed_recovers_from_an_outage_and_keeps_its_secrets() {
    let mut w = world().await;
    support::kubectl_apply(&w.server, PORTAINER);
    support::kubectl_apply(&w.server, &support::guest_yaml("web", 520, ""));
    support::wait_for(&w.api, "portainer Ready", Duration::from_secs(60), |cs| {
        cs.iter().all(|c| ready(c))
    })
    .await;
    let (chain, key, ca) = secret(&w, "portainer-tls").await;
    assert_eq!(
        installed(&w).await,
        (chain.clone(), 1),
        "installed, nginx reloaded once"
    );
    let root = pebble_root(&w).await;
    assert_eq!(ca.trim(), root.trim(), "ca.crt is pebble's root");
    verifies(&chain, &root, "portainer.internal.thinkheads.ai")
        .expect("the chain verifies with rustls");
    verifies(&chain, &root, "portainer").expect("every dnsName is in the certificate");
    verifies(&chain, &root, "127.0.0.1").expect("and the IP address");
    let dir = tempfile::tempdir().unwrap();
    let openssl = openssl_verify(dir.path(), &chain, &root);
    assert!(openssl.contains("leaf.pem: OK"), "{openssl}");
    let configmaps: Api<ConfigMap> =
        Api::namespaced(support::client(&w.server).await, "phoenix-system");
    let published = configmaps
        .get("phoenix-ca-root")
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(
        published["homelab.crt"].trim(),
        root.trim(),
        "the cluster's root is published for trusted-ca"
    );
    let table = support::kubectl(&w.server, &["get", "certificates"]);
    assert!(
        table.contains("portainer-tls") && table.contains("True"),
        "{table}"
    );

    // Renewal: renew 15 s after issuance (pebble's certificates live five years).
    let c = w.api.get("portainer").await.unwrap();
    let status = c.status.clone().unwrap();
    let not_before = status
        .not_before
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap();
    let not_after = status
        .not_after
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap();
    let lifetime = not_after.as_second() - not_before.as_second();
    let age = jiff::Timestamp::now().as_second() - not_before.as_second();
    let renew_before = format!("{}s", lifetime - age - 15);
    let patch = |spec: serde_json::Value| Patch::Merge(json!({ "spec": spec }));
    w.api
        .patch(
            "portainer",
            &PatchParams::default(),
            &patch(json!({"renewBefore": renew_before})),
        )
        .await
        .unwrap();
    let serial = status.serial_number.clone();
    support::wait_for(&w.api, "renewed", Duration::from_secs(90), |cs| {
        cs.iter().all(|c| {
            revision(c) == 2 && c.status.as_ref().unwrap().serial_number != serial && ready(c)
        })
    })
    .await;
    let (renewed_chain, renewed_key, _) = secret(&w, "portainer-tls").await;
    assert_ne!(renewed_chain, chain, "the Secret holds the new certificate");
    assert_ne!(renewed_key, key, "rotationPolicy Always: a new key");
    assert_eq!(
        installed(&w).await,
        (renewed_chain.clone(), 2),
        "re-installed, one reload per certificate"
    );
    w.api
        .patch(
            "portainer",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"renewBefore": null}})),
        )
        .await
        .unwrap();

    // The CA goes away: a change that needs a new certificate fails visibly, with backoff.
    w.pebble.stop();
    w.api
        .patch(
            "portainer",
            &PatchParams::default(),
            &patch(
                json!({"dnsNames": ["portainer.internal.thinkheads.ai", "portainer", "docker"]}),
            ),
        )
        .await
        .unwrap();
    support::wait_for(
        &w.api,
        "the outage reported",
        Duration::from_secs(60),
        |cs| {
            cs.iter().all(|c| {
                condition(c, "Issuing").is_some_and(|(s, r, _)| s == "False" && r == "Failed")
                    && c.status.as_ref().unwrap().failed_issuance_attempts >= Some(3)
            })
        },
    )
    .await;
    let c = w.api.get("portainer").await.unwrap();
    let (_, _, message) = condition(&c, "Issuing").unwrap();
    assert!(
        message.contains("roots/0") || message.contains("connect"),
        "{message}"
    );
    assert!(
        ready(&c),
        "the current certificate still serves while the CA is away"
    );
    let first_failure = c.status.as_ref().unwrap().last_failure_time.clone();
    let attempts = c.status.as_ref().unwrap().failed_issuance_attempts.unwrap();
    assert!(
        attempts <= 6,
        "{attempts} attempts: the retries back off (2, 4, 8 s...)"
    );
    w.pebble.resume().expect("pebble again");
    support::wait_for(&w.api, "recovered", Duration::from_secs(120), |cs| {
        cs.iter().all(|c| {
            revision(c) == 3
                && c.status
                    .as_ref()
                    .unwrap()
                    .failed_issuance_attempts
                    .is_none()
                && ready(c)
        })
    })
    .await;
    assert!(first_failure.is_some());
    assert_eq!(
        installed(&w).await.1,
        3,
        "one reload per certificate, none for the failures"
    );

    // Nothing secret in logs, events or status.
    let (_, key, _) = secret(&w, "portainer-tls").await;
    let secrets: Api<Secret> = Api::namespaced(support::client(&w.server).await, "default");
    let account = secrets
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|s| {
            s.metadata
                .name
                .as_deref()
                .unwrap()
                .starts_with("phoenix-acme-account-")
        })
        .expect("the ACME account is kept in a Secret");
    let credentials =
        String::from_utf8(account.data.unwrap()["credentials.json"].0.clone()).unwrap();
    let account_key: serde_json::Value = serde_json::from_str(&credentials).unwrap();
    let account_key = account_key["key_pkcs8"].as_str().unwrap().to_owned();
    let everything = [
        std::fs::read_to_string(&w.log).unwrap(),
        support::kubectl(&w.server, &["get", "events", "-A", "-o", "yaml"]),
        support::kubectl(&w.server, &["get", "certificates", "-A", "-o", "yaml"]),
    ]
    .join("\n");
    for line in key.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!everything.contains(line), "the private key leaked");
    }
    assert!(
        !everything.contains(&account_key[..40]),
        "the account key leaked"
    );
}

/// Certificates the cluster's policy refuses or that must wait: an ACME directory the
/// ProxmoxCluster does not allow, an allowed one whose root is not the pinned one, a
/// solver not available, a CA guest not there yet. And a tenant's own (allowed) ACME
/// directory issues, but its root never becomes the platform's published root.
#[tokio::test(flavor = "multi_thread")]
async fn the_clusters_acme_policy_is_kept_and_only_its_own_root_is_published() {
    let w = world().await;
    let allowed = "https://10.0.0.10:9000/acme/acme/directory";
    let tenant = "https://acme.tenant.example/acme/directory";
    support::patch_homelab(
        &w.server,
        &json!({"spec": {"acme": {"allowedDirectories": [allowed, tenant]}}}),
    );
    let pebble_fingerprint =
        phoenix_controllers::certificate::acme::fingerprint(&pebble_root(&w).await).unwrap();
    support::kubectl_apply(
        &w.server,
        &format!(
            r#"
apiVersion: phoenix.thinkheads.ai/v1alpha1
kind: Certificate
metadata: {{name: pinned, namespace: default}}
spec:
  secretName: pinned-tls
  dnsNames: [pinned.internal.thinkheads.ai]
  issuer:
    acme: {{directoryUrl: "{allowed}", rootFingerprint: "{}"}}
---
apiVersion: phoenix.thinkheads.ai/v1alpha1
kind: Certificate
metadata: {{name: stray, namespace: default}}
spec:
  secretName: stray-tls
  dnsNames: [stray.internal.thinkheads.ai]
  issuer:
    acme: {{directoryUrl: "https://acme.elsewhere.example/directory", rootFingerprint: "{pebble_fingerprint}"}}
---
apiVersion: phoenix.thinkheads.ai/v1alpha1
kind: Certificate
metadata: {{name: tenant, namespace: default}}
spec:
  secretName: tenant-tls
  dnsNames: [tenant.internal.thinkheads.ai]
  ipAddresses: [127.0.0.1]
  issuer:
    acme: {{directoryUrl: "{tenant}", rootFingerprint: "{pebble_fingerprint}"}}
---
apiVersion: phoenix.thinkheads.ai/v1alpha1
kind: Certificate
metadata: {{name: waiting, namespace: default}}
spec:
  secretName: waiting-tls
  dnsNames: [waiting.internal.thinkheads.ai]
  dependsOn: [{{kind: LxcGuest, name: step-ca}}]
---
apiVersion: phoenix.thinkheads.ai/v1alpha1
kind: Certificate
metadata: {{name: by-dns, namespace: default}}
spec:
  secretName: by-dns-tls
  dnsNames: [by-dns.internal.thinkheads.ai]
  issuer: {{solver: Dns01}}
"#,
            "ab".repeat(32)
        ),
    );
    support::wait_for(
        &w.api,
        "refused, waiting and issued",
        Duration::from_secs(60),
        |cs| {
            cs.len() == 5
                && cs.iter().all(|c| {
                    let reason = condition(c, "Ready").map(|(_, r, _)| r).unwrap_or_default();
                    match c.metadata.name.as_deref() {
                        Some("pinned") => reason == "RootFingerprintMismatch",
                        Some("stray") => reason == "AcmeDirectoryNotAllowed",
                        Some("by-dns") => reason == "SolverUnavailable",
                        Some("tenant") => reason == "Ready",
                        _ => reason == "WaitingForDependencies",
                    }
                })
        },
    )
    .await;
    let pinned = w.api.get("pinned").await.unwrap();
    let (_, _, message) = condition(&pinned, "Ready").unwrap();
    assert!(message.contains("not the pinned"), "{message}");
    let stray = w.api.get("stray").await.unwrap();
    assert!(condition(&stray, "Stalled").is_some_and(|(s, _, _)| s == "True"));
    let secrets: Api<Secret> = Api::namespaced(support::client(&w.server).await, "default");
    for refused in ["pinned-tls", "stray-tls"] {
        assert!(
            secrets.get_opt(refused).await.unwrap().is_none(),
            "nothing issued"
        );
    }
    let waiting = w.api.get("waiting").await.unwrap();
    assert!(
        condition(&waiting, "Ready")
            .unwrap()
            .2
            .contains("LxcGuest default/step-ca")
    );
    // The tenant's certificate is issued, and its CA root is not published as the
    // platform's (no certificate of the cluster's own Step-CA was issued here).
    assert!(secrets.get_opt("tenant-tls").await.unwrap().is_some());
    let configmaps: Api<ConfigMap> =
        Api::namespaced(support::client(&w.server).await, "phoenix-system");
    assert!(
        configmaps
            .get_opt("phoenix-ca-root")
            .await
            .unwrap()
            .is_none(),
        "a tenant's root is never the platform's"
    );
}

/// A Certificate whose install target names an object that holds no guest of its own: the
/// LxcGuest asks for the VMID of a container made by hand (no Phoenix marker), so it is
/// refused (`VmidInUse`), and nothing of the certificate — files, key, reload command —
/// reaches that container, whatever the objects' statuses say.
#[tokio::test(flavor = "multi_thread")]
async fn nothing_is_installed_into_a_guest_that_is_not_its_objects() {
    let w = world().await;
    let sim = support::SimAdmin::of(&w.server);
    support::foreign_guest(&sim, 555, "by-hand").await;
    support::kubectl_apply(&w.server, &support::guest_yaml("taken", 555, ""));
    let pwned = PORTAINER
        .replace("name: portainer,", "name: pwned,")
        .replace("portainer-tls", "pwned-tls")
        .replace("name: web}", "name: taken}")
        .replace("systemctl reload nginx", "echo pwned > /root/owned");
    support::kubectl_apply(&w.server, &pwned);
    support::wait_for(&w.api, "pwned issued", Duration::from_secs(60), |cs| {
        cs.iter().any(|c| {
            condition(c, "Ready").is_some_and(|(s, _, _)| s == "True")
                && condition(c, "Installed").is_some_and(|(s, _, m)| {
                    s == "False" && m.contains("LxcGuest/taken") && m.contains("not Ready")
                })
        })
    })
    .await;
    let guests: Api<phoenix_crds::LxcGuest> =
        Api::namespaced(support::client(&w.server).await, "default");
    let taken = guests
        .get("taken")
        .await
        .unwrap()
        .status
        .unwrap_or_default();
    assert_eq!(support::ready_reason(&taken.common.conditions), "VmidInUse");
    assert_eq!(
        taken.guest.node, None,
        "nothing of the foreign guest recorded"
    );
    assert_eq!(taken.guest.state, None);
    // Asked directly for a way into the container on behalf of the object, the exec
    // client checks PVE's marker, live, and refuses: no status is trusted for that.
    let text = std::fs::read_to_string(w.server.data_dir.join("sim.json")).unwrap();
    let c: serde_json::Value = serde_json::from_str(&text).unwrap();
    let redirect = phoenix_controllers::pve::Redirect {
        endpoint: c["url"].as_str().unwrap().into(),
        token_id: c["token_id"].as_str().unwrap().into(),
        token_secret: c["token_secret"].as_str().unwrap().into(),
        fingerprint: c["fingerprint"].as_str().unwrap().into(),
        pct: vec!["/bin/false".into()],
        ..Default::default()
    };
    let kube = support::client(&w.server).await;
    let metrics = Arc::new(phoenix_controllers::metrics::Metrics::default());
    let connections =
        phoenix_controllers::pve::Connections::new(kube.clone(), Some(redirect.clone()), metrics);
    let pve = connections.get(Some("homelab")).await.unwrap();
    let uid = guests.get("taken").await.unwrap().metadata.uid.unwrap();
    let kind = phoenix_clients::proxmox::GuestType::Lxc;
    let Err(refused) = phoenix_controllers::guest_exec::owned_shell(
        &kube,
        &pve,
        Some(&redirect),
        kind,
        "phoenix",
        555,
        &uid,
    )
    .await
    .unwrap() else {
        panic!("a way into a guest that is not the object's");
    };
    assert!(
        refused.contains("does not carry its object's marker"),
        "{refused}"
    );
    let guest = sim.guest(555).await;
    let files: Vec<&String> = guest["files"].as_object().unwrap().keys().collect();
    assert!(
        !files
            .iter()
            .any(|f| f.starts_with("/etc/nginx") || f.starts_with("/root")),
        "{files:?}"
    );
    assert_eq!(guest["log"].as_array().unwrap().len(), 0, "no command ran");
}
