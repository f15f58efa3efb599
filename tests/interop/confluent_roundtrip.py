#!/usr/bin/env python3
"""confluent-kafka (librdkafka bundled in its wheel) against a broker: for each acks mode
and codec, create a topic with the AdminClient, produce the records of dataset.py,
consume them back from the beginning with assigned partitions and check them byte for
byte.

    .venv/bin/python tests/interop/confluent_roundtrip.py --bootstrap 127.0.0.1:9092

Exits 0 and prints a SUMMARY line when every combination round-tripped; 1 otherwise,
with the first differences of each failed combination.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import confluent_kafka  # noqa: E402
import dataset  # noqa: E402
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

CLIENT = "confluent-kafka"


def create_topic(args, topic):
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=args.partitions, replication_factor=1)],
        operation_timeout=args.timeout / 2,
        request_timeout=args.timeout / 2,
    )
    futures[topic].result(timeout=args.timeout)
    # Wait until the topic and a leader for each partition show in metadata.
    deadline = dataset.Deadline(args.timeout)
    while True:
        md = admin.list_topics(topic=topic, timeout=max(1.0, deadline.remaining()))
        t = md.topics.get(topic)
        if (
            t is not None
            and t.error is None
            and len(t.partitions) == args.partitions
            and all(p.leader >= 0 for p in t.partitions.values())
        ):
            break
        if deadline.expired():
            raise RuntimeError("topic %s not in metadata with leaders: %r" % (topic, t))
        time.sleep(0.05)
    # Produce only once each partition's leader serves it (a ListOffsets answer): a first
    # batch that meets NOT_LEADER_OR_FOLLOWER is retried, and a retry with several requests
    # in flight can reorder records, which the check would report.
    consumer = new_consumer(args, topic)
    try:
        for p in range(args.partitions):
            while True:
                try:
                    consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=max(1.0, deadline.remaining()))
                    break
                except KafkaException:
                    if deadline.expired():
                        raise
                    time.sleep(0.05)
    finally:
        consumer.close()


def produce(args, topic, acks, codec):
    errors = []

    def on_delivery(err, msg):
        if err is not None and len(errors) < 10:
            errors.append("delivery of %r failed: %s" % (msg.key(), err))

    config = {
        "bootstrap.servers": args.bootstrap,
        "acks": acks,
        "compression.type": codec,
        "linger.ms": 5,
        "message.timeout.ms": int(args.timeout * 1000 / 2),
    }
    if args.idempotence != "default":
        config["enable.idempotence"] = args.idempotence == "on"
    producer = Producer(config)
    for i in range(args.count):
        key, value, headers = dataset.make_record(i)
        dataset.produce_when_queue_has_room(
            producer, 1000, topic, key=key, value=value, headers=headers, on_delivery=on_delivery
        )
    remaining = producer.flush(args.timeout)
    if remaining:
        raise RuntimeError("%d records still queued after flush" % remaining)
    if errors:
        raise RuntimeError("; ".join(errors))


def new_consumer(args, topic):
    return Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            # Required by librdkafka even without subscribe(); assign() joins no group.
            "group.id": "sluice-interop-" + topic,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
        }
    )


def consume(args, topic):
    consumer = new_consumer(args, topic)
    try:
        md = consumer.list_topics(topic=topic, timeout=args.timeout / 2)
        partitions = sorted(md.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in partitions])
        at_eof = set()
        consumed = []
        deadline = dataset.Deadline(args.timeout)
        # With acks=0 the producer's flush says nothing about the broker having appended
        # the records: reaching the end of every partition ends the loop only once `count`
        # records have arrived (librdkafka signals the end again after new records).
        while not deadline.expired():
            if len(at_eof) == len(partitions) and len(consumed) >= args.count:
                break
            for msg in consumer.consume(num_messages=1000, timeout=0.1):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        at_eof.add(msg.partition())
                        continue
                    raise RuntimeError("consumer error: %s" % err)
                at_eof.discard(msg.partition())
                consumed.append(
                    (msg.partition(), msg.offset(), msg.key(), msg.value(), list(msg.headers() or []))
                )
        return consumed
    finally:
        consumer.close()


def main():
    args = dataset.parse_args(sys.argv[1:], __doc__)
    version = confluent_kafka.version()
    version = version[0] if isinstance(version, tuple) else version
    dataset.log("confluent-kafka %s, librdkafka %s" % (version, confluent_kafka.libversion()[0]))

    def roundtrip(topic, acks, codec):
        create_topic(args, topic)
        produce(args, topic, acks, codec)
        return consume(args, topic)

    return dataset.run_matrix(args, CLIENT, roundtrip)


if __name__ == "__main__":
    sys.exit(main())
