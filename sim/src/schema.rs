//! Request validation driven by the official PVE API schema (`schema/pve-api.json`, cut
//! from `apidoc.json` by `tools/trim-apidoc.py`): parameter types, ranges, lengths, enums,
//! patterns, the formats guests use (including property strings like `net0`), required and
//! unknown parameters, with PVE's own messages.

use regex::Regex;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::LazyLock;

static SCHEMA: LazyLock<Value> = LazyLock::new(|| {
    serde_json::from_str(include_str!("../schema/pve-api.json"))
        .expect("the bundled PVE schema parses")
});

/// The schema path (`/nodes/{node}/lxc/{vmid}`) a request path matches, with the values of
/// its placeholders (percent-decoded, as PVE's server decodes the path). A trailing
/// `{cidr}` takes the rest of the path, slashes and all: PVE mounts IP set entries with no
/// fragment delimiter, so `ipset/web/10.0.0.0/24` names the entry `10.0.0.0/24`.
pub fn route(path: &str) -> Option<(&'static str, BTreeMap<String, String>)> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let schema = SCHEMA.as_object()?;
    for template in schema.keys() {
        let parts: Vec<&str> = template.trim_matches('/').split('/').collect();
        let rest = parts.last() == Some(&"{cidr}");
        let fits = match rest {
            true => segments.len() >= parts.len(),
            false => segments.len() == parts.len(),
        };
        if !fits {
            continue;
        }
        let mut vars = BTreeMap::new();
        let matched = parts.iter().enumerate().all(|(i, p)| {
            let s = match rest && i + 1 == parts.len() {
                true => segments[i..].join("/"),
                false => segments[i].to_owned(),
            };
            match p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(var) => {
                    vars.insert(var.to_owned(), percent_decoded(&s));
                    true
                }
                None => *p == s,
            }
        });
        if matched {
            return Some((template.as_str(), vars));
        }
    }
    None
}

/// `%2F` → `/` and so on; anything that is no escape stays as it is.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Who may call the endpoint (`permissions` in the schema: `user`, `check`).
pub fn permissions(template: &str, method: &str) -> &'static Value {
    &SCHEMA[template][method]["permissions"]
}

/// Whether API tokens may call the endpoint (`allowtoken` in the schema).
pub fn allows_token(template: &str, method: &str) -> bool {
    SCHEMA[template][method]["allowtoken"].as_i64() != Some(0)
}

pub fn methods(template: &str) -> Vec<String> {
    SCHEMA[template]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// Checks `params` (the path placeholders included) against the schema of
/// `method template`; returns PVE's `errors` object on failure.
pub fn validate(
    template: &str,
    method: &str,
    params: &Map<String, Value>,
) -> Result<(), Map<String, Value>> {
    let schema = &SCHEMA[template][method]["parameters"];
    let properties = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut errors = Map::new();
    for (name, value) in params {
        let Some(prop) = property(&properties, name) else {
            if schema.get("additionalProperties").and_then(Value::as_i64) != Some(1) {
                errors.insert(name.clone(), "property is not defined in schema and the schema does not allow additional properties".into());
            }
            continue;
        };
        if let Err(message) = check(prop, value) {
            errors.insert(name.clone(), message.into());
        }
    }
    for (name, prop) in &properties {
        let optional =
            prop.get("optional").and_then(Value::as_i64) == Some(1) || name.contains("[n]");
        if !optional && !params.contains_key(name) {
            errors.insert(
                name.clone(),
                "property is missing and it is not optional".into(),
            );
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// `net3` is described by `net[n]`.
fn property<'a>(properties: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    properties.get(name).or_else(|| {
        let base = name.trim_end_matches(|c: char| c.is_ascii_digit());
        (base.len() < name.len())
            .then(|| properties.get(&format!("{base}[n]")))
            .flatten()
    })
}

fn number_of(v: &Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// One value against one property schema.
pub fn check(prop: &Value, value: &Value) -> Result<(), String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Bool(b) => (*b as i32).to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) if prop["type"] == "array" => {
            return items.iter().try_for_each(|i| check(&prop["items"], i));
        }
        other => other.to_string(),
    };
    match prop["type"].as_str().unwrap_or("string") {
        "boolean" => {
            let ok = value.is_boolean() || matches!(text.as_str(), "0" | "1");
            if !ok {
                return Err(format!("type check ('boolean') failed - got '{text}'"));
            }
        }
        "integer" => {
            let n: i64 = text
                .parse()
                .map_err(|_| format!("type check ('integer') failed - got '{text}'"))?;
            bounds(prop, n as f64)?;
        }
        "number" => {
            let n: f64 = text
                .parse()
                .map_err(|_| format!("type check ('number') failed - got '{text}'"))?;
            bounds(prop, n)?;
        }
        "array" => {}
        _ => string(prop, &text)?,
    }
    Ok(())
}

