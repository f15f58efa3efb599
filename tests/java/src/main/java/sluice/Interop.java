package sluice;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The Java kafka-clients producer, consumer and admin client against a broker: for each acks
 * mode and codec, create a topic, produce the records described in tests/interop/dataset.py
 * (built here by the same rules), consume them back from the beginning with assigned
 * partitions and check them byte for byte.
 *
 * <pre>
 * java -cp 'tests/java/target/lib/*:CLASSES' sluice.Interop --bootstrap 127.0.0.1:9092
 * </pre>
 *
 * Exits 0 and prints a SUMMARY line when every combination round-tripped; 1 otherwise, with
 * the first differences of each failed combination.
 */
public final class Interop {
    static final String CLIENT = "java-kafka-clients";
    static final List<String> ALL_ACKS = List.of("0", "1", "all");
    static final List<String> ALL_CODECS = List.of("none", "gzip", "snappy", "lz4", "zstd");
    static final int ONE_KIB = 1024;
    static final String UTF8_SAMPLE = "värde-Ωmega-日本語-🚀";
    static final int MAX_PROBLEMS = 10;

    String bootstrap;
    int count = 10_000;
    int partitions = 3;
    List<String> acksModes = ALL_ACKS;
    List<String> codecs = ALL_CODECS;
    String topicPrefix = "interop";
    double timeoutSecs = 60.0;
    /** "default" (the client's: on with acks=all), "on" or "off". */
    String idempotence = "default";

    // ---- the data set (same rules as tests/interop/dataset.py) ----

    static byte[] ascii(String s) {
        return s.getBytes(StandardCharsets.US_ASCII);
    }

    static byte[] key(int i) {
        return ascii(String.format("key-%05d", i));
    }

    static byte[] value(int i) {
        if (i == 4242) {
            return new byte[0];
        }
        if (i == 4243) {
            return null;
        }
        if (i % 1000 == 7) {
            byte[] v = new byte[ONE_KIB];
            for (int j = 0; j < ONE_KIB; j++) {
                v[j] = (byte) ((i + j) % 256);
            }
            return v;
        }
        switch (i % 3) {
            case 0:
                return ascii("value-" + i);
            case 1:
                return (UTF8_SAMPLE + "-" + i).getBytes(StandardCharsets.UTF_8);
            default:
                ByteArrayOutputStream out = new ByteArrayOutputStream();
                byte[] head = {0x00, (byte) 0xFF, (byte) (i % 256), (byte) ((i >> 8) % 256), 0x0A, 0x0D, 0x09};
                out.writeBytes(head);
                out.writeBytes(ascii("bin-" + i));
                return out.toByteArray();
        }
    }

    static List<Header> headers(int i) {
        List<Header> h = new ArrayList<>();
        h.add(new RecordHeader("idx", ascii(Integer.toString(i))));
        h.add(new RecordHeader("bin", new byte[] {0x00, (byte) (i % 256), (byte) 0xFF, (byte) ((i >> 8) % 256)}));
        if (i % 10 == 0) {
            h.add(new RecordHeader("dup", ascii("first")));
            h.add(new RecordHeader("dup", ascii("second")));
            h.add(new RecordHeader("empty", new byte[0]));
        }
        return h;
    }

    /** One consumed record, as the consumer delivered it. */
    record Got(int partition, long offset, byte[] key, byte[] value, List<Header> headers) {}

    static String show(byte[] b) {
        if (b == null) {
            return "null";
        }
        StringBuilder s = new StringBuilder();
        for (int j = 0; j < Math.min(b.length, 40); j++) {
            s.append(String.format("%02x", b[j]));
        }
        if (b.length > 40) {
            s.append("..(").append(b.length).append(" bytes)");
        }
        return s.toString();
    }

    static String showHeaders(List<Header> hs) {
        return hs.stream().map(h -> h.key() + "=" + show(h.value())).collect(Collectors.joining(",", "[", "]"));
    }

    static boolean sameHeaders(List<Header> a, List<Header> b) {
        if (a.size() != b.size()) {
            return false;
        }
        for (int j = 0; j < a.size(); j++) {
            if (!a.get(j).key().equals(b.get(j).key()) || !Arrays.equals(a.get(j).value(), b.get(j).value())) {
                return false;
            }
        }
        return true;
    }

