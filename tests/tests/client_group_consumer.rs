//! Sluice's own group consumer (`sluice_client::GroupConsumer`, classic protocol) against
//! the real `sluiced`: members split a 6-partition topic (range, and round robin), consume
//! every record exactly once and commit; a member that joins later starts from the
//! commits; a member that closes hands its partitions, and its commits (auto-commit on
//! revoke and on close), to the others; a static member comes back without a rebalance and
//! a duplicate instance is fenced; a member that stops polling leaves and rejoins; added
//! partitions get assigned; auto-commit commits exactly what `poll` returned; pause, seek,
//! explicit commits and metrics; members carry on from their commits after `kill -9` of
//! the group's coordinator (three brokers). The assignors' exact output (Kafka's RangeAssignorTest
//! and RoundRobinAssignorTest cases) is pinned by unit tests in
//! `client/src/group/assignor.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_client::group::metrics::{COMMITS_TOTAL, REBALANCES_TOTAL};
use sluice_client::{
    Acks, Admin, Assignor, GroupConsumer, Producer, ProducerConfig, ProducerRecord, SeekTo,
};
use sluice_tests::group_members::*;
use sluice_tests::raw::metric_value;
use sluice_tests::{Cluster, ClusterOptions};

#[test]
fn members_split_partitions_consume_each_record_once_and_a_late_member_resumes_from_commits() {
    const GROUP: &str = "group-split";
    const TOPIC: &str = "group-split";
    const FIRST: usize = 600;
    const SECOND: usize = 120;
    let broker = broker();
    let bootstrap = broker.bootstrap();
    runtime().block_on(async {
        let admin = Admin::new(&bootstrap).await.unwrap();
        admin.create_topic(TOPIC, PARTITIONS, 1, &[]).await.unwrap();
        let shared = Arc::new(Shared::default());
        let members: Vec<MemberTask> = (0..3)
            .map(|i| {
                let config = member_config(&bootstrap, GROUP, i);
                spawn_member(config, TOPIC, i, Commits::AfterEveryPoll, shared.clone())
            })
            .collect();
        let all: Vec<&MemberTask> = members.iter().collect();

        // Range over three members: two consecutive partitions each.
        wait_for("three members with two partitions each", &all, || {
            let assignments = shared.assignments();
            split_as(&assignments, &[0, 1, 2], &[2, 2, 2])?;
            for partitions in assignments.values() {
                let ids: Vec<i32> = partitions.iter().map(|(_, p)| *p).collect();
                if ids[0] % 2 != 0 || ids[1] != ids[0] + 1 {
                    return Err(format!("not range's split: {assignments:?}"));
                }
            }
            Ok(())
        })
        .await;

        let ends = produce(&bootstrap, TOPIC, "first", FIRST).await;
        assert_eq!(ends.values().sum::<i64>(), FIRST as i64);
        wait_for("every record of the first batch", &all, || {
            let seen = shared.seen.lock().unwrap().len();
            (seen >= FIRST)
                .then_some(())
                .ok_or(format!("{seen} consumed"))
        })
        .await;
        wait_for_commits(&bootstrap, GROUP, TOPIC, &ends, &all).await;
        let first = shared.seen();
        let unique = assert_no_duplicates(&first);
        assert_eq!(unique.len(), FIRST);
        let values: BTreeSet<String> = first.iter().map(|s| s.value.clone()).collect();
        assert_eq!(
            values,
            (0..FIRST).map(|i| format!("first-{i}")).collect(),
            "every produced value, once"
        );
        // Each member consumed exactly its own partitions.
        let assignments = shared.assignments();
        for record in &first {
            assert!(
                assignments[&record.member].contains(&(TOPIC.to_string(), record.partition)),
                "{record:?} was consumed by a member not assigned its partition: {assignments:?}"
            );
        }

        // A fourth member: the group rebalances to 2, 2, 1, 1, and everyone (the new member
        // included) starts from the committed offsets, not from the earliest offset.
        let late = spawn_member(
            member_config(&bootstrap, GROUP, 3),
            TOPIC,
            3,
            Commits::AfterEveryPoll,
            shared.clone(),
        );
        let all: Vec<&MemberTask> = members.iter().chain([&late]).collect();
        wait_for("four members sharing the partitions", &all, || {
            split_as(&shared.assignments(), &[0, 1, 2, 3], &[1, 1, 2, 2])
        })
        .await;
        let late_partitions = shared.assignments()[&3].clone();
        let second_ends = produce(&bootstrap, TOPIC, "second", SECOND).await;
        wait_for("every record of the second batch", &all, || {
            let seen = shared.seen.lock().unwrap().len();
            (seen >= FIRST + SECOND)
                .then_some(())
                .ok_or(format!("{seen} consumed"))
        })
        .await;
        wait_for_commits(&bootstrap, GROUP, TOPIC, &second_ends, &all).await;
        let everything = shared.seen();
        assert_no_duplicates(&everything);
        let second = &everything[FIRST..];
        assert_eq!(second.len(), SECOND, "nothing old was consumed again");
        for record in second {
            assert!(record.value.starts_with("second-"), "{record:?} is old");
            assert!(
                record.offset >= ends[&record.partition],
                "{record:?} is old"
            );
        }
        let by_late: Vec<&Seen> = second.iter().filter(|s| s.member == 3).collect();
        assert_eq!(
            by_late.len(),
            SECOND / PARTITIONS as usize * late_partitions.len(),
            "the late member consumed its partitions' new records: {by_late:?}"
        );

        for member in members.into_iter().chain([late]) {
            member.close().await.unwrap();
        }
    });
}

