package sluice;

import java.time.Duration;
import java.time.LocalTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.BooleanSupplier;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListGroupsOptions;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Consumer groups with the Java kafka-clients against a broker, the scenario of
 * tests/interop/group_consume.py: three KafkaConsumer members of one group
 * ({@code group.protocol=classic}, or {@code consumer} with {@code --protocol consumer}: the
 * KIP-848 protocol, ConsumerGroupHeartbeat, with the broker's assignor; each member in its own
 * thread with its own client.id) share a 6-partition topic made with the Admin client. Once every member holds two partitions (seen
 * by its ConsumerRebalanceListener), a KafkaProducer writes the records; every record is
 * consumed exactly once, each member commits with commitSync, and the Admin client sees
 * <ul>
 * <li>listConsumerGroupOffsets: the committed offsets are the log end offsets (listOffsets
 *     latest), which are also one past the last offset consumed and the count produced;</li>
 * <li>describeConsumerGroups: the group Stable, classic with assignor "range" (DescribeGroups)
 *     or consumer with the broker's default assignor "uniform" (ConsumerGroupDescribe), three
 *     members, each with its client.id and the two partitions its listener reported;</li>
 * <li>listGroups (all types, and consumer groups only) and listConsumerGroups: the group,
 *     classic or consumer, protocol type "consumer", Stable;</li>
 * <li>after the members close (LeaveGroup, or a heartbeat with member epoch -1): the group
 *     Empty, with no members, and its committed offsets still there.</li>
 * </ul>
 *
 * <pre>
 * java -cp 'tests/java/target/lib/*:CLASSES' sluice.GroupConsume --bootstrap 127.0.0.1:9092 \
 *     [--protocol classic|consumer]
 * </pre>
 *
 * Exits 0 and prints a SUMMARY line when all of that held; 1 otherwise, saying what did not.
 */
public final class GroupConsume {
    static final int PARTITIONS = 6;
    static final int MEMBERS = 3;
    static final int PER_MEMBER = PARTITIONS / MEMBERS;
    /** How often a wait re-checks its condition. */
    static final long POLL_INTERVAL_MS = 50;
    static final DateTimeFormatter CLOCK = DateTimeFormatter.ofPattern("HH:mm:ss.SSS");

    String bootstrap;
    int records = 3000;
    double timeoutSecs = 90.0;
    /** group.protocol: "classic" or "consumer" (KIP-848). */
    String protocol = "classic";

    boolean consumerProtocol() {
        return protocol.equals("consumer");
    }

    static void log(String msg) {
        System.out.println("[GroupConsume " + LocalTime.now().format(CLOCK) + "] " + msg);
        System.out.flush();
    }

    /** A check that did not hold; main prints it as FAIL and exits 1. */
    static final class Failure extends RuntimeException {
        private static final long serialVersionUID = 1L;

        Failure(String msg) {
            super(msg);
        }
    }

    static void check(boolean condition, String what) {
        if (!condition) {
            throw new Failure(what);
        }
    }

    long timeoutMs() {
        return (long) (timeoutSecs * 1000);
    }

