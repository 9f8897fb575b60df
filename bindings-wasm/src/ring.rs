//! The `ring` interface: core's consistent-hash ring (docs/FORMAT.md §4).

use polycache::{Node, Ring};

use crate::bindings::exports::polycache::cache::ring::{
    Continuum, Guest, GuestContinuum, Node as WitNode,
};
use crate::bindings::polycache::cache::types::Error as WitError;
use crate::errors::wit;
use crate::Component;

impl Guest for Component {
    type Continuum = RingResource;
}

/// The `continuum` resource: one core [`Ring`].
#[derive(Debug)]
pub(crate) struct RingResource(Ring);

impl GuestContinuum for RingResource {
    fn build(nodes: Vec<WitNode>) -> Result<Continuum, WitError> {
        let nodes = nodes
            .into_iter()
            .map(|n| Node {
                name: n.name,
                weight: n.weight,
            })
            .collect();
        Ok(Continuum::new(RingResource(wit(Ring::new(nodes))?)))
    }

    fn node_for(&self, redis_key: String) -> u32 {
        // A ring has far fewer than 2^32 nodes.
        self.0.index_for(&redis_key) as u32
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