#[test]
fn a_closing_member_hands_its_partitions_and_commits_to_the_others() {
    let broker = broker();
    let bootstrap = broker.bootstrap();
    runtime().block_on(async {
        let mut run = Handover::start(&bootstrap, "group-handover", member_config).await;
        // Auto-commit is due only in an hour: nothing past the start is committed yet (a
        // rebalance while the group formed may have committed the starting offsets, 0).
        let before = committed(&bootstrap, &run.group, &run.group).await;
        assert!(before.values().all(|o| o.unwrap_or(0) == 0), "{before:?}");

        // Member 0 closes: it commits its partitions, then leaves; the other two revoke
        // (committing theirs) and share all six.
        run.close_member_0().await;
        let all: Vec<&MemberTask> = run.members.iter().collect();
        wait_for_commits(&bootstrap, &run.group, &run.group, &run.ends, &all).await;
        let second_ends = run.consume_second().await;

        // The listener saw the eager rebalance: member 1 gave up both its partitions, then
        // got three.
        let events = run.shared.events.lock().unwrap().clone();
        let member_1: Vec<(&str, usize)> = events
            .iter()
            .filter(|(m, _, _)| *m == 1)
            .map(|(_, what, partitions)| (*what, partitions.len()))
            .collect();
        assert!(
            member_1.ends_with(&[("revoked", 2), ("assigned", 3)]),
            "member 1's callbacks: {member_1:?}"
        );
        run.finish(&second_ends).await;
    });
}