fn bounds(prop: &Value, n: f64) -> Result<(), String> {
    if let Some(min) = prop.get("minimum").and_then(number_of)
        && n < min
    {
        return Err(format!("value must have a minimum value of {min}"));
    }
    if let Some(max) = prop.get("maximum").and_then(number_of)
        && n > max
    {
        return Err(format!("value must have a maximum value of {max}"));
    }
    Ok(())
}

fn string(prop: &Value, text: &str) -> Result<(), String> {
    if let Some(max) = prop.get("maxLength").and_then(number_of)
        && text.chars().count() as f64 > max
    {
        return Err(format!("value may only be {max} characters long"));
    }
    if let Some(min) = prop.get("minLength").and_then(number_of)
        && (text.chars().count() as f64) < min
    {
        return Err(format!("value must be at least {min} characters long"));
    }
    if let Some(options) = prop.get("enum").and_then(Value::as_array) {
        let allowed: Vec<&str> = options.iter().filter_map(Value::as_str).collect();
        if !allowed.contains(&text) {
            return Err(format!(
                "value '{text}' does not have a value in the enumeration '{}'",
                allowed.join(", ")
            ));
        }
    }
    if let Some(pattern) = prop.get("pattern").and_then(Value::as_str)
        && !perl_pattern_matches(pattern, text)
    {
        return Err("value does not match the regex pattern".into());
    }
    match prop.get("format") {
        Some(Value::String(format)) => access_format(format, text)
            .unwrap_or_else(|| named_format(format, text))
            .map_err(|e| format!("invalid format - {e}")),
        Some(Value::Object(fields)) => {
            property_string(fields, text).map_err(|e| format!("invalid format - {e}"))
        }
        _ => Ok(()),
    }
}

/// PVE patterns are Perl regexes, some with `(?^:...)` groups; anchored as PVE anchors them.
fn perl_pattern_matches(pattern: &str, text: &str) -> bool {
    let translated = pattern.replace("(?^:", "(?:").replace("(?^i:", "(?i:");
    match Regex::new(&format!("^(?:{translated})$")) {
        Ok(re) => re.is_match(text),
        Err(_) => true,
    }
}

static CONFIGID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9\-_]+$").expect("static"));
static STORAGE_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z][a-zA-Z0-9\-_.]*[a-zA-Z0-9]$").expect("static"));
static DNS_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?\.)*([A-Za-z0-9]([A-Za-z0-9\-]*[A-Za-z0-9])?)$",
    )
    .expect("static")
});
static MAC: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-fA-F0-9]{2}(:[a-fA-F0-9]{2}){5}$").expect("static"));
static TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9_][a-zA-Z0-9_\-+.]*$").expect("static"));
static VOLUME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z][a-zA-Z0-9\-_.]*[a-zA-Z0-9]:.+$").expect("static"));

static REALM_USER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+$").expect("static"));
static TOKEN_ID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+![A-Za-z][A-Za-z0-9.\-_]+$").expect("static")
});
static ACCESS_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9.\-_]+$").expect("static"));

/// The formats of access control (users, tokens, roles, groups, privileges), with the
/// messages of PVE's `verify_*` (`AccessControl.pm`, `Auth/Plugin.pm`); `-list` formats
/// split as PVE's `split_list` does. `None` for the other formats.
fn access_format(format: &str, text: &str) -> Option<Result<(), String>> {
    let one = |item: &str| -> Result<(), String> {
        match format.trim_end_matches("-list") {
            "pve-userid" => verify_username(item),
            "pve-tokenid" if !TOKEN_ID.is_match(item) => Err(format!(
                "value '{item}' does not look like a valid token ID"
            )),
            "pve-roleid" if !ACCESS_NAME.is_match(item) => {
                Err(format!("role name '{item}' contains invalid characters"))
            }
            "pve-groupid" if !ACCESS_NAME.is_match(item) => {
                Err(format!("group name '{item}' contains invalid characters"))
            }
            "pve-priv" if !crate::access::is_privilege(item) => {
                Err(format!("invalid privilege '{item}'"))
            }
            _ => Ok(()),
        }
    };
    let base = format.trim_end_matches("-list");
    if !matches!(
        base,
        "pve-userid" | "pve-tokenid" | "pve-roleid" | "pve-groupid" | "pve-priv"
    ) {
        return None;
    }
    if format.ends_with("-list") {
        return Some(
            text.split(|c: char| c == ',' || c == ';' || c == '\0' || c.is_whitespace())
                .filter(|i| !i.is_empty())
                .try_for_each(one),
        );
    }
    Some(one(text))
}

