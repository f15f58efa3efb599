#!/usr/bin/env python3
"""confluent-kafka (librdkafka) producing with acks=all to a 3-broker cluster while the
partition leader is killed: every acknowledged record must be readable afterwards at the
offset its delivery report gave.

Driven by tests/tests/interop_confluent_kafka_cluster.rs:

    .venv/bin/python tests/interop/confluent_cluster_failover.py \\
        --bootstrap 127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3 --topic t --gate-file /tmp/x

1. Creates the topic (1 partition, replication factor 3, min.insync.replicas=2) and waits
   until it has a leader.
2. Produces the first half of --count records (values b"failover-%d"); once a quarter is
   acknowledged it prints a line starting with PROGRESS, which is the test's cue to kill
   the leader. After the first half it waits (bounded) until the gate file exists, i.e. the
   leader is dead, then produces the second half and flushes.
3. Reads the partition from the beginning and checks that every acknowledged value is at
   its acknowledged offset and that no value it did not send is present (a retry may
   duplicate a record whose first attempt landed: idempotence is off).

Exits 0 and prints a SUMMARY line when all is well; 1 otherwise, with the problems.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import confluent_kafka  # noqa: E402
import dataset  # noqa: E402
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

PREFIX = b"failover-"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", required=True, help="comma-separated host:port of the brokers")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--gate-file", required=True, help="the test creates it once the leader is dead")
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per step")
    return parser.parse_args(argv)


def create_topic(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    topic = NewTopic(args.topic, num_partitions=1, replication_factor=3, config={"min.insync.replicas": "2"})
    futures = admin.create_topics([topic], operation_timeout=30, request_timeout=30)
    futures[args.topic].result(timeout=args.timeout)
    deadline = dataset.Deadline(args.timeout)
    while True:
        md = admin.list_topics(topic=args.topic, timeout=max(1.0, deadline.remaining()))
        t = md.topics.get(args.topic)
        if t is not None and t.error is None and 0 in t.partitions and t.partitions[0].leader >= 0:
            p = t.partitions[0]
            if len(p.isrs) == 3:
                dataset.log("topic %s: leader %d, replicas %s, isr %s" % (args.topic, p.leader, p.replicas, p.isrs))
                return
        if deadline.expired():
            raise RuntimeError("topic %s has no leader with a full ISR in metadata: %r" % (args.topic, t))
        time.sleep(0.05)


def produce(args):
    acked = {}  # index -> offset
    errors = []
    progress_printed = [False]

    def on_delivery(err, msg):
        i = int(msg.value()[len(PREFIX):])
        if err is not None:
            errors.append("record %d: %s" % (i, err))
            return
        acked[i] = msg.offset()
        if not progress_printed[0] and len(acked) >= args.count // 4:
            progress_printed[0] = True
            dataset.log("PROGRESS %d acknowledged" % len(acked))

    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "acks": "all",
            "enable.idempotence": False,
            "linger.ms": 5,
            "retry.backoff.ms": 100,
            "message.timeout.ms": int(args.timeout * 1000),
            "request.timeout.ms": 15000,
        }
    )

    def send(i):
        dataset.produce_when_queue_has_room(
            producer, 2000, args.topic, value=PREFIX + str(i).encode("ascii"), partition=0, on_delivery=on_delivery
        )

    half = args.count // 2
    for i in range(half):
        send(i)
    # Wait for the test to kill the leader (it does once PROGRESS is printed).
    deadline = dataset.Deadline(args.timeout)
    while not os.path.exists(args.gate_file):
        if deadline.expired():
            raise RuntimeError("the gate file %s did not appear (no PROGRESS line?)" % args.gate_file)
        producer.poll(0.05)
    dataset.log("gate open: %d acknowledged so far" % len(acked))
    for i in range(half, args.count):
        send(i)
    remaining = producer.flush(args.timeout)
    if remaining:
        errors.append("%d records still queued after flush" % remaining)
    return acked, errors


def consume(args, end_offset):
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": "sluice-failover-" + args.topic,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
        }
    )
    try:
        consumer.assign([TopicPartition(args.topic, 0, confluent_kafka.OFFSET_BEGINNING)])
        by_offset = {}
        next_offset = 0
        deadline = dataset.Deadline(args.timeout)
        while not deadline.expired():
            if next_offset >= end_offset:
                break
            for msg in consumer.consume(num_messages=1000, timeout=0.2):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    if err.retriable():
                        continue
                    raise KafkaException(err)
                by_offset[msg.offset()] = msg.value()
                next_offset = max(next_offset, msg.offset() + 1)
        return by_offset
    finally:
        consumer.close()


def main():
    args = parse_args(sys.argv[1:])
    version = confluent_kafka.version()
    version = version[0] if isinstance(version, tuple) else version
    dataset.log("confluent-kafka %s, librdkafka %s" % (version, confluent_kafka.libversion()[0]))
    create_topic(args)
    started = time.monotonic()
    acked, errors = produce(args)
    dataset.log("produced: %d acknowledged, %d errors (%.1fs)" % (len(acked), len(errors), time.monotonic() - started))

    problems = list(errors[:10])
    if len(acked) != args.count:
        problems.append("%d of %d records acknowledged" % (len(acked), args.count))
    end_offset = max(acked.values()) + 1 if acked else 0
    by_offset = consume(args, end_offset)
    missing = 0
    for i, offset in sorted(acked.items()):
        value = by_offset.get(offset)
        expected = PREFIX + str(i).encode("ascii")
        if value != expected:
            missing += 1
            if missing <= 10:
                problems.append("record %d acknowledged at offset %d, which holds %r" % (i, offset, value))
    foreign = [o for o, v in by_offset.items() if v is None or not v.startswith(PREFIX)]
    if foreign:
        problems.append("%d values that were never sent, first at offsets %s" % (len(foreign), sorted(foreign)[:10]))
    duplicates = len(by_offset) - len(set(by_offset.values()))
    if problems:
        dataset.log("FAIL")
        for p in problems:
            dataset.log("    " + p)
        return 1
    dataset.log(
        "SUMMARY confluent-kafka failover: %d records acknowledged with acks=all across a leader kill, "
        "all at their offsets (%d read back, %d duplicates from retries)" % (len(acked), len(by_offset), duplicates)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