#[test]
fn a_static_member_comes_back_without_a_rebalance_and_a_duplicate_instance_is_fenced() {
    const GROUP: &str = "group-static";
    const TOPIC: &str = "group-static";
    let broker = broker();
    let bootstrap = broker.bootstrap();
    runtime().block_on(async {
        let admin = Admin::new(&bootstrap).await.unwrap();
        admin.create_topic(TOPIC, PARTITIONS, 1, &[]).await.unwrap();
        let shared = Arc::new(Shared::default());
        let static_config = |index: usize, instance: &str| {
            let mut config = member_config(&bootstrap, GROUP, index);
            config.group_instance_id = Some(instance.to_string());
            config
        };
        let spawn = |index: usize, instance: &str| {
            let config = static_config(index, instance);
            spawn_member(
                config,
                TOPIC,
                index,
                Commits::AfterEveryPoll,
                shared.clone(),
            )
        };
        let a = spawn(0, "instance-a");
        let b = spawn(1, "instance-b");
        wait_for(
            "two static members with three partitions each",
            &[&a, &b],
            || split_as(&shared.assignments(), &[0, 1], &[3, 3]),
        )
        .await;
        // Range orders static members by instance id: instance-a gets partitions 0-2.
        let topic = |p: i32| (TOPIC.to_string(), p);
        assert_eq!(shared.assignments()[&0], [topic(0), topic(1), topic(2)]);
        let generation = shared.generations.lock().unwrap()[&1];
        assert!(generation.is_some());

        // A static member's close sends no LeaveGroup: b keeps its partitions and its
        // generation, and a new process with the same instance id gets a's back.
        a.close().await.unwrap();
        let back = spawn(2, "instance-a");
        wait_for(
            "the restarted static member to get its partitions",
            &[&b, &back],
            || {
                let assignments = shared.assignments();
                match assignments.get(&2) {
                    Some(partitions) if partitions.len() == 3 => Ok(()),
                    _ => Err(format!("{assignments:?}")),
                }
            },
        )
        .await;
        assert_eq!(shared.assignments()[&2], [topic(0), topic(1), topic(2)]);
        assert_eq!(
            shared.generations.lock().unwrap()[&1],
            generation,
            "no rebalance"
        );
        let b_events: Vec<_> = shared
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, what, _)| *m == 1 && *what == "revoked")
            .cloned()
            .collect();
        assert!(b_events.is_empty(), "b gave up partitions: {b_events:?}");

        // Another consumer with the same instance id takes over the membership; the one it
        // replaced is fenced, for good.
        let duplicate = spawn(3, "instance-a");
        let deadline = Instant::now() + WAIT;
        while !back.handle.is_finished() {
            assert!(
                Instant::now() < deadline,
                "the replaced member was not fenced"
            );
            assert!(!duplicate.handle.is_finished() && !b.handle.is_finished());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let error = back.handle.await.unwrap().expect_err("fenced");
        assert!(
            error.to_string().contains("FENCED_INSTANCE_ID"),
            "{error:#}"
        );
        wait_for(
            "the duplicate to hold instance-a's partitions",
            &[&b, &duplicate],
            || {
                let assignments = shared.assignments();
                match assignments.get(&3) {
                    Some(partitions) if partitions.len() == 3 => Ok(()),
                    _ => Err(format!("{assignments:?}")),
                }
            },
        )
        .await;
        duplicate.close().await.unwrap();
        b.close().await.unwrap();
    });
}

/// Poll until `count` records arrived; their (partition, offset)s in order.
async fn poll_until(consumer: &mut GroupConsumer, count: usize) -> Vec<(i32, i64)> {
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while got.len() < count {
        assert!(Instant::now() < deadline, "only {got:?}");
        let records = consumer.poll(Duration::from_millis(200)).await.unwrap();
        got.extend(records.into_iter().map(|r| (r.partition, r.offset)));
    }
    got
}

