#!/usr/bin/env python3
"""confluent-kafka (librdkafka) AdminClient creating a topic right after the active
controller's node is killed: the request must complete within the controller election plus
a few seconds (issue 13). librdkafka sends admin requests to the broker Metadata names as
controller; a Sluice broker names itself and forwards admin requests to the active
controller (KIP-590), so the name never points at a node that died.

Driven by tests/tests/interop_confluent_kafka_cluster.rs:

    .venv/bin/python tests/interop/confluent_admin_controller_kill.py \\
        --bootstrap 127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3 --gate-file /tmp/x --topic t

1. Creates a warm-up topic (so librdkafka has learnt a controller from Metadata) and
   prints a line starting with READY: the test's cue to kill the active controller's node.
2. Waits (bounded) for the gate file, which the test creates 1 s after the kill.
3. Creates --topic (3 partitions, replication factor 2) and waits for the result, at most
   --deadline seconds.

Exits 0 and prints a SUMMARY line with the time the creation took; 1 otherwise.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dataset  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", required=True, help="comma-separated host:port of the brokers")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--gate-file", required=True, help="the test creates it after the kill")
    parser.add_argument("--deadline", type=float, default=20.0, help="seconds the creation may take")
    return parser.parse_args(argv)


def create(admin, name, timeout):
    topic = NewTopic(name, num_partitions=3, replication_factor=2)
    futures = admin.create_topics([topic], operation_timeout=timeout, request_timeout=timeout)
    futures[name].result(timeout=timeout)


def main(argv):
    args = parse_args(argv)
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    create(admin, args.topic + "-warmup", 60)
    print("READY warm-up topic created", flush=True)
    gate = dataset.Deadline(60)
    while not os.path.exists(args.gate_file):
        if gate.expired():
            print("the gate file never appeared", flush=True)
            return 1
        time.sleep(0.05)
    started = time.monotonic()
    try:
        create(admin, args.topic, args.deadline)
    except Exception as error:  # noqa: BLE001 - any failure is the test's failure
        print(f"creating {args.topic} failed after {time.monotonic() - started:.1f} s: {error!r}", flush=True)
        return 1
    took = time.monotonic() - started
    print(f"SUMMARY confluent-kafka admin: created {args.topic} {took:.1f} s after the controller's node died", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
