//! What a PVE node's shell runs beyond the small shell of [`crate::inside`]: `zfs`,
//! `zpool` and `exportfs`, on the node's pools, datasets and exports.

use crate::cluster::Node;
use crate::exports::Export;
use crate::inside::{Host, Inside, Outcome};
use crate::zfs::Zfs;

/// The parts of a node its shell's own commands act on, borrowed beside its inside.
pub struct NodeHost<'a> {
    zfs: &'a mut Zfs,
    exports: &'a mut Vec<Export>,
}

impl Host for NodeHost<'_> {
    fn command(&mut self, inside: &Inside, words: &[&str]) -> Option<Outcome> {
        let (program, args) = words.split_first()?;
        // `/sbin/zfs` is `zfs`.
        match program.rsplit('/').next().unwrap_or_default() {
            "zfs" => Some(crate::zfs_shell::zfs(self.zfs, args)),
            "zpool" => Some(crate::zfs_shell::zpool(self.zfs, args)),
            "exportfs" => Some(crate::exports::exportfs(
                inside,
                self.zfs,
                self.exports,
                args,
            )),
            _ => None,
        }
    }
}

impl Node {
    /// The node's inside and the host its shell runs commands on.
    pub fn shell(&mut self) -> (&mut Inside, NodeHost<'_>) {
        let host = NodeHost {
            zfs: &mut self.zfs,
            exports: &mut self.exports,
        };
        (&mut self.inside, host)
    }
}