#[test]
fn pause_seek_and_explicit_commits_act_on_the_groups_partitions() {
    const GROUP: &str = "group-pause";
    const TOPIC: &str = "group-pause";
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).expect("the only recorder of this test binary");
    let broker = broker();
    let bootstrap = broker.bootstrap();
    runtime().block_on(async {
        let admin = Admin::new(&bootstrap).await.unwrap();
        admin.create_topic(TOPIC, 2, 1, &[]).await.unwrap();
        let mut config = ProducerConfig::new(&bootstrap);
        config.acks = Acks::All;
        let producer = Producer::new(config).await.unwrap();
        for partition in 0..2 {
            for i in 0..10 {
                let record = ProducerRecord::new(TOPIC, format!("p{partition}-{i}"))
                    .with_partition(partition);
                producer.send(record).await.unwrap().await.unwrap();
            }
        }
        producer.close().await;
        let topic = |p: i32| (TOPIC.to_string(), p);

        let mut config = member_config(&bootstrap, GROUP, 0);
        config.enable_auto_commit = false;
        let mut consumer = GroupConsumer::new(config).await.unwrap();
        consumer.subscribe(&[TOPIC]).unwrap();
        let first = poll_until(&mut consumer, 20).await;
        assert_eq!(first.len(), 20, "{first:?}");
        assert_eq!(consumer.assignment(), [topic(0), topic(1)]);
        assert_eq!(consumer.position(TOPIC, 0), Some(10));

        // Explicit offsets are committed as given, and read back.
        let chosen = BTreeMap::from([(topic(0), 4), (topic(1), 7)]);
        consumer.commit(&chosen).await.unwrap();
        let read = consumer.committed(&[topic(0), topic(1)]).await.unwrap();
        assert_eq!(
            read,
            BTreeMap::from([(topic(0), Some(4)), (topic(1), Some(7))])
        );

        // Paused, partition 0 yields nothing, even after a seek; partition 1 rereads.
        consumer.pause(&[topic(0)]).await.unwrap();
        assert_eq!(consumer.paused(), [topic(0)]);
        consumer.seek(TOPIC, 0, SeekTo::Offset(2)).await.unwrap();
        consumer.seek(TOPIC, 1, SeekTo::Earliest).await.unwrap();
        assert_eq!(consumer.position(TOPIC, 0), Some(2));
        let reread = poll_until(&mut consumer, 10).await;
        assert_eq!(reread, (0..10).map(|o| (1, o)).collect::<Vec<_>>());
        let nothing = consumer.poll(Duration::from_millis(300)).await.unwrap();
        assert!(nothing.is_empty(), "{nothing:?}");

        // Resumed, it continues from where it was sought.
        consumer.resume(&[topic(0)]).await.unwrap();
        assert!(consumer.paused().is_empty());
        let resumed = poll_until(&mut consumer, 8).await;
        assert_eq!(resumed, (2..10).map(|o| (0, o)).collect::<Vec<_>>());
        consumer.commit_sync().await.unwrap();
        consumer.commit_async().wait().await.unwrap();
        let read = consumer.committed(&[topic(0), topic(1)]).await.unwrap();
        assert_eq!(
            read,
            BTreeMap::from([(topic(0), Some(10)), (topic(1), Some(10))])
        );
        consumer.close().await.unwrap();

        let text = handle.render();
        let value = |name: &str| metric_value(&text, name).unwrap_or(0.0);
        assert!(value(REBALANCES_TOTAL) >= 1.0, "{text}");
        assert!(value(COMMITS_TOTAL) >= 3.0, "{text}");
    });
}

