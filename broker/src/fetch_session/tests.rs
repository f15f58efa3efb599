//! The session cache's rules, without a broker: contexts, incremental selection, order,
//! epochs and eviction.

use super::*;

fn key(topic: &str, partition: i32) -> PartitionKey {
    PartitionKey {
        topic: TopicKey::Name(topic.to_string()),
        partition,
    }
}

fn params(fetch_offset: i64) -> PartitionParams {
    PartitionParams {
        fetch_offset,
        current_leader_epoch: 0,
        last_fetched_epoch: -1,
        log_start_offset: -1,
        max_bytes: 1 << 20,
    }
}

fn read(high_watermark: i64, record_bytes: usize) -> ReadSummary {
    ReadSummary {
        record_bytes,
        high_watermark,
        log_start_offset: 0,
        preferred_read_replica: -1,
        has_error: false,
        has_diverging_epoch: false,
    }
}

fn request(session_id: i32, epoch: i32) -> SessionRequest {
    SessionRequest {
        session_id,
        epoch,
        uses_topic_ids: false,
        from_follower: false,
    }
}

/// A session over `partitions` (all answered with high watermark 10, no records).
fn session_of(
    cache: &FetchSessionCache,
    request: SessionRequest,
    partitions: &[PartitionKey],
    now: u64,
) -> i32 {
    let answered = partitions
        .iter()
        .map(|k| (k.clone(), params(0), read(10, 0)))
        .collect();
    cache.create(request, answered, now)
}

fn incremental(context: FetchContext) -> Incremental {
    match context {
        FetchContext::Incremental(incremental) => incremental,
        other => panic!("expected an incremental context, got {other:?}"),
    }
}

/// The partitions of `answered` an incremental answer carries, in order.
fn sent(inc: &Incremental, answered: &[(PartitionKey, ReadSummary)]) -> Vec<PartitionKey> {
    let keep = inc.select(answered).unwrap();
    answered
        .iter()
        .zip(keep)
        .filter(|(_, keep)| *keep)
        .map(|((k, _), _)| k.clone())
        .collect()
}

fn error(context: FetchContext) -> ErrorCode {
    match context {
        FetchContext::Error(code) => code,
        other => panic!("expected a session error, got {other:?}"),
    }
}

#[test]
fn epoch_sequence_follows_kafka() {
    assert_eq!(next_epoch(0), 1);
    assert_eq!(next_epoch(41), 42);
    assert_eq!(
        next_epoch(i32::MAX),
        1,
        "wraps past 0, which only starts a session"
    );
    assert_eq!(next_epoch(FINAL_EPOCH), FINAL_EPOCH);
}

#[test]
fn full_and_final_epochs_choose_the_context_and_close_a_named_session() {
    let cache = FetchSessionCache::new(10);
    assert!(matches!(
        cache.context(request(0, 0), &[], &[], 0),
        FetchContext::Full
    ));
    assert!(matches!(
        cache.context(request(0, -1), &[], &[], 0),
        FetchContext::Sessionless
    ));

    let id = session_of(&cache, request(0, 0), &[key("a", 0)], 0);
    assert_ne!(id, INVALID_SESSION_ID);
    assert!(id > 0);
    assert_eq!((cache.len(), cache.partitions()), (1, 1));
    // A full fetch naming the session closes it.
    assert!(matches!(
        cache.context(request(id, 0), &[], &[], 1),
        FetchContext::Full
    ));
    assert_eq!((cache.len(), cache.partitions()), (0, 0));
    assert_eq!(
        error(cache.context(request(id, 1), &[], &[], 2)),
        ErrorCode::FetchSessionIdNotFound
    );
}

