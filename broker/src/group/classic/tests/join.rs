//! JoinGroup: member ids, the initial delay, protocol choice, the join phase and its errors.

use bytes::Bytes;
use uuid::Uuid;

use super::*;

#[test]
fn first_dynamic_join_requires_member_id_and_the_id_is_pending() {
    let mut h = harness();
    let token = h.join(join_request(""));
    let response = h.joined(token);
    assert_eq!(response.error, ErrorCode::MemberIdRequired);
    assert_eq!(response.member_id, format!("client-{}", Uuid::from_u128(1)));
    assert!(h.group.is_pending_member(&response.member_id));
    assert_eq!(h.group.member_ids().count(), 0);
    assert_eq!(h.group.state(), GroupState::Empty);
}

#[test]
fn join_before_v4_adds_the_member_at_once() {
    let mut h = harness();
    let token = h.join(JoinRequest {
        api_version: 3,
        ..join_request("")
    });
    assert!(h.join_answer(token).is_none(), "held for the rebalance");
    assert_eq!(h.group.member_ids().count(), 1);
    assert_eq!(h.group.state(), GroupState::PreparingRebalance);
}

#[test]
fn session_timeout_outside_the_configured_range_is_rejected() {
    let cases = [
        (5_999, ErrorCode::InvalidSessionTimeout),
        (6_000, ErrorCode::MemberIdRequired),
        (1_800_000, ErrorCode::MemberIdRequired),
        (1_800_001, ErrorCode::InvalidSessionTimeout),
    ];
    for (session_timeout_ms, expected) in cases {
        let mut h = harness();
        let token = h.join(JoinRequest {
            session_timeout_ms,
            ..join_request("")
        });
        assert_eq!(
            h.joined(token).error,
            expected,
            "session {session_timeout_ms}"
        );
    }
}

#[test]
fn initial_rebalance_waits_the_delay_then_answers_the_leader_with_all_metadata() {
    let mut h = harness();
    let a = h.member_id("a");
    let b = h.member_id("b");
    let ta = h.join(join_request(&a));
    let tb = h.join(join_request(&b));
    h.advance(DELAY_MS);
    assert!(
        h.join_answer(ta).is_none(),
        "b joined during the delay: it is extended"
    );
    h.advance(DELAY_MS - 1);
    assert!(h.join_answer(ta).is_none());
    h.advance(1);
    let (ra, rb) = (h.joined(ta), h.joined(tb));
    assert_eq!(h.group.state(), GroupState::CompletingRebalance);
    assert_eq!((ra.generation_id, rb.generation_id), (1, 1));
    assert_eq!(ra.leader, a, "the first member leads");
    assert_eq!(ra.members.len(), 2);
    assert_eq!(ra.members[0].metadata, Bytes::from("meta-range"));
    assert!(rb.members.is_empty(), "followers get no metadata");
    assert_eq!(ra.protocol_name.as_deref(), Some("range"));
    assert_eq!(ra.protocol_type.as_deref(), Some("consumer"));
}

#[test]
fn initial_delay_is_extended_while_new_members_arrive() {
    let mut h = harness();
    let a = h.member_id("a");
    let ta = h.join(join_request(&a));
    h.advance(2_000);
    let b = h.member_id("b");
    h.join(join_request(&b));
    h.advance(1_000); // 3 s: b arrived during the delay, so wait another 3 s.
    assert!(h.join_answer(ta).is_none());
    h.advance(DELAY_MS - 1);
    assert!(h.join_answer(ta).is_none());
    h.advance(1);
    assert_eq!(h.joined(ta).generation_id, 1);
}

#[test]
fn initial_delay_never_exceeds_the_rebalance_timeout() {
    let mut h = harness();
    let short = |id: &str| JoinRequest {
        rebalance_timeout_ms: 4_000,
        ..join_request(id)
    };
    let a = h.member_id("a");
    let ta = h.join(short(&a));
    for at_ms in [1_000, 2_500, 3_500] {
        h.advance(at_ms - (h.now_ms - 1_000_000));
        let id = h.member_id("late");
        h.join(short(&id));
    }
    h.advance(4_000 - (h.now_ms - 1_000_000));
    assert_eq!(
        h.joined(ta).generation_id,
        1,
        "done at the 4 s rebalance timeout"
    );
}

#[test]
fn protocol_is_chosen_by_the_members_votes_among_common_protocols() {
    let cases: [(&[&[&str]], &str); 3] = [
        (
            &[
                &["range", "roundrobin"],
                &["roundrobin", "range"],
                &["roundrobin", "range"],
            ],
            "roundrobin",
        ),
        (&[&["range", "sticky"], &["sticky"]], "sticky"),
        (
            &[&["range", "roundrobin"], &["range", "roundrobin"]],
            "range",
        ),
    ];
    for (preferences, expected) in cases {
        let mut h = harness();
        let mut tokens = Vec::new();
        for (i, names) in preferences.iter().enumerate() {
            let id = h.member_id(&format!("c{i}"));
            let request = JoinRequest {
                protocols: protocols(names),
                ..join_request(&id)
            };
            tokens.push(h.join(request));
        }
        h.advance(2 * DELAY_MS);
        let response = h.joined(tokens[0]);
        assert_eq!(
            response.protocol_name.as_deref(),
            Some(expected),
            "{preferences:?}"
        );
    }
}

