//! The broker nodes the uplink may use, and which one it tries next.
//!
//! `[uplink.mqtt] url` is one URL or a list (the nodes of a clustered
//! broker). A plain `mqtt://` name with several DNS addresses counts as
//! several nodes (each address is its own entry, re-resolved at every full
//! round, so a DNS change is followed). An `mqtts://` name stays one node:
//! the certificate is checked against the name, and rumqttc's connect
//! already tries each of its addresses in turn.
//!
//! Policy: stay on the node that works; after a lost or failed connection
//! the next attempt goes to the next node, after the usual back-off and
//! jitter. A fleet starts spread over the list (the first node is chosen by
//! a hash of the gateway id), so 2,000 homes do not all land on node 0.

use std::net::IpAddr;

use crate::config::BrokerUrl;

/// One node: where to connect, and how the status names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub host: String,
    pub port: u16,
    /// `host:port`, or `name:port (address)` for one address of a name.
    pub label: String,
}

/// The node list and the position in it.
#[derive(Debug)]
pub struct Nodes {
    urls: Vec<BrokerUrl>,
    list: Vec<Node>,
    /// Index of the node to use now.
    at: usize,
    /// Attempts since the list was last resolved.
    tried: usize,
}

impl Nodes {
    /// The nodes of `urls` (not resolved yet), starting at a place chosen
    /// by `gateway` so a fleet spreads over the cluster.
    pub fn new(urls: Vec<BrokerUrl>, gateway: &str) -> Nodes {
        let list = expand(&urls, |_| Vec::new());
        let at = spread(gateway, list.len());
        Nodes {
            urls,
            list,
            at,
            tried: 0,
        }
    }

    /// The node to try now. At the start of each round (every node tried
    /// once since the last resolution) the DNS names are resolved again.
    pub async fn current(&mut self) -> Node {
        if self.tried == 0 || self.tried >= self.list.len() {
            let mut resolved = Vec::with_capacity(self.urls.len());
            for u in &self.urls {
                resolved.push(resolve(u).await);
            }
            let mut it = resolved.into_iter();
            let fresh = expand(&self.urls, |_| it.next().unwrap_or_default());
            self.replace(fresh);
            self.tried = 0;
        }
        self.tried += 1;
        self.list[self.at % self.list.len()].clone()
    }

    /// The connection to the current node worked: stay on it.
    pub fn connected(&mut self) {
        self.tried = 1;
    }

    /// The connection was lost or never made: the next attempt goes to the
    /// next node.
    pub fn failed(&mut self) {
        self.at = (self.at + 1) % self.list.len().max(1);
    }

    /// How many nodes there are now.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// A fresh list: keeps the current node if it is still there.
    fn replace(&mut self, fresh: Vec<Node>) {
        let keep = self.list.get(self.at).cloned();
        self.list = fresh;
        self.at = keep
            .and_then(|k| self.list.iter().position(|n| *n == k))
            .unwrap_or(self.at % self.list.len().max(1));
    }
}

/// The node list from the URLs and, for each plain URL whose host is a
/// name, the addresses it resolved to (none: the name itself is the node).
pub fn expand(urls: &[BrokerUrl], mut addrs: impl FnMut(&BrokerUrl) -> Vec<IpAddr>) -> Vec<Node> {
    let mut out = Vec::new();
    for u in urls {
        let found = addrs(u);
        let literal = u.host.parse::<IpAddr>().is_ok();
        if u.tls || literal || found.len() < 2 {
            out.push(Node {
                host: u.host.clone(),
                port: u.port,
                label: label(&u.host, u.port),
            });
            continue;
        }
        for a in found {
            let host = a.to_string();
            let node = Node {
                label: format!("{} ({host})", label(&u.host, u.port)),
                host,
                port: u.port,
            };
            if !out.contains(&node) {
                out.push(node);
            }
        }
    }
    out
}

fn label(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Where in a list of `n` a gateway starts (FNV-1a of its id).
pub fn spread(gateway: &str, n: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in gateway.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    usize::try_from(h % u64::try_from(n.max(1)).unwrap_or(1)).unwrap_or(0)
}

/// The addresses of a plain URL's host name (none for TLS, a literal, or a
/// name that does not resolve now: the connect attempt then reports why).
async fn resolve(u: &BrokerUrl) -> Vec<IpAddr> {
    if u.tls || u.host.parse::<IpAddr>().is_ok() {
        return Vec::new();
    }
    let lookup = tokio::net::lookup_host((u.host.as_str(), u.port));
    match tokio::time::timeout(std::time::Duration::from_secs(10), lookup).await {
        Ok(Ok(addrs)) => {
            let mut out: Vec<IpAddr> = Vec::new();
            for a in addrs {
                if !out.contains(&a.ip()) {
                    out.push(a.ip());
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn urls(list: &[&str]) -> Vec<BrokerUrl> {
        list.iter().map(|s| BrokerUrl::parse(s).unwrap()).collect()
    }

    #[test]
    fn a_name_with_several_addresses_counts_as_several_nodes_unless_tls() {
        let u = urls(&["mqtt://cluster.example:1883", "mqtts://tls.example:8883"]);
        let two: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        let nodes = expand(&u, |_| two.clone());
        let labels: Vec<_> = nodes.iter().map(|n| n.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "cluster.example:1883 (10.0.0.1)",
                "cluster.example:1883 (10.0.0.2)",
                "tls.example:8883"
            ]
        );
        assert_eq!(nodes[1].host, "10.0.0.2");
        assert_eq!(nodes[2].host, "tls.example");
    }

    #[test]
    fn a_name_that_does_not_resolve_stays_a_node_so_the_attempt_says_why() {
        let nodes = expand(&urls(&["mqtt://nowhere.invalid"]), |_| Vec::new());
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].label, "nowhere.invalid:1883");
    }

    #[tokio::test]
    async fn it_stays_on_a_working_node_and_moves_on_after_a_failure() {
        let mut n = Nodes::new(
            urls(&["mqtt://127.0.0.1:1", "mqtt://127.0.0.2:2", "mqtt://[::1]:3"]),
            "gw",
        );
        assert_eq!(n.len(), 3);
        let first = n.current().await;
        n.connected();
        for _ in 0..5 {
            assert_eq!(n.current().await, first, "stays while it works");
            n.connected();
        }
        let mut seen = vec![first.clone()];
        for _ in 0..2 {
            n.failed();
            let next = n.current().await;
            assert!(!seen.contains(&next), "{next:?} again: {seen:?}");
            seen.push(next);
        }
        n.failed();
        assert_eq!(n.current().await, first, "a full round comes back");
        assert!(seen.iter().any(|s| s.label == "[::1]:3"));
    }

    #[test]
    fn a_fleet_starts_spread_over_the_nodes() {
        let mut counts = [0usize; 3];
        for i in 0..3000 {
            counts[spread(&format!("home-{i:04}"), 3)] += 1;
        }
        for c in counts {
            assert!((800..1200).contains(&c), "{counts:?}");
        }
    }
}
