#!/usr/bin/env python3
"""Consumer groups with a real client library against a broker: three members of one group
share a 6-partition topic; once the group is stable (each member holds two partitions)
records are produced, every record is consumed exactly once, each member commits what it
consumed, and the group's committed offsets (read back with OffsetFetch) are the log end
offsets. The group is also listed (ListGroups) and described (DescribeGroups: Stable,
three members, the assignment each member has).

    .venv/bin/python tests/interop/group_consume.py --client confluent-kafka --bootstrap 127.0.0.1:9092
    .venv/bin/python tests/interop/group_consume.py --client kafka-python --bootstrap 127.0.0.1:9092

Exits 0 and prints a SUMMARY line when all of that held; 1 otherwise, saying what did not.
"""

import argparse
import os
import re
import sys
import threading
import time

PARTITIONS = 6
MEMBERS = 3


def log(msg):
    print(f"[group_consume {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def fail(msg):
    log(f"FAIL: {msg}")
    sys.exit(1)


class Shared:
    """What the member threads report."""

    def __init__(self):
        self.lock = threading.Lock()
        self.consumed = {}  # (partition, offset) -> (member, value)
        self.duplicates = []
        self.assignments = {}  # member -> sorted partitions
        self.stop = threading.Event()
        self.commit_now = threading.Event()
        self.committed = set()  # members that committed after commit_now
        self.errors = []

    def record(self, member, partition, offset, value):
        with self.lock:
            key = (partition, offset)
            if key in self.consumed:
                self.duplicates.append((key, self.consumed[key][0], member))
            else:
                self.consumed[key] = (member, value)

    def count(self):
        with self.lock:
            return len(self.consumed)


# ---------------------------------------------------------------- confluent-kafka


def confluent_member(args, topic, group, member, shared):
    from confluent_kafka import Consumer

    config = {
        "bootstrap.servers": args.bootstrap,
        "group.id": group,
        "client.id": f"member-{member}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
    if args.protocol == "consumer":
        # KIP-848: the broker assigns and sets the timeouts.
        config["group.protocol"] = "consumer"
    else:
        config.update({"session.timeout.ms": 10000, "heartbeat.interval.ms": 1000})
    consumer = Consumer(config)

    # With the consumer protocol (KIP-848) the callbacks get the partitions added and
    # removed (incremental); with the classic one (eager) the whole assignment and all of it.
    incremental = args.protocol == "consumer"

    def on_assign(c, partitions):
        with shared.lock:
            held = set(shared.assignments.get(member, [])) if incremental else set()
            shared.assignments[member] = sorted(held | {p.partition for p in partitions})

    def on_revoke(c, partitions):
        if partitions:
            try:
                c.commit(asynchronous=False)
            except Exception as e:  # nothing consumed yet: nothing to commit
                log(f"member {member}: commit on revoke: {e}")
        with shared.lock:
            held = set(shared.assignments.get(member, [])) if incremental else set()
            shared.assignments[member] = sorted(held - {p.partition for p in partitions})

    # A regex subscription (librdkafka: a leading ^): with the consumer protocol the broker
    # resolves it (SubscribedTopicRegex), with the classic one the client does.
    subscription = f"^{re.escape(topic)}$" if args.regex else topic
    consumer.subscribe([subscription], on_assign=on_assign, on_revoke=on_revoke)
    try:
        while not shared.stop.is_set():
            if shared.commit_now.is_set() and member not in shared.committed:
                consumer.commit(asynchronous=False)
                with shared.lock:
                    shared.committed.add(member)
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                shared.errors.append(f"member {member}: {msg.error()}")
                continue
            shared.record(member, msg.partition(), msg.offset(), msg.value())
    finally:
        consumer.close()


def confluent_produce(args, topic, count):
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(count):
        producer.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=i % PARTITIONS)
    if producer.flush(args.timeout) != 0:
        fail("records left unsent")


def confluent_admin_checks(args, topic, group):
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    listed = admin.list_consumer_groups(request_timeout=args.timeout / 4).result()
    ids = [g.group_id for g in listed.valid]
    if group not in ids:
        fail(f"ListGroups does not list {group}: {ids}")
    described = admin.describe_consumer_groups([group], request_timeout=args.timeout / 4)[group].result()
    state = str(described.state)
    members = {m.client_id: sorted(tp.partition for tp in m.assignment.topic_partitions) for m in described.members}
    log(f"described: state {state}, members {members}")
    if "STABLE" not in state.upper():
        fail(f"DescribeGroups: state {state}, not Stable")
    if len(members) != MEMBERS or any(len(p) != PARTITIONS // MEMBERS for p in members.values()):
        fail(f"DescribeGroups: members {members}")
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(PARTITIONS)])
    result = admin.list_consumer_group_offsets([request], request_timeout=args.timeout / 4)[group].result()
    return {tp.partition: tp.offset for tp in result.topic_partitions}


def confluent_create_topic(args, topic):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(
        timeout=args.timeout
    )


# ---------------------------------------------------------------- kafka-python


