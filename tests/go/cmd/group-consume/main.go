// Command group-consume runs the consumer-group scenario of tests/interop/group_consume.py
// with franz-go against a broker. Three members of one group (three kgo clients with
// ConsumerGroup, in this process, with franz-go's default cooperative-sticky balancer)
// share a 6-partition topic; once the group is stable (each member holds two partitions, as
// its OnPartitionsAssigned/Revoked callbacks say) records are produced, every record is
// consumed exactly once, each member commits what it consumed (CommitUncommittedOffsets;
// autocommit is off), and the group's committed offsets (kadm FetchOffsets, OffsetFetch)
// are the log end offsets (kadm ListEndOffsets, ListOffsets). The group is also listed
// (kadm ListGroups) and described (kadm DescribeGroups: Stable, three members, two
// partitions each).
//
//	tests/go/bin/group-consume --bootstrap 127.0.0.1:9092 [--records N] [--timeout 90s]
//
// Exits 0 and prints a SUMMARY line when all of that held; 1 otherwise, saying what did
// not. SLUICE_FRANZ_LOG=debug|info|warn|error sets franz-go's own log level (default warn).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	partitions = 6
	members    = 3
	pollEvery  = 100 * time.Millisecond
)

func logf(format string, args ...interface{}) {
	fmt.Printf("[group-consume %s] %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func fail(format string, args ...interface{}) {
	logf("FAIL: "+format, args...)
	os.Exit(1)
}

type args struct {
	bootstrap string
	records   int
	timeout   time.Duration
}

func kgoLogger() kgo.Logger {
	levels := map[string]kgo.LogLevel{
		"debug": kgo.LogLevelDebug, "info": kgo.LogLevelInfo,
		"warn": kgo.LogLevelWarn, "error": kgo.LogLevelError,
	}
	name := strings.ToLower(os.Getenv("SLUICE_FRANZ_LOG"))
	if name == "" {
		name = "warn"
	}
	level, ok := levels[name]
	if !ok {
		fail("SLUICE_FRANZ_LOG=%s: not one of debug, info, warn, error", name)
	}
	return kgo.BasicLogger(os.Stderr, level, func() string { return time.Now().UTC().Format("15:04:05.000 ") })
}

// shared is what the members report.
type shared struct {
	mu           sync.Mutex
	consumed     map[[2]int64]consumedRecord // (partition, offset) -> who consumed what
	duplicates   []string
	assignments  map[int]map[int32]bool // member -> the partitions it holds now
	committed    map[int]bool           // members that committed after commitNow
	errors       []string
	commitNow    chan struct{}
	stop         chan struct{}
	membersGroup sync.WaitGroup
}

type consumedRecord struct {
	member int
	value  string
}

func (s *shared) record(member int, r *kgo.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := [2]int64{int64(r.Partition), r.Offset}
	if first, seen := s.consumed[key]; seen {
		s.duplicates = append(s.duplicates, fmt.Sprintf("%v by %d and %d", key, first.member, member))
		return
	}
	s.consumed[key] = consumedRecord{member: member, value: string(r.Value)}
}

func (s *shared) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.consumed)
}

func (s *shared) addError(format string, a ...interface{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errors = append(s.errors, fmt.Sprintf(format, a...))
}

// held returns the sorted partitions each member holds.
func (s *shared) held() [][]int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]int32, members)
	for m := 0; m < members; m++ {
		for p := range s.assignments[m] {
			out[m] = append(out[m], p)
		}
		sort.Slice(out[m], func(i, j int) bool { return out[m][i] < out[m][j] })
	}
	return out
}

func (s *shared) balanced() bool {
	var all []int
	for _, ps := range s.held() {
		if len(ps) != partitions/members {
			return false
		}
		for _, p := range ps {
			all = append(all, int(p))
		}
	}
	sort.Ints(all)
	for i, p := range all {
		if p != i {
			return false
		}
	}
	return len(all) == partitions
}

