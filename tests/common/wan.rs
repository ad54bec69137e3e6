//! Four validators of the `local` chain, each in a network namespace of its own, joined to this
//! one by a veth pair, and to each other only through [`relay::Relay`] (test harness only).
//!
//! Validator i listens on its namespace's address; its bootnodes are its own entries of the
//! relay (on the root side of its veth, the only addresses it can reach: there is no route
//! between namespaces), so every byte between two validators crosses the relay, which delays,
//! jitters and partitions, and the kernel, which drops packets where the test asks
//! (`tc ... gact drop`). RPC listens on the namespace's address with a bearer token (a node
//! reached beyond loopback wants one). Needs root, as the suite runs; everything is deleted
//! when dropped.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "relay.rs"]
pub mod relay;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use cdrchain_chain_spec::{DevAccount, DEV_ACCOUNT_NAMES};

use super::Node;

/// The port every validator's p2p listens on inside its namespace.
const P2P_PORT: u16 = 30_333;
/// The RPC token of every validator.
pub const TOKEN: &str = "wan-test-admin-token-000001";
/// Validators of the `local` chain.
pub const VALIDATORS: usize = 4;

/// The namespaces, the relay between them, and the validators' settings.
pub struct Wan {
    _dir: tempfile::TempDir,
    pub base: PathBuf,
    names: Vec<String>,
    host_links: Vec<String>,
    /// Validator i's address (inside its namespace).
    pub inside: Vec<String>,
    pub relay: relay::Relay,
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().unwrap_or_else(|e| panic!("ip {args:?}: {e}"));
    assert!(status.success(), "ip {args:?} failed ({status}): the fault tests need root");
}

fn tc(args: &[&str]) {
    let status = Command::new("tc").args(args).status().unwrap_or_else(|e| panic!("tc {args:?}: {e}"));
    assert!(status.success(), "tc {args:?} failed ({status})");
}

impl Wan {
    pub fn new() -> Wan {
        let dir = tempfile::tempdir().unwrap();
        let pid = std::process::id();
        // A /28 of 10.215.0.0/16 per test process: four /30s, one per validator.
        let (third, block) = (pid % 250, (pid / 250 % 16) * 16);
        let mut wan = Wan {
            base: dir.path().to_path_buf(),
            _dir: dir,
            names: Vec::new(),
            host_links: Vec::new(),
            inside: Vec::new(),
            relay: relay::Relay::start(&[], &[]),
        };
        let mut outside = Vec::new();
        for i in 0..VALIDATORS {
            let name = format!("cdrw{pid}v{i}");
            let (host_link, ns_link) = (format!("cw{pid}h{i}"), format!("cw{pid}n{i}"));
            let first = block + 4 * i as u32;
            let (out, inn) =
                (format!("10.215.{third}.{}", first + 1), format!("10.215.{third}.{}", first + 2));
            ip(&["netns", "add", &name]);
            wan.names.push(name.clone());
            ip(&["link", "add", &host_link, "type", "veth", "peer", "name", &ns_link]);
            wan.host_links.push(host_link.clone());
            ip(&["link", "set", &ns_link, "netns", &name]);
            ip(&["addr", "add", &format!("{out}/30"), "dev", &host_link]);
            ip(&["link", "set", &host_link, "up"]);
            ip(&["netns", "exec", &name, "ip", "addr", "add", &format!("{inn}/30"), "dev", &ns_link]);
            ip(&["netns", "exec", &name, "ip", "link", "set", &ns_link, "up"]);
            ip(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"]);
            outside.push(out);
            wan.inside.push(inn);
        }
        let targets: Vec<SocketAddr> =
            wan.inside.iter().map(|a| format!("{a}:{P2P_PORT}").parse().unwrap()).collect();
        wan.relay = relay::Relay::start(&outside, &targets);
        wan
    }

    /// Validator i's bootnodes: the relay's entries it reaches the others through.
    fn bootnodes(&self, i: usize) -> String {
        (0..VALIDATORS)
            .filter(|j| *j != i)
            .map(|j| {
                let entry = self.relay.entry(i, j);
                format!(
                    "/ip4/{}/tcp/{}/p2p/{}",
                    entry.ip(),
                    entry.port(),
                    DevAccount::derive(DEV_ACCOUNT_NAMES[j]).peer_id()
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts validator i in its namespace, with `env` and `extra` arguments.
    pub fn start(&self, i: usize, env: &[(&str, &str)], extra: &[&str]) -> Node {
        let name = DEV_ACCOUNT_NAMES[i];
        let base = self.base.join(name);
        let listen = format!("/ip4/{}/tcp/{P2P_PORT}", self.inside[i]);
        let rpc = format!("{}:0", self.inside[i]);
        let bootnodes = self.bootnodes(i);
        let mut args = vec![
            "node",
            "--chain",
            "local",
            "--dev-key",
            name,
            "--base-path",
            base.to_str().unwrap(),
            "--listen",
            &listen,
            "--bootnodes",
            &bootnodes,
            "--rpc-addr",
            &rpc,
            "--rpc-token",
            TOKEN,
            "--no-metrics",
        ];
        args.extend_from_slice(extra);
        let mut node = Node::start_in_named(&self.names[i], &args, env);
        node.token = Some(TOKEN.to_string());
        node
    }

    /// The kernel drops the packets sent towards validator i whose IP id ends in the bits
    /// `one_in - 1` masks being zero (one in `one_in`, a power of two, of each TCP stream; a
    /// retransmission has another id), and none that i sends: loss in one direction only. This
    /// kernel has neither netem nor the gact action: the lost packets are classified into an
    /// htb class whose queue holds none.
    pub fn lose_towards(&self, i: usize, one_in: u16) {
        assert!(one_in.is_power_of_two() && one_in >= 2, "one_in must be a power of two");
        let dev = &self.host_links[i];
        tc(&["qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "1", "r2q", "1000"]);
        tc(&["class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb", "rate", "10gbit"]);
        tc(&["class", "add", "dev", dev, "parent", "1:", "classid", "1:2", "htb", "rate", "10gbit"]);
        tc(&["qdisc", "add", "dev", dev, "parent", "1:2", "handle", "20:", "pfifo", "limit", "0"]);
        let mask = format!("{:#06x}", one_in - 1);
        tc(&[
            "filter", "add", "dev", dev, "parent", "1:", "protocol", "ip", "prio", "1", "u32", "match",
            "u16", "0x0000", &mask, "at", "4", "flowid", "1:2",
        ]);
    }

    /// Packets the kernel dropped towards validator i so far (the drop queue's counter).
    pub fn dropped_towards(&self, i: usize) -> u64 {
        let output =
            Command::new("tc").args(["-s", "qdisc", "show", "dev", &self.host_links[i]]).output().unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        // "qdisc pfifo 20: parent 1:2 limit 0p\n Sent 0 bytes 0 pkt (dropped D, ...".
        let drop_queue = text.split("qdisc ").find(|q| q.starts_with("pfifo 20:")).unwrap_or_default();
        drop_queue
            .split("dropped ")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Wan {
    fn drop(&mut self) {
        for link in &self.host_links {
            let _ = Command::new("ip").args(["link", "del", link]).status();
        }
        for name in &self.names {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}
