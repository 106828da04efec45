//! NFS exports of a node: `exportfs` reads `/etc/exports` and `/etc/exports.d/*.exports`
//! from the node's files, checks each path against the node's datasets (the only
//! directories the simulated node has to export), and keeps the exported set.

use crate::inside::{Inside, Outcome};
use crate::zfs::Zfs;
use serde::{Deserialize, Serialize};

/// One exported path for one client, with the options as written.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Export {
    pub path: String,
    pub client: String,
    pub options: Vec<String>,
}

/// The options nfs-utils knows (`exports(5)`); `name=value` ones by their name.
const OPTIONS: &[&str] = &[
    "rw",
    "ro",
    "sync",
    "async",
    "subtree_check",
    "no_subtree_check",
    "root_squash",
    "no_root_squash",
    "all_squash",
    "no_all_squash",
    "secure",
    "insecure",
    "wdelay",
    "no_wdelay",
    "hide",
    "nohide",
    "crossmnt",
    "nocrossmnt",
    "insecure_locks",
    "secure_locks",
    "no_auth_nlm",
    "auth_nlm",
    "no_acl",
    "acl",
    "pnfs",
    "no_pnfs",
    "security_label",
    "mountpoint",
    "mp",
    "fsid",
    "anonuid",
    "anongid",
    "sec",
    "refer",
    "replicas",
    "xprtsec",
];

/// The export files, in the order exportfs reads them.
fn export_files(inside: &Inside) -> Vec<(&String, &String)> {
    inside
        .files
        .iter()
        .filter(|(path, _)| {
            path.as_str() == "/etc/exports"
                || path
                    .strip_prefix("/etc/exports.d/")
                    .is_some_and(|name| name.ends_with(".exports") && !name.contains('/'))
        })
        .collect()
}

/// `CLIENT(OPTS)` or a bare `CLIENT`, with the line's `-OPTS` as its defaults.
fn client(word: &str, defaults: &[String]) -> Result<(String, Vec<String>), String> {
    let Some((name, rest)) = word.split_once('(') else {
        return Ok((word.to_owned(), defaults.to_vec()));
    };
    let Some(list) = rest.strip_suffix(')').filter(|l| !l.contains(['(', ')'])) else {
        return Err("syntax error: bad option list".into());
    };
    let options = list.split(',').filter(|o| !o.is_empty()).map(str::to_owned);
    Ok((
        name.to_owned(),
        defaults.iter().cloned().chain(options).collect(),
    ))
}

/// One line of an export file: `PATH [-OPTS] CLIENT[(OPTS)]…`.
fn parse_line(line: &str) -> Result<Vec<Export>, String> {
    let mut words = line.split_whitespace();
    let path = words.next().unwrap_or_default();
    if !path.starts_with('/') {
        return Err("syntax error: bad export path".into());
    }
    let mut defaults = Vec::new();
    let mut exports = Vec::new();
    for word in words {
        if let Some(list) = word.strip_prefix('-') {
            defaults = list.split(',').map(str::to_owned).collect();
            continue;
        }
        let (client, options) = client(word, &defaults)?;
        if let Some(bad) = options
            .iter()
            .find(|o| !OPTIONS.contains(&o.split('=').next().unwrap_or_default()))
        {
            return Err(format!("unknown keyword \"{bad}\""));
        }
        exports.push(Export {
            path: path.to_owned(),
            client,
            options,
        });
    }
    // A path with no client is exported to the world, as exportfs warns it does.
    if exports.is_empty() {
        exports.push(Export {
            path: path.to_owned(),
            client: "*".into(),
            options: defaults,
        });
    }
    Ok(exports)
}

/// Whether `path` is a dataset's mountpoint or below one. The root file system (`/`)
/// covers nothing: the simulated node has no directories of its own but its datasets'.
fn on_a_dataset(zfs: &Zfs, path: &str) -> bool {
    let path = path.trim_end_matches('/');
    zfs.datasets.keys().any(|d| {
        let mountpoint = zfs.mountpoint(d);
        mountpoint.len() > 1
            && mountpoint.starts_with('/')
            && (path == mountpoint || path.starts_with(&format!("{mountpoint}/")))
    })
}

/// Every export the files name, or exportfs's complaint about the first bad one.
fn read_all(inside: &Inside, zfs: &Zfs) -> Result<Vec<Export>, String> {
    let mut all = Vec::new();
    for (file, content) in export_files(inside) {
        for (number, line) in content.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let exports = parse_line(line)
                .map_err(|why| format!("exportfs: {file}:{}: {why}", number + 1))?;
            all.extend(exports);
        }
    }
    match all.iter().find(|e| !on_a_dataset(zfs, &e.path)) {
        Some(e) => Err(format!(
            "exportfs: Failed to stat {}: No such file or directory",
            e.path
        )),
        None => Ok(all),
    }
}

/// `GET /admin/nodes/{node}/exports`: each exported path with its clients as written
/// (`10.0.0.0/24(rw,no_root_squash)`), in the files' order.
pub fn summary(exported: &[Export]) -> serde_json::Value {
    let mut paths: Vec<(&str, Vec<String>)> = Vec::new();
    for e in exported {
        let client = match e.options.is_empty() {
            true => e.client.clone(),
            false => format!("{}({})", e.client, e.options.join(",")),
        };
        match paths.iter_mut().find(|(p, _)| *p == e.path) {
            Some((_, clients)) => clients.push(client),
            None => paths.push((&e.path, vec![client])),
        }
    }
    serde_json::Value::Array(
        paths
            .into_iter()
            .map(|(path, clients)| serde_json::json!({"path": path, "clients": clients}))
            .collect(),
    )
}