    List<String> verify(List<Got> consumed) {
        List<String> problems = new ArrayList<>();
        if (consumed.size() != count) {
            problems.add("expected " + count + " records, consumed " + consumed.size());
        }
        Map<Integer, Integer> lastIndex = new HashMap<>();
        Map<Integer, Long> lastOffset = new HashMap<>();
        Set<Integer> seen = new HashSet<>();
        for (Got g : consumed) {
            if (problems.size() >= MAX_PROBLEMS) {
                problems.add("(more problems not shown)");
                break;
            }
            String where = "partition " + g.partition() + " offset " + g.offset();
            Long prev = lastOffset.put(g.partition(), g.offset());
            if (prev != null && g.offset() <= prev) {
                problems.add(where + ": offset after offset " + prev);
            }
            int i;
            try {
                String k = new String(g.key(), StandardCharsets.US_ASCII);
                i = k.startsWith("key-") ? Integer.parseInt(k.substring(4)) : -1;
            } catch (RuntimeException e) {
                i = -1;
            }
            if (i < 0 || i >= count) {
                problems.add(where + ": unexpected key " + show(g.key()));
                continue;
            }
            if (!seen.add(i)) {
                problems.add(where + ": record " + i + " consumed twice");
            }
            Integer before = lastIndex.put(g.partition(), i);
            if (before != null && i < before) {
                problems.add(where + ": record " + i + " arrived after record " + before + " (order changed)");
            }
            if (!Arrays.equals(g.key(), key(i))
                    || !Arrays.equals(g.value(), value(i))
                    || !sameHeaders(g.headers(), headers(i))) {
                problems.add(where + ": record " + i + " differs\n      expected key=" + show(key(i)) + " value="
                        + show(value(i)) + " headers=" + showHeaders(headers(i)) + "\n      got      key="
                        + show(g.key()) + " value=" + show(g.value()) + " headers=" + showHeaders(g.headers()));
            }
        }
        if (problems.size() < MAX_PROBLEMS && seen.size() < count) {
            List<Integer> missing = new ArrayList<>();
            for (int i = 0; i < count && missing.size() < 10; i++) {
                if (!seen.contains(i)) {
                    missing.add(i);
                }
            }
            problems.add((count - seen.size()) + " records missing, first: " + missing);
        }
        return problems;
    }

    // ---- the clients ----

    long timeoutMs() {
        return (long) (timeoutSecs * 1000);
    }

