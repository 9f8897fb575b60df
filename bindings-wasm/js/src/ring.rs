//! The consistent-hash ring of `redis+shards://` (docs/FORMAT.md §4).

use js_sys::{Array, Reflect};
use polycache::Node;
use wasm_bindgen::prelude::*;

use crate::errors::{config_error, js};

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/** A node on the ring. */
export interface RingNode {
  name: string
  /** Relative share of keys, at least 1 (default 1). */
  weight?: number
}
"#;

/// The continuum over a list of nodes.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Ring(polycache::Ring);

#[wasm_bindgen]
impl Ring {
    /// Builds the continuum; `ECONFIG` for an empty list, a zero weight or a repeated name.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "RingNode[]")] nodes: JsValue,
    ) -> Result<Ring, JsValue> {
        if !Array::is_array(&nodes) {
            return Err(config_error(
                "a ring takes an array of { name, weight } nodes",
            ));
        }
        let nodes = Array::from(&nodes)
            .iter()
            .map(|node| {
                let name = Reflect::get(&node, &"name".into())?
                    .as_string()
                    .ok_or_else(|| config_error("a ring node needs a string name"))?;
                let weight = Reflect::get(&node, &"weight".into())?;
                let weight = if weight.is_undefined() {
                    1
                } else {
                    match weight.as_f64() {
                        Some(w) if w.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&w) => {
                            w as u32
                        }
                        _ => return Err(config_error("a ring node's weight is an integer")),
                    }
                };
                Ok(Node { name, weight })
            })
            .collect::<Result<Vec<_>, JsValue>>()?;
        Ok(Ring(js(polycache::Ring::new(nodes))?))
    }

    /// The number of points on the continuum.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> u32 {
        self.0.len() as u32
    }

    /// The first `n` points as `[value, node name]`.
    #[wasm_bindgen(unchecked_return_type = "Array<[number, string]>")]
    pub fn head(&self, n: u32) -> Array {
        self.0
            .head(n as usize)
            .into_iter()
            .map(|(point, name)| Array::of2(&point.into(), &name.into()))
            .collect()
    }

    /// The name of the node that owns a Redis key.
    #[wasm_bindgen(js_name = nodeFor)]
    pub fn node_for(&self, #[wasm_bindgen(js_name = redisKey)] redis_key: &str) -> String {
        self.0.node_for(redis_key).to_owned()
    }
}
