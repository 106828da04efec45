//! NFS exports, pure: the spec's exports rendered as one exports(5) file Phoenix owns in
//! `/etc/exports.d` (every value from the schema's patterns: no spaces, no parentheses).

use phoenix_crds::host_storage::NfsExport;

/// Phoenix's exports file; Debian's nfs-kernel-server reads every `*.exports` there.
pub const EXPORTS_PATH: &str = "/etc/exports.d/phoenix.exports";

/// Options of a client the spec gives none: read-only, as exports(5) would, stated.
const DEFAULT_OPTIONS: &str = "ro,sync,no_subtree_check";

pub fn render(host: &str, exports: &[NfsExport]) -> String {
    let mut out =
        format!("# Written by Phoenix for ProxmoxHost {host}: changes made here are put back.\n");
    for export in exports {
        let clients: Vec<String> = export
            .clients
            .iter()
            .map(|c| {
                let options = match c.options.is_empty() {
                    true => DEFAULT_OPTIONS.to_owned(),
                    false => c.options.join(","),
                };
                format!("{}({options})", c.host)
            })
            .collect();
        out.push_str(&format!("{} {}\n", export.path, clients.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use phoenix_crds::host_storage::NfsClient;

    #[test]
    fn one_line_per_export_with_each_clients_options() {
        let exports = vec![NfsExport {
            path: "/mnt/pve/quickOS".into(),
            clients: vec![
                NfsClient {
                    host: "10.0.0.0/24".into(),
                    options: vec!["rw".into(), "sync".into(), "no_root_squash".into()],
                },
                NfsClient {
                    host: "*".into(),
                    options: vec![],
                },
            ],
        }];
        let text = render("phoenix", &exports);
        assert!(text.starts_with("# Written by Phoenix for ProxmoxHost phoenix"));
        assert!(text.ends_with(
            "/mnt/pve/quickOS 10.0.0.0/24(rw,sync,no_root_squash) *(ro,sync,no_subtree_check)\n"
        ));
    }
}
