//! Content hashes Phoenix compares what it wants with what is there by.

/// SHA-256 of `text`, lower-case hex (as `sha256sum` prints it).
pub fn sha256(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
