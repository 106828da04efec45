//! The platform's manifests in `examples/`, read by the unit tests of the modules that
//! render, plan or check them (read at run time: a test binary may be built elsewhere).

/// The object in `examples/FILE`, e.g. `example::<LxcGuest>("lxc-801.yaml")`.
pub fn example<T: serde::de::DeserializeOwned>(file: &str) -> T {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let path = format!("{dir}/../examples/{file}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}
