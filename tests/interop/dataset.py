"""The records every Python interop program produces, and the check of what came back.

Shared by kafka_python_roundtrip.py and confluent_roundtrip.py; the Java program
(tests/java/src/main/java/sluice/Interop.java) builds the same records with the same
rules, so a failure reads the same whichever client found it.

Record i of a run (0 <= i < count):
  key      b"key-%05d" % i, distinct per record
  value    cycles through ASCII, UTF-8 with multi-byte characters, and binary bytes that
           include 0x00 and 0xff; every 1000th record (i % 1000 == 7) carries a 1 KiB
           value, record 4242 an empty value and record 4243 a null value (a tombstone)
  headers  ("idx", decimal i) and ("bin", 4 bytes incl. 0x00 and 0xff); every 10th record
           also ("dup", b"first"), ("dup", b"second") and ("empty", b"") to pin header
           order, duplicate names and empty header values

The check: the consumer saw exactly `count` records; each partition's records appear in
the order they were produced; every record is byte-identical to what was sent.

Also the small helpers the programs share: Deadline, log, parse_args, run_matrix, and
produce_when_queue_has_room for the confluent-kafka programs.
"""

import json
import sys
import time

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
ACKS = ["0", "1", "all"]

ONE_KIB = 1024
UTF8_SAMPLE = "värde-Ωmega-日本語-🚀"


def make_key(i):
    return b"key-%05d" % i


def make_value(i):
    if i == 4242:
        return b""
    if i == 4243:
        return None
    if i % 1000 == 7:
        # 1 KiB, every byte value present.
        return bytes((i + j) % 256 for j in range(ONE_KIB))
    kind = i % 3
    if kind == 0:
        return ("value-%d" % i).encode("ascii")
    if kind == 1:
        return ("%s-%d" % (UTF8_SAMPLE, i)).encode("utf-8")
    return bytes([0x00, 0xFF, i % 256, (i >> 8) % 256, 0x0A, 0x0D, 0x09]) + b"bin-%d" % i


def make_headers(i):
    headers = [
        ("idx", str(i).encode("ascii")),
        ("bin", bytes([0x00, i % 256, 0xFF, (i >> 8) % 256])),
    ]
    if i % 10 == 0:
        headers += [("dup", b"first"), ("dup", b"second"), ("empty", b"")]
    return headers


def make_record(i):
    return make_key(i), make_value(i), make_headers(i)


def _show(record):
    key, value, headers = record

    def b(x):
        if x is None:
            return None
        return x[:40].hex() + ("..(%d bytes)" % len(x) if len(x) > 40 else "")

    return {"key": b(key), "value": b(value), "headers": [(k, b(v)) for k, v in headers]}


def verify(count, consumed):
    """consumed: a list of (partition, offset, key, value, headers) in the order each
    partition delivered them. Returns a list of problems (empty when all is well)."""
    problems = []
    if len(consumed) != count:
        problems.append("expected %d records, consumed %d" % (count, len(consumed)))

    last_index = {}
    last_offset = {}
    seen = set()
    for partition, offset, key, value, headers in consumed:
        if len(problems) >= 10:
            problems.append("(more problems not shown)")
            break
        if partition in last_offset and offset <= last_offset[partition]:
            problems.append("partition %d: offset %d after offset %d" % (partition, offset, last_offset[partition]))
        last_offset[partition] = offset
        try:
            i = int(key[4:].decode("ascii")) if key is not None and key.startswith(b"key-") else None
        except ValueError:
            i = None
        if i is None or not 0 <= i < count:
            problems.append("partition %d offset %d: unexpected key %r" % (partition, offset, key))
            continue
        if i in seen:
            problems.append("partition %d offset %d: record %d consumed twice" % (partition, offset, i))
        seen.add(i)
        if partition in last_index and i < last_index[partition]:
            problems.append(
                "partition %d offset %d: record %d arrived after record %d (order changed)"
                % (partition, offset, i, last_index[partition])
            )
        last_index[partition] = i
        expected = make_record(i)
        got = (key, value, [(k, v) for k, v in headers])
        if got != expected:
            problems.append(
                "partition %d offset %d: record %d differs\n  expected %s\n  got      %s"
                % (partition, offset, i, json.dumps(_show(expected)), json.dumps(_show(got)))
            )
    if len(problems) < 10 and len(seen) < count:
        missing = [i for i in range(count) if i not in seen]
        problems.append("%d records missing, first: %s" % (len(missing), missing[:10]))
    return problems