#[test]
fn join_with_an_incompatible_protocol_is_inconsistent() {
    let mut h = harness();
    let ids = h.stable_group(1);
    let cases = [
        JoinRequest {
            protocol_type: "connect".to_string(),
            ..join_request("")
        },
        JoinRequest {
            protocols: protocols(&["sticky"]),
            ..join_request("")
        },
        JoinRequest {
            protocols: protocols(&["sticky"]),
            ..join_request(&ids[0])
        },
    ];
    for request in cases {
        let token = h.join(request.clone());
        let response = h.joined(token);
        assert_eq!(
            response.error,
            ErrorCode::InconsistentGroupProtocol,
            "{request:?}"
        );
    }
    let mut empty = harness();
    let token = empty.join(JoinRequest {
        protocols: Vec::new(),
        ..join_request("")
    });
    assert_eq!(
        empty.joined(token).error,
        ErrorCode::InconsistentGroupProtocol
    );
}

#[test]
fn join_with_an_unknown_member_id_is_rejected() {
    let mut h = harness();
    h.stable_group(1);
    let token = h.join(join_request("nobody"));
    assert_eq!(h.joined(token).error, ErrorCode::UnknownMemberId);
}

#[test]
fn group_refuses_members_past_its_max_size() {
    let mut h = Harness::new(ClassicGroupConfig {
        group_size_max: 2,
        ..Default::default()
    });
    h.stable_group(2);
    let token = h.join(join_request(""));
    let response = h.joined(token);
    assert_eq!(response.error, ErrorCode::GroupMaxSizeReached);
    assert_eq!(response.member_id, "");
    assert_eq!(h.group.member_ids().count(), 2);
}

#[test]
fn rebalance_completes_as_soon_as_every_member_rejoined() {
    let mut h = harness();
    let ids = h.stable_group(2);
    let t0 = h.join(JoinRequest {
        protocols: protocols(&["range", "roundrobin"]),
        ..join_request(&ids[0])
    });
    assert_eq!(h.group.state(), GroupState::PreparingRebalance);
    assert!(h.join_answer(t0).is_none());
    let t1 = h.join(join_request(&ids[1]));
    assert_eq!(h.joined(t0).generation_id, 2);
    assert_eq!(h.joined(t1).generation_id, 2);
    assert_eq!(h.group.state(), GroupState::CompletingRebalance);
}

#[test]
fn rebalance_timeout_drops_the_members_that_did_not_rejoin() {
    let mut h = harness();
    let ids = h.stable_group(2);
    let leader = h.group.leader_id().unwrap().to_string();
    let follower = ids.iter().find(|id| **id != leader).unwrap().clone();
    let token = h.join(JoinRequest {
        protocols: protocols(&["range", "sticky"]),
        ..join_request(&follower)
    });
    // The leader keeps its session but does not rejoin.
    h.advance_heartbeating(i64::from(REBALANCE_MS) - 1, &[&leader]);
    assert!(h.join_answer(token).is_none());
    assert_eq!(h.group.member_ids().count(), 2);
    h.advance(1);
    let response = h.joined(token);
    assert_eq!(response.generation_id, 2);
    assert_eq!(response.leader, follower, "the rejoined member leads");
    assert_eq!(
        h.group.member_ids().collect::<Vec<_>>(),
        vec![follower.as_str()]
    );
}

#[test]
fn rejoin_without_changes_answers_with_the_current_generation() {
    let mut h = harness();
    let ids = h.stable_group(2);
    let leader = h.group.leader_id().unwrap().to_string();
    let follower = ids.iter().find(|id| **id != leader).unwrap().clone();
    let token = h.join(join_request(&follower));
    let response = h.joined(token);
    assert_eq!(
        (response.error, response.generation_id),
        (ErrorCode::None, 1)
    );
    assert!(response.members.is_empty());
    assert_eq!(h.group.state(), GroupState::Stable);
    // The leader rejoining asks for a rebalance.
    h.join(join_request(&leader));
    assert_eq!(h.group.state(), GroupState::PreparingRebalance);
}

#[test]
fn rejoin_while_completing_repeats_the_join_response() {
    let mut h = harness();
    let a = h.member_id("a");
    let b = h.member_id("b");
    let (ta, _) = (h.join(join_request(&a)), h.join(join_request(&b)));
    h.advance(2 * DELAY_MS);
    assert_eq!(h.joined(ta).leader, a);
    let again = h.join(join_request(&a));
    let response = h.joined(again);
    assert_eq!(response.generation_id, 1);
    assert_eq!(
        response.members.len(),
        2,
        "the leader gets the members again"
    );
    assert_eq!(h.group.state(), GroupState::CompletingRebalance);
}

#[test]
fn superseded_join_is_answered() {
    let mut h = harness();
    let ids = h.stable_group(2);
    let first = h.join(join_request(&ids[0]));
    let second = h.join(join_request(&ids[0]));
    assert_eq!(h.joined(first).error, ErrorCode::RebalanceInProgress);
    assert!(h.join_answer(second).is_none());
}

#[test]
fn timers_armed_during_a_tick_wait_for_the_next_one() {
    let mut h = harness();
    h.group.config.initial_rebalance_delay_ms = 0;
    let id = h.member_id("a");
    let token = h.join(JoinRequest {
        rebalance_timeout_ms: 0,
        ..join_request(&id)
    });
    h.advance(0);
    assert_eq!(h.joined(token).generation_id, 1);
}