#[test]
fn a_member_that_stops_polling_leaves_and_rejoins_when_it_polls_again() {
    const GROUP: &str = "group-slow";
    const TOPIC: &str = "group-slow";
    let broker = broker();
    let bootstrap = broker.bootstrap();
    runtime().block_on(async {
        let admin = Admin::new(&bootstrap).await.unwrap();
        admin.create_topic(TOPIC, PARTITIONS, 1, &[]).await.unwrap();
        let shared = Arc::new(Shared::default());
        let busy = spawn_member(
            member_config(&bootstrap, GROUP, 0),
            TOPIC,
            0,
            Commits::AfterEveryPoll,
            shared.clone(),
        );
        let mut config = member_config(&bootstrap, GROUP, 1);
        config.max_poll_interval_ms = 1_500;
        config.enable_auto_commit = false;
        let mut slow = GroupConsumer::new(config).await.unwrap();
        slow.subscribe(&[TOPIC]).unwrap();
        let deadline = Instant::now() + WAIT;
        while slow.assignment().len() != 3 || shared.assignments().get(&0).map(Vec::len) != Some(3)
        {
            assert!(Instant::now() < deadline, "{:?}", shared.assignments());
            assert!(!busy.handle.is_finished());
            slow.poll(Duration::from_millis(100)).await.unwrap();
        }
        let (member_id, generation) = slow.member();
        assert!(generation.is_some());

        // No poll for longer than max_poll_interval_ms: the heartbeat task leaves the
        // group, and the busy member takes all six partitions.
        wait_for("the busy member to own every partition", &[&busy], || {
            let assignments = shared.assignments();
            match assignments.get(&0) {
                Some(partitions) if partitions.len() == 6 => Ok(()),
                _ => Err(format!("{assignments:?}")),
            }
        })
        .await;
        let (_, after_leaving) = slow.member();
        assert_eq!(
            after_leaving, None,
            "the slow member is out of the generation"
        );
        // It still holds its old partitions (at known positions) until it polls, but cannot
        // commit them.
        let held = slow.assignment();
        assert_eq!(held.len(), 3);
        assert!(held.iter().all(|(t, p)| slow.position(t, *p).is_some()));
        let error = slow
            .commit_sync()
            .await
            .expect_err("committed outside its generation");
        assert!(
            error.to_string().contains("REBALANCE_IN_PROGRESS"),
            "{error}"
        );

        // Polling again revokes, rejoins as a new member and shares the partitions again.
        let deadline = Instant::now() + WAIT;
        while slow.assignment().len() != 3 || shared.assignments().get(&0).map(Vec::len) != Some(3)
        {
            assert!(Instant::now() < deadline, "{:?}", shared.assignments());
            slow.poll(Duration::from_millis(100)).await.unwrap();
        }
        let (new_member_id, _) = slow.member();
        assert_ne!(new_member_id, member_id, "joined again as a new member");
        slow.close().await.unwrap();
        busy.close().await.unwrap();
    });
}

#[test]
fn partitions_added_to_a_subscribed_topic_are_assigned_after_the_leaders_metadata_check() {
    const GROUP: &str = "group-grow";
    const TOPIC: &str = "group-grow";
    let broker = broker();
    let bootstrap = broker.bootstrap();
    runtime().block_on(async {
        let admin = Admin::new(&bootstrap).await.unwrap();
        admin.create_topic(TOPIC, 2, 1, &[]).await.unwrap();
        let shared = Arc::new(Shared::default());
        let members: Vec<MemberTask> = (0..2)
            .map(|i| {
                let mut config = member_config(&bootstrap, GROUP, i);
                config.metadata_max_age_ms = 300;
                spawn_member(config, TOPIC, i, Commits::AfterEveryPoll, shared.clone())
            })
            .collect();
        let all: Vec<&MemberTask> = members.iter().collect();
        let sizes = |shared: &Shared| {
            let assignments = shared.assignments();
            let mut sizes: Vec<usize> = (0..2)
                .map(|m| assignments.get(&m).map_or(0, Vec::len))
                .collect();
            sizes.sort_unstable();
            (sizes, assignments)
        };
        wait_for("one partition each", &all, || match sizes(&shared) {
            (sizes, _) if sizes == [1, 1] => Ok(()),
            (_, assignments) => Err(format!("{assignments:?}")),
        })
        .await;

        admin.create_partitions(TOPIC, 4).await.unwrap();
        wait_for(
            "two partitions each after the topic grew",
            &all,
            || match sizes(&shared) {
                (sizes, assignments) if sizes == [2, 2] => {
                    let all: BTreeSet<i32> =
                        assignments.values().flatten().map(|(_, p)| *p).collect();
                    (all.len() == 4)
                        .then_some(())
                        .ok_or(format!("{assignments:?}"))
                }
                (_, assignments) => Err(format!("{assignments:?}")),
            },
        )
        .await;
        for member in members {
            member.close().await.unwrap();
        }
    });
}