class Deadline:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def remaining(self):
        return self.end - time.monotonic()

    def expired(self):
        return self.remaining() <= 0


def log(msg):
    print(msg, flush=True)


def produce_when_queue_has_room(producer, attempts, *args, **kwargs):
    """producer.produce(*args, **kwargs) on a confluent-kafka Producer whose local queue
    may be full: on BufferError, poll 50 ms (serving delivery callbacks, which frees
    queue space) and try again, at most `attempts` times; then poll(0)."""
    for _ in range(attempts):  # bounded wait for local queue space
        try:
            producer.produce(*args, **kwargs)
            break
        except BufferError:
            producer.poll(0.05)
    else:
        raise RuntimeError("local producer queue stayed full")
    producer.poll(0)


def parse_args(argv, description):
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bootstrap", required=True, help="host:port of the broker")
    parser.add_argument("--count", type=int, default=10_000, help="records per (acks, codec)")
    parser.add_argument("--partitions", type=int, default=3, help="partitions per topic")
    parser.add_argument("--acks", default=",".join(ACKS), help="comma-separated acks modes")
    parser.add_argument("--codecs", default=",".join(CODECS), help="comma-separated codecs")
    parser.add_argument("--topic-prefix", default="interop", help="topic name prefix")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per (acks, codec) step")
    parser.add_argument(
        "--idempotence",
        choices=["default", "on", "off"],
        default="default",
        help="producer idempotence: the client's default (on with acks=all for kafka-python and"
        " the Java client, off for librdkafka), or forced on/off (on needs acks=all)",
    )
    args = parser.parse_args(argv)
    args.acks = [a for a in args.acks.split(",") if a]
    args.codecs = [c for c in args.codecs.split(",") if c]
    for a in args.acks:
        if a not in ACKS:
            parser.error("unknown acks mode %r" % a)
    for c in args.codecs:
        if c not in CODECS:
            parser.error("unknown codec %r" % c)
    return args


def run_matrix(args, client_name, roundtrip):
    """Runs roundtrip(topic, acks, codec) -> list of consumed records for each
    combination, verifies each, prints one line per combination and a summary. Returns
    the process exit code."""
    run_id = "%x" % int(time.time() * 1000)
    passed, failed = [], []
    for acks in args.acks:
        for codec in args.codecs:
            combo = "acks=%s codec=%s" % (acks, codec)
            topic = "%s-%s-%s-%s-%s" % (args.topic_prefix, client_name, acks, codec, run_id)
            started = time.monotonic()
            try:
                consumed = roundtrip(topic, acks, codec)
                problems = verify(args.count, consumed)
            except Exception as e:  # report and go on with the next combination
                import traceback

                problems = ["exception: %r" % e, traceback.format_exc()]
            elapsed = time.monotonic() - started
            if problems:
                failed.append(combo)
                log("FAIL %s %s topic=%s (%.1fs)" % (client_name, combo, topic, elapsed))
                for p in problems:
                    log("    " + p)
            else:
                passed.append(combo)
                log("ok   %s %s: %d records round-tripped (%.1fs)" % (client_name, combo, args.count, elapsed))
    log(
        "SUMMARY %s: %d of %d combinations round-tripped %d records each"
        % (client_name, len(passed), len(passed) + len(failed), args.count)
    )
    if failed:
        log("failed combinations: " + "; ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit("dataset.py is a module; run kafka_python_roundtrip.py or confluent_roundtrip.py")
