#!/usr/bin/env python3
"""Consumer group members failing, with confluent-kafka (librdkafka) against a broker. Each
member is its own process, so one can be killed with SIGKILL.

Scenario "leave-and-crash": three members share a 6-partition topic while records are
produced. One member leaves cleanly (close()), later another is killed with SIGKILL. The
last member takes over their partitions from the committed offsets: every record is
consumed, only records the killed member consumed after its last commit are consumed
twice, and at the end the committed offsets are the log end offsets.

Scenario "static-restart": a static member (group.instance.id) and a dynamic one share the
topic. The static member is killed and started again within its session timeout with the
same instance id: no rebalance happens (the dynamic member never loses a partition) and the
static member gets its partitions back.

    .venv/bin/python tests/interop/group_failover.py --bootstrap 127.0.0.1:9092 --scenario leave-and-crash

Exits 0 and prints a SUMMARY line when all of that held; 1 otherwise, saying what did not.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

PARTITIONS = 6


def log(msg):
    print(f"[group_failover {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def fail(msg):
    log(f"FAIL: {msg}")
    sys.exit(1)


# ------------------------------------------------------------------ member process


def run_member(args):
    """Consume, print one JSON line per event, commit every 20 records and on revoke."""
    from confluent_kafka import Consumer

    def emit(**event):
        print(json.dumps(event), flush=True)

    config = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "client.id": args.name,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": args.session_timeout_ms,
        "heartbeat.interval.ms": 500,
    }
    if args.instance_id:
        config["group.instance.id"] = args.instance_id
    consumer = Consumer(config)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))

    def on_assign(c, partitions):
        emit(event="assigned", partitions=sorted(p.partition for p in partitions))

    def on_revoke(c, partitions):
        if partitions:
            try:
                c.commit(asynchronous=False)
            except Exception:
                pass
        emit(event="revoked", partitions=sorted(p.partition for p in partitions))

    consumer.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke)
    uncommitted = 0
    while not stopping:
        msg = consumer.poll(0.2)
        if msg is None or msg.error():
            continue
        emit(event="record", partition=msg.partition(), offset=msg.offset())
        uncommitted += 1
        if uncommitted >= 20:
            consumer.commit(asynchronous=False)
            emit(event="committed")
            uncommitted = 0
    consumer.commit(asynchronous=False)
    emit(event="committed")
    consumer.close()
    emit(event="closed")


# ------------------------------------------------------------------ orchestration


class Member:
    def __init__(self, args, topic, group, name, instance_id=None, session_timeout_ms=6000):
        self.name = name
        self.out_path = f"{args.workdir}/{name}.{int(time.time() * 1000)}.jsonl"
        command = [
            sys.executable,
            os.path.abspath(__file__),
            "--member",
            "--bootstrap",
            args.bootstrap,
            "--topic",
            topic,
            "--group",
            group,
            "--name",
            name,
            "--session-timeout-ms",
            str(session_timeout_ms),
        ]
        if instance_id:
            command += ["--instance-id", instance_id]
        self.out = open(self.out_path, "w")
        self.process = subprocess.Popen(command, stdout=self.out, stderr=subprocess.STDOUT)

    def events(self):
        with open(self.out_path) as f:
            lines = f.readlines()
        events = []
        for line in lines:
            try:
                events.append(json.loads(line))
            except ValueError:
                pass
        return events

    def records(self):
        return [(e["partition"], e["offset"]) for e in self.events() if e["event"] == "record"]

    def assignment(self):
        current = []
        for e in self.events():
            if e["event"] == "assigned":
                current = e["partitions"]
            elif e["event"] == "revoked":
                current = []
        return current

    def revocations(self):
        return [e for e in self.events() if e["event"] == "revoked" and e["partitions"]]

    def records_after_last_commit(self):
        after = []
        for e in self.events():
            if e["event"] == "committed":
                after = []
            elif e["event"] == "record":
                after.append((e["partition"], e["offset"]))
        return after

    def stop(self, timeout):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout)

    def kill(self):
        self.process.kill()
        self.process.wait(10)


def wait_until(what, timeout, condition):
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def create_topic(args, topic):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(
        timeout=args.timeout
    )


def producer(args):
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": args.bootstrap, "acks": "all", "linger.ms": 5})


def produce(p, topic, start, count):
    for i in range(start, start + count):
        p.produce(topic, value=f"v{i}".encode(), partition=i % PARTITIONS)
    if p.flush(30) != 0:
        fail("records left unsent")


def committed_offsets(args, group, topic):
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(PARTITIONS)])
    result = admin.list_consumer_group_offsets([request])[group].result(timeout=args.timeout)
    return {tp.partition: tp.offset for tp in result.topic_partitions}


def leave_and_crash(args):
    tag = os.getpid()
    topic, group = f"failover-{tag}", f"failover-group-{tag}"
    create_topic(args, topic)
    members = [Member(args, topic, group, f"m{i}") for i in range(3)]
    wait_until("three members with two partitions each", args.timeout, lambda: all(len(m.assignment()) == 2 for m in members))
    p = producer(args)
    total = 0
    consumed = lambda: set().union(*(set(m.records()) for m in members))  # noqa: E731

    produce(p, topic, total, 600)
    total += 600
    wait_until("the first records consumed", args.timeout, lambda: len(consumed()) >= total)
    log("member m0 leaves")
    members[0].stop(args.timeout)
    wait_until("m1 and m2 sharing the partitions", args.timeout, lambda: sorted(members[1].assignment() + members[2].assignment()) == list(range(PARTITIONS)))
    produce(p, topic, total, 600)
    total += 600
    wait_until("the second records consumed", args.timeout, lambda: len(consumed()) >= total)
    produce(p, topic, total, 300)
    total += 300
    time.sleep(0.5)
    log("member m1 is killed")
    members[1].kill()
    wait_until("m2 holding every partition", args.timeout, lambda: members[2].assignment() == list(range(PARTITIONS)))
    produce(p, topic, total, 600)
    total += 600
    wait_until(f"all {total} records consumed", args.timeout, lambda: len(consumed()) >= total)
    members[2].stop(args.timeout)

    records = [r for m in members for r in m.records()]
    duplicates = {r for r in records if records.count(r) > 1}
    allowed = set(members[1].records_after_last_commit())
    if not duplicates <= allowed:
        fail(f"{len(duplicates - allowed)} records consumed twice that were committed, e.g. {sorted(duplicates - allowed)[:3]}")
    committed = committed_offsets(args, group, topic)
    ends = {q: (total + PARTITIONS - 1 - q) // PARTITIONS for q in range(PARTITIONS)}
    if committed != ends:
        fail(f"committed {committed}, log ends {ends}")
    print(f"SUMMARY leave-and-crash: {total} records consumed, {len(duplicates)} redelivered after the crash, offsets committed")


def static_restart(args):
    tag = os.getpid()
    topic, group = f"static-{tag}", f"static-group-{tag}"
    create_topic(args, topic)
    static = Member(args, topic, group, "static", instance_id="instance-1", session_timeout_ms=20000)
    dynamic = Member(args, topic, group, "dynamic", session_timeout_ms=20000)
    wait_until("both members with three partitions", args.timeout, lambda: len(static.assignment()) == 3 and len(dynamic.assignment()) == 3)
    before = static.assignment()
    time.sleep(2)  # the group settles: no revocation may come after this point
    revocations_before = len(dynamic.revocations())
    log(f"static member holds {before}; killing and restarting it")
    static.kill()
    restarted = Member(args, topic, group, "static", instance_id="instance-1", session_timeout_ms=20000)
    wait_until("the restarted static member's assignment", args.timeout, lambda: len(restarted.assignment()) == 3)
    if restarted.assignment() != before:
        fail(f"the static member came back with {restarted.assignment()}, had {before}")
    time.sleep(2)
    if len(dynamic.revocations()) != revocations_before:
        fail(f"the dynamic member lost partitions: {dynamic.revocations()}")
    restarted.stop(args.timeout)
    dynamic.stop(args.timeout)
    print("SUMMARY static-restart: the static member came back to its partitions, no rebalance")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--scenario", choices=["leave-and-crash", "static-restart"])
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--member", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--topic")
    parser.add_argument("--group")
    parser.add_argument("--name")
    parser.add_argument("--instance-id")
    parser.add_argument("--session-timeout-ms", type=int, default=6000)
    args = parser.parse_args()
    if args.member:
        run_member(args)
        return
    if not args.scenario:
        parser.error("--scenario is required")
    import tempfile

    with tempfile.TemporaryDirectory(prefix="group-failover-") as workdir:
        args.workdir = args.workdir or workdir
        {"leave-and-crash": leave_and_crash, "static-restart": static_restart}[args.scenario](args)


if __name__ == "__main__":
    main()
