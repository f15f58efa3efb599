//! A network lab of Linux network namespaces for the chaos harness (needs root, as CI has):
//! one namespace per node, each with one interface (`eth0`) on a bridge that lives in a
//! namespace of its own, and the test process (the root namespace) on the same bridge, so
//! it reaches every node. Faults are changes to the lab: a node's bridge port down isolates
//! it from everyone (and up heals it); a blackhole route in a node's namespace drops what it
//! sends to one peer, the building block of partial partitions (the host, i.e. the
//! clients, still reaches every node). Packet loss is an nftables rule in the sender's
//! namespace dropping a share of what it sends to a peer ([`NetLab::set_loss`]). This
//! machine's kernel has no `tc netem` (`CONFIG_NET_SCH_NETEM` is not set), so delay and
//! reordering go through user space: an iptables NFQUEUE rule in the sender's namespace
//! hands its packets to the peers to `sluice-netem` running there, which holds each for the
//! delay plus a random share of the jitter ([`NetLab::set_delay`]); duplication is an
//! iptables TEE rule cloning packets to the same peer ([`NetLab::set_duplication`]).
//!
//! Each lab has its own names (`sl<pid><letter>...`, within Linux's 15-byte interface
//! names) and its own subnet, `10.213.<pid % 250>.0/24`: the host is `.1`, node
//! `i` is `.(10 + i)`. Dropping the lab deletes its namespaces (which takes their interfaces
//! with them) and the host's interface; [`NetLab::remove_stale`] clears what a killed run
//! left.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Write;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

