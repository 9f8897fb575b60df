//! Independent nodes behind the consistent-hash ring: each key goes to the node the ring
//! picks for its hash tag. Works over any node store, async or blocking.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::{join_all, try_join_all};

use super::{BreakerStats, Entry, Store};
use crate::codec::Framed;
use crate::error::{Error, Result};
use crate::lock::Script;
use crate::ring::Ring;

/// A store spreading keys over several node stores with the ring of docs/FORMAT.md §4.
#[derive(Debug, Clone)]
pub struct ShardedStore {
    ring: Ring,
    nodes: Vec<Arc<dyn Store>>,
}

impl ShardedStore {
    /// Puts `nodes[i]` behind `ring.nodes()[i]`.
    ///
    /// # Errors
    /// A config error when the counts differ.
    pub fn new(ring: Ring, nodes: Vec<Arc<dyn Store>>) -> Result<Self> {
        if ring.nodes().len() != nodes.len() {
            return Err(Error::config(
                "the ring and the node stores differ in number",
            ));
        }
        Ok(ShardedStore { ring, nodes })
    }

    /// The ring that places keys.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    fn node(&self, key: &str) -> &dyn Store {
        self.nodes[self.ring.index_for(key)].as_ref()
    }

    /// Indices of `keys`, grouped by the node that owns them.
    fn group<'a>(&self, keys: impl Iterator<Item = &'a str>) -> BTreeMap<usize, Vec<usize>> {
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, key) in keys.enumerate() {
            groups.entry(self.ring.index_for(key)).or_default().push(i);
        }
        groups
    }
}

#[async_trait]
impl Store for ShardedStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.node(key).get(key).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        let groups = self.group(keys.iter().map(String::as_str));
        let replies = try_join_all(groups.iter().map(|(&node, indices)| {
            let node_keys: Vec<String> = indices.iter().map(|&i| keys[i].clone()).collect();
            async move { self.nodes[node].get_many(&node_keys).await }
        }))
        .await?;
        let mut out = vec![None; keys.len()];
        for ((_, indices), values) in groups.iter().zip(replies) {
            for (&i, value) in indices.iter().zip(values) {
                out[i] = value;
            }
        }
        Ok(out)
    }

    async fn get_each(&self, keys: &[String]) -> Vec<Result<Option<Vec<u8>>>> {
        let groups = self.group(keys.iter().map(String::as_str));
        let replies = join_all(groups.iter().map(|(&node, indices)| {
            let node_keys: Vec<String> = indices.iter().map(|&i| keys[i].clone()).collect();
            async move { self.nodes[node].get_each(&node_keys).await }
        }))
        .await;
        let mut out: Vec<Result<Option<Vec<u8>>>> = keys.iter().map(|_| Ok(None)).collect();
        for ((_, indices), values) in groups.iter().zip(replies) {
            for (&i, value) in indices.iter().zip(values) {
                out[i] = value;
            }
        }
        out
    }

    async fn set(&self, entry: Entry) -> Result<()> {
        self.node(&entry.key).set(entry).await
    }

    async fn set_framed(&self, key: &str, value: Framed, ttl: Option<Duration>) -> Result<()> {
        self.node(key).set_framed(key, value, ttl).await
    }

    async fn set_within(&self, entry: Entry, budget: Duration) -> Result<()> {
        self.node(&entry.key).set_within(entry, budget).await
    }

    async fn set_many(&self, entries: Vec<Entry>) -> Result<()> {
        let groups = self.group(entries.iter().map(|e| e.key.as_str()));
        try_join_all(groups.iter().map(|(&node, indices)| {
            let batch: Vec<Entry> = indices.iter().map(|&i| entries[i].clone()).collect();
            self.nodes[node].set_many(batch)
        }))
        .await?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        self.node(key).delete(key).await
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        self.node(key).ttl(key).await
    }

    async fn set_if_absent(&self, entry: Entry) -> Result<bool> {
        self.node(&entry.key).set_if_absent(entry).await
    }

    fn breakers(&self) -> BreakerStats {
        let mut stats = BreakerStats::default();
        for node in &self.nodes {
            stats.merge(node.breakers());
        }
        stats
    }

    async fn eval(&self, script: &Script, keys: &[String], args: &[Vec<u8>]) -> Result<i64> {
        // The keys share a hash tag, so the first one's node holds them all.
        let first = keys.first().map_or("", String::as_str);
        self.node(first).eval(script, keys, args).await
    }
}
