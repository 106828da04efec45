//! `phoenix sim pct`: the `pct` of a simulated PVE node. `pct exec VMID -- CMD…` and
//! `pct push VMID FILE DEST [--perms MODE]` are forwarded to the simulator's guest (its admin endpoint,
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
    let (vmid, action, body) = match request(args.command) {
        Ok(request) => request,
        Err(message) => return fail(message),
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

/// The simulator's admin route and body for one `pct` command.
fn request(command: PctCommand) -> Result<(u32, &'static str, Value), String> {
    match command {
        PctCommand::Exec { vmid, command } => Ok((vmid, "exec", json!({"command": command}))),
        PctCommand::Push {
            vmid,
            file,
            destination,
            perms,
            ..
        } => match std::fs::read(&file) {
            Ok(bytes) => {
                let mut body =
                    json!({"path": destination, "content": String::from_utf8_lossy(&bytes)});
                // The simulator creates the file with them, as pct does.
                if let Some(perms) = perms {
                    body["perms"] = json!(perms);
                }
                Ok((vmid, "push", body))
            }
            Err(e) => Err(format!("unable to open file '{}' - {e}", file.display())),
        },
    }
}

async fn call(
    credentials: &phoenix_sim::CredentialsFile,
    route: &str,
    body: &Value,
) -> Result<Value, String> {
    admin(credentials, reqwest::Method::POST, route, Some(body)).await
}

/// One call to the simulator's admin endpoint `route` (found through its credentials);
/// the answer, or the simulator's refusal.
pub async fn admin(
    credentials: &phoenix_sim::CredentialsFile,
    method: reqwest::Method,
    route: &str,
    body: Option<&Value>,
) -> Result<Value, String> {
    let tls = client_config(&Trust::Fingerprint(credentials.fingerprint.clone()))?;
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .map_err(|e| e.to_string())?;
    let mut request = http.request(method, format!("{}/{route}", credentials.admin_url));
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request
        .header(
            "Authorization",
            format!(
                "PVEAPIToken={}={}",
                credentials.token_id, credentials.token_secret
            ),
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_passes_its_perms_on_so_the_file_is_created_with_them() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "PRIVATE KEY\n").unwrap();
        let push = |perms: Option<&str>| PctCommand::Push {
            vmid: 801,
            file: file.path().to_owned(),
            destination: "/etc/ssl/private/key.pem".into(),
            perms: perms.map(str::to_owned),
            user: None,
            group: None,
        };
        let (vmid, action, body) = request(push(Some("0600"))).unwrap();
        assert_eq!((vmid, action), (801, "push"));
        assert_eq!(body["perms"], "0600");
        assert_eq!(body["content"], "PRIVATE KEY\n");
        let (_, _, body) = request(push(None)).unwrap();
        assert!(body.get("perms").is_none(), "{body}");
    }
}
