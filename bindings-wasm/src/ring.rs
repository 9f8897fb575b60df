//! The `ring` interface: core's consistent-hash ring (docs/FORMAT.md §4).

use polycache::{Node, Ring};

use crate::bindings::exports::polycache::cache::ring::{
    Guest, GuestRing, Node as WitNode, Ring as WitRing,
};
use crate::bindings::polycache::cache::types::Error as WitError;
use crate::errors::wit;
use crate::Component;

impl Guest for Component {
    type Ring = RingResource;
}

/// The `ring` resource: one core [`Ring`].
#[derive(Debug)]
pub(crate) struct RingResource(Ring);

impl GuestRing for RingResource {
    fn build(nodes: Vec<WitNode>) -> Result<WitRing, WitError> {
        let nodes = nodes
            .into_iter()
            .map(|n| Node {
                name: n.name,
                weight: n.weight,
            })
            .collect();
        Ok(WitRing::new(RingResource(wit(Ring::new(nodes))?)))
    }

    fn node_for(&self, redis_key: String) -> String {
        self.0.node_for(&redis_key).to_owned()
    }

    fn len(&self) -> u32 {
        self.0.len() as u32
    }

    fn head(&self, n: u32) -> Vec<(u32, String)> {
        self.0
            .head(n as usize)
            .into_iter()
            .map(|(point, name)| (point, name.to_owned()))
            .collect()
    }
}
