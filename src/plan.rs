//! `phoenix plan -f FILE`: the steps the controllers would take for the objects in FILE
//! against the cluster as it is now. Reads only; changes nothing.

use clap::Args;
use kube::api::Api;
use kube::api::DynamicObject;
use phoenix_controllers::guest::{self, Guest};
use phoenix_controllers::pve::{Connections, Redirect};
use phoenix_crds::{LxcGuest, VmGuest};
use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Manifests (a file or a directory) whose LxcGuests to plan.
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
    /// Plan against the simulator of `phoenix up --simulate` (its DATA_DIR/sim.json; found
    /// by itself beside KUBECONFIG).
    #[arg(long)]
    pub simulator: Option<PathBuf>,
}

pub fn run(args: PlanArgs) -> ExitCode {
    crate::runtime::in_runtime(async move {
        match plan(args).await {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("phoenix plan: {e:#}");
                ExitCode::FAILURE
            }
        }
    })
}

fn redirect(path: &std::path::Path) -> anyhow::Result<Redirect> {
    let (credentials, _) = crate::simulator::read_credentials(path)?;
    Ok(crate::simulator::redirect(&credentials))
}

/// `phoenix up --simulate` writes `sim.json` beside its kubeconfig: planning against that
/// API server means planning against its simulator, never the manifests' real address.
fn simulator_beside_kubeconfig() -> Option<PathBuf> {
    let kubeconfig = std::env::var_os("KUBECONFIG")?;
    let path = crate::simulator::credentials_in(std::path::Path::new(&kubeconfig).parent()?);
    path.exists().then(|| {
        eprintln!("phoenix plan: using the simulator of {}", path.display());
        path
    })
}

async fn plan(args: PlanArgs) -> anyhow::Result<String> {
    let objects = crate::apply::read_manifests(&args.file)?;
    let kube = crate::kube_client::connect(None).await?;
    let simulator = args.simulator.clone().or_else(simulator_beside_kubeconfig);
    let redirect = simulator.as_deref().map(redirect).transpose()?;
    let connections = Connections::new(kube.clone(), redirect, Arc::default());
    let mut out = String::new();
    for object in objects {
        let kind = object.types.as_ref().map_or("", |t| t.kind.as_str());
        let section = match kind {
            "LxcGuest" => plan_one::<LxcGuest>(&kube, &connections, &object).await?,
            "VmGuest" => plan_one::<VmGuest>(&kube, &connections, &object).await?,
            _ => continue,
        };
        out.push_str(&section);
    }
    Ok(out)
}

/// The plan of one guest object of kind `G`, as text.
async fn plan_one<G: Guest>(
    kube: &kube::Client,
    connections: &Connections,
    object: &DynamicObject,
) -> anyhow::Result<String> {
    let name = object.metadata.name.clone().unwrap_or_default();
    // As kubectl apply would place it: in `default` unless the file says otherwise.
    let namespace = object
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let mut object = object.clone();
    object.metadata.namespace = Some(namespace.clone());
    let guest: G = serde_json::from_value(serde_json::to_value(&object)?)
        .map_err(|e| anyhow::anyhow!("{} {name}: {e}", G::KIND))?;
    let existing = Api::<G>::namespaced(kube.clone(), &namespace)
        .get_opt(&name)
        .await?;
    let uid = existing
        .and_then(|g| g.meta().uid.clone())
        .unwrap_or_default();
    let label = format!("{} {namespace}/{name} ({})", G::KIND, guest.label());
    let mut out = String::new();
    match guest::preview(kube, connections, &guest, &uid).await {
        Err(e) => writeln!(out, "{label}: cannot plan: {e} [{}]", e.category())?,
        Ok(p) if p.foreign => writeln!(
            out,
            "{label} on {}: held by a guest this object does not own; nothing would be done",
            p.node
        )?,
        Ok(p) if p.steps.is_empty() => writeln!(out, "{label} on {}: no changes", p.node)?,
        Ok(p) => {
            writeln!(out, "{label} on {}:", p.node)?;
            for (i, step) in p.steps.iter().enumerate() {
                writeln!(out, "  {}. {step}", i + 1)?;
            }
        }
    }
    Ok(out)
}
