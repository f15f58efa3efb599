//! `sluice-netem`: packet delay (and with jitter, reordering) for the chaos harness's
//! network lab, in user space, because this machine's kernel has no `tc netem`. It binds an
//! NFQUEUE (netfilter's queue to user space) in the network namespace it runs in (`ip
//! netns exec`), holds each packet the kernel queues there for the delay plus a random
//! share of the jitter, then accepts it; packets with different holds overtake each other.
//! The lab's rules (`NetLab::set_delay`) send a node's packets to its peers to this queue
//! with `--queue-bypass`, so packets pass undelayed when this process is not running. It
//! runs until killed; packets it holds then are dropped, which TCP retransmits.
//!
//! Usage: `sluice-netem <queue number> <delay ms> <jitter ms>`

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use nfq::{Queue, Verdict};
use rand::Rng;

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap_or_else(|_| usage()))
        .collect();
    let [queue_num, delay_ms, jitter_ms] = args[..] else {
        usage()
    };
    if let Err(e) = run(queue_num as u16, delay_ms, jitter_ms) {
        eprintln!("sluice-netem: {e}");
        std::process::exit(1);
    }
}

fn usage() -> ! {
    eprintln!("usage: sluice-netem <queue number> <delay ms> <jitter ms>");
    std::process::exit(2);
}

fn run(queue_num: u16, delay_ms: u64, jitter_ms: u64) -> std::io::Result<()> {
    let mut queue = Queue::open()?;
    queue.bind(queue_num)?;
    queue.set_nonblocking(true);
    let mut rng = rand::rng();
    // (release time, packet), kept sorted by release time.
    let mut held: VecDeque<(Instant, nfq::Message)> = VecDeque::new();
    eprintln!("sluice-netem: queue {queue_num}, delay {delay_ms} ms, jitter {jitter_ms} ms");
    loop {
        loop {
            match queue.recv() {
                Ok(message) => {
                    let hold = delay_ms + rng.random_range(0..=jitter_ms);
                    let release = Instant::now() + Duration::from_millis(hold);
                    let at = held.partition_point(|(t, _)| *t <= release);
                    held.insert(at, (release, message));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        let now = Instant::now();
        while held.front().is_some_and(|(t, _)| *t <= now) {
            if let Some((_, mut message)) = held.pop_front() {
                message.set_verdict(Verdict::Accept);
                queue.verdict(message)?;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
