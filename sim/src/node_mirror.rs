//! The files of the simulated nodes' insides, kept as real files under the state
//! directory (`<state dir>/nodes/<node>/<path>`), so that real programs can read what a
//! simulated node holds: a test runs Debian's dnsmasq on the mirrored `--hostsdir` and
//! sees records come and go without restarting it.
//!
//! The mirror is write-only: the inside is the truth, and nothing read from the disk ever
//! goes back into it. Each file is written as a `.NAME.partial` dot file beside it, then
//! renamed over it (dnsmasq watches its directories with inotify and skips dot files, so
//! it never reads half a file); a file removed from the inside is unlinked, its
//! directories stay (a watch on them would otherwise be lost). Nothing is ever written
//! outside the mirror's root: paths are normalised and `..` components refused.

use std::collections::BTreeMap;
use std::io::{Error, ErrorKind, Write};
use std::path::{Path, PathBuf};

/// An inside's files, path → content.
pub type Files = BTreeMap<String, String>;

/// The root of the mirror, `<state dir>/nodes`.
#[derive(Clone, Debug)]
pub struct NodeMirror {
    root: PathBuf,
}

/// `/etc/x/../y` and other paths that could leave the node's directory: refused, before
/// anything is written. Empty and `.` components are dropped; relative paths are taken
/// from `/`.
pub fn relative(path: &str) -> Result<PathBuf, Error> {
    let refused = || Error::new(ErrorKind::InvalidInput, format!("refused path {path:?}"));
    let mut out = PathBuf::new();
    for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if part == ".." {
            return Err(refused());
        }
        out.push(part);
    }
    if out.as_os_str().is_empty() {
        return Err(refused());
    }
    Ok(out)
}

impl NodeMirror {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// The mirror of the state file at `state_file`: `nodes/` beside it.
    pub fn beside(state_file: &Path) -> Self {
        let dir = state_file.parent().unwrap_or(Path::new("."));
        Self::new(dir.join("nodes"))
    }

    /// Where `node`'s files are mirrored: one directory of the root.
    fn node_dir(&self, node: &str) -> Result<PathBuf, Error> {
        match relative(node) {
            Ok(dir) if dir.components().count() == 1 => Ok(self.root.join(dir)),
            _ => Err(Error::new(
                ErrorKind::InvalidInput,
                format!("refused node {node:?}"),
            )),
        }
    }

    /// Where `path` of `node` is mirrored.
    pub fn locate(&self, node: &str, path: &str) -> Result<PathBuf, Error> {
        Ok(self.node_dir(node)?.join(relative(path)?))
    }

    /// Writes `content` as `path` of `node`: into `.NAME.partial`, then renamed into place.
    /// Owner-only, as the state file that holds the same content.
    pub fn write(&self, node: &str, path: &str, content: &str) -> Result<(), Error> {
        let target = self.locate(node, path)?;
        let partial = partial_of(&target);
        if let Some(dir) = target.parent() {
            std::fs::DirBuilder::new().recursive(true).create(dir)?;
        }
        let written = write_new(&partial, content).and_then(|_| std::fs::rename(&partial, &target));
        if written.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        written
    }

    /// Removes `path` of `node`, if it is there.
    pub fn remove(&self, node: &str, path: &str) -> Result<(), Error> {
        match std::fs::remove_file(self.locate(node, path)?) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Moves `from` to `to` of `node` in one rename, when the mirror has `from`.
    fn rename(&self, node: &str, from: &str, to: &str) -> Result<(), Error> {
        let (from, to) = (self.locate(node, from)?, self.locate(node, to)?);
        if let Some(dir) = to.parent() {
            std::fs::DirBuilder::new().recursive(true).create(dir)?;
        }
        std::fs::rename(from, to)
    }

    /// Brings `node`'s mirror from `before` to `after`: changed files written, removed ones
    /// unlinked; a file that went away while one with its content appeared (`mv`) is
    /// renamed. Failures are logged: the inside has changed whatever the disk does.
    pub fn follow(&self, node: &str, before: &Files, after: &Files) {
        let mut removed: Vec<&str> = before
            .keys()
            .filter(|p| !after.contains_key(*p))
            .map(String::as_str)
            .collect();
        let written: Vec<&str> = after
            .iter()
            .filter(|(p, c)| before.get(*p) != Some(c))
            .map(|(p, _)| p.as_str())
            .collect();
        for path in &written {
            let content = &after[*path];
            let moved = removed.iter().position(|r| before[*r] == *content);
            let renamed = moved.is_some_and(|i| {
                let from = removed.swap_remove(i);
                self.rename(node, from, path).is_ok()
            });
            if !renamed {
                self.report(path, self.write(node, path, content));
            }
        }
        for path in removed {
            self.report(path, self.remove(node, path));
        }
        self.rewrite_clobbered(node, &written, after);
    }

    /// A file of the inside named like the `.NAME.partial` of one just written was
    /// overwritten by that write (and renamed away): it is written again.
    fn rewrite_clobbered(&self, node: &str, written: &[&str], after: &Files) {
        for path in written {
            let partial = match path.rsplit_once('/') {
                Some((dir, name)) => format!("{dir}/.{name}.partial"),
                None => format!(".{path}.partial"),
            };
            if let Some(content) = after.get(&partial) {
                self.report(&partial, self.write(node, &partial, content));
            }
        }
    }

    /// Makes `node`'s mirror hold exactly `files` (at start: the state may be ahead of
    /// or behind the disk after a crash, or come from before the mirror existed).
    pub fn restore(&self, node: &str, files: &Files) {
        let Ok(node_dir) = self.node_dir(node) else {
            return;
        };
        let mut present = Vec::new();
        list(&node_dir, &node_dir, &mut present);
        for stray in present.iter().filter(|p| !files.contains_key(*p)) {
            self.report(stray, self.remove(node, stray));
        }
        for (path, content) in files {
            self.report(path, self.write(node, path, content));
        }
    }

    fn report(&self, path: &str, result: Result<(), Error>) {
        if let Err(e) = result {
            tracing::warn!(root = %self.root.display(), path, error = %e, "cannot mirror a node's file");
        }
    }
}

/// `/d/name` → `/d/.name.partial`: a dot file, which directory watchers skip.
fn partial_of(target: &Path) -> PathBuf {
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    target.with_file_name(format!(".{name}.partial"))
}

fn write_new(path: &Path, content: &str) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(content.as_bytes())
}

