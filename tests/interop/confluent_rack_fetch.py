#!/usr/bin/env python3
"""confluent-kafka (librdkafka) consuming with `client.rack` from a 3-broker Sluice cluster
whose brokers sit in different racks: the partition leader points the consumer at the
in-sync follower in its rack (KIP-392 preferred_read_replica) and the consumer reads every
record from there.

Driven by tests/tests/interop_confluent_kafka_rack.rs, which creates the topic, produces
the records, names the rack of a follower, and checks the brokers' consumer-fetch metrics:

    .venv/bin/python tests/interop/confluent_rack_fetch.py \\
        --bootstrap 127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3 --topic t --rack rack-2 \\
        --prefix p --count 5000 --pad 100

Record i is at offset i with value b"<prefix>-<i>-" followed by --pad bytes b"p".

The consumer has no group (Sluice has no group coordinator): it assigns partition 0 from
the beginning, with auto commit off (librdkafka still wants a group.id; it is a
placeholder). It reads until it has --count records, checks each one's offset and value,
and reports which broker librdkafka fetched the partition from, as its statistics tell
(`topics.<t>.partitions.0.broker`, next to `.leader`), and the bytes it received from each
broker. `--debug fetch,broker` turns on librdkafka's debug log (on stderr).

Exits 0 and prints a SUMMARY line when every record came back; 1 otherwise, with the
problems. The SUMMARY names `fetched_from=<ids>` and `leader=<id>` for the test to check.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import confluent_kafka  # noqa: E402
import dataset  # noqa: E402
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", required=True, help="comma-separated host:port of the brokers")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--rack", required=True, help="client.rack: the rack of the follower to read from")
    parser.add_argument("--prefix", required=True, help="record i's value starts with <prefix>-<i>-")
    parser.add_argument("--count", type=int, required=True, help="records at offsets 0..count-1")
    parser.add_argument("--pad", type=int, default=0, help="bytes b'p' after each value's number")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to read everything")
    parser.add_argument("--debug", default="", help="librdkafka debug contexts, e.g. fetch,broker")
    return parser.parse_args(argv)


def expected_value(args, i):
    return b"%s-%d-%s" % (args.prefix.encode("ascii"), i, b"p" * args.pad)


class Stats:
    """What librdkafka's statistics say about partition 0 and the brokers."""

    def __init__(self, topic):
        self.topic = topic
        self.fetched_from = []  # broker ids in the order first seen fetching partition 0
        self.leader = None
        self.rx_bytes = {}  # broker node id -> bytes received from it
        self.reports = 0

    def on_stats(self, text):
        try:
            stats = json.loads(text)
        except ValueError:
            return
        self.reports += 1
        partition = stats.get("topics", {}).get(self.topic, {}).get("partitions", {}).get("0")
        if partition is not None:
            broker = partition.get("broker", -1)
            if broker >= 0 and broker not in self.fetched_from:
                self.fetched_from.append(broker)
                dataset.log("librdkafka fetches %s-0 from broker %d (leader %d)" % (self.topic, broker, partition.get("leader", -1)))
            if partition.get("leader", -1) >= 0:
                self.leader = partition["leader"]
        for broker in stats.get("brokers", {}).values():
            node = broker.get("nodeid", -1)
            if node >= 0:
                self.rx_bytes[node] = broker.get("rxbytes", 0)


def consume(args, stats):
    config = {
        "bootstrap.servers": args.bootstrap,
        # librdkafka requires a group id even for assign(); nothing joins or commits a group.
        "group.id": "sluice-rack-fetch-placeholder",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "client.rack": args.rack,
        "statistics.interval.ms": 200,
        "stats_cb": stats.on_stats,
    }
    if args.debug:
        config["debug"] = args.debug
    consumer = Consumer(config)
    by_offset = {}
    problems = []
    try:
        consumer.assign([TopicPartition(args.topic, 0, confluent_kafka.OFFSET_BEGINNING)])
        deadline = dataset.Deadline(args.timeout)
        while len(by_offset) < args.count and not deadline.expired():
            for msg in consumer.consume(num_messages=1000, timeout=0.2):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF or err.retriable():
                        continue
                    raise KafkaException(err)
                if msg.offset() in by_offset:
                    problems.append("offset %d delivered twice" % msg.offset())
                by_offset[msg.offset()] = msg.value()
        # One more statistics report after the last record, so the broker bytes are current.
        settle = dataset.Deadline(2.0)
        reports = stats.reports
        while stats.reports < reports + 2 and not settle.expired():
            consumer.poll(0.1)
    finally:
        consumer.close()
    return by_offset, problems


def main():
    args = parse_args(sys.argv[1:])
    version = confluent_kafka.version()
    version = version[0] if isinstance(version, tuple) else version
    dataset.log("confluent-kafka %s, librdkafka %s, client.rack=%s" % (version, confluent_kafka.libversion()[0], args.rack))
    stats = Stats(args.topic)
    started = time.monotonic()
    by_offset, problems = consume(args, stats)
    elapsed = time.monotonic() - started

    if len(by_offset) != args.count:
        problems.append("%d of %d records read within %.0fs" % (len(by_offset), args.count, args.timeout))
    wrong = 0
    for offset in range(args.count):
        value = by_offset.get(offset)
        if value != expected_value(args, offset):
            wrong += 1
            if wrong <= 10:
                problems.append("offset %d holds %r" % (offset, value[:60] if value else value))
    beyond = sorted(o for o in by_offset if o >= args.count)
    if beyond:
        problems.append("records beyond the last produced offset: %s" % beyond[:10])
    rx = ",".join("%d:%d" % (node, n) for node, n in sorted(stats.rx_bytes.items()))
    fetched_from = ",".join(str(b) for b in stats.fetched_from) or "unknown"
    if problems:
        dataset.log("FAIL (fetched_from=%s leader=%s rx_bytes=%s)" % (fetched_from, stats.leader, rx))
        for p in problems:
            dataset.log("    " + p)
        return 1
    dataset.log(
        "SUMMARY confluent-kafka rack fetch: %d records read with client.rack=%s in %.1fs fetched_from=%s leader=%s rx_bytes=%s"
        % (len(by_offset), args.rack, elapsed, fetched_from, stats.leader, rx)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
