//! kafka-python (pure Python, from the venv that `scripts/test.sh` creates) against a real
//! `sluiced`: for acks 0, 1 and all, times codecs none, gzip, snappy, lz4 and zstd, 10,000
//! records with keys and headers go in and come back byte for byte, in order per
//! partition. The program is `tests/interop/kafka_python_roundtrip.py`.

use std::time::Duration;

use sluice_tests::assert_python_interop_program;

#[test]
fn kafka_python_round_trips_every_acks_mode_and_codec() {
    assert_python_interop_program(
        "kafka-python",
        "tests/interop/kafka_python_roundtrip.py",
        Duration::from_secs(240),
    );
}
