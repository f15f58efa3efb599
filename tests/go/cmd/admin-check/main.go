// Command admin-check runs franz-go's admin client (kadm) and producer/consumer (kgo)
// through what an operator and an application do daily, against a broker:
//
//   - kadm CreateTopics (3 partitions, with a config), AlterTopicConfigs (incremental SET)
//     and DescribeTopicConfigs (the new value, as a topic override);
//
//   - kgo produces 20 records with each codec (none, gzip, snappy, lz4, zstd) to partition
//     0 with an idempotent producer (acks=all), timestamps base+0..99;
//
//   - kadm ListOffsetsAfterMilli (the record at base+50 is offset 50), ListStartOffsets,
//     ListEndOffsets; DeleteRecords below offset 10 (the low watermark is 10, the start
//     offset follows);
//
//   - kgo consumes partition 0 by assignment from the start (90 records, 10..99, in order)
//     and in a group (90 records), commits, and kadm FetchOffsets gives the end offset;
//
//   - kadm DeleteTopics.
//
//     tests/go/bin/admin-check --bootstrap 127.0.0.1:9092 [--timeout 60s]
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

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	topic   = "franz-admin"
	group   = "franz-admin-group"
	perKind = 20
	base    = int64(1_700_000_000_000)
)

func logf(format string, args ...interface{}) {
	fmt.Printf("[admin-check %s] %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func fail(format string, args ...interface{}) {
	logf("FAIL: "+format, args...)
	os.Exit(1)
}

func must(err error, what string) {
	if err != nil {
		fail("%s: %v", what, err)
	}
}

func main() {
	bootstrap := flag.String("bootstrap", "127.0.0.1:9092", "broker to bootstrap from")
	timeout := flag.Duration("timeout", 60*time.Second, "give up after this long")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	admin, err := kgo.NewClient(kgo.SeedBrokers(*bootstrap))
	must(err, "admin client")
	defer admin.Close()
	adm := kadm.NewClient(admin)

	segment := "1048576"
	created, err := adm.CreateTopics(ctx, 3, 1, map[string]*string{"segment.bytes": &segment}, topic)
	must(err, "CreateTopics")
	must(created[topic].Err, "CreateTopics result")

	retention := "3600000"
	altered, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: &retention}}, topic)
	must(err, "AlterTopicConfigs")
	for _, r := range altered {
		must(r.Err, "AlterTopicConfigs result")
	}
	described, err := adm.DescribeTopicConfigs(ctx, topic)
	must(err, "DescribeTopicConfigs")
	config, err := described.On(topic, nil)
	must(err, "DescribeTopicConfigs result")
	found := false
	for _, c := range config.Configs {
		if c.Key == "retention.ms" {
			found = c.MaybeValue() == retention && c.Source.String() == "DYNAMIC_TOPIC_CONFIG"
		}
	}
	if !found {
		fail("retention.ms is not %s as a topic override: %+v", retention, config.Configs)
	}

	produce(ctx, *bootstrap)

	at, err := adm.ListOffsetsAfterMilli(ctx, base+50, topic)
	must(err, "ListOffsetsAfterMilli")
	if o, ok := at.Lookup(topic, 0); !ok || o.Err != nil || o.Offset != 50 {
		fail("the record at base+50 is not offset 50: %+v", o)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	must(err, "ListEndOffsets")
	if o, _ := ends.Lookup(topic, 0); o.Offset != 5*perKind {
		fail("end offset %d, not %d", o.Offset, 5*perKind)
	}

	toDelete := kadm.Offsets{}
	toDelete.Add(kadm.Offset{Topic: topic, Partition: 0, At: 10})
	deleted, err := adm.DeleteRecords(ctx, toDelete)
	must(err, "DeleteRecords")
	if d, ok := deleted.Lookup(topic, 0); !ok || d.Err != nil || d.LowWatermark != 10 {
		fail("DeleteRecords: %+v", d)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	must(err, "ListStartOffsets")
	if o, _ := starts.Lookup(topic, 0); o.Offset != 10 {
		fail("start offset %d after deleting records below 10", o.Offset)
	}

	consumeAssigned(ctx, *bootstrap)
	consumeInGroup(ctx, *bootstrap)
	committed, err := adm.FetchOffsets(ctx, group)
	must(err, "FetchOffsets")
	if o, ok := committed.Lookup(topic, 0); !ok || o.At != 5*perKind {
		fail("committed offset %+v, not %d", o, 5*perKind)
	}

	dropped, err := adm.DeleteTopics(ctx, topic)
	must(err, "DeleteTopics")
	must(dropped[topic].Err, "DeleteTopics result")
	fmt.Println("SUMMARY admin-check: configs, 5 codecs idempotent, offsets by time, delete records, consume by assignment and in a group, delete topic: ok")
}

func produce(ctx context.Context, bootstrap string) {
	codecs := []kgo.CompressionCodec{kgo.NoCompression(), kgo.GzipCompression(), kgo.SnappyCompression(), kgo.Lz4Compression(), kgo.ZstdCompression()}
	n := int64(0)
	for _, codec := range codecs {
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(bootstrap),
			kgo.ProducerBatchCompression(codec),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.RequiredAcks(kgo.AllISRAcks()),
		)
		must(err, "producer")
		for i := 0; i < perKind; i++ {
			r := &kgo.Record{
				Topic:     topic,
				Partition: 0,
				Key:       []byte(fmt.Sprintf("k%d", n)),
				Value:     []byte(fmt.Sprintf("v%d", n)),
				Timestamp: time.UnixMilli(base + n),
			}
			n++
			cl.Produce(ctx, r, func(r *kgo.Record, err error) { must(err, "produce") })
		}
		must(cl.Flush(ctx), "flush")
		cl.Close()
	}
}

// consumeAssigned reads partition 0 from its start: every record from offset 10, in order.
func consumeAssigned(ctx context.Context, bootstrap string) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(bootstrap),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
	)
	must(err, "consumer")
	defer cl.Close()
	next := int64(10)
	for next < 5*perKind {
		fetches := cl.PollFetches(ctx)
		if errs := fetches.Errors(); len(errs) > 0 {
			fail("consuming by assignment: %v", errs)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if r.Offset != next || string(r.Value) != fmt.Sprintf("v%d", next) {
				fail("by assignment: offset %d value %q, expected offset %d", r.Offset, r.Value, next)
			}
			next++
		})
	}
}

// consumeInGroup reads the topic in a group and commits what it read.
func consumeInGroup(ctx context.Context, bootstrap string) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(bootstrap),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
	)
	must(err, "group consumer")
	defer cl.Close()
	count := 0
	for count < 5*perKind-10 {
		fetches := cl.PollFetches(ctx)
		if errs := fetches.Errors(); len(errs) > 0 {
			fail("consuming in a group: %v", errs)
		}
		count += fetches.NumRecords()
	}
	must(cl.CommitUncommittedOffsets(ctx), "commit")
	logf("consumed %d records in group %s and committed", count, group)
}