/// The files below `dir`, as the inside names them (`/etc/x`).
fn list(base: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => list(base, &path, out),
            Ok(_) => {
                if let Ok(rel) = path.strip_prefix(base) {
                    out.push(format!("/{}", rel.display()));
                }
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mirror in a directory of its own, removed when dropped.
    struct Root(PathBuf);

    impl Root {
        fn new(name: &str) -> (Self, NodeMirror) {
            let dir =
                std::env::temp_dir().join(format!("phoenix-mirror-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let mirror = NodeMirror::new(dir.join("nodes"));
            (Self(dir), mirror)
        }

        fn files(&self) -> Vec<String> {
            let mut found = Vec::new();
            list(&self.0, &self.0, &mut found);
            found.sort();
            found
        }
    }

    impl Drop for Root {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn files(entries: &[(&str, &str)]) -> Files {
        entries
            .iter()
            .map(|(p, c)| (p.to_string(), c.to_string()))
            .collect()
    }

    #[test]
    fn the_mirror_follows_writes_renames_and_removals_leaving_no_partial_file() {
        let (root, mirror) = Root::new("follow");
        let empty = Files::new();
        let one = files(&[("/etc/hosts.d/.a.partial", "1.2.3.4 a\n")]);
        mirror.follow("pve1", &empty, &one);
        assert_eq!(root.files(), ["/nodes/pve1/etc/hosts.d/.a.partial"]);
        let renamed = files(&[("/etc/hosts.d/a", "1.2.3.4 a\n")]);
        mirror.follow("pve1", &one, &renamed);
        assert_eq!(root.files(), ["/nodes/pve1/etc/hosts.d/a"]);
        let changed = files(&[("/etc/hosts.d/a", "1.2.3.5 a\n")]);
        mirror.follow("pve1", &renamed, &changed);
        let a = root.0.join("nodes/pve1/etc/hosts.d/a");
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "1.2.3.5 a\n");
        assert_eq!(
            root.files(),
            ["/nodes/pve1/etc/hosts.d/a"],
            "no partial left"
        );
        mirror.follow("pve1", &changed, &empty);
        assert!(root.files().is_empty());
        assert!(
            root.0.join("nodes/pve1/etc/hosts.d").is_dir(),
            "watched directories stay"
        );
    }

    #[test]
    fn a_file_named_like_the_partial_of_another_survives_its_write() {
        let (root, mirror) = Root::new("clobber");
        let before = files(&[("/d/.a.partial", "x")]);
        let after = files(&[("/d/.a.partial", "x"), ("/d/a", "y")]);
        mirror.write("n", "/d/.a.partial", "x").unwrap();
        mirror.follow("n", &before, &after);
        assert_eq!(root.files(), ["/nodes/n/d/.a.partial", "/nodes/n/d/a"]);
        let partial = root.0.join("nodes/n/d/.a.partial");
        assert_eq!(std::fs::read_to_string(partial).unwrap(), "x");
    }

    #[test]
    fn paths_and_nodes_that_would_leave_the_root_are_refused() {
        let (root, mirror) = Root::new("refused");
        for path in ["/etc/../../../escape", "..", "/a/../b", "/", ""] {
            assert!(mirror.write("pve1", path, "x").is_err(), "{path}");
        }
        for node in ["..", "a/b", "", "."] {
            assert!(mirror.write(node, "/etc/x", "x").is_err(), "{node}");
        }
        assert!(root.files().is_empty());
        assert!(!root.0.join("escape").exists());
        // Normalised: empty and `.` components are dropped.
        assert_eq!(
            mirror.locate("pve1", "//etc/./x").unwrap(),
            root.0.join("nodes/pve1/etc/x")
        );
    }
}
