//! `sluiced`: the Sluice broker binary. See `sluiced --help`.

use std::sync::Arc;

fn main() {
    sluice_broker::node::main(Arc::new(sluice_broker::storage::StdFileSystem));
}
