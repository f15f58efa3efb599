#!/usr/bin/env python3
"""kafka-python against a broker: for each acks mode and codec, create a topic with the
admin client, produce the records of dataset.py, consume them back from the beginning
with assigned partitions (no consumer group) and check them byte for byte.

    .venv/bin/python tests/interop/kafka_python_roundtrip.py --bootstrap 127.0.0.1:9092

Exits 0 and prints a SUMMARY line when every combination round-tripped; 1 otherwise,
with the first differences of each failed combination.
"""

import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dataset  # noqa: E402
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402

CLIENT = "kafka-python"


def new_consumer(args):
    return KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="sluice-interop-consumer",
        request_timeout_ms=int(args.timeout * 1000 / 2),
    )


def create_topic(args, topic):
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap, client_id="sluice-interop-admin")
    try:
        admin.create_topics(
            {topic: {"num_partitions": args.partitions, "replication_factor": 1}},
            timeout_ms=int(args.timeout * 1000),
            wait_for_metadata=True,
        )
    finally:
        admin.close()
    # Produce only once each partition's leader serves it (a ListOffsets answer): a first
    # batch that meets NOT_LEADER_OR_FOLLOWER is retried, and a retry with several requests
    # in flight can reorder records, which the check would report.
    consumer = new_consumer(args)
    try:
        consumer.end_offsets(
            [TopicPartition(topic, p) for p in range(args.partitions)], timeout_ms=int(args.timeout * 1000)
        )
    finally:
        consumer.close()


def produce(args, topic, acks, codec):
    extra = {}
    if args.idempotence != "default":
        extra["enable_idempotence"] = args.idempotence == "on"
    producer = KafkaProducer(
        **extra,
        bootstrap_servers=args.bootstrap,
        acks={"0": 0, "1": 1, "all": "all"}[acks],
        compression_type=None if codec == "none" else codec,
        linger_ms=5,
        request_timeout_ms=int(args.timeout * 1000 / 2),
    )
    try:
        futures = [
            producer.send(topic, key=key, value=value, headers=headers)
            for key, value, headers in map(dataset.make_record, range(args.count))
        ]
        producer.flush(timeout=args.timeout)
        # acks=0 futures resolve without a broker answer; for acks 1/all this raises the
        # broker's error, if any.
        for f in futures:
            f.get(timeout=0)
    finally:
        producer.close(timeout=10)


def consume(args, topic):
    consumer = new_consumer(args)
    try:
        tps = [TopicPartition(topic, p) for p in range(args.partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        deadline = dataset.Deadline(args.timeout)
        # With acks=0 the producer's flush says nothing about the broker having appended
        # the records: until `count` have arrived, keep reading the end offsets again.
        end = consumer.end_offsets(tps)
        consumed = []
        while not deadline.expired():
            if all(consumer.position(tp) >= end[tp] for tp in tps):
                if len(consumed) >= args.count:
                    break
                end = consumer.end_offsets(tps)
            for tp, records in consumer.poll(timeout_ms=100).items():
                for r in records:
                    consumed.append((tp.partition, r.offset, r.key, r.value, list(r.headers)))
        return consumed
    finally:
        consumer.close()


def main():
    args = dataset.parse_args(sys.argv[1:], __doc__)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    def roundtrip(topic, acks, codec):
        create_topic(args, topic)
        produce(args, topic, acks, codec)
        return consume(args, topic)

    return dataset.run_matrix(args, CLIENT, roundtrip)


if __name__ == "__main__":
    sys.exit(main())
