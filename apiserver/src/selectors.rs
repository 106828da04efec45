//! Label and field selectors, parsed once per request and matched against JSON objects.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
    Gt(String, i64),
    Lt(String, i64),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<LabelReq>);

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (x,y),!f,g`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for term in split_top_level(text) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            reqs.push(
                parse_label_term(term)
                    .ok_or_else(|| format!("unable to parse requirement: {term:?}"))?,
            );
        }
        Ok(Self(reqs))
    }

    pub fn matches(&self, object: &Value) -> bool {
        let labels = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object);
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|req| match req {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
            LabelReq::Gt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            LabelReq::Lt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        })
    }
}

/// Commas inside `in (...)` lists do not separate terms.
fn split_top_level(text: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0, 0, Vec::new());
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn parse_label_term(term: &str) -> Option<LabelReq> {
    if let Some(k) = term.strip_prefix('!') {
        return valid_key(k.trim()).then(|| LabelReq::NotExists(k.trim().into()));
    }
    for (op, build) in [
        (
            " notin ",
            LabelReq::NotIn as fn(String, Vec<String>) -> LabelReq,
        ),
        (" in ", LabelReq::In as fn(String, Vec<String>) -> LabelReq),
    ] {
        if let Some((k, rest)) = term.split_once(op) {
            let list = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
            let values: Vec<String> = list.split(',').map(|v| v.trim().to_owned()).collect();
            let ok = valid_key(k.trim()) && values.iter().all(|v| valid_value(v));
            return ok.then(|| build(k.trim().into(), values));
        }
    }
    type Build = fn(&str, &str) -> Option<LabelReq>;
    let ops: [(&str, Build); 6] = [
        ("!=", |k, v| Some(LabelReq::NotEq(k.into(), v.into()))),
        ("==", |k, v| Some(LabelReq::Eq(k.into(), v.into()))),
        ("=", |k, v| Some(LabelReq::Eq(k.into(), v.into()))),
        (">", |k, v| {
            v.parse().ok().map(|n| LabelReq::Gt(k.into(), n))
        }),
        ("<", |k, v| {
            v.parse().ok().map(|n| LabelReq::Lt(k.into(), n))
        }),
        ("", |k, _| Some(LabelReq::Exists(k.into()))),
    ];
    for (op, build) in ops {
        if op.is_empty() {
            return valid_key(term).then(|| build(term, ""))?;
        }
        if let Some((k, v)) = term.split_once(op) {
            let (k, v) = (k.trim(), v.trim());
            return (valid_key(k) && valid_value(v)).then(|| build(k, v))?;
        }
    }
    None
}

/// `metadata.name=x,involvedObject.uid!=y`: equality terms on a fixed set of fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses and checks each path against `supported` (besides metadata.name/namespace).
    pub fn parse(text: &str, supported: &[&str]) -> Result<Self, String> {
        let mut terms = Vec::new();
        for term in split_unescaped(text, ',') {
            if term.is_empty() {
                continue;
            }
            let (path, negate, value) = if let Some((p, v)) = term.split_once("!=") {
                (p, true, v)
            } else if let Some((p, v)) = term.split_once("==") {
                (p, false, v)
            } else if let Some((p, v)) = term.split_once('=') {
                (p, false, v)
            } else {
                return Err(format!(
                    "invalid selector: '{text}'; can't understand '{term}'"
                ));
            };
            let path = path.trim();
            if !matches!(path, "metadata.name" | "metadata.namespace") && !supported.contains(&path)
            {
                return Err(format!("field label not supported: {path}"));
            }
            terms.push((path.to_owned(), negate, unescape(value.trim())));
        }
        Ok(Self(terms))
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(path, negate, want)| {
            let pointer = format!("/{}", path.replace('.', "/"));
            let got = match object.pointer(&pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (got == *want) != *negate
        })
    }

    /// The name pinned when the selector is exactly one `metadata.name=` term.
    pub fn only_name(&self) -> Option<&str> {
        match self.0.as_slice() {
            [(path, false, name)] if path == "metadata.name" => Some(name),
            _ => None,
        }
    }
}

fn split_unescaped(text: &str, sep: char) -> Vec<String> {
    let (mut out, mut cur, mut escaped) = (Vec::new(), String::new(), false);
    for c in text.chars() {
        if escaped {
            cur.push('\\');
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

fn unescape(s: &str) -> String {
    let (mut out, mut escaped) = (String::new(), false);
    for c in s.chars() {
        if !escaped && c == '\\' {
            escaped = true;
        } else {
            out.push(c);
            escaped = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "web1", "namespace": "default", "labels": labels}, "reason": "Created"})
    }

    #[test]
    fn label_selectors_cover_the_grammar() {
        let o = obj(json!({"app": "web", "tier": "3"}));
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web,db)", true),
            ("app notin (web)", false),
            ("app", true),
            ("!app", false),
            ("!gone", true),
            ("tier>2,tier<4", true),
            ("app=web,tier=4", false),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&o),
                want,
                "{sel}"
            );
        }
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("a=b=c").is_err());
    }

    #[test]
    fn field_selectors_check_supported_paths() {
        let sel = FieldSelector::parse("metadata.name=web1,reason!=Killed", &["reason"]).unwrap();
        assert!(sel.matches(&obj(json!({}))));
        assert_eq!(sel.only_name(), None);
        assert_eq!(
            FieldSelector::parse("metadata.name=web1", &[])
                .unwrap()
                .only_name(),
            Some("web1")
        );
        assert_eq!(
            FieldSelector::parse("spec.foo=1", &[]).unwrap_err(),
            "field label not supported: spec.foo"
        );
    }
}