/// The options as `exportfs -v` spells them out: the defaults made explicit, in
/// nfs-utils' order.
fn verbose_options(options: &[String]) -> String {
    let has = |o: &str| options.iter().any(|x| x == o);
    let pick = |yes: &'static str, no: &'static str, default_yes: bool| {
        let set = match (has(yes), has(no)) {
            (true, _) => true,
            (_, true) => false,
            _ => default_yes,
        };
        if set { yes } else { no }
    };
    let mut out = vec![
        pick("sync", "async", true),
        pick("wdelay", "no_wdelay", true),
        pick("hide", "nohide", true),
    ];
    if has("crossmnt") {
        out.push("crossmnt");
    }
    out.push(pick("subtree_check", "no_subtree_check", false));
    let mut words: Vec<String> = out.into_iter().map(str::to_owned).collect();
    words.extend(
        options
            .iter()
            .filter(|o| {
                o.starts_with("fsid=") || o.starts_with("anonuid=") || o.starts_with("anongid=")
            })
            .cloned(),
    );
    let sec = options.iter().find(|o| o.starts_with("sec="));
    words.push(sec.cloned().unwrap_or_else(|| "sec=sys".into()));
    for word in [
        pick("rw", "ro", false),
        pick("secure", "insecure", true),
        pick("root_squash", "no_root_squash", true),
        pick("all_squash", "no_all_squash", false),
    ] {
        words.push(word.to_owned());
    }
    words.join(",")
}

/// How exportfs lays out a path and what follows it: a path longer than 14 characters on
/// a line of its own.
fn line(path: &str, rest: &str) -> String {
    match path.len() > 14 {
        true => format!("{path}\n\t\t{rest}\n"),
        false => format!("{path:<14}\t{rest}\n"),
    }
}

/// `exportfs -ra` (re-reads the files), `exportfs -ua` (unexports all), `exportfs -v`
/// and plain `exportfs` (list).
pub fn exportfs(inside: &Inside, zfs: &Zfs, exported: &mut Vec<Export>, args: &[&str]) -> Outcome {
    let flags: String = args.iter().filter_map(|a| a.strip_prefix('-')).collect();
    if flags.contains('u') {
        exported.clear();
        return Outcome::done();
    }
    if flags.contains('a') || flags.contains('r') {
        return match read_all(inside, zfs) {
            Ok(all) => {
                *exported = all;
                Outcome::done()
            }
            Err(message) => Outcome::failed(1, format!("{message}\n")),
        };
    }
    let verbose = flags.contains('v');
    Outcome::printing(
        exported
            .iter()
            .map(|e| match verbose {
                true => line(
                    &e.path,
                    &format!("{}({})", e.client, verbose_options(&e.options)),
                ),
                false => line(&e.path, &e.client),
            })
            .collect::<String>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(exports: &str) -> (Inside, Zfs) {
        let mut inside = Inside::default();
        inside.files.insert("/etc/exports".into(), exports.into());
        (inside, Zfs::default())
    }

    #[test]
    fn exports_of_dataset_paths_are_read_and_listed_as_exportfs_does() {
        let (mut inside, zfs) =
            node("# comment\n\n/rpool/data 10.0.0.0/24(rw,no_root_squash) host1\n");
        inside.files.insert(
            "/etc/exports.d/phoenix.exports".into(),
            "/var/lib/vz/iso -ro *(insecure)\n".into(),
        );
        let mut exported = Vec::new();
        assert_eq!(
            exportfs(&inside, &zfs, &mut exported, &["-ra"]),
            Outcome::done()
        );
        assert_eq!(exported.len(), 3);
        assert_eq!(exported[2].options, ["ro", "insecure"]);
        let listed = exportfs(&inside, &zfs, &mut exported, &["-v"]).out;
        assert_eq!(
            listed.lines().next(),
            Some(
                "/rpool/data   \t10.0.0.0/24(sync,wdelay,hide,no_subtree_check,sec=sys,rw,secure,no_root_squash,no_all_squash)"
            )
        );
        assert!(listed.contains("/var/lib/vz/iso\n\t\t*(sync,wdelay,hide,no_subtree_check,sec=sys,ro,insecure,root_squash,no_all_squash)\n"));
        let plain = exportfs(&inside, &zfs, &mut exported, &[]).out;
        assert!(
            plain.starts_with("/rpool/data   \t10.0.0.0/24\n/rpool/data   \thost1\n"),
            "{plain}"
        );
    }

    #[test]
    fn a_missing_path_or_a_bad_line_exports_nothing() {
        let mut exported = vec![Export {
            path: "/rpool/data".into(),
            client: "*".into(),
            options: vec![],
        }];
        let before = exported.clone();
        let (inside, zfs) = node("/rpool/data *(rw)\n/srv/nothing *(rw)\n");
        assert_eq!(
            exportfs(&inside, &zfs, &mut exported, &["-ra"]),
            Outcome::failed(
                1,
                "exportfs: Failed to stat /srv/nothing: No such file or directory\n"
            )
        );
        let (inside, zfs) = node("/rpool/data *(rw,bogus)\n");
        assert_eq!(
            exportfs(&inside, &zfs, &mut exported, &["-ra"]),
            Outcome::failed(1, "exportfs: /etc/exports:1: unknown keyword \"bogus\"\n")
        );
        assert_eq!(exported, before);
    }
}