    void createTopic(String topic) throws Exception {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, (int) timeoutMs());
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, (int) (timeoutMs() / 2));
        try (Admin admin = Admin.create(p)) {
            admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1)))
                    .all()
                    .get(timeoutMs(), TimeUnit.MILLISECONDS);
            // Produce only once every partition's leader serves it: a first batch that
            // meets NOT_LEADER_OR_FOLLOWER is retried, which can reorder records when
            // several requests are in flight, or leave an idempotent producer retrying
            // OUT_OF_ORDER_SEQUENCE_NUMBER until its delivery timeout (both seen with Kafka
            // 4.1 right after CreateTopics). A ListOffsets answered by each leader is the
            // readiness signal: the consumer retries it until the leader serves it.
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs());
            while (true) {
                TopicDescription d;
                try {
                    d = admin.describeTopics(List.of(topic))
                            .allTopicNames()
                            .get(timeoutMs(), TimeUnit.MILLISECONDS)
                            .get(topic);
                } catch (ExecutionException e) {
                    // Created, but not yet in the metadata that answers DescribeTopics.
                    if (!(e.getCause() instanceof UnknownTopicOrPartitionException) || System.nanoTime() > deadline) {
                        throw e;
                    }
                    d = null;
                }
                if (d != null
                        && d.partitions().size() == partitions
                        && d.partitions().stream().allMatch(p2 -> p2.leader() != null && p2.leader().id() >= 0)) {
                    break;
                }
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("topic " + topic + " has no leader for every partition: " + d);
                }
                Thread.sleep(50);
            }
        }
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(consumerProperties())) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int i = 0; i < partitions; i++) {
                tps.add(new TopicPartition(topic, i));
            }
            consumer.endOffsets(tps, Duration.ofMillis(timeoutMs()));
        }
    }

    void produce(String topic, String acks, String codec) throws Exception {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ACKS_CONFIG, acks);
        p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
        // Idempotence needs acks=all; by default keep the client's default with acks=all
        // (enabled since Kafka 3.0) and turn it off for acks 0 and 1.
        if (!idempotence.equals("default")) {
            p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, idempotence.equals("on"));
        } else if (!acks.equals("all")) {
            p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, false);
        }
        p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, (int) (timeoutMs() / 2));
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, (int) (timeoutMs() / 4));
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, timeoutMs() / 2);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            List<Future<RecordMetadata>> futures = new ArrayList<>(count);
            for (int i = 0; i < count; i++) {
                futures.add(producer.send(new ProducerRecord<>(topic, null, key(i), value(i), headers(i))));
            }
            producer.flush();
            // acks=0 futures complete without a broker answer; for acks 1/all this throws
            // the broker's error, if any.
            for (Future<RecordMetadata> f : futures) {
                f.get(0, TimeUnit.MILLISECONDS);
            }
        }
    }

    Properties consumerProperties() {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, (int) (timeoutMs() / 2));
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, (int) (timeoutMs() / 4));
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        return p;
    }

    List<Got> consume(String topic) {
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(consumerProperties())) {
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs());
            List<PartitionInfo> infos = consumer.partitionsFor(topic, Duration.ofMillis(timeoutMs() / 2));
            List<TopicPartition> tps = infos.stream()
                    .map(pi -> new TopicPartition(topic, pi.partition()))
                    .sorted((a, b) -> Integer.compare(a.partition(), b.partition()))
                    .collect(Collectors.toList());
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
            // With acks=0 the producer's flush says nothing about the broker having appended
            // the records: until `count` have arrived, keep reading the end offsets again.
            Map<TopicPartition, Long> end = consumer.endOffsets(tps);
            List<Got> consumed = new ArrayList<>(count);
            while (System.nanoTime() < deadline) {
                boolean caughtUp = true;
                for (TopicPartition tp : tps) {
                    caughtUp &= consumer.position(tp) >= end.get(tp);
                }
                if (caughtUp) {
                    if (consumed.size() >= count) {
                        break;
                    }
                    end = consumer.endOffsets(tps);
                }
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(100))) {
                    consumed.add(new Got(r.partition(), r.offset(), r.key(), r.value(),
                            Arrays.asList(r.headers().toArray())));
                }
            }
            return consumed;
        }
    }

    int run() {
        String runId = Long.toHexString(System.currentTimeMillis());
        List<String> passed = new ArrayList<>();
        List<String> failed = new ArrayList<>();
        for (String acks : acksModes) {
            for (String codec : codecs) {
                String combo = "acks=" + acks + " codec=" + codec;
                String topic = String.join("-", topicPrefix, "java", acks, codec, runId);
                long started = System.nanoTime();
                List<String> problems;
                try {
                    createTopic(topic);
                    produce(topic, acks, codec);
                    problems = verify(consume(topic));
                } catch (Exception e) {
                    problems = new ArrayList<>();
                    problems.add("exception: " + e);
                    for (StackTraceElement frame : e.getStackTrace()) {
                        if (frame.getClassName().startsWith("sluice.")) {
                            problems.add("  at " + frame);
                        }
                    }
                    for (Throwable c = e.getCause(); c != null; c = c.getCause()) {
                        problems.add("caused by: " + c);
                    }
                }
                double secs = (System.nanoTime() - started) / 1e9;
                if (problems.isEmpty()) {
                    passed.add(combo);
                    System.out.printf("ok   %s %s: %d records round-tripped (%.1fs)%n", CLIENT, combo, count, secs);
                } else {
                    failed.add(combo);
                    System.out.printf("FAIL %s %s topic=%s (%.1fs)%n", CLIENT, combo, topic, secs);
                    for (String problem : problems) {
                        System.out.println("    " + problem);
                    }
                }
                System.out.flush();
            }
        }
        System.out.printf("SUMMARY %s: %d of %d combinations round-tripped %d records each%n", CLIENT,
                passed.size(), passed.size() + failed.size(), count);
        if (!failed.isEmpty()) {
            System.out.println("failed combinations: " + String.join("; ", failed));
            return 1;
        }
        return 0;
    }

    static List<String> list(String csv, List<String> allowed, String what) {
        List<String> out = new ArrayList<>();
        for (String s : csv.split(",")) {
            if (s.isEmpty()) {
                continue;
            }
            if (!allowed.contains(s)) {
                throw new IllegalArgumentException("unknown " + what + " " + s);
            }
            out.add(s);
        }
        return Collections.unmodifiableList(out);
    }

    public static void main(String[] argv) {
        Interop it = new Interop();
        for (int a = 0; a < argv.length; a++) {
            String flag = argv[a];
            if (a + 1 >= argv.length) {
                System.err.println("missing value for " + flag);
                System.exit(2);
            }
            String v = argv[++a];
            switch (flag) {
                case "--bootstrap" -> it.bootstrap = v;
                case "--count" -> it.count = Integer.parseInt(v);
                case "--partitions" -> it.partitions = Integer.parseInt(v);
                case "--acks" -> it.acksModes = list(v, ALL_ACKS, "acks mode");
                case "--codecs" -> it.codecs = list(v, ALL_CODECS, "codec");
                case "--topic-prefix" -> it.topicPrefix = v;
                case "--timeout" -> it.timeoutSecs = Double.parseDouble(v);
                case "--idempotence" -> it.idempotence = list(v, List.of("default", "on", "off"), "idempotence").get(0);
                default -> {
                    System.err.println("unknown flag " + flag
                            + " (--bootstrap --count --partitions --acks --codecs --topic-prefix --timeout"
                            + " --idempotence)");
                    System.exit(2);
                }
            }
        }
        if (it.bootstrap == null) {
            System.err.println("--bootstrap host:port is required");
            System.exit(2);
        }
        System.exit(it.run());
    }
}
