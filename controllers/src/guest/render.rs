//! What containers and VMs render alike: the ownership marker, tags, sizes, and the keys
//! every guest has (cores, memory, boot order, protection).

use crate::ownership::{OWNER_TAG, owner_marker};
use phoenix_crds::guest::GuestCommon;
use std::collections::BTreeMap;

/// PVE sizes in GiB: `8G` → `8`, `512M` → `0.5`, `1T` → `1024`.
pub fn gib(size: &str) -> String {
    let (number, unit) = size.split_at(size.len().saturating_sub(1));
    let n: f64 = number.parse().unwrap_or(0.0);
    let g = match unit {
        "M" => n / 1024.0,
        "T" => n * 1024.0,
        _ => n,
    };
    if g.fract() == 0.0 {
        format!("{}", g as u64)
    } else {
        format!("{g}")
    }
}

pub fn flag(b: bool) -> &'static str {
    if b { "1" } else { "0" }
}

/// Tags as PVE stores them: lower case, de-duplicated, sorted, joined with `;`.
pub fn tags(spec_tags: &[String]) -> String {
    let mut tags: Vec<String> = spec_tags
        .iter()
        .map(|t| t.to_lowercase())
        .chain([OWNER_TAG.to_string()])
        .collect();
    tags.sort();
    tags.dedup();
    tags.join(";")
}

/// The keys every guest has, with the values `common` wants.
pub fn common_config(common: &GuestCommon, owner_uid: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert("cores".into(), common.cores.to_string());
    out.insert("memory".into(), common.memory.to_string());
    out.insert(
        "tags".into(),
        tags(&common.tags.iter().map(|t| t.0.clone()).collect::<Vec<_>>()),
    );
    out.insert("description".into(), owner_marker(owner_uid));
    out.insert("protection".into(), flag(common.protection).into());
    if let Some(startup) = &common.startup {
        out.insert("onboot".into(), flag(startup.on_boot).into());
        let parts: Vec<String> = [
            ("order", startup.order),
            ("up", startup.up_delay_seconds),
            ("down", startup.down_delay_seconds),
        ]
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
        .collect();
        if !parts.is_empty() {
            out.insert("startup".into(), parts.join(","));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_gib() {
        assert_eq!(
            (gib("8G"), gib("512M"), gib("1T")),
            ("8".into(), "0.5".into(), "1024".into())
        );
    }
}
