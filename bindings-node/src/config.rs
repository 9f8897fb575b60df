//! An options object -> the map core's `Config::with_overrides` reads, plus the parts that
//! are code: the `loader` and `writer` functions.

use std::sync::Arc;

use napi::bindgen_prelude::{JsObjectValue, Object, Unknown};
use napi::{Env, Result, ValueType};
use polycache::Config;
use serde_json::{Map, Value as Json};

use crate::args;
use crate::errors;
use crate::patterns::{self, JsFunction, JsFunctionRef};

/// What `new Cache(options)` / `Cache.connect(url, options)` were given.
pub struct Options {
    pub config: Config,
    pub loader: Option<Arc<JsFunctionRef>>,
    pub writer: Option<Arc<JsFunctionRef>>,
}

/// Reads the options: every key except `loader`, `writer` and `io` is an option for core's
/// `Config::with_overrides` (which names an unknown one in an `ECONFIG` error). The URL
/// (the `url` argument, else the object's `url`, else core's default) comes first and the
/// object's fields override its query options.
pub fn read(env: &Env, url: Option<String>, options: Option<Object>) -> Result<Options> {
    let mut fields = Map::new();
    let mut loader = None;
    let mut writer = None;
    if let Some(options) = options {
        for name in Object::keys(&options)? {
            let value: Unknown = options.get_named_property(&name)?;
            match name.as_str() {
                "loader" | "writer" | "io" if value.get_type()? == ValueType::Undefined => {}
                "io" => {
                    // Both modes are now the one non-blocking path (batch.rs); the option
                    // stays for compatibility.
                    let io = args::string_option(env, Some(&options), &name)?;
                    match io.as_deref().unwrap_or("auto") {
                        "auto" | "async" => {}
                        other => {
                            return Err(errors::to_js(
                                env,
                                &polycache::Error::new(
                                    polycache::ErrorKind::Config,
                                    format!("io must be \"auto\" or \"async\", not {other:?}"),
                                ),
                            ))
                        }
                    };
                }
                "loader" => loader = Some(function(env, &options, &name, value)?),
                "writer" => writer = Some(function(env, &options, &name, value)?),
                _ if value.get_type()? == ValueType::Undefined => {}
                _ if value.get_type()? == ValueType::Number => {
                    // JSON has no NaN or infinities (they would become null, "no expiry"
                    // for a TTL): refuse them while converting.
                    let number: f64 = options.get_named_property(&name)?;
                    if !number.is_finite() {
                        return Err(errors::to_js(
                            env,
                            &polycache::Error::new(
                                polycache::ErrorKind::Config,
                                format!("invalid value {number} for option {name}: expected a finite number"),
                            ),
                        ));
                    }
                    let json: Json = env.from_js_value(value)?;
                    fields.insert(name, json);
                }
                _ => {
                    let json: Json = env.from_js_value(value)?;
                    fields.insert(name, json);
                }
            }
        }
    }
    let config = config(url, fields).map_err(|err| errors::to_js(env, &err))?;
    Ok(Options {
        config,
        loader,
        writer,
    })
}

fn config(url: Option<String>, fields: Map<String, Json>) -> polycache::Result<Config> {
    let url = url.unwrap_or_else(|| Config::default().url);
    Config::with_overrides(&url, &fields)
}

fn function(
    env: &Env,
    options: &Object<'_>,
    name: &str,
    value: Unknown<'_>,
) -> Result<Arc<JsFunctionRef>> {
    if value.get_type()? != ValueType::Function {
        return Err(errors::config_type_error(
            env,
            format!("the {name} option must be a function"),
        ));
    }
    let function: JsFunction<'_> = options.get_named_property(name)?;
    patterns::keep(&function)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_override_url_query() {
        let mut fields = Map::new();
        fields.insert("namespace".into(), Json::from("b"));
        fields.insert("ttl".into(), Json::Null);
        let c = config(Some("memory://?namespace=a&ttl=5".into()), fields).unwrap();
        assert_eq!(c.namespace, "b");
        assert_eq!(c.ttl, None);
        let mut bad = Map::new();
        bad.insert("nope".into(), Json::from(1));
        let err = config(None, bad).unwrap_err();
        assert_eq!(err.kind(), polycache::ErrorKind::Config);
        // The URL of an options object is read as a URL: its query is not ignored.
        let mut url = Map::new();
        url.insert("url".into(), Json::from("redis://h?bogus=1"));
        let err = config(None, url).unwrap_err();
        assert!(err.message().contains("bogus"), "{err}");
    }
}
