package sluice;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.utils.AppInfoParser;

/**
 * The Java kafka-clients consumer with {@code client.rack} against a multi-broker cluster
 * whose brokers sit in different racks: the partition leader points the consumer at the
 * in-sync follower in its rack (KIP-392: {@code preferred_read_replica} in Fetch v11+) and
 * the consumer reads every record from there.
 *
 * <p>Driven by tests/tests/interop_java_rack.rs, which creates the topic, produces the
 * records, names the rack of a follower and checks the brokers' consumer-fetch metrics:
 *
 * <pre>
 * java -cp 'tests/java/target/lib/*:CLASSES' sluice.RackFetch --bootstrap 127.0.0.1:P1,127.0.0.1:P2 \
 *     --topic t --rack rack-2 --prefix p --count 5000 --pad 100
 * </pre>
 *
 * Record i is at offset i of partition 0 with value {@code "<prefix>-<i>-"} followed by
 * --pad bytes {@code 'p'}.
 *
 * <p>The consumer has no group (no group.id, auto commit off): it assigns partition 0 and
 * seeks to the beginning. It reads until it has --count records, checks each one's offset
 * and value, and reports the partition leader it saw in Metadata and the bytes it received
 * from each broker (the client's {@code consumer-node-metrics}
 * {@code incoming-byte-total}; metadata and offset requests count there too).
 *
 * <p>Exits 0 and prints a SUMMARY line when every record came back; 1 otherwise, with the
 * problems.
 */
public final class RackFetch {
    static final String CLIENT = "java-kafka-clients";
    static final int MAX_PROBLEMS = 10;

    String bootstrap;
    String topic;
    String rack;
    String prefix;
    int count = -1;
    int pad = 0;
    double timeoutSecs = 120.0;

    static void log(String line) {
        System.out.println(line);
        System.out.flush();
    }

    byte[] expectedValue(long offset) {
        StringBuilder s = new StringBuilder(prefix).append('-').append(offset).append('-');
        s.append("p".repeat(pad));
        return s.toString().getBytes(StandardCharsets.US_ASCII);
    }

    static String show(byte[] value) {
        if (value == null) {
            return "null";
        }
        String s = new String(value, StandardCharsets.US_ASCII);
        return s.length() > 40 ? s.substring(0, 40) + "..(" + value.length + " bytes)" : s;
    }