fn verify_username(name: &str) -> Result<(), String> {
    let len = name.chars().count();
    if len < 3 {
        return Err(format!("user name '{name}' is too short"));
    }
    if len > 64 {
        return Err(format!("user name '{name}' is too long ({len} > 64)"));
    }
    if !REALM_USER.is_match(name) {
        return Err(format!(
            "value '{name}' does not look like a valid user name"
        ));
    }
    Ok(())
}

/// The named formats guests use; others are accepted as PVE would for plain strings.
fn named_format(format: &str, text: &str) -> Result<(), String> {
    if matches!(format, "IPorCIDR" | "IPorCIDRorAlias") {
        return ip_or_cidr(format, text);
    }
    let ok = match format {
        "pve-configid" => CONFIGID.is_match(text),
        "pve-storage-id" | "pve-node" | "pve-poolid" => STORAGE_ID.is_match(text),
        "dns-name" => DNS_NAME.is_match(text),
        "ipv4" => text.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => text.parse::<std::net::Ipv6Addr>().is_ok(),
        "ip" => text.parse::<std::net::IpAddr>().is_ok(),
        "mac-addr" => MAC.is_match(text),
        "pve-tag-list" => text
            .split([';', ',', ' '])
            .filter(|t| !t.is_empty())
            .all(|t| TAG.is_match(t)),
        "pve-volume-id" => VOLUME.is_match(text),
        "pve-vmid" => text
            .parse::<u64>()
            .is_ok_and(|n| (100..=999_999_999).contains(&n)),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "value does not look like a valid {}",
            format.trim_start_matches("pve-")
        ))
    }
}

static FW_ALIAS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(dc/|guest/)?[A-Za-z][A-Za-z0-9\-_]+$").expect("static"));

/// pve-firewall's `pve_verify_ip_or_cidr` (and `_or_alias`): an address with an optional
/// numeric prefix (host bits may be set), or an alias name.
fn ip_or_cidr(format: &str, text: &str) -> Result<(), String> {
    if format == "IPorCIDRorAlias" && FW_ALIAS.is_match(text) {
        return Ok(());
    }
    let (addr, prefix) = text.split_once('/').unwrap_or((text, "0"));
    let numeric = !prefix.is_empty() && prefix.chars().all(|c| c.is_ascii_digit());
    match numeric && addr.parse::<std::net::IpAddr>().is_ok() {
        true => Ok(()),
        false => Err("value does not look like a valid IP address or CIDR network".into()),
    }
}

/// `name=eth0,bridge=vmbr0,ip=dhcp` (or `local-zfs:8,size=8G` with a default key).
pub fn parse_property_string(
    fields: &Map<String, Value>,
    text: &str,
) -> Result<BTreeMap<String, String>, String> {
    let default_key = fields
        .iter()
        .find(|(_, f)| f.get("default_key").and_then(Value::as_i64) == Some(1))
        .map(|(k, _)| k.clone());
    let mut out = BTreeMap::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (key, value) = match part.split_once('=') {
            Some((k, v)) if fields.contains_key(k) || default_key.is_none() => {
                (k.to_owned(), v.to_owned())
            }
            _ => match &default_key {
                Some(k) if !out.contains_key(k) => (k.clone(), part.to_owned()),
                _ => return Err(format!("unable to parse value of '{part}'")),
            },
        };
        if out.insert(key.clone(), value).is_some() {
            return Err(format!(
                "duplicate key in comma-separated list property: {key}"
            ));
        }
    }
    Ok(out)
}