#[test]
fn members_offering_roundrobin_first_get_partitions_dealt_in_turn() {
    const GROUP: &str = "group-roundrobin";
    const TOPIC: &str = "group-roundrobin";
    let broker = broker();
    let bootstrap = broker.bootstrap();
    runtime().block_on(async {
        let admin = Admin::new(&bootstrap).await.unwrap();
        admin.create_topic(TOPIC, PARTITIONS, 1, &[]).await.unwrap();
        let shared = Arc::new(Shared::default());
        let members: Vec<MemberTask> = (0..3)
            .map(|i| {
                let mut config = member_config(&bootstrap, GROUP, i);
                config.assignors = vec![Assignor::RoundRobin, Assignor::Range];
                spawn_member(config, TOPIC, i, Commits::AfterEveryPoll, shared.clone())
            })
            .collect();
        let all: Vec<&MemberTask> = members.iter().collect();
        // Round robin over three members: partitions p and p + 3 go together.
        wait_for("three members with two partitions each", &all, || {
            let assignments = shared.assignments();
            split_as(&assignments, &[0, 1, 2], &[2, 2, 2])?;
            for partitions in assignments.values() {
                let ids: Vec<i32> = partitions.iter().map(|(_, p)| *p).collect();
                if ids[1] != ids[0] + 3 {
                    return Err(format!("not round robin's split: {assignments:?}"));
                }
            }
            Ok(())
        })
        .await;
        for member in members {
            member.close().await.unwrap();
        }
    });
}

#[test]
fn auto_commit_commits_exactly_what_poll_returned_and_the_next_member_resumes_there() {
    const GROUP: &str = "group-auto";
    const TOPIC: &str = "group-auto";
    const RECORDS: usize = 2_000;
    let broker = broker();
    let bootstrap = broker.bootstrap();
    runtime().block_on(async {
        let admin = Admin::new(&bootstrap).await.unwrap();
        admin.create_topic(TOPIC, 1, 1, &[]).await.unwrap();
        let mut config = ProducerConfig::new(&bootstrap);
        config.acks = Acks::All;
        config.batch_bytes_max = 1024;
        let producer = Producer::new(config).await.unwrap();
        let mut deliveries = Vec::new();
        for i in 0..RECORDS {
            let record = ProducerRecord::new(TOPIC, format!("value-{i:06}"));
            deliveries.push(producer.send(record).await.unwrap());
        }
        for delivery in deliveries {
            delivery.await.unwrap();
        }
        producer.close().await;

        let consumer_config = || {
            let mut config = member_config(&bootstrap, GROUP, 0);
            config.enable_auto_commit = true;
            config.auto_commit_interval_ms = 20;
            // Small fetches: many polls, with auto-commits between them.
            config.consumer.partition_max_bytes = 2048;
            config
        };
        let mut consumer = GroupConsumer::new(consumer_config()).await.unwrap();
        consumer.subscribe(&[TOPIC]).unwrap();
        let partition = [(TOPIC.to_string(), 0)];
        let mut returned_end = 0;
        let mut polls = 0;
        let deadline = Instant::now() + WAIT;
        while returned_end < RECORDS as i64 / 2 {
            assert!(Instant::now() < deadline, "only {returned_end} records");
            let records = consumer.poll(Duration::from_millis(200)).await.unwrap();
            if let Some(last) = records.last() {
                assert_eq!(
                    records[0].offset, returned_end,
                    "records in order, none skipped"
                );
                returned_end = last.offset + 1;
                polls += 1;
            }
            let committed = consumer.committed(&partition).await.unwrap()[&partition[0]];
            assert!(
                committed.unwrap_or(0) <= returned_end,
                "committed {committed:?} past what poll returned ({returned_end})"
            );
        }
        assert!(polls > 5, "the fetches were not small: {polls} polls");
        assert!(returned_end < RECORDS as i64, "stopped midway");
        // Closing commits exactly the position: not past what poll returned, not behind.
        consumer.close().await.unwrap();
        let mut next = GroupConsumer::new(consumer_config()).await.unwrap();
        let committed = next.committed(&partition).await.unwrap();
        assert_eq!(committed[&partition[0]], Some(returned_end));

        // The next member of the group continues right there.
        next.subscribe(&[TOPIC]).unwrap();
        let rest = poll_until(&mut next, RECORDS - returned_end as usize).await;
        let expected: Vec<(i32, i64)> = (returned_end..RECORDS as i64).map(|o| (0, o)).collect();
        assert_eq!(rest, expected);
        next.close().await.unwrap();
    });
}