#[test]
fn incremental_fetch_checks_id_epoch_and_topic_naming() {
    let cache = FetchSessionCache::new(10);
    let id = session_of(&cache, request(0, 0), &[key("a", 0)], 0);
    assert_eq!(
        error(cache.context(request(id + 1, 1), &[], &[], 1)),
        ErrorCode::FetchSessionIdNotFound
    );
    assert_eq!(
        error(cache.context(request(id, 2), &[], &[], 1)),
        ErrorCode::InvalidFetchSessionEpoch
    );
    let by_id = SessionRequest {
        uses_topic_ids: true,
        ..request(id, 1)
    };
    assert_eq!(
        error(cache.context(by_id, &[], &[], 1)),
        ErrorCode::FetchSessionTopicIdError
    );
    // The errors left the session as it was: epoch 1 is still the one expected.
    let first = incremental(cache.context(request(id, 1), &[], &[], 1));
    assert_eq!(first.partitions, vec![(key("a", 0), params(0))]);
    let second = incremental(cache.context(request(id, 2), &[], &[], 2));
    assert_eq!(second.session_id, id);
    // The first request's answer comes after the second request used the session.
    assert_eq!(
        first.select(&[(key("a", 0), read(10, 0))]),
        Err(ErrorCode::InvalidFetchSessionEpoch)
    );
    assert_eq!(
        second.select(&[(key("a", 0), read(10, 0))]),
        Ok(vec![false])
    );
}

#[test]
fn incremental_requests_add_update_and_forget_partitions() {
    let cache = FetchSessionCache::new(10);
    let id = session_of(&cache, request(0, 0), &[key("a", 0), key("a", 1)], 0);
    let changes = [(key("a", 1), params(7)), (key("b", 0), params(3))];
    let inc = incremental(cache.context(request(id, 1), &changes, &[key("a", 0)], 1));
    assert_eq!(
        inc.partitions,
        vec![(key("a", 1), params(7)), (key("b", 0), params(3))]
    );
    assert_eq!(cache.partitions(), 2);
    // Forgetting a partition the session does not have changes nothing.
    let inc = incremental(cache.context(request(id, 2), &[], &[key("zz", 9)], 2));
    assert_eq!(inc.partitions.len(), 2);
    // Forgetting every partition closes the session: the fetch is served sessionless.
    let all = [key("a", 1), key("b", 0)];
    assert!(matches!(
        cache.context(request(id, 3), &[], &all, 3),
        FetchContext::Sessionless
    ));
    assert_eq!((cache.len(), cache.partitions()), (0, 0));
}

#[test]
fn incremental_answers_carry_only_partitions_with_news() {
    let cache = FetchSessionCache::new(10);
    let parts = [
        key("a", 0),
        key("a", 1),
        key("a", 2),
        key("a", 3),
        key("a", 4),
        key("b", 0),
    ];
    let id = session_of(&cache, request(0, 0), &parts, 0);
    let inc = incremental(cache.context(request(id, 1), &[], &[], 1));
    let with = |i: usize, r: ReadSummary| (parts[i].clone(), r);
    let answered = [
        with(0, read(10, 0)),   // nothing new
        with(1, read(11, 0)),   // high watermark moved
        with(2, read(10, 100)), // records
        with(
            3,
            ReadSummary {
                has_error: true,
                ..read(10, 0)
            },
        ),
        with(
            4,
            ReadSummary {
                log_start_offset: 5,
                ..read(10, 0)
            },
        ),
        with(
            5,
            ReadSummary {
                preferred_read_replica: 2,
                ..read(10, 0)
            },
        ),
    ];
    assert_eq!(
        inc.select(&answered).unwrap(),
        vec![false, true, true, true, true, true]
    );

    // The same answers again: only what is still news (records, the error, the preferred
    // replica); the moved high watermark and log start were told.
    let inc = incremental(cache.context(request(id, 2), &[], &[], 2));
    let again: Vec<_> = inc
        .partitions
        .iter()
        .map(|(k, _)| answered.iter().find(|(a, _)| a == k).unwrap().clone())
        .collect();
    assert_eq!(
        sent(&inc, &again),
        vec![parts[3].clone(), parts[5].clone(), parts[2].clone()]
    );

    // After an error the partition is sent again when it clears (its cached high
    // watermark was reset), then no more.
    let inc = incremental(cache.context(request(id, 3), &[], &[], 3));
    let clear: Vec<_> = inc
        .partitions
        .iter()
        .map(|(k, _)| (k.clone(), read(10, 0)))
        .collect();
    assert_eq!(
        sent(&inc, &clear),
        vec![parts[1].clone(), parts[3].clone(), parts[4].clone()],
        "hw 11->10, error cleared, log start 5->0"
    );
}

