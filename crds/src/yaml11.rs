//! YAML 1.1 readers (kubectl, Helm, kube-apiserver's own manifests: Go's yaml.v2 lineage)
//! take plain `on`, `off`, `yes`, `no`, `y` and `n` for booleans; the serialiser Phoenix
//! uses speaks YAML 1.2 and leaves those strings plain. An enum such as ZFS's `on`/`off`
//! would then reach the API server as `[true, false]`. This pass quotes them.

/// The plain scalars YAML 1.1 resolves to booleans that YAML 1.2 reads as strings.
const YAML11_BOOLEANS: &[&str] = &[
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
    "OFF",
];

/// `text` (block-style YAML as serde_yaml_ng writes it) with every plain scalar value that
/// YAML 1.1 would read as a boolean single-quoted; literal block scalars are left as written.
pub fn quote_yaml11_booleans(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    // Indentation of the line that opened a literal block (`key: |-`), while inside it.
    let mut block_opened_at: Option<usize> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(opened) = block_opened_at {
            if line.trim().is_empty() || indent > opened {
                out.push_str(line);
                out.push('\n');
                continue;
            }
            block_opened_at = None;
        }
        let (head, value) = split_value(line);
        if YAML11_BOOLEANS.contains(&value) {
            out.push_str(&format!("{head}'{value}'\n"));
            continue;
        }
        if value.starts_with('|') || value.starts_with('>') {
            block_opened_at = Some(indent);
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A line split before its scalar value: after `key: `, or after the last `- `.
fn split_value(line: &str) -> (&str, &str) {
    let at = match line.find(": ") {
        Some(colon) => colon + 2,
        None => {
            let items = line.len() - line.trim_start_matches([' ', '-']).len();
            if line[..items].ends_with("- ") {
                items
            } else {
                0
            }
        }
    };
    line.split_at(at)
}

#[cfg(test)]
mod tests {
    use super::quote_yaml11_booleans;

    #[test]
    fn yaml11_booleans_are_quoted_and_nothing_else_changes() {
        let cases = [
            (
                "enum:\n- on\n- off\n- lz4\n",
                "enum:\n- 'on'\n- 'off'\n- lz4\n",
            ),
            ("a:\n  b: yes\n  c: 'no'\n", "a:\n  b: 'yes'\n  c: 'no'\n"),
            ("- - n\n- key: Y\n", "- - 'n'\n- key: 'Y'\n"),
            ("x: online\ny: 'on'\n", "x: online\ny: 'on'\n"),
            (
                "d: |-\n  on\n  - off\ne: on\n",
                "d: |-\n  on\n  - off\ne: 'on'\n",
            ),
            ("- |-\n  yes\n  no\n- no\n", "- |-\n  yes\n  no\n- 'no'\n"),
        ];
        for (written, quoted) in cases {
            assert_eq!(quote_yaml11_booleans(written), quoted, "{written}");
        }
    }

    #[test]
    fn the_quoted_text_means_the_same_to_a_yaml_1_2_reader() {
        let text = "enum:\n- on\n- off\nnested:\n  k: yes\n  d: |-\n    on\n";
        let before: serde_json::Value = serde_yaml_ng::from_str(text).unwrap();
        let after: serde_json::Value =
            serde_yaml_ng::from_str(&quote_yaml11_booleans(text)).unwrap();
        assert_eq!(before, after);
    }
}