def kafka_python_member(args, topic, group, member, shared):
    from kafka import KafkaConsumer
    from kafka.consumer.subscription_state import ConsumerRebalanceListener

    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=group,
        client_id=f"member-{member}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=10000,
        heartbeat_interval_ms=1000,
    )

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            # kafka-python 3 runs listeners on its IO thread, where a blocking commit is
            # refused; records are produced only once the group is stable, so a revoke
            # here (the final close) has nothing uncommitted.
            with shared.lock:
                shared.assignments[member] = []

        def on_partitions_assigned(self, assigned):
            with shared.lock:
                shared.assignments[member] = sorted(tp.partition for tp in assigned)

    consumer.subscribe([topic], listener=Listener())
    try:
        while not shared.stop.is_set():
            if shared.commit_now.is_set() and member not in shared.committed:
                consumer.commit()
                with shared.lock:
                    shared.committed.add(member)
            batches = consumer.poll(timeout_ms=200)
            for records in batches.values():
                for r in records:
                    shared.record(member, r.partition, r.offset, r.value)
    finally:
        consumer.close()


def kafka_python_produce(args, topic, count):
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=args.bootstrap, acks="all", linger_ms=5)
    for i in range(count):
        producer.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=i % PARTITIONS)
    producer.flush(timeout=args.timeout)
    producer.close()


def kafka_python_admin_checks(args, topic, group):
    from kafka import KafkaAdminClient, TopicPartition

    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
    listed = admin.list_groups()
    ids = [g["group_id"] if isinstance(g, dict) else g[0] for g in listed]
    if group not in ids:
        fail(f"ListGroups does not list {group}: {listed}")
    described = admin.describe_groups([group])[group]
    state = described.get("group_state")
    members = described.get("members", [])
    log(f"described: state {state}, {len(members)} members")
    if state != "Stable" or len(members) != MEMBERS:
        fail(f"DescribeGroups: {described}")
    offsets = admin.list_group_offsets({group: [TopicPartition(topic, p) for p in range(PARTITIONS)]})[group]
    admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items()}


def kafka_python_create_topic(args, topic):
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    admin.close()


CLIENTS = {
    "confluent-kafka": (confluent_create_topic, confluent_member, confluent_produce, confluent_admin_checks),
    "kafka-python": (kafka_python_create_topic, kafka_python_member, kafka_python_produce, kafka_python_admin_checks),
}


def wait_until(what, timeout, condition):
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--client", choices=sorted(CLIENTS), required=True)
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument(
        "--protocol",
        choices=["classic", "consumer"],
        default="classic",
        help="group.protocol (consumer: KIP-848; confluent-kafka only)",
    )
    parser.add_argument(
        "--regex",
        action="store_true",
        help="subscribe with a regular expression matching the topic (confluent-kafka only)",
    )
    parser.add_argument("--timeout", type=float, default=90.0)
    args = parser.parse_args()
    create_topic, member, produce, admin_checks = CLIENTS[args.client]
    if args.protocol == "consumer" and args.client != "confluent-kafka":
        parser.error("--protocol consumer is for confluent-kafka")
    if args.regex and args.client != "confluent-kafka":
        parser.error("--regex is for confluent-kafka")
    tag = f"{args.client}-{args.protocol}{'-regex' if args.regex else ''}-{os.getpid()}"
    topic, group = f"group-consume-{tag}", f"group-{tag}"
    create_topic(args, topic)

    shared = Shared()
    threads = [
        threading.Thread(target=member, args=(args, topic, group, m, shared), daemon=True) for m in range(MEMBERS)
    ]
    for t in threads:
        t.start()

    def balanced():
        with shared.lock:
            held = [shared.assignments.get(m, []) for m in range(MEMBERS)]
        return all(len(p) == PARTITIONS // MEMBERS for p in held) and sorted(sum(held, [])) == list(range(PARTITIONS))

    wait_until("every member to hold two partitions", args.timeout, balanced)
    log(f"stable: {shared.assignments}")
    produce(args, topic, args.records)
    wait_until(f"{args.records} records consumed", args.timeout, lambda: shared.count() >= args.records)
    time.sleep(1.0)  # anything more would be a duplicate
    shared.commit_now.set()
    wait_until("every member to commit", args.timeout, lambda: len(shared.committed) == MEMBERS)
    committed = admin_checks(args, topic, group)
    shared.stop.set()
    for t in threads:
        t.join(args.timeout)
    if shared.errors:
        fail(f"consumer errors: {shared.errors[:5]}")
    if shared.duplicates:
        fail(f"{len(shared.duplicates)} records consumed twice, first {shared.duplicates[:3]}")
    if shared.count() != args.records:
        fail(f"consumed {shared.count()} records, produced {args.records}")
    ends = {p: 0 for p in range(PARTITIONS)}
    for partition, offset in shared.consumed:
        ends[partition] = max(ends[partition], offset + 1)
    log(f"committed {committed}, log ends {ends}")
    if committed != ends:
        fail(f"committed offsets {committed} are not what was consumed {ends}")
    print(f"SUMMARY {args.client} ({args.protocol} protocol): {MEMBERS} members, {args.records} records consumed once, offsets committed")


if __name__ == "__main__":
    main()
