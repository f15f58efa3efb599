// Command sarama-check runs Sarama (IBM/sarama) through what an operator and an
// application do daily, against a broker:
//
//   - ClusterAdmin CreateTopic (3 partitions, with a config), IncrementalAlterConfig and
//     DescribeConfig (the new value);
//
//   - a SyncProducer, idempotent with acks=all, sends 20 records with each codec (none,
//     gzip, snappy, lz4, zstd) to partition 0, timestamps base+0..99;
//
//   - Client.GetOffset by time (the record at base+50 is offset 50), ClusterAdmin
//     DeleteRecords below offset 10 (the oldest offset follows);
//
//   - a partition consumer reads from the oldest offset (90 records, 10..99, in order) and a
//     consumer group reads them again and commits; ListConsumerGroupOffsets gives the end
//     offset;
//
//   - ClusterAdmin DeleteTopic.
//
//     tests/go/bin/sarama-check --bootstrap 127.0.0.1:9092 [--timeout 60s]
//
// Exits 0 and prints a SUMMARY line when all of that held; 1 otherwise, saying what did
// not.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/IBM/sarama"
)

// group is new on every run: a group's committed offsets outlive the topic.
var group = fmt.Sprintf("sarama-admin-group-%d", time.Now().UnixNano())

const (
	topic   = "sarama-admin"
	perKind = 20
	base    = int64(1_700_000_000_000)
)

func fail(format string, args ...interface{}) {
	fmt.Printf("[sarama-check %s] FAIL: %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
	os.Exit(1)
}

func logf(format string, args ...interface{}) {
	fmt.Printf("[sarama-check %s] %s\n", time.Now().UTC().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

func must(err error, what string) {
	if err != nil {
		fail("%s: %v", what, err)
	}
}

func config() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V4_0_0_0
	c.ClientID = "sluice-sarama-check"
	return c
}

func main() {
	bootstrap := flag.String("bootstrap", "127.0.0.1:9092", "broker to bootstrap from")
	timeout := flag.Duration("timeout", 60*time.Second, "give up after this long")
	flag.Parse()
	brokers := []string{*bootstrap}
	time.AfterFunc(*timeout, func() { fail("not done within %s", *timeout) })

	admin, err := sarama.NewClusterAdmin(brokers, config())
	must(err, "cluster admin")
	defer admin.Close()
	segment := "1048576"
	must(admin.CreateTopic(topic, &sarama.TopicDetail{
		NumPartitions:     3,
		ReplicationFactor: 1,
		ConfigEntries:     map[string]*string{"segment.bytes": &segment},
	}, false), "CreateTopic")
	retention := "3600000"
	must(admin.IncrementalAlterConfig(sarama.TopicResource, topic, map[string]sarama.IncrementalAlterConfigsEntry{
		"retention.ms": {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &retention},
	}, false), "IncrementalAlterConfig")
	// Kafka applies a config change on each broker a moment after it answers.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic, ConfigNames: []string{"retention.ms"}})
		must(err, "DescribeConfig")
		if len(entries) == 1 && entries[0].Value == retention {
			break
		}
		if time.Now().After(deadline) {
			fail("retention.ms is not %s: %+v", retention, entries)
		}
	}

	produce(brokers)

	client, err := sarama.NewClient(brokers, config())
	must(err, "client")
	defer client.Close()
	at, err := client.GetOffset(topic, 0, base+50)
	must(err, "GetOffset by time")
	if at != 50 {
		fail("the record at base+50 is offset %d, not 50", at)
	}
	must(admin.DeleteRecords(topic, map[int32]int64{0: 10}), "DeleteRecords")
	oldest, err := client.GetOffset(topic, 0, sarama.OffsetOldest)
	must(err, "GetOffset oldest")
	if oldest != 10 {
		fail("the oldest offset is %d after deleting records below 10", oldest)
	}

	logf("deleted records below 10")
	consumePartition(brokers)
	logf("partition consumer read 10..99")
	consumeInGroup(brokers)
	logf("consumer group read 90 records")
	offsets, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0}})
	must(err, "ListConsumerGroupOffsets")
	if block := offsets.GetBlock(topic, 0); block == nil || block.Offset != 5*perKind {
		fail("committed offset %+v, not %d", block, 5*perKind)
	}
	must(admin.DeleteTopic(topic), "DeleteTopic")
	fmt.Println("SUMMARY sarama-check: configs, 5 codecs idempotent, offsets by time, delete records, partition consumer, consumer group, delete topic: ok")
}

func produce(brokers []string) {
	codecs := []sarama.CompressionCodec{sarama.CompressionNone, sarama.CompressionGZIP, sarama.CompressionSnappy, sarama.CompressionLZ4, sarama.CompressionZSTD}
	n := int64(0)
	for _, codec := range codecs {
		c := config()
		c.Producer.Idempotent = true
		c.Producer.RequiredAcks = sarama.WaitForAll
		c.Producer.Return.Successes = true
		c.Producer.Compression = codec
		c.Producer.Partitioner = sarama.NewManualPartitioner
		c.Net.MaxOpenRequests = 1
		producer, err := sarama.NewSyncProducer(brokers, c)
		must(err, "producer")
		for i := 0; i < perKind; i++ {
			_, _, err := producer.SendMessage(&sarama.ProducerMessage{
				Topic:     topic,
				Partition: 0,
				Key:       sarama.StringEncoder(fmt.Sprintf("k%d", n)),
				Value:     sarama.StringEncoder(fmt.Sprintf("v%d", n)),
				Timestamp: time.UnixMilli(base + n),
			})
			must(err, fmt.Sprintf("produce with %v", codec))
			n++
		}
		must(producer.Close(), "producer close")
	}
}

// consumePartition reads partition 0 from its oldest offset: 10..99 in order.
func consumePartition(brokers []string) {
	consumer, err := sarama.NewConsumer(brokers, config())
	must(err, "consumer")
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(topic, 0, sarama.OffsetOldest)
	must(err, "ConsumePartition")
	defer pc.Close()
	for next := int64(10); next < 5*perKind; next++ {
		select {
		case m := <-pc.Messages():
			if m.Offset != next || string(m.Value) != fmt.Sprintf("v%d", next) {
				fail("partition consumer: offset %d value %q, expected offset %d", m.Offset, m.Value, next)
			}
		case err := <-pc.Errors():
			fail("partition consumer: %v", err)
		}
	}
}

type handler struct {
	seen chan int64
}

func (h handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h handler) ConsumeClaim(session sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		session.MarkMessage(m, "")
		if m.Offset == 5*perKind-1 {
			session.Commit()
		}
		h.seen <- m.Offset
	}
	return nil
}

// consumeInGroup reads the topic in a group and commits once it has read the last record.
func consumeInGroup(brokers []string) {
	c := config()
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.AutoCommit.Enable = false
	cg, err := sarama.NewConsumerGroup(brokers, group, c)
	must(err, "consumer group")
	ctx, cancel := context.WithCancel(context.Background())
	h := handler{seen: make(chan int64, 5*perKind)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
				fail("consumer group: %v", err)
			}
		}
	}()
	for count := 0; count < 5*perKind-10; count++ {
		<-h.seen
		if count == 0 {
			logf("consumer group: first record")
		}
	}
	logf("consumer group: all records")
	cancel()
	<-done
	logf("consumer group: session over")
	must(cg.Close(), "consumer group close")
}
