//! `phoenix sim pct`: the `pct` of a simulated PVE node. `pct exec VMID -- CMD…` and
//! `pct push VMID FILE DEST` are forwarded to the simulator's guest (its admin endpoint,
//! found through the credentials file), so the SSH path of guest exec can be tested
//! against a real `sshd` whose PATH holds a `pct` that calls this.

use clap::{Args, Subcommand};
use phoenix_clients::proxmox::{Trust, client_config};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct SimPctArgs {
    /// The simulator's credentials file (`phoenix sim pve --credentials-out`, or
    /// DATA_DIR/sim.json of `phoenix up --simulate`).
    #[arg(long, env = "PHOENIX_SIM_CREDENTIALS")]
    pub credentials: PathBuf,
    #[command(subcommand)]
    pub command: PctCommand,
}

#[derive(Subcommand, Debug)]
pub enum PctCommand {
    /// Run a command in the container: `exec VMID -- CMD [ARGS…]`.
    Exec {
        vmid: u32,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Copy a local file into the container.
    Push {
        vmid: u32,
        file: PathBuf,
        destination: String,
        #[arg(long)]
        perms: Option<String>,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        group: Option<String>,
    },
}

/// pct's exit code when it fails itself (a Perl `die`).
const PCT_FAILED: u8 = 255;

pub fn run(args: SimPctArgs) -> ExitCode {
    crate::runtime::in_runtime(forward(args))
}

async fn forward(args: SimPctArgs) -> ExitCode {
    let fail = |message: String| {
        eprintln!("{message}");
        ExitCode::from(PCT_FAILED)
    };
    let credentials: phoenix_sim::CredentialsFile = match std::fs::read(&args.credentials)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => return fail(format!("{}: {e}", args.credentials.display())),
    };
    let (vmid, action, body) = match args.command {
        PctCommand::Exec { vmid, command } => (vmid, "exec", json!({"command": command})),
        PctCommand::Push {
            vmid,
            file,
            destination,
            ..
        } => match std::fs::read(&file) {
            Ok(bytes) => (
                vmid,
                "push",
                json!({"path": destination, "content": String::from_utf8_lossy(&bytes)}),
            ),
            Err(e) => return fail(format!("unable to open file '{}' - {e}", file.display())),
        },
    };
    let answer = match call(&credentials, &format!("guests/{vmid}/{action}"), &body).await {
        Ok(answer) => answer,
        Err(message) => return fail(message),
    };
    if let Some(output) = answer["output"].as_str() {
        print!("{output}");
    }
    let code = answer["exitcode"].as_i64().unwrap_or(0);
    ExitCode::from(u8::try_from(code).unwrap_or(PCT_FAILED))
}

async fn call(
    credentials: &phoenix_sim::CredentialsFile,
    route: &str,
    body: &Value,
) -> Result<Value, String> {
    let tls = client_config(&Trust::Fingerprint(credentials.fingerprint.clone()))?;
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .map_err(|e| e.to_string())?;
    let response = http
        .post(format!("{}/{route}", credentials.admin_url))
        .header(
            "Authorization",
            format!(
                "PVEAPIToken={}={}",
                credentials.token_id, credentials.token_secret
            ),
        )
        .json(body)
        .send()
        .await
        .map_err(|e| format!("cannot reach the simulator: {e}"))?;
    let ok = response.status().is_success();
    let value: Value = response.json().await.unwrap_or(Value::Null);
    if ok {
        Ok(value)
    } else {
        Err(value["message"]
            .as_str()
            .unwrap_or("the simulator refused")
            .to_owned())
    }
}
