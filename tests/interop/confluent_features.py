#!/usr/bin/env python3
"""librdkafka's protocol features against a broker: with `debug=feature` it logs which
features it enables from the broker's ApiVersions ("Disabling feature X" for the others).
Produces --records LZ4-compressed records to --topic (partition 0) and prints every
disabled feature as `DISABLED <name>`; exits 1 if LZ4 is among them (librdkafka would then
send LZ4-configured batches uncompressed) or a record is not acknowledged.

    .venv/bin/python tests/interop/confluent_features.py --bootstrap 127.0.0.1:9092 --topic t
"""

import argparse
import io
import logging
import re
import sys

import confluent_kafka


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--records", type=int, default=100)
    args = parser.parse_args()
    stream = io.StringIO()
    logger = logging.getLogger("librdkafka")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(logging.StreamHandler(stream))
    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "debug": "feature",
            "compression.type": "lz4",
            "linger.ms": 50,
        },
        logger=logger,
    )
    failures = []
    for i in range(args.records):
        producer.produce(
            args.topic,
            value=(f"record-{i}-" + "x" * 200).encode(),
            partition=0,
            on_delivery=lambda err, msg: failures.append(err) if err else None,
        )
    if producer.flush(30) != 0 or failures:
        print(f"FAIL: unacknowledged records: {failures[:3]}")
        sys.exit(1)
    disabled = sorted(set(re.findall(r"Disabling feature (\w+)", stream.getvalue())))
    for name in disabled:
        print(f"DISABLED {name}")
    if "LZ4" in disabled:
        print("FAIL: librdkafka disabled LZ4 against this broker")
        sys.exit(1)
    print(f"SUMMARY {args.records} LZ4 records acknowledged; disabled features: {disabled or 'none'}")


if __name__ == "__main__":
    main()
