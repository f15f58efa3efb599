//! `sluiced-power-loss`: `sluiced` for the fault harness, over a file system whose unsynced
//! writes live in this process's memory, so `kill -9` loses what a power cut would
//! (`storage/power_loss.rs`). Same flags as `sluiced`; the environment chooses the mode:
//!
//! - `SLUICE_POWER_LOSS`: `lose` (default: every unsynced write dies with the process) or
//!   `tear` (a random prefix of each may have reached the disk);
//! - `SLUICE_POWER_LOSS_SEED`: the seed of the torn prefixes (default 0).
//!
//! Built only with the `power-loss-fs` feature, which refuses release builds:
//! `cargo build -p sluice-broker --bin sluiced-power-loss --features power-loss-fs`.

use std::sync::Arc;

use sluice_broker::storage::{PowerLoss, PowerLossFileSystem, StdFileSystem};

fn main() {
    let mode = match std::env::var("SLUICE_POWER_LOSS") {
        Ok(mode) => mode.parse::<PowerLoss>(),
        Err(_) => Ok(PowerLoss::Lose),
    };
    let seed = std::env::var("SLUICE_POWER_LOSS_SEED").map(|seed| seed.parse::<u64>());
    let (mode, seed) = match (mode, seed) {
        (Ok(mode), Err(_)) => (mode, 0),
        (Ok(mode), Ok(Ok(seed))) => (mode, seed),
        (Err(e), _) => fail(&format!("SLUICE_POWER_LOSS: {e}")),
        (_, Ok(Err(e))) => fail(&format!("SLUICE_POWER_LOSS_SEED: {e}")),
    };
    eprintln!(
        "sluiced-power-loss: TEST BUILD: unsynced writes are kept in memory ({mode:?}, seed {seed}); kill -9 loses them as a power cut would"
    );
    sluice_broker::node::main(Arc::new(PowerLossFileSystem::new(
        Arc::new(StdFileSystem),
        mode,
        seed,
    )));
}

fn fail(message: &str) -> ! {
    eprintln!("sluiced-power-loss: {message}");
    std::process::exit(2);
}
