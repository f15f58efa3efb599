//! Sluice's own client against the real `sluiced`: 100,000 records with keys and headers
//! for each acks mode (0, 1, all) and each codec (none, gzip, snappy, lz4, zstd), consumed
//! back and checked field by field.

use sluice_client::{Acks, Admin, Compression};
use sluice_tests::roundtrip::{roundtrip, PARTITIONS};
use sluice_tests::{interop_broker, BrokerOptions};

const RECORDS: usize = 100_000;

#[test]
fn client_round_trips_every_acks_mode_and_codec() {
    let broker = interop_broker(BrokerOptions::default());
    let bootstrap = broker.bootstrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let result: anyhow::Result<()> = runtime.block_on(async {
        let admin = Admin::new(&bootstrap).await?;
        for acks in [Acks::None, Acks::Leader, Acks::All] {
            for codec in [
                Compression::None,
                Compression::Gzip,
                Compression::Snappy,
                Compression::Lz4,
                Compression::Zstd,
            ] {
                let topic = format!("client-roundtrip-{}-{}", acks.wire_value(), codec.name());
                admin.create_topic(&topic, PARTITIONS, 1, &[]).await?;
                roundtrip(&bootstrap, RECORDS, &topic, acks, codec)
                    .await
                    .map_err(|e| e.context(format!("acks={acks:?} codec={}", codec.name())))?;
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e:#}\n--- broker log ---\n{}", broker.log());
    }
}