    /**
     * Poll `condition` until it holds; fail when a member thread reports an error, or after the
     * timeout, saying what it waited for and what the members held and consumed by then.
     */
    void waitUntil(String what, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs());
        while (!condition.getAsBoolean()) {
            check(errors.isEmpty(), "consumer errors while waiting for " + what + ": " + errors);
            if (System.nanoTime() > deadline) {
                throw new Failure("timed out after " + timeoutSecs + " s waiting for " + what + " (members hold "
                        + new TreeMap<>(assignments) + ", " + consumedCount() + " records consumed, "
                        + committed.size() + " members committed)");
            }
            Thread.sleep(POLL_INTERVAL_MS);
        }
    }

    // ---- what the member threads report ----

    /** One consumed record: who got it, what it held, and its leader epoch. */
    record Got(int member, String key, String value, Optional<Integer> leaderEpoch) {}

    final Map<TopicPartition, Map<Long, Got>> consumed = new ConcurrentHashMap<>();
    final List<String> duplicates = new CopyOnWriteArrayList<>();
    final List<String> errors = new CopyOnWriteArrayList<>();
    /** member -> the partitions its consumer holds, as its rebalance listener last saw them. */
    final Map<Integer, Set<Integer>> assignments = new ConcurrentHashMap<>();
    /** Set once the group is balanced and the records are being produced. */
    final AtomicBoolean produced = new AtomicBoolean();
    final AtomicBoolean commitNow = new AtomicBoolean();
    final AtomicBoolean stop = new AtomicBoolean();
    final Set<Integer> committed = ConcurrentHashMap.newKeySet();

    int consumedCount() {
        return consumed.values().stream().mapToInt(Map::size).sum();
    }

    static Set<Integer> partitionsOf(Collection<TopicPartition> tps) {
        return tps.stream().map(TopicPartition::partition).collect(Collectors.toCollection(TreeSet::new));
    }

    Properties consumerProperties(String group, int member) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, "member-" + member);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        // The consumer protocol refuses these (ConfigException): the broker sets the session
        // timeout and the heartbeat interval, and assigns the partitions itself.
        if (!consumerProtocol()) {
            p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 10_000);
            p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 1_000);
        }
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, (int) (timeoutMs() / 2));
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, (int) (timeoutMs() / 4));
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        return p;
    }

    /** One member's thread: poll, record, commit when asked, close (LeaveGroup) when told to stop. */
    void member(String topic, String group, int member) {
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(consumerProperties(group, member))) {
            consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                // Classic (eager range): the consumer's whole assignment, not the partitions
                // passed in. Consumer protocol: the partitions passed in are only those added
                // or taken away, so they are applied to what the member held before.
                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                    Set<Integer> held = new TreeSet<>(consumerProtocol()
                            ? assignments.getOrDefault(member, Set.of())
                            : partitionsOf(consumer.assignment()));
                    held.removeAll(partitionsOf(partitions));
                    assignments.put(member, held);
                    // Nothing commits on revoke: once the group is balanced and records are
                    // produced, a rebalance before the members close is a failure.
                    if (produced.get() && !stop.get() && !partitions.isEmpty()) {
                        errors.add("member " + member + ": " + partitionsOf(partitions)
                                + " revoked after the group was balanced");
                    }
                }

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                    if (consumerProtocol()) {
                        Set<Integer> held = new TreeSet<>(assignments.getOrDefault(member, Set.of()));
                        held.addAll(partitionsOf(partitions));
                        assignments.put(member, held);
                    } else {
                        assignments.put(member, partitionsOf(consumer.assignment()));
                    }
                }

                @Override
                public void onPartitionsLost(Collection<TopicPartition> partitions) {
                    errors.add("member " + member + " lost " + partitionsOf(partitions));
                    assignments.put(member, Set.of());
                }
            });
            while (!stop.get()) {
                // Commit before the next poll: the positions are then those of the records
                // already recorded below.
                if (commitNow.get() && !committed.contains(member)) {
                    consumer.commitSync(Duration.ofMillis(timeoutMs() / 2));
                    committed.add(member);
                }
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                    TopicPartition tp = new TopicPartition(r.topic(), r.partition());
                    Got got = new Got(member, r.key(), r.value(), r.leaderEpoch());
                    Got before = consumed.computeIfAbsent(tp, k -> new ConcurrentHashMap<>())
                            .putIfAbsent(r.offset(), got);
                    if (before != null) {
                        duplicates.add(tp + "@" + r.offset() + " by member " + before.member() + " and " + member);
                    }
                }
            }
        } catch (WakeupException e) {
            errors.add("member " + member + ": woken up");
        } catch (Exception e) {
            errors.add("member " + member + ": " + e);
        }
    }

    Admin admin() {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, (int) (timeoutMs() / 2));
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, (int) (timeoutMs() / 4));
        return Admin.create(p);
    }

    /** Produce `records` records, record i to partition i % PARTITIONS; return how many each got. */
    Map<Integer, Long> produce(String topic) throws Exception {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, (int) (timeoutMs() / 2));
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, (int) (timeoutMs() / 4));
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, timeoutMs() / 2);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        Map<Integer, Long> perPartition = new TreeMap<>();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            List<Future<RecordMetadata>> futures = new ArrayList<>(records);
            for (int i = 0; i < records; i++) {
                futures.add(producer.send(new ProducerRecord<>(topic, i % PARTITIONS, "k" + i, "v" + i)));
                perPartition.merge(i % PARTITIONS, 1L, Long::sum);
            }
            producer.flush();
            for (Future<RecordMetadata> f : futures) {
                f.get(0, TimeUnit.MILLISECONDS);
            }
        }
        return perPartition;
    }

    /** Every record consumed once, with the key and value it was produced with. */
    void checkConsumed(String topic) {
        check(duplicates.isEmpty(), duplicates.size() + " records consumed twice, first " + first(duplicates));
        check(consumedCount() == records, "consumed " + consumedCount() + " records, produced " + records);
        List<String> wrong = new ArrayList<>();
        for (Map.Entry<TopicPartition, Map<Long, Got>> e : consumed.entrySet()) {
            for (Map.Entry<Long, Got> r : e.getValue().entrySet()) {
                Got g = r.getValue();
                boolean ok = g.key() != null
                        && g.key().matches("k[0-9]{1,9}")
                        && ("v" + g.key().substring(1)).equals(g.value())
                        && e.getKey().topic().equals(topic)
                        && Integer.parseInt(g.key().substring(1)) % PARTITIONS == e.getKey().partition();
                if (!ok) {
                    wrong.add(e.getKey() + "@" + r.getKey() + " key=" + g.key() + " value=" + g.value());
                }
            }
        }
        check(wrong.isEmpty(), wrong.size() + " records are not what was produced, first " + first(wrong));
    }

    static String first(List<String> items) {
        return items.subList(0, Math.min(3, items.size())).toString();
    }

    static String describe(ConsumerGroupDescription d) {
        return "state " + d.groupState() + ", type " + d.type() + ", assignor " + d.partitionAssignor()
                + ", coordinator " + d.coordinator() + ", members " + d.members().stream()
                        .map(m -> m.clientId() + "=" + partitionsOf(m.assignment().topicPartitions()))
                        .sorted()
                        .collect(Collectors.toList());
    }

    /** DescribeGroups (ConsumerGroupDescribe for a consumer group) while the three members are in it. */
    void checkDescribedStable(Admin admin, String topic, String group) throws Exception {
        ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group))
                .describedGroups()
                .get(group)
                .get(timeoutMs(), TimeUnit.MILLISECONDS);
        log("described: " + describe(d));
        check(d.groupId().equals(group), "described group " + d.groupId() + ", asked for " + group);
        check(d.groupState() == GroupState.STABLE, "group state " + d.groupState() + ", not Stable: " + describe(d));
        GroupType type = consumerProtocol() ? GroupType.CONSUMER : GroupType.CLASSIC;
        check(d.type() == type, "group type " + d.type() + ", not " + type + ": " + describe(d));
        check(!d.isSimpleConsumerGroup(), "a group with members is described as a simple group: " + describe(d));
        // Classic: both the members' assignors are [range, cooperative-sticky]; the group picks
        // the first that every member supports. Consumer: the members name no server assignor
        // (group.remote.assignor), so the broker uses its default, uniform.
        String assignor = consumerProtocol() ? "uniform" : "range";
        check(assignor.equals(d.partitionAssignor()), "assignor " + d.partitionAssignor() + ", not " + assignor);
        check(d.coordinator() != null && d.coordinator().id() >= 0, "no coordinator: " + describe(d));
        check(d.members().size() == MEMBERS, d.members().size() + " members, not " + MEMBERS + ": " + describe(d));
        Set<Integer> all = new TreeSet<>();
        for (MemberDescription m : d.members()) {
            check(m.clientId().startsWith("member-"), "member client.id " + m.clientId());
            int member = Integer.parseInt(m.clientId().substring("member-".length()));
            check(!m.consumerId().isEmpty() && !m.host().isEmpty(),
                    "member " + m.clientId() + " without a member id or host: " + m);
            Set<Integer> held = partitionsOf(m.assignment().topicPartitions());
            check(m.assignment().topicPartitions().stream().allMatch(tp -> tp.topic().equals(topic)),
                    "member " + m.clientId() + " assigned another topic: " + m.assignment());
            check(held.size() == PER_MEMBER, "member " + m.clientId() + " holds " + held + ": " + describe(d));
            check(held.equals(assignments.get(member)), "member " + m.clientId() + " is described with " + held
                    + " but its consumer holds " + assignments.get(member));
            all.addAll(held);
        }
        check(all.size() == PARTITIONS, "the members hold " + all + ", not all " + PARTITIONS + " partitions");
    }

    /** ListGroups, through both the Admin's current and its older call. */
    // listConsumerGroups is deprecated for removal (KIP-1043) but still what many tools call.
    @SuppressWarnings({"removal", "deprecation"})
    void checkListed(Admin admin, String group) throws Exception {
        Collection<GroupListing> everything = admin.listGroups().all().get(timeoutMs(), TimeUnit.MILLISECONDS);
        GroupListing g = everything.stream().filter(l -> l.groupId().equals(group)).findFirst().orElse(null);
        check(g != null, "listGroups does not list " + group + ": " + everything);
        log("listed: " + g);
        GroupType type = consumerProtocol() ? GroupType.CONSUMER : GroupType.CLASSIC;
        check(g.type().equals(Optional.of(type)), "listGroups: type " + g.type() + ", not " + type);
        check("consumer".equals(g.protocol()), "listGroups: protocol type " + g.protocol());
        check(g.groupState().equals(Optional.of(GroupState.STABLE)), "listGroups: state " + g.groupState());

        Collection<GroupListing> consumerGroups = admin.listGroups(ListGroupsOptions.forConsumerGroups())
                .all()
                .get(timeoutMs(), TimeUnit.MILLISECONDS);
        check(consumerGroups.stream().anyMatch(l -> l.groupId().equals(group)),
                "listGroups(forConsumerGroups) does not list " + group + ": " + consumerGroups);

        var old = admin.listConsumerGroups().all().get(timeoutMs(), TimeUnit.MILLISECONDS);
        check(old.stream().anyMatch(l -> l.groupId().equals(group) && !l.isSimpleConsumerGroup()),
                "listConsumerGroups does not list " + group + ": " + old);
    }

    /** OffsetFetch through the Admin: partition -> what is committed. */
    Map<Integer, OffsetAndMetadata> fetchCommitted(Admin admin, String group) throws Exception {
        Map<TopicPartition, OffsetAndMetadata> offsets = admin.listConsumerGroupOffsets(group)
                .partitionsToOffsetAndMetadata()
                .get(timeoutMs(), TimeUnit.MILLISECONDS);
        Map<Integer, OffsetAndMetadata> out = new TreeMap<>();
        offsets.forEach((tp, offset) -> out.put(tp.partition(), offset));
        return out;
    }

    static Map<Integer, Long> offsetsOf(Map<Integer, OffsetAndMetadata> committed) {
        Map<Integer, Long> out = new TreeMap<>();
        committed.forEach((p, offset) -> out.put(p, offset == null ? null : offset.offset()));
        return out;
    }

    Map<Integer, Long> logEndOffsets(Admin admin, String topic) throws Exception {
        Map<TopicPartition, OffsetSpec> request = new HashMap<>();
        for (int p = 0; p < PARTITIONS; p++) {
            request.put(new TopicPartition(topic, p), OffsetSpec.latest());
        }
        Map<TopicPartition, ListOffsetsResultInfo> ends = admin.listOffsets(request)
                .all()
                .get(timeoutMs(), TimeUnit.MILLISECONDS);
        Map<Integer, Long> out = new TreeMap<>();
        ends.forEach((tp, info) -> out.put(tp.partition(), info.offset()));
        return out;
    }

    int run() throws Exception {
        String tag = Long.toHexString(System.currentTimeMillis());
        String topic = "java-group-consume-" + tag;
        String group = "java-group-" + tag;
        List<Thread> threads = new ArrayList<>();
        try (Admin admin = admin()) {
            admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1)))
                    .all()
                    .get(timeoutMs(), TimeUnit.MILLISECONDS);
            log("created " + topic + " with " + PARTITIONS + " partitions; group " + group + ", group.protocol="
                    + protocol);

            for (int m = 0; m < MEMBERS; m++) {
                int member = m;
                Thread t = new Thread(() -> member(topic, group, member), "member-" + member);
                t.start();
                threads.add(t);
            }
            waitUntil("every member to hold " + PER_MEMBER + " partitions", this::balanced);
            log("balanced: " + new TreeMap<>(assignments));

            produced.set(true);
            Map<Integer, Long> perPartition = produce(topic);
            log("produced " + records + " records: " + perPartition);
            waitUntil(records + " records consumed", () -> consumedCount() >= records);
            commitNow.set(true);
            waitUntil("every member to commit", () -> committed.size() == MEMBERS);
            check(errors.isEmpty(), "consumer errors: " + errors);
            log("every member committed");

            Map<Integer, Long> ends = logEndOffsets(admin, topic);
            Map<Integer, OffsetAndMetadata> fetched = fetchCommitted(admin, group);
            Map<Integer, Long> committedOffsets = offsetsOf(fetched);
            Map<Integer, Long> consumedEnds = new TreeMap<>();
            // The consumer commits the leader epoch of the last record it consumed.
            Map<Integer, Optional<Integer>> lastEpochs = new TreeMap<>();
            consumed.forEach((tp, byOffset) -> {
                long last = Collections.max(byOffset.keySet());
                consumedEnds.put(tp.partition(), last + 1);
                lastEpochs.put(tp.partition(), byOffset.get(last).leaderEpoch());
            });
            Map<Integer, Optional<Integer>> committedEpochs = new TreeMap<>();
            fetched.forEach((p, offset) -> committedEpochs.put(p, offset == null ? null : offset.leaderEpoch()));
            log("committed " + committedOffsets + " with leader epochs " + committedEpochs + ", log end offsets "
                    + ends + ", consumed up to " + consumedEnds);
            check(ends.equals(perPartition), "log end offsets " + ends + " are not the counts produced "
                    + perPartition);
            check(committedOffsets.equals(ends), "committed offsets " + committedOffsets
                    + " are not the log end offsets " + ends);
            check(consumedEnds.equals(ends), "consumed up to " + consumedEnds + ", log end offsets " + ends);
            check(committedEpochs.equals(lastEpochs), "committed leader epochs " + committedEpochs
                    + " are not those of the last records consumed " + lastEpochs);

            checkDescribedStable(admin, topic, group);
            checkListed(admin, group);

            // The members leave (KafkaConsumer.close sends LeaveGroup, or a ConsumerGroupHeartbeat
            // with member epoch -1); the group stays, Empty, with its offsets.
            stop.set(true);
            for (Thread t : threads) {
                t.join(timeoutMs());
                check(!t.isAlive(), t.getName() + " did not close within " + timeoutSecs + " s");
            }
            check(errors.isEmpty(), "consumer errors: " + errors);
            checkConsumed(topic);
            ConsumerGroupDescription left = admin.describeConsumerGroups(List.of(group))
                    .describedGroups()
                    .get(group)
                    .get(timeoutMs(), TimeUnit.MILLISECONDS);
            log("after the members closed: " + describe(left));
            check(left.groupState() == GroupState.EMPTY && left.members().isEmpty(),
                    "after every member closed (left the group) it is not Empty: " + describe(left));
            Map<Integer, Long> kept = offsetsOf(fetchCommitted(admin, group));
            check(kept.equals(ends), "after the members left the committed offsets are " + kept + ", not " + ends);
        } finally {
            stop.set(true);
            for (Thread t : threads) {
                t.join(timeoutMs());
            }
        }
        System.out.printf("SUMMARY java-kafka-clients: %d %s group members, %d records consumed once, "
                + "offsets committed, group described and listed%n", MEMBERS, protocol, records);
        return 0;
    }

    boolean balanced() {
        Set<Integer> all = new TreeSet<>();
        for (int m = 0; m < MEMBERS; m++) {
            Set<Integer> held = assignments.getOrDefault(m, Set.of());
            if (held.size() != PER_MEMBER) {
                return false;
            }
            all.addAll(held);
        }
        return all.size() == PARTITIONS;
    }

    public static void main(String[] argv) throws Exception {
        GroupConsume it = new GroupConsume();
        for (int a = 0; a < argv.length; a++) {
            String flag = argv[a];
            if (a + 1 >= argv.length) {
                System.err.println("missing value for " + flag);
                System.exit(2);
            }
            String v = argv[++a];
            switch (flag) {
                case "--bootstrap" -> it.bootstrap = v;
                case "--records" -> it.records = Integer.parseInt(v);
                case "--timeout" -> it.timeoutSecs = Double.parseDouble(v);
                case "--protocol" -> {
                    if (!v.equals("classic") && !v.equals("consumer")) {
                        System.err.println("--protocol is classic or consumer, not " + v);
                        System.exit(2);
                    }
                    it.protocol = v;
                }
                default -> {
                    System.err.println("unknown flag " + flag + " (--bootstrap --records --timeout --protocol)");
                    System.exit(2);
                }
            }
        }
        if (it.bootstrap == null) {
            System.err.println("--bootstrap host:port is required");
            System.exit(2);
        }
        int status;
        try {
            status = it.run();
        } catch (Failure f) {
            log("FAIL: " + f.getMessage());
            status = 1;
        } catch (Exception e) {
            log("FAIL: " + e);
            for (Throwable c = e.getCause(); c != null; c = c.getCause()) {
                log("  caused by: " + c);
            }
            status = 1;
        }
        System.exit(status);
    }
}