func waitUntil(what string, timeout time.Duration, condition func() bool) {
	deadline := time.Now().Add(timeout)
	for !condition() {
		if time.Now().After(deadline) {
			fail("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(pollEvery)
	}
}

func newMember(a args, topic, group string, member int, s *shared) *kgo.Client {
	track := func(assigned bool) func(context.Context, *kgo.Client, map[string][]int32) {
		return func(_ context.Context, _ *kgo.Client, changed map[string][]int32) {
			s.mu.Lock()
			defer s.mu.Unlock()
			for _, p := range changed[topic] {
				if assigned {
					s.assignments[member][p] = true
				} else {
					delete(s.assignments[member], p)
				}
			}
			verb := map[bool]string{true: "assigned", false: "revoked"}[assigned]
			logf("member %d %s %v", member, verb, changed[topic])
		}
	}
	client, err := kgo.NewClient(
		kgo.SeedBrokers(a.bootstrap),
		kgo.ClientID(fmt.Sprintf("member-%d", member)),
		kgo.WithLogger(kgoLogger()),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.SessionTimeout(10*time.Second),
		kgo.HeartbeatInterval(time.Second),
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.OnPartitionsAssigned(track(true)),
		kgo.OnPartitionsRevoked(track(false)),
		kgo.OnPartitionsLost(track(false)),
	)
	if err != nil {
		fail("member %d: new client: %v", member, err)
	}
	return client
}

// runMember polls until stop, recording what it consumes, and commits once after
// commitNow is closed.
func runMember(a args, client *kgo.Client, member int, s *shared) {
	defer s.membersGroup.Done()
	committed := false
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		if !committed {
			select {
			case <-s.commitNow:
				ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
				err := client.CommitUncommittedOffsets(ctx)
				cancel()
				if err != nil {
					s.addError("member %d: commit: %v", member, err)
				}
				committed = true
				s.mu.Lock()
				s.committed[member] = true
				s.mu.Unlock()
			default:
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		fetches := client.PollFetches(ctx)
		cancel()
		fetches.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return
			}
			s.addError("member %d: fetch %s/%d: %v", member, t, p, err)
		})
		fetches.EachRecord(func(r *kgo.Record) { s.record(member, r) })
	}
}

