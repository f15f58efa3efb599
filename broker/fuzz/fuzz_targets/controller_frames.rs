//! Feeds bytes to what the controller reads from peers and from its own files. The first
//! input byte picks a mode:
//! - 0: raw bytes on an internal-listener connection: frames read with `tcp::read_frame`
//!   until the stream ends or a frame is refused (too long, bad CRC, truncated);
//! - 1: one frame payload with a correct CRC: decoded as a Raft request (what a controller
//!   answers) and as a Raft response (what a controller or broker reads back); the frame
//!   must read back to the same payload;
//! - 2: metadata commands, one JSON document per line, applied in order to an empty
//!   metadata state (what every controller and broker does with committed entries); the
//!   state must survive its snapshot (JSON) unchanged;
//! - 3: the Raft log file (`controller/raft-log`), one record per line with a correct CRC,
//!   opened (replayed and repaired) twice: if the first open succeeds, the second must too.
//!
//! The oracle everywhere is no panic, no abort, no unbounded allocation.

#![no_main]

use std::io::Write;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use sluice_broker::controller::tcp::{encode_frame, read_frame, RaftRequest, RaftResponse};
use sluice_broker::controller::{MetadataCommand, MetadataState, RaftLogStore};
use sluice_broker::storage::{FileSystem, StdFileSystem};
use sluice_broker_fuzz::scratch_dir;

const FRAME_BYTES_MAX: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => raw_frames(rest),
        1 => payload(rest),
        2 => commands(rest),
        _ => raft_log(rest),
    }
});

fn raw_frames(mut bytes: &[u8]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        while let Ok(Some(payload)) = read_frame(&mut bytes, FRAME_BYTES_MAX).await {
            let _ = serde_json::from_slice::<RaftRequest>(&payload);
        }
    });
}

fn payload(bytes: &[u8]) {
    let _ = serde_json::from_slice::<RaftRequest>(bytes);
    let _ = serde_json::from_slice::<RaftResponse>(bytes);
    let frame = encode_frame(bytes, FRAME_BYTES_MAX).expect("under the limit");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let read = runtime.block_on(read_frame(&mut frame.as_slice(), FRAME_BYTES_MAX));
    assert_eq!(read.expect("a frame we wrote").as_deref(), Some(bytes));
}

fn commands(bytes: &[u8]) {
    let mut state = MetadataState::new();
    for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if let Ok(command) = serde_json::from_slice::<MetadataCommand>(line) {
            let _ = state.apply(index as u64 + 1, &command);
        }
    }
    let snapshot = serde_json::to_vec(&state).expect("the state serializes");
    let restored: MetadataState = serde_json::from_slice(&snapshot).expect("the snapshot decodes");
    assert_eq!(restored, state, "the snapshot changed the metadata");
}

fn raft_log(bytes: &[u8]) {
    let dir = scratch_dir("controller");
    let mut file = std::fs::File::create(dir.join("raft-log")).expect("create raft-log");
    for line in bytes.split(|&b| b == b'\n') {
        let mut record = Vec::with_capacity(line.len() + 8);
        record.extend_from_slice(&(line.len() as u32).to_be_bytes());
        record.extend_from_slice(&crc32fast::hash(line).to_be_bytes());
        record.extend_from_slice(line);
        file.write_all(&record).expect("write raft-log");
    }
    drop(file);
    let fs: Arc<dyn FileSystem> = Arc::new(StdFileSystem);
    if RaftLogStore::open(fs.clone(), &dir).is_ok() {
        if let Err(error) = RaftLogStore::open(fs, &dir) {
            panic!("the log opened once, then not again: {error}");
        }
    }
    std::fs::remove_dir_all(&dir).expect("remove the scratch dir");
}