/// The group's coordinator as some live node answers FindCoordinator (v3, one key).
fn find_coordinator(cluster: &mut Cluster, group: &str) -> Option<i32> {
    use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, FindCoordinatorResponse};
    use kafka_protocol::protocol::StrBytes;
    for id in cluster.live_ids() {
        let Ok(mut conn) = cluster.connect(id) else {
            continue;
        };
        let request =
            FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.to_string()));
        let Ok(response) =
            conn.request::<_, FindCoordinatorResponse>(ApiKey::FindCoordinator, 3, &request)
        else {
            continue;
        };
        if response.error_code == 0 && cluster.ids().contains(&response.node_id.0) {
            return Some(response.node_id.0);
        }
    }
    None
}

#[test]
fn members_carry_on_from_their_commits_after_the_coordinator_is_killed() {
    const GROUP: &str = "group-failover";
    const TOPIC: &str = "group-failover";
    const FIRST: usize = 300;
    const SECOND: usize = 300;
    let mut options = ClusterOptions::fast(2_000, 2_000);
    options.extra_args = vec!["--group-initial-rebalance-delay-ms".into(), "0".into()];
    let mut cluster = Cluster::start(3, options);
    let bootstrap = cluster.bootstrap();
    let mut coordinator = cluster.wait_for("a coordinator for the group", WAIT, |c| {
        find_coordinator(c, GROUP)
    });
    runtime().block_on(async {
        let admin = Admin::new(&bootstrap).await.unwrap();
        admin.create_topic(TOPIC, PARTITIONS, 3, &[]).await.unwrap();
        let shared = Arc::new(Shared::default());
        let members: Vec<MemberTask> = (0..2)
            .map(|i| {
                let config = member_config(&bootstrap, GROUP, i);
                spawn_member(config, TOPIC, i, Commits::AfterEveryPoll, shared.clone())
            })
            .collect();
        let all: Vec<&MemberTask> = members.iter().collect();
        wait_for("two members with three partitions each", &all, || {
            split_as(&shared.assignments(), &[0, 1], &[3, 3])
        })
        .await;
        let ends = produce(&bootstrap, TOPIC, "first", FIRST).await;
        wait_for_commits(&bootstrap, GROUP, TOPIC, &ends, &all).await;

        // The coordinator may have moved since the lookup (the offsets topic's leaders
        // settle); kill whichever broker coordinates now.
        coordinator = find_coordinator(&mut cluster, GROUP).unwrap_or(coordinator);
        cluster.kill9(coordinator);
        // Produce once every partition has a live leader (the producer is not under test).
        cluster.wait_for("leaders on live brokers", WAIT, |c| {
            (0..PARTITIONS)
                .all(|p| {
                    c.partition_state_agreed(TOPIC, p)
                        .and_then(|state| state.leader)
                        .is_some_and(|leader| leader != coordinator)
                })
                .then_some(())
        });

        // The members find the new coordinator (its log has their group and commits) and
        // carry on: every new record is consumed, nothing committed is lost, and the
        // commits reach the new log ends.
        let second_ends = produce(&bootstrap, TOPIC, "second", SECOND).await;
        wait_for_commits(&bootstrap, GROUP, TOPIC, &second_ends, &all).await;
        let seen = shared.seen();
        let unique: BTreeSet<(i32, i64)> = seen.iter().map(|s| (s.partition, s.offset)).collect();
        let expected: BTreeSet<(i32, i64)> = second_ends
            .iter()
            .flat_map(|(p, end)| (0..*end).map(move |o| (*p, o)))
            .collect();
        assert_eq!(unique, expected, "every record consumed");
        assert_eq!(FIRST + SECOND, expected.len());
        for member in members {
            member.close().await.unwrap();
        }
    });
}