func produce(a args, topic string) {
	client, err := kgo.NewClient(
		kgo.SeedBrokers(a.bootstrap),
		kgo.ClientID("producer"),
		kgo.WithLogger(kgoLogger()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(5*time.Millisecond),
	)
	if err != nil {
		fail("producer: new client: %v", err)
	}
	defer client.Close()
	records := make([]*kgo.Record, 0, a.records)
	for i := 0; i < a.records; i++ {
		records = append(records, &kgo.Record{
			Topic:     topic,
			Partition: int32(i % partitions),
			Key:       []byte(fmt.Sprintf("k%d", i)),
			Value:     []byte(fmt.Sprintf("v%d", i)),
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	if err := client.ProduceSync(ctx, records...).FirstErr(); err != nil {
		fail("produce: %v", err)
	}
}

// adminChecks does ListGroups and DescribeGroups, and returns the committed offsets
// (OffsetFetch) and the log end offsets (ListOffsets).
func adminChecks(a args, admin *kadm.Client, topic, group string) (committed, logEnds map[int32]int64) {
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()

	listed, err := admin.ListGroups(ctx)
	if err != nil {
		fail("ListGroups: %v", err)
	}
	if _, ok := listed[group]; !ok {
		fail("ListGroups does not list %s: %v", group, listed.Groups())
	}

	described, err := admin.DescribeGroups(ctx, group)
	if err != nil {
		fail("DescribeGroups: %v", err)
	}
	d, ok := described[group]
	if !ok {
		fail("DescribeGroups did not describe %s", group)
	}
	if d.Err != nil {
		fail("DescribeGroups: %v", d.Err)
	}
	held := map[string][]int32{}
	for _, m := range d.Members {
		assignment, ok := m.Assigned.AsConsumer()
		if !ok {
			fail("DescribeGroups: member %s has no consumer assignment", m.ClientID)
		}
		held[m.ClientID] = []int32{}
		for _, t := range assignment.Topics {
			if t.Topic == topic {
				held[m.ClientID] = append(held[m.ClientID], t.Partitions...)
			}
		}
	}
	logf("described: state %s, protocol %s, members %v", d.State, d.Protocol, held)
	if d.State != "Stable" {
		fail("DescribeGroups: state %s, not Stable", d.State)
	}
	if len(held) != members {
		fail("DescribeGroups: members %v", held)
	}
	for _, ps := range held {
		if len(ps) != partitions/members {
			fail("DescribeGroups: members %v", held)
		}
	}

	offsets, err := admin.FetchOffsets(ctx, group)
	if err != nil {
		fail("FetchOffsets: %v", err)
	}
	if err := offsets.Error(); err != nil {
		fail("FetchOffsets: %v", err)
	}
	ends, err := admin.ListEndOffsets(ctx, topic)
	if err != nil {
		fail("ListEndOffsets: %v", err)
	}
	if err := ends.Error(); err != nil {
		fail("ListEndOffsets: %v", err)
	}
	committed, logEnds = map[int32]int64{}, map[int32]int64{}
	for p := int32(0); p < partitions; p++ {
		if o, ok := offsets.Lookup(topic, p); ok {
			committed[p] = o.At
		}
		if o, ok := ends.Lookup(topic, p); ok {
			logEnds[p] = o.Offset
		}
	}
	return committed, logEnds
}

func main() {
	var a args
	flag.StringVar(&a.bootstrap, "bootstrap", "", "broker host:port (required)")
	flag.IntVar(&a.records, "records", 3000, "records to produce")
	flag.DurationVar(&a.timeout, "timeout", 90*time.Second, "deadline of each wait")
	flag.Parse()
	if a.bootstrap == "" || a.records <= 0 || a.timeout <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	tag := fmt.Sprintf("franz-go-%d", os.Getpid())
	topic, group := "group-consume-"+tag, "group-"+tag

	adminClient, err := kgo.NewClient(kgo.SeedBrokers(a.bootstrap), kgo.ClientID("admin"), kgo.WithLogger(kgoLogger()))
	if err != nil {
		fail("admin: new client: %v", err)
	}
	defer adminClient.Close()
	admin := kadm.NewClient(adminClient)
	{
		ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
		created, err := admin.CreateTopic(ctx, partitions, 1, nil, topic)
		cancel()
		if err == nil {
			err = created.Err
		}
		if err != nil {
			fail("CreateTopic %s: %v", topic, err)
		}
	}

	s := &shared{
		consumed:    map[[2]int64]consumedRecord{},
		assignments: map[int]map[int32]bool{},
		committed:   map[int]bool{},
		commitNow:   make(chan struct{}),
		stop:        make(chan struct{}),
	}
	clients := make([]*kgo.Client, members)
	for m := 0; m < members; m++ {
		s.assignments[m] = map[int32]bool{}
		clients[m] = newMember(a, topic, group, m, s)
		s.membersGroup.Add(1)
		go runMember(a, clients[m], m, s)
	}

	waitUntil("every member to hold two partitions", a.timeout, s.balanced)
	logf("stable: %v", s.held())
	produce(a, topic)
	waitUntil(fmt.Sprintf("%d records consumed", a.records), a.timeout, func() bool { return s.count() >= a.records })
	time.Sleep(time.Second) // anything more would be a duplicate
	close(s.commitNow)
	waitUntil("every member to commit", a.timeout, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.committed) == members
	})
	committed, logEnds := adminChecks(a, admin, topic, group)
	close(s.stop)
	s.membersGroup.Wait()
	for _, c := range clients {
		c.Close() // leaves the group
	}

	if len(s.errors) > 0 {
		n := len(s.errors)
		if n > 5 {
			n = 5
		}
		fail("consumer errors: %v", s.errors[:n])
	}
	if len(s.duplicates) > 0 {
		n := len(s.duplicates)
		if n > 3 {
			n = 3
		}
		fail("%d records consumed twice, first %v", len(s.duplicates), s.duplicates[:n])
	}
	if s.count() != a.records {
		fail("consumed %d records, produced %d", s.count(), a.records)
	}
	consumedEnds := map[int32]int64{}
	for p := int32(0); p < partitions; p++ {
		consumedEnds[p] = 0
	}
	for i := 0; i < a.records; i++ {
		partition, offset := int64(i%partitions), int64(i/partitions)
		r, ok := s.consumed[[2]int64{partition, offset}]
		if want := fmt.Sprintf("v%d", i); !ok || r.value != want {
			fail("partition %d offset %d: want %s, consumed %q (present: %v)", partition, offset, want, r.value, ok)
		}
		if offset+1 > consumedEnds[int32(partition)] {
			consumedEnds[int32(partition)] = offset + 1
		}
	}
	logf("committed %v, log ends %v", committed, logEnds)
	if !reflect.DeepEqual(committed, logEnds) {
		fail("committed offsets %v are not the log end offsets %v", committed, logEnds)
	}
	if !reflect.DeepEqual(consumedEnds, logEnds) {
		fail("consumed up to %v, not to the log end offsets %v", consumedEnds, logEnds)
	}
	fmt.Printf("SUMMARY franz-go: %d members, %d records consumed once, offsets committed\n", members, a.records)
}