/// `program` to run inside namespace `ns` (`ip netns exec`, which execs it, so the child's
/// pid is the program's), or as it is with no namespace.
pub fn command_in(ns: Option<&str>, program: impl AsRef<OsStr>) -> Command {
    match ns {
        Some(ns) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", ns]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// Run `ip` (or `tc`) with `args`, optionally inside namespace `ns`; Err with its stderr.
fn run(ns: Option<&str>, program: &str, args: &[&str]) -> Result<(), String> {
    let output = command_in(ns, program)
        .args(args)
        .output()
        .map_err(|e| format!("{program} {args:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {args:?} in {ns:?}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Load an nftables script in namespace `ns`.
fn nft(ns: &str, script: &str) -> Result<(), String> {
    let mut child = command_in(Some(ns), "nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("nft in {ns}: {e} (scripts/test.sh installs nftables)"))?;
    child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(script.as_bytes()))
        .transpose()
        .map_err(|e| format!("nft in {ns}: {e}"))?;
    let output = child
        .wait_with_output()
        .map_err(|e| format!("nft in {ns}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft in {ns}: {}\n{script}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// One lab: a bridge namespace, node namespaces, and the host's link to the bridge.
#[derive(Debug)]
pub struct NetLab {
    prefix: String,
    subnet: u8,
    nodes: usize,
    /// Packet loss in percent, by (from, to) node; absent means none.
    losses: Mutex<BTreeMap<(usize, usize), u32>>,
    /// The `sluice-netem` delaying each node's packets, by node.
    delayers: Mutex<BTreeMap<usize, Child>>,
}

impl NetLab {
    /// A lab of `nodes` node namespaces, created now.
    pub fn create(nodes: usize) -> Result<NetLab, String> {
        let pid = std::process::id();
        let lab = NetLab {
            prefix: format!("sl{pid}"),
            subnet: u8::try_from(pid % 250).unwrap_or(0),
            nodes,
            losses: Mutex::new(BTreeMap::new()),
            delayers: Mutex::new(BTreeMap::new()),
        };
        lab.remove_own();
        lab.build().inspect_err(|_| lab.remove_own())?;
        Ok(lab)
    }

    fn build(&self) -> Result<(), String> {
        let bridge = self.bridge_ns();
        run(None, "ip", &["netns", "add", &bridge])?;
        run(
            Some(&bridge),
            "ip",
            &["link", "add", "br0", "type", "bridge"],
        )?;
        run(Some(&bridge), "ip", &["link", "set", "br0", "up"])?;
        // The host's leg.
        let (host, host_peer) = (self.host_if(), format!("{}hp", self.prefix));
        run(
            None,
            "ip",
            &[
                "link", "add", &host, "type", "veth", "peer", "name", &host_peer,
            ],
        )?;
        self.attach(&host_peer)?;
        let host_addr = format!("{}/24", self.host_addr());
        run(None, "ip", &["addr", "add", &host_addr, "dev", &host])?;
        run(None, "ip", &["link", "set", &host, "up"])?;
        for i in 0..self.nodes {
            let ns = self.node_ns(i);
            let (inner, port) = (format!("{}e{i}", self.prefix), self.port_if(i));
            run(None, "ip", &["netns", "add", &ns])?;
            run(Some(&ns), "ip", &["link", "set", "lo", "up"])?;
            run(
                None,
                "ip",
                &["link", "add", &inner, "type", "veth", "peer", "name", &port],
            )?;
            run(None, "ip", &["link", "set", &inner, "netns", &ns])?;
            run(Some(&ns), "ip", &["link", "set", &inner, "name", "eth0"])?;
            let addr = format!("{}/24", self.node_addr(i));
            run(Some(&ns), "ip", &["addr", "add", &addr, "dev", "eth0"])?;
            run(Some(&ns), "ip", &["link", "set", "eth0", "up"])?;
            self.attach(&port)?;
        }
        Ok(())
    }

    /// Move `interface` (in the root namespace) onto the bridge and bring it up.
    fn attach(&self, interface: &str) -> Result<(), String> {
        let bridge = self.bridge_ns();
        run(None, "ip", &["link", "set", interface, "netns", &bridge])?;
        run(
            Some(&bridge),
            "ip",
            &["link", "set", interface, "master", "br0"],
        )?;
        run(Some(&bridge), "ip", &["link", "set", interface, "up"])
    }

    pub fn bridge_ns(&self) -> String {
        format!("{}br", self.prefix)
    }

    /// Node `i`'s namespace, for `ip netns exec`.
    pub fn node_ns(&self, i: usize) -> String {
        format!("{}n{i}", self.prefix)
    }

    fn port_if(&self, i: usize) -> String {
        format!("{}p{i}", self.prefix)
    }

    fn host_if(&self) -> String {
        format!("{}h", self.prefix)
    }

    pub fn host_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.subnet, 1)
    }

    pub fn node_addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.subnet, 10 + u8::try_from(i).unwrap_or(0))
    }

    /// Cut node `i` off from every other node and from the host.
    pub fn isolate(&self, i: usize) -> Result<(), String> {
        run(
            Some(&self.bridge_ns()),
            "ip",
            &["link", "set", &self.port_if(i), "down"],
        )
    }

    /// Undo [`NetLab::isolate`].
    pub fn heal(&self, i: usize) -> Result<(), String> {
        run(
            Some(&self.bridge_ns()),
            "ip",
            &["link", "set", &self.port_if(i), "up"],
        )
    }

    /// Drop every packet node `from` sends to node `to` (a blackhole route in `from`'s
    /// namespace): one direction of a partition; the host still reaches both.
    pub fn block(&self, from: usize, to: usize) -> Result<(), String> {
        let target = format!("{}/32", self.node_addr(to));
        run(
            Some(&self.node_ns(from)),
            "ip",
            &["route", "add", "blackhole", &target],
        )
    }

    /// Undo [`NetLab::block`].
    pub fn unblock(&self, from: usize, to: usize) -> Result<(), String> {
        let target = format!("{}/32", self.node_addr(to));
        run(
            Some(&self.node_ns(from)),
            "ip",
            &["route", "del", "blackhole", &target],
        )
    }

    /// Drop `percent` of the packets node `from` sends to node `to`, at random (0 stops
    /// dropping): an nftables rule in `from`'s namespace. Real packet loss, which TCP turns
    /// into retransmissions and stalls; the host still reaches both nodes unharmed.
    pub fn set_loss(&self, from: usize, to: usize, percent: u32) -> Result<(), String> {
        let mut losses = self.losses.lock().unwrap_or_else(|e| e.into_inner());
        if percent == 0 {
            losses.remove(&(from, to));
        } else {
            losses.insert((from, to), percent.min(100));
        }
        let rules: String = losses
            .iter()
            .filter(|((sender, _), _)| *sender == from)
            .map(|((_, peer), percent)| {
                let share = match percent {
                    100 => String::new(),
                    _ => format!("numgen random mod 100 < {percent} "),
                };
                format!("    ip daddr {} {share}drop\n", self.node_addr(*peer))
            })
            .collect();
        // Declaring the table first makes the delete succeed when it does not exist yet.
        let script = format!(
            "table inet sluice_chaos\ndelete table inet sluice_chaos\n\
             table inet sluice_chaos {{\n  chain output {{\n    type filter hook output priority 0; policy accept;\n{rules}  }}\n}}\n"
        );
        nft(&self.node_ns(from), &script)
    }

    /// Delay every packet node `node` sends to the other nodes by `delay_ms` plus a random
    /// share of `jitter_ms` (packets held for different times overtake each other); the
    /// host's traffic is not delayed. Replaces an earlier delay of the node.
    pub fn set_delay(&self, node: usize, delay_ms: u64, jitter_ms: u64) -> Result<(), String> {
        self.clear_delay(node)?;
        let ns = self.node_ns(node);
        let mut child = command_in(Some(&ns), crate::sluice_netem_binary())
            .args(["0", &delay_ms.to_string(), &jitter_ms.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("sluice-netem in {ns}: {e}"))?;
        // It reports once its queue is bound (or why it could not bind it).
        let mut first = String::new();
        if let Some(stderr) = child.stderr.take() {
            let _ = BufReader::new(stderr).read_line(&mut first);
        }
        if !first.contains("delay") {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("sluice-netem in {ns}: {}", first.trim()));
        }
        self.delayers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(node, child);
        for peer in (0..self.nodes).filter(|&peer| peer != node) {
            let peer = self.node_addr(peer).to_string();
            let rule = [
                "-A",
                "OUTPUT",
                "-d",
                &peer,
                "-j",
                "NFQUEUE",
                "--queue-num",
                "0",
            ];
            run(
                Some(&ns),
                "iptables-legacy",
                &[&rule[..], &["--queue-bypass"]].concat(),
            )?;
        }
        Ok(())
    }

    /// Send `percent` of the packets node `node` sends to the other nodes twice (an
    /// iptables TEE rule clones them to the same peer; 0 stops), as a faulty link does; TCP
    /// drops the copies, answering with duplicate acknowledgements.
    pub fn set_duplication(&self, node: usize, percent: u32) -> Result<(), String> {
        let ns = self.node_ns(node);
        run(
            Some(&ns),
            "iptables-legacy",
            &["-t", "mangle", "-F", "OUTPUT"],
        )?;
        if percent == 0 {
            return Ok(());
        }
        let probability = format!("{:.2}", f64::from(percent.min(100)) / 100.0);
        for peer in (0..self.nodes).filter(|&peer| peer != node) {
            let peer = self.node_addr(peer).to_string();
            let rule = [
                "-t",
                "mangle",
                "-A",
                "OUTPUT",
                "-d",
                &peer,
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                &probability,
                "-j",
                "TEE",
                "--gateway",
                &peer,
            ];
            run(Some(&ns), "iptables-legacy", &rule)?;
        }
        Ok(())
    }

    /// Stop delaying node `node`'s packets.
    pub fn clear_delay(&self, node: usize) -> Result<(), String> {
        let ns = self.node_ns(node);
        let child = self
            .delayers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&node);
        if let Some(mut child) = child {
            run(Some(&ns), "iptables-legacy", &["-F", "OUTPUT"])?;
            let _ = child.kill();
            let _ = child.wait();
        }
        Ok(())
    }

    /// Delete what a lab of this process's names left (an earlier, interrupted run).
    fn remove_own(&self) {
        for i in 0..self.nodes {
            let _ = run(None, "ip", &["netns", "del", &self.node_ns(i)]);
        }
        let _ = run(None, "ip", &["netns", "del", &self.bridge_ns()]);
        let _ = run(None, "ip", &["link", "del", &self.host_if()]);
    }

    /// Delete every lab namespace (`sl<digits>n<i>` / `sl<digits>br`) whose process is gone.
    pub fn remove_stale() {
        let Ok(output) = Command::new("ip").args(["netns", "list"]).output() else {
            return;
        };
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            let Some(rest) = name.strip_prefix("sl") else {
                continue;
            };
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let tail = &rest[digits.len()..];
            let ours = !digits.is_empty() && (tail == "br" || tail.starts_with('n'));
            let alive = std::path::Path::new(&format!("/proc/{digits}")).exists();
            if ours && !alive {
                let _ = run(None, "ip", &["netns", "del", name]);
            }
        }
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        let delayers =
            std::mem::take(&mut *self.delayers.lock().unwrap_or_else(|e| e.into_inner()));
        for (_, mut child) in delayers {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.remove_own();
    }
}

/// A cluster's nodes in a lab by node id (node `ids[i]` runs in namespace `i`), and the
/// faults the chaos harness injects between them, whatever runs in the namespaces (Sluice
/// or Kafka). Each panics, saying what failed, when the lab refuses the change.
pub struct LabNodes<'a> {
    pub lab: &'a NetLab,
    pub ids: Vec<i32>,
}

impl LabNodes<'_> {
    fn index(&self, id: i32) -> usize {
        self.ids
            .iter()
            .position(|&i| i == id)
            .unwrap_or_else(|| panic!("no node {id} in the lab's {:?}", self.ids))
    }

    /// Cut node `id` off from everyone, clients included.
    pub fn isolate(&self, id: i32) {
        self.lab
            .isolate(self.index(id))
            .unwrap_or_else(|e| panic!("isolating node {id}: {e}"));
    }

    /// Undo [`isolate`](Self::isolate).
    pub fn heal(&self, id: i32) {
        self.lab
            .heal(self.index(id))
            .unwrap_or_else(|e| panic!("healing node {id}: {e}"));
    }

    /// Drop what node `from` sends to node `to` (`connected: false`), or stop dropping it;
    /// clients still reach both.
    pub fn set_link(&self, from: i32, to: i32, connected: bool) {
        let (a, b) = (self.index(from), self.index(to));
        let result = if connected {
            self.lab.unblock(a, b)
        } else {
            self.lab.block(a, b)
        };
        result.unwrap_or_else(|e| panic!("link {from} -> {to} connected={connected}: {e}"));
    }

    /// Drop `percent` of the packets node `from` sends to node `to`, at random (0 stops).
    pub fn set_loss(&self, from: i32, to: i32, percent: u32) {
        self.lab
            .set_loss(self.index(from), self.index(to), percent)
            .unwrap_or_else(|e| panic!("loss {from} -> {to} {percent}%: {e}"));
    }

    /// Delay what node `id` sends to the other nodes by `delay_ms` plus up to `jitter_ms`
    /// (reordering its packets); `None` stops delaying.
    pub fn set_delay(&self, id: i32, delay: Option<(u64, u64)>) {
        let node = self.index(id);
        let result = match delay {
            Some((delay_ms, jitter_ms)) => self.lab.set_delay(node, delay_ms, jitter_ms),
            None => self.lab.clear_delay(node),
        };
        result.unwrap_or_else(|e| panic!("delay of node {id}: {e}"));
    }

    /// Send `percent` of what node `id` sends to the other nodes twice (0 stops).
    pub fn set_duplication(&self, id: i32, percent: u32) {
        self.lab
            .set_duplication(self.index(id), percent)
            .unwrap_or_else(|e| panic!("duplication of node {id}: {e}"));
    }
}