fn property_string(fields: &Map<String, Value>, text: &str) -> Result<(), String> {
    let mut parsed = BTreeMap::new();
    for (key, value) in parse_property_string(fields, text)? {
        // `virtio=MAC` is `model=virtio,macaddr=MAC`; `freeze-fs-on-backup` is `freeze-fs`.
        let field = fields.get(&key);
        match (
            field
                .and_then(|f| f.get("keyAlias"))
                .and_then(Value::as_str),
            field.and_then(|f| f.get("alias")).and_then(Value::as_str),
        ) {
            (Some(key_alias), Some(alias)) => {
                parsed.insert(key_alias.to_owned(), key.clone());
                parsed.insert(alias.to_owned(), value);
            }
            (None, Some(alias)) => {
                parsed.insert(alias.to_owned(), value);
            }
            _ => {
                parsed.insert(key, value);
            }
        }
    }
    for (key, value) in &parsed {
        let Some(field) = fields.get(key) else {
            return Err(format!(
                "{key}: property is not defined in schema and the schema does not allow additional properties"
            ));
        };
        check(field, &Value::String(value.clone())).map_err(|e| format!("{key}: {e}"))?;
    }
    for (key, field) in fields {
        let optional = field.get("optional").and_then(Value::as_i64) == Some(1)
            || field.get("default_key").is_some()
            || field.get("alias").is_some();
        if !optional && !parsed.contains_key(key) {
            return Err(format!("{key}: property is missing and it is not optional"));
        }
    }
    Ok(())
}

/// The property-string schema of one parameter, for handlers that read sub-fields.
pub fn property_fields(template: &str, method: &str, name: &str) -> Option<Map<String, Value>> {
    let properties = SCHEMA[template][method]["parameters"]["properties"].as_object()?;
    property(properties, name)?
        .get("format")?
        .as_object()
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn routes_follow_the_schema_tree() {
        let (template, vars) = route("/nodes/pve1/lxc/801/status/start").unwrap();
        assert_eq!(template, "/nodes/{node}/lxc/{vmid}/status/start");
        assert_eq!(vars["vmid"], "801");
        assert!(route("/nodes/pve1/nosuch").is_none());
    }

    #[test]
    fn container_create_is_checked_like_pve() {
        let t = "/nodes/{node}/lxc";
        let ok = params(
            json!({"node": "pve1", "vmid": "801", "ostemplate": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
            "hostname": "granite", "memory": "512", "net0": "name=eth0,bridge=vmbr0,ip=dhcp,firewall=1", "rootfs": "local-zfs:8", "unprivileged": "1"}),
        );
        assert_eq!(validate(t, "POST", &ok), Ok(()));
        let bad = params(
            json!({"node": "pve1", "vmid": "42", "ostemplate": "local:vztmpl/x.tar.zst", "memory": "lots",
            "net0": "name=eth0,firewall=true", "colour": "blue", "unprivileged": "true"}),
        );
        let errors = validate(t, "POST", &bad).unwrap_err();
        assert_eq!(errors["vmid"], "value must have a minimum value of 100");
        assert_eq!(
            errors["memory"],
            "type check ('integer') failed - got 'lots'"
        );
        assert_eq!(
            errors["colour"],
            "property is not defined in schema and the schema does not allow additional properties"
        );
        assert_eq!(
            errors["unprivileged"],
            "type check ('boolean') failed - got 'true'"
        );
        assert!(
            errors["net0"]
                .as_str()
                .unwrap()
                .starts_with("invalid format - firewall: type check ('boolean')")
        );
        let missing =
            validate(t, "POST", &params(json!({"node": "pve1", "vmid": "801"}))).unwrap_err();
        assert_eq!(
            missing["ostemplate"],
            "property is missing and it is not optional"
        );
    }

    /// Every privilege a permission check of the schema names is one PVE 9 knows.
    #[test]
    fn the_privileges_the_schema_checks_are_known() {
        fn names(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Array(items) => items.iter().for_each(|i| names(i, out)),
                Value::String(s) if s.contains('.') && !s.starts_with('/') => out.push(s.clone()),
                _ => {}
            }
        }
        let mut found = Vec::new();
        for methods in SCHEMA.as_object().unwrap().values() {
            for method in methods.as_object().unwrap().values() {
                names(&method["permissions"]["check"], &mut found);
            }
        }
        assert!(found.contains(&"VM.Clone".to_string()));
        for name in found {
            assert!(crate::access::is_privilege(&name), "{name}");
        }
    }
}
