//! `sluiced-faults`: `sluiced` for the fault harness (`docs/chaos.md`), over a file system
//! that fails the way disks fail. Same flags as `sluiced`; the environment sets the faults:
//!
//! - `SLUICE_POWER_LOSS`: `lose` (default: bytes written but not fsynced live in this
//!   process's memory, so `kill -9` loses them as a power cut would;
//!   `storage/power_loss.rs`) or `tear` (a random prefix of each may reach the disk);
//! - `SLUICE_POWER_LOSS_SEED`: the seed of the torn prefixes (default 0);
//! - `SLUICE_FAIL_FSYNC_FILE`: a path; while a file exists there, every fsync (of a file or
//!   a directory) fails with an I/O error, as a failing disk's do.
//!
//! Built only with the `fault-fs` feature, which refuses release builds:
//! `cargo build -p sluice-broker --bin sluiced-faults --features fault-fs`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sluice_broker::storage::{
    FaultInjectingFileSystem, PowerLoss, PowerLossFileSystem, StdFileSystem,
};

/// How often the fsync-failure trigger file is looked for.
const TRIGGER_POLL: Duration = Duration::from_millis(20);

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
    let faults = Arc::new(FaultInjectingFileSystem::new(Arc::new(StdFileSystem)));
    let trigger = std::env::var_os("SLUICE_FAIL_FSYNC_FILE").map(PathBuf::from);
    eprintln!(
        "sluiced-faults: TEST BUILD: unsynced writes are kept in memory ({mode:?}, seed {seed}); kill -9 loses them as a power cut would; fsyncs fail while {} exists",
        trigger.as_ref().map_or("(no trigger file)".into(), |t| t.display().to_string())
    );
    if let Some(trigger) = trigger {
        let faults = faults.clone();
        std::thread::spawn(move || watch_trigger(&faults, &trigger));
    }
    sluice_broker::node::main(Arc::new(PowerLossFileSystem::new(faults, mode, seed)));
}

/// Fail every fsync while `trigger` exists.
fn watch_trigger(faults: &FaultInjectingFileSystem, trigger: &std::path::Path) {
    let mut failing = false;
    loop {
        let exists = trigger.exists();
        if exists != failing {
            failing = exists;
            if failing {
                eprintln!(
                    "sluiced-faults: {} exists: fsyncs fail from now on",
                    trigger.display()
                );
                faults.start_failing_syncs();
            } else {
                eprintln!(
                    "sluiced-faults: {} is gone: fsyncs work again",
                    trigger.display()
                );
                faults.stop_failing_syncs();
            }
        }
        std::thread::sleep(TRIGGER_POLL);
    }
}

fn fail(message: &str) -> ! {
    eprintln!("sluiced-faults: {message}");
    std::process::exit(2);
}
