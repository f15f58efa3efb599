//! The chaos harness's network lab (`sluice_tests::netns`, needs root as CI runs):
//! a listener in one node's namespace is reachable from the host and from another node,
//! isolating its node cuts both off and healing restores them, packet loss drops what one
//! node sends to another, packet delay holds it, duplication sends it twice, and dropping
//! the lab removes its namespaces.

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use sluice_tests::netns::NetLab;
use sluice_tests::{spawn_program, RunningProgram};

const PORT: u16 = 7000;

fn reachable_from_host(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// Whether node `from` connects to `addr` within 1 s.
fn reachable_from_node(lab: &NetLab, from: usize, addr: SocketAddr) -> bool {
    let code = format!(
        "import socket; socket.create_connection(('{}', {}), timeout=1)",
        addr.ip(),
        addr.port()
    );
    Command::new("ip")
        .args(["netns", "exec", &lab.node_ns(from), "python3", "-c", &code])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A counter of the `TcpExt` lines of node `node`'s `/proc/net/netstat`.
fn tcp_ext_counter(lab: &NetLab, node: usize, name: &str) -> u64 {
    let output = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.node_ns(node),
            "cat",
            "/proc/net/netstat",
        ])
        .output()
        .expect("read /proc/net/netstat");
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "{what} not within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn listener(lab: &NetLab) -> RunningProgram {
    let bind = lab.node_addr(0).to_string();
    let ns = lab.node_ns(0);
    let port = PORT.to_string();
    spawn_program(
        Command::new("ip").args([
            "netns",
            "exec",
            &ns,
            "python3",
            "-m",
            "http.server",
            &port,
            "--bind",
            &bind,
        ]),
        None,
    )
}

#[test]
fn the_lab_isolates_and_heals_a_node() {
    NetLab::remove_stale();
    let lab = NetLab::create(2).expect("create the network lab (needs root)");
    let prefix = lab.bridge_ns().trim_end_matches("br").to_string();
    let addr = SocketAddr::from((lab.node_addr(0), PORT));
    let _server = listener(&lab);
    wait_until("the listener reachable from the host", || {
        reachable_from_host(addr)
    });
    assert!(
        reachable_from_node(&lab, 1, addr),
        "node 1 cannot reach node 0"
    );

    lab.isolate(0).unwrap();
    assert!(
        !reachable_from_host(addr),
        "the host reached an isolated node"
    );
    assert!(
        !reachable_from_node(&lab, 1, addr),
        "node 1 reached an isolated node"
    );
    lab.heal(0).unwrap();
    wait_until("the healed node reachable again", || {
        reachable_from_host(addr)
    });

    // All of node 1's packets to node 0 lost: no connection; the host is not affected.
    lab.set_loss(1, 0, 100).unwrap();
    assert!(
        !reachable_from_node(&lab, 1, addr),
        "node 1 connected although everything it sends to node 0 is dropped"
    );
    assert!(
        reachable_from_host(addr),
        "loss between nodes cut the host off"
    );
    lab.set_loss(1, 0, 0).unwrap();
    assert!(
        reachable_from_node(&lab, 1, addr),
        "node 1 cannot reach node 0 once the loss is lifted"
    );

    // Node 1's packets to node 0 held 1.5 s each: a connection (a SYN, then the request)
    // takes longer than the 1 s the probe waits; the host is not delayed.
    lab.set_delay(1, 1_500, 0).unwrap();
    assert!(
        !reachable_from_node(&lab, 1, addr),
        "node 1 connected within 1 s although its packets are held 1.5 s"
    );
    assert!(reachable_from_host(addr), "the delay slowed the host down");
    lab.clear_delay(1).unwrap();
    assert!(
        reachable_from_node(&lab, 1, addr),
        "node 1 cannot reach node 0 once the delay is lifted"
    );

    // Every packet of node 1 to node 0 sent twice: node 0's TCP sees the copies (it
    // answers them with duplicate-data SACKs) and the connection still works.
    let dsacks = || tcp_ext_counter(&lab, 0, "TCPDSACKOldSent");
    let before = dsacks();
    lab.set_duplication(1, 100).unwrap();
    assert!(
        reachable_from_node(&lab, 1, addr),
        "node 1 cannot connect through duplicated packets"
    );
    wait_until("node 0 to see duplicated segments", || dsacks() > before);
    lab.set_duplication(1, 0).unwrap();

    drop(lab);
    let listed = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        !listed.contains(&prefix),
        "namespaces left behind: {listed}"
    );
}
