//! Keys for memoized functions (Python `@cache.cached`, Node `cache.wrap`), so a Python and
//! a Node function with the same template and arguments share one entry
//! (docs/FORMAT.md §5).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::codec::{json, msgpack, Value};
use crate::error::{Error, ErrorKind, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Index(usize),
    Name(String),
}

/// A parsed key template such as `user:{0}` or `user:{id}:{lang}`: `{N}` is the N-th
/// positional argument, `{name}` a named one, `{{` and `}}` are literal braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    parts: Vec<Part>,
}

fn template_error(message: String) -> Error {
    Error::new(ErrorKind::Config, message)
}

impl KeyTemplate {
    /// Parses a template.
    ///
    /// # Errors
    /// A config error for an unclosed or empty placeholder or a stray `}`.
    pub fn parse(template: &str) -> Result<Self> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some('{') | None => {
                                return Err(template_error(format!(
                                    "key template {template:?} has an unclosed placeholder"
                                )))
                            }
                            Some(c) => name.push(c),
                        }
                    }
                    let name = name.trim().to_owned();
                    if name.is_empty() {
                        return Err(template_error(format!(
                            "key template {template:?} has an empty placeholder"
                        )));
                    }
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    let index = name
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                        .then(|| name.parse().ok());
                    parts.push(match index.flatten() {
                        Some(index) => Part::Index(index),
                        None => Part::Name(name),
                    });
                }
                '}' => {
                    return Err(template_error(format!(
                        "key template {template:?} has a stray '}}' (write '}}}}' for a brace)"
                    )))
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(KeyTemplate { parts })
    }

    /// How many positional arguments the template reads (highest `{N}` + 1).
    pub fn positional_arity(&self) -> usize {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Index(i) => Some(i + 1),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// Whether the template reads named arguments (`{name}`).
    pub fn uses_names(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Name(_)))
    }

    /// Renders the template with positional `args` and `named` arguments.
    ///
    /// # Errors
    /// A key error when a placeholder names a missing argument or an argument cannot be
    /// rendered (a float that is not finite, bytes inside an array or map).
    pub fn render(&self, args: &[Value], named: &BTreeMap<String, Value>) -> Result<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Index(i) => {
                    let value = args.get(*i).ok_or_else(|| {
                        Error::new(
                            ErrorKind::Key,
                            format!("key template needs argument {i}, got {}", args.len()),
                        )
                    })?;
                    render_value(&mut out, value)?;
                }
                Part::Name(name) => {
                    let value = named.get(name).ok_or_else(|| {
                        Error::new(
                            ErrorKind::Key,
                            format!("key template needs argument {name:?}"),
                        )
                    })?;
                    render_value(&mut out, value)?;
                }
            }
        }
        Ok(out)
    }
}

/// How one argument appears in a key: strings as they are, numbers and booleans as JSON
/// writes them, nil as `null`, bytes as lowercase hex, arrays and maps as canonical JSON.
fn render_value(out: &mut String, value: &Value) -> Result<()> {
    match value {
        Value::Str(s) => out.push_str(s),
        Value::Bytes(b) => {
            for byte in b {
                out.push_str(&format!("{byte:02x}"));
            }
        }
        other => {
            let text = json::encode(&other.sorted()).map_err(|e| {
                Error::new(
                    ErrorKind::Key,
                    format!("cannot use {} in a key: {e}", other.kind_name()),
                )
            })?;
            out.push_str(&String::from_utf8_lossy(&text));
        }
    }
    Ok(())
}

/// The key of a call when no template is given: `<function>:` then the first 32 hex digits
/// of SHA-256 over the canonical MessagePack of the argument array. Stable across
/// runtimes, but function names differ between languages: give a template to share.
pub fn call_key(function: &str, args: &[Value]) -> String {
    digest_key(function, &Value::Array(args.to_vec()))
}

/// [`call_key`] for a call with named arguments (Python's `**kwargs`): the hashed value is
/// the pair `[positional array, named map]`, the map's keys in byte order whatever order
/// the call gave them. Without named arguments it is exactly [`call_key`].
pub fn call_key_named(function: &str, args: &[Value], named: &BTreeMap<String, Value>) -> String {
    if named.is_empty() {
        return call_key(function, args);
    }
    let named = Value::Map(named.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    let pair = Value::Array(vec![Value::Array(args.to_vec()), named]);
    digest_key(function, &pair)
}

fn digest_key(function: &str, hashed: &Value) -> String {
    // Maps inside arguments hash with sorted keys: equal maps, one key (FORMAT.md §5).
    let packed = msgpack::encode(&hashed.sorted());
    let digest = Sha256::digest(&packed);
    let mut out = String::with_capacity(function.len() + 33);
    out.push_str(function);
    out.push(':');
    for byte in &digest[..16] {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_positional_named_and_escaped() {
        let t = KeyTemplate::parse("user:{0}:{lang}:{{x}}").expect("parses");
        let named = BTreeMap::from([("lang".to_owned(), Value::from("en"))]);
        assert_eq!(
            t.render(&[42.into()], &named).expect("renders"),
            "user:42:en:{x}"
        );
        assert!(t.render(&[], &named).is_err());
        assert!(KeyTemplate::parse("a{").is_err());
        assert!(KeyTemplate::parse("a}").is_err());
        assert!(KeyTemplate::parse("{}").is_err());
    }
}
