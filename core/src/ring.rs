//! Consistent hashing over independent Redis nodes (docs/FORMAT.md §4): ketama as
//! twemproxy implements it, with integer arithmetic for the point count. Pure.

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::key::hash_tag;

/// Point groups per unit of weight share, as in twemproxy (160 points = 40 groups of 4).
const GROUPS_PER_NODE: u64 = 40;

/// A node on the ring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The name hashed onto the ring; by default `host:port` as written in the URL.
    pub name: String,
    /// Relative share of keys, at least 1.
    pub weight: u32,
}

impl Node {
    /// A node with weight 1.
    pub fn new(name: impl Into<String>) -> Self {
        Node {
            name: name.into(),
            weight: 1,
        }
    }
}

/// The continuum: sorted points, each naming a node by index.
#[derive(Debug, Clone)]
pub struct Ring {
    nodes: Vec<Node>,
    points: Vec<(u32, usize)>,
}

impl Ring {
    /// Builds the continuum for `nodes`.
    ///
    /// # Errors
    /// A config error for an empty node list, a zero weight or a repeated name.
    pub fn new(nodes: Vec<Node>) -> Result<Self> {
        if nodes.is_empty() {
            return Err(Error::config("a ring needs at least one node"));
        }
        for (i, node) in nodes.iter().enumerate() {
            if node.weight == 0 {
                return Err(Error::config(format!("node {} has weight 0", node.name)));
            }
            if nodes[..i].iter().any(|n| n.name == node.name) {
                return Err(Error::config(format!("node {} is listed twice", node.name)));
            }
        }
        let n = nodes.len() as u64;
        let total: u64 = nodes.iter().map(|node| u64::from(node.weight)).sum();
        let mut points = Vec::new();
        for (index, node) in nodes.iter().enumerate() {
            let groups = u64::from(node.weight) * GROUPS_PER_NODE * n / total;
            for j in 0..groups {
                let digest = Md5::digest(format!("{}-{j}", node.name).as_bytes());
                for word in digest.chunks_exact(4) {
                    let point = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
                    points.push((point, index));
                }
            }
        }
        points.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| nodes[a.1].name.as_bytes().cmp(nodes[b.1].name.as_bytes()))
                .then_with(|| a.1.cmp(&b.1))
        });
        Ok(Ring { nodes, points })
    }

    /// The nodes, in the order given.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The number of points on the continuum.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the continuum has no points (never true for a built ring).
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The first `n` points as `(value, node name)`, for vectors and debugging.
    pub fn head(&self, n: usize) -> Vec<(u32, &str)> {
        self.points
            .iter()
            .take(n)
            .map(|&(p, i)| (p, self.nodes[i].name.as_str()))
            .collect()
    }

    /// The name of the node that owns a Redis key. Keys with the same hash tag land on the
    /// same node.
    pub fn node_for(&self, redis_key: &str) -> &str {
        &self.nodes[self.index_for(redis_key)].name
    }

    /// The index (into [`Ring::nodes`]) of the node that owns a Redis key: what a store
    /// holding one connection per node looks up.
    pub fn index_for(&self, redis_key: &str) -> usize {
        let digest = Md5::digest(hash_tag(redis_key.as_bytes()));
        let h = u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]);
        let at = self.points.partition_point(|&(p, _)| p < h);
        self.points.get(at).unwrap_or(&self.points[0]).1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_weights_give_160_points_each() {
        let ring = Ring::new((0..3).map(|i| Node::new(format!("n{i}"))).collect()).unwrap();
        assert_eq!(ring.len(), 480);
    }

    #[test]
    fn bad_node_lists_are_config_errors() {
        assert!(Ring::new(vec![]).is_err());
        assert!(Ring::new(vec![Node::new("a"), Node::new("a")]).is_err());
        let zero = Node {
            name: "z".into(),
            weight: 0,
        };
        assert!(Ring::new(vec![zero]).is_err());
    }
}