#[test]
fn partitions_that_returned_records_move_to_the_end_of_the_order() {
    let cache = FetchSessionCache::new(10);
    let parts = [key("a", 0), key("a", 1), key("a", 2)];
    let id = session_of(&cache, request(0, 0), &parts, 0);
    let inc = incremental(cache.context(request(id, 1), &[], &[], 1));
    let answered = [
        (parts[0].clone(), read(10, 50)),
        (parts[1].clone(), read(11, 0)),
        (parts[2].clone(), read(10, 0)),
    ];
    inc.select(&answered).unwrap();
    let inc = incremental(cache.context(request(id, 2), &[], &[], 2));
    let order: Vec<_> = inc.partitions.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(
        order,
        vec![parts[1].clone(), parts[2].clone(), parts[0].clone()]
    );
}

#[test]
fn no_free_slot_means_no_session_unless_one_can_be_evicted() {
    let cache = FetchSessionCache::new(2);
    let small = session_of(&cache, request(0, 0), &[key("a", 0)], 0);
    let big = session_of(
        &cache,
        request(0, 0),
        &[key("a", 0), key("a", 1), key("a", 2)],
        0,
    );
    assert!(small > 0 && big > 0 && small != big);
    // Both are young consumers' sessions: another consumer's cannot evict them.
    assert_eq!(
        session_of(&cache, request(0, 0), &[key("b", 0)], 10),
        INVALID_SESSION_ID
    );

    // A follower's session evicts the smallest consumer's session.
    let follower = SessionRequest {
        from_follower: true,
        ..request(0, 0)
    };
    let f = session_of(&cache, follower, &[key("c", 0)], 20);
    assert!(f > 0);
    assert_eq!(
        error(cache.context(request(small, 1), &[], &[], 21)),
        ErrorCode::FetchSessionIdNotFound
    );
    // A young follower's session is not evictable by a consumer's, even a bigger one.
    incremental(cache.context(request(big, 1), &[], &[], 30));
    let many: Vec<_> = (0..10).map(|p| key("d", p)).collect();
    assert_eq!(
        session_of(&cache, request(0, 0), &many, 40),
        INVALID_SESSION_ID
    );

    // Once older than EVICTION_MS, a consumer's bigger session evicts the smaller one ...
    let later = EVICTION_MS + 100;
    incremental(cache.context(request(big, 2), &[], &[], later - 50));
    let f_epoch = 1;
    incremental(cache.context(
        SessionRequest {
            from_follower: true,
            ..request(f, f_epoch)
        },
        &[],
        &[],
        later - 50,
    ));
    let bigger = session_of(&cache, request(0, 0), &many, later);
    assert!(bigger > 0);
    assert_eq!(cache.len(), 2);
    assert_eq!(
        error(cache.context(request(big, 3), &[], &[], later)),
        ErrorCode::FetchSessionIdNotFound
    );

    // ... and a session unused for longer than EVICTION_MS goes first, whatever its size.
    let much_later = later + EVICTION_MS + 1;
    incremental(cache.context(request(bigger, 1), &[], &[], much_later - 10));
    let tiny = session_of(&cache, request(0, 0), &[key("e", 0)], much_later);
    assert!(tiny > 0);
    assert_eq!(
        error(cache.context(
            SessionRequest {
                from_follower: true,
                ..request(f, 2)
            },
            &[],
            &[],
            much_later
        )),
        ErrorCode::FetchSessionIdNotFound,
        "the follower's session was the least recently used and stale"
    );
    assert_eq!(cache.partitions(), 11);
}

#[test]
fn zero_slots_turn_sessions_off() {
    let cache = FetchSessionCache::new(0);
    assert_eq!(
        session_of(&cache, request(0, 0), &[key("a", 0)], 0),
        INVALID_SESSION_ID
    );
    assert!(cache.is_empty());
}