    Properties consumerProperties() {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        // No group.id: assign() only, nothing joins or commits a group.
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.CLIENT_RACK_CONFIG, rack);
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, "sluice-rack-fetch");
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30_000);
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 15_000);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        return p;
    }

    /** Broker node id to bytes the client received from it (bootstrap connections left out). */
    static Map<Integer, Long> receivedBytes(KafkaConsumer<?, ?> consumer) {
        Map<Integer, Long> out = new TreeMap<>();
        for (Map.Entry<MetricName, ? extends Metric> e : consumer.metrics().entrySet()) {
            MetricName name = e.getKey();
            if (!name.group().equals("consumer-node-metrics") || !name.name().equals("incoming-byte-total")) {
                continue;
            }
            String node = name.tags().getOrDefault("node-id", "");
            if (!node.startsWith("node-")) {
                continue;
            }
            int id;
            try {
                id = Integer.parseInt(node.substring("node-".length()));
            } catch (NumberFormatException ex) {
                continue;
            }
            if (id < 0) {
                continue; // a bootstrap address, before the client knew the node ids
            }
            Object value = e.getValue().metricValue();
            if (value instanceof Number n) {
                out.merge(id, (long) n.doubleValue(), Long::sum);
            }
        }
        return out;
    }

    int run() {
        log(String.format("%s %s, client.rack=%s, topic %s, %d records", CLIENT,
                AppInfoParser.getVersion(), rack, topic, count));
        List<String> problems = new ArrayList<>();
        TreeMap<Long, byte[]> byOffset = new TreeMap<>();
        Map<Integer, Long> received;
        int leader;
        long started = System.nanoTime();
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(consumerProperties())) {
            List<PartitionInfo> infos = consumer.partitionsFor(topic, Duration.ofSeconds(30));
            PartitionInfo info = infos.stream().filter(pi -> pi.partition() == 0).findFirst()
                    .orElseThrow(() -> new IllegalStateException("no partition 0 of " + topic + ": " + infos));
            leader = info.leader() == null ? -1 : info.leader().id();
            log("partition " + topic + "-0: leader " + leader + ", replicas "
                    + Arrays.stream(info.replicas()).map(n -> n.id() + "(" + n.rack() + ")").toList()
                    + ", in-sync " + Arrays.stream(info.inSyncReplicas()).map(n -> n.id()).toList());
            TopicPartition tp = new TopicPartition(topic, 0);
            consumer.assign(List.of(tp));
            consumer.seekToBeginning(List.of(tp));
            long deadline = started + TimeUnit.MILLISECONDS.toNanos((long) (timeoutSecs * 1000));
            while (byOffset.size() < count && System.nanoTime() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(200))) {
                    if (byOffset.put(r.offset(), r.value()) != null && problems.size() < MAX_PROBLEMS) {
                        problems.add("offset " + r.offset() + " delivered twice");
                    }
                }
            }
            received = receivedBytes(consumer);
        }
        double secs = (System.nanoTime() - started) / 1e9;

        if (byOffset.size() != count) {
            problems.add(byOffset.size() + " of " + count + " records read within " + timeoutSecs + "s");
        }
        int wrong = 0;
        for (long offset = 0; offset < count; offset++) {
            byte[] value = byOffset.get(offset);
            if (!Arrays.equals(value, expectedValue(offset))) {
                wrong++;
                if (wrong <= MAX_PROBLEMS) {
                    problems.add("offset " + offset + " holds " + show(value));
                }
            }
        }
        List<Long> beyond = byOffset.keySet().stream().filter(o -> o >= count || o < 0).limit(10).toList();
        if (!beyond.isEmpty()) {
            problems.add("records beyond the produced offsets: " + beyond);
        }
        StringBuilder rx = new StringBuilder();
        for (Map.Entry<Integer, Long> e : received.entrySet()) {
            rx.append(rx.length() == 0 ? "" : ",").append(e.getKey()).append(':').append(e.getValue());
        }
        String read = byOffset.isEmpty()
                ? "nothing"
                : String.format("offsets %d..%d, first %s, last %s", byOffset.firstKey(), byOffset.lastKey(),
                        show(byOffset.firstEntry().getValue()), show(byOffset.lastEntry().getValue()));
        log("read " + byOffset.size() + " records: " + read);
        if (!problems.isEmpty()) {
            log(String.format("FAIL %s rack fetch (leader=%d rx_bytes=%s, %.1fs)", CLIENT, leader, rx, secs));
            for (String p : problems) {
                log("    " + p);
            }
            return 1;
        }
        log(String.format("SUMMARY %s rack fetch: %d records read with client.rack=%s in %.1fs leader=%d rx_bytes=%s",
                CLIENT, byOffset.size(), rack, secs, leader, rx));
        return 0;
    }

    public static void main(String[] argv) {
        RackFetch it = new RackFetch();
        for (int a = 0; a < argv.length; a++) {
            String flag = argv[a];
            if (a + 1 >= argv.length) {
                System.err.println("missing value for " + flag);
                System.exit(2);
            }
            String v = argv[++a];
            switch (flag) {
                case "--bootstrap" -> it.bootstrap = v;
                case "--topic" -> it.topic = v;
                case "--rack" -> it.rack = v;
                case "--prefix" -> it.prefix = v;
                case "--count" -> it.count = Integer.parseInt(v);
                case "--pad" -> it.pad = Integer.parseInt(v);
                case "--timeout" -> it.timeoutSecs = Double.parseDouble(v);
                default -> {
                    System.err.println("unknown flag " + flag
                            + " (--bootstrap --topic --rack --prefix --count --pad --timeout)");
                    System.exit(2);
                }
            }
        }
        if (it.bootstrap == null || it.topic == null || it.rack == null || it.prefix == null || it.count < 0) {
            System.err.println("--bootstrap, --topic, --rack, --prefix and --count are required");
            System.exit(2);
        }
        System.exit(it.run());
    }
}
