//! `top`: a [`Sample`] of every partition's offsets and of brokers' `/metrics` counters at
//! one moment, and the view between two samples ([`top_view`]): records/s per partition
//! and topic, bytes in/out per second per topic, and how far replicas lag (the rates are
//! defined in the module doc of [`super`]).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde::Serialize;
use sluice_client::cluster::{Metadata, PartitionInfo};
use sluice_client::Admin;

use super::{is_under_replicated, replica_offsets, Unavailable};
use crate::scrape::{self, Endpoint};

/// Metric names `top` reads from Sluice brokers' `/metrics`.
pub const TOPIC_BYTES_IN_METRIC: &str = "sluice_topic_bytes_in_total";
pub const TOPIC_BYTES_OUT_METRIC: &str = "sluice_topic_bytes_out_total";
/// The prefix of Sluice's per-topic series (each with a `topic` label), exported only with
/// `--metrics-per-partition`.
pub const TOPIC_METRIC_PREFIX: &str = "sluice_topic_";

/// One partition at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSample {
    pub topic: String,
    pub info: PartitionInfo,
    pub high_watermark: Option<i64>,
    /// Every replica's log end offset, by broker (an `Err` for an unavailable one).
    pub log_ends: BTreeMap<i32, Result<i64, Unavailable>>,
}

impl PartitionSample {
    /// The leader's log end offset, if known.
    pub fn leader_end(&self) -> Option<i64> {
        let leader = self.info.leader?;
        self.log_ends.get(&leader)?.as_ref().ok().copied()
    }
}

/// One metrics endpoint's per-topic byte counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopicCounters {
    /// (metric name, topic) -> value, for [`TOPIC_BYTES_IN_METRIC`] and
    /// [`TOPIC_BYTES_OUT_METRIC`].
    pub values: BTreeMap<(String, String), f64>,
    /// Whether the endpoint exports any per-topic series (`sluice_topic_*{topic=...}`):
    /// false for a Sluice broker run with `--metrics-per-partition false`, or an endpoint
    /// that is not a Sluice broker's.
    pub per_topic_series: bool,
}

/// Everything `top` reads at one moment.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When the ListOffsets requests and the scrapes were started, all at once: the
    /// moment rates are measured from. Taken before them, not after, so that one slow
    /// answer (up to the timeout) does not stretch the time between two samples and
    /// understate the rates.
    pub taken: Instant,
    pub partitions: Vec<PartitionSample>,
    /// By endpoint (its URL), the counters or why they are missing.
    pub metrics: BTreeMap<String, Result<TopicCounters, String>>,
}

/// Read every partition of `topics` (every non-internal topic when empty), and the
/// per-topic byte counters of each `/metrics` endpoint.
pub async fn sample(
    admin: &Admin,
    topics: &[String],
    metrics_endpoints: &[Endpoint],
    timeout: Duration,
) -> sluice_client::Result<Sample> {
    let metadata = admin.cluster().refresh_all_topics().await?;
    let partitions = sampled_partitions(&metadata, topics);
    let scrapes = futures::future::join_all(metrics_endpoints.iter().map(|endpoint| async move {
        let counters = scrape::get(&endpoint.address, &endpoint.path, timeout)
            .await
            .map(|text| topic_counters(&text));
        (endpoint.to_string(), counters)
    }));
    // The futures are lazy: offsets and counters are all requested from here on, so this
    // is the instant of both (see `Sample::taken`).
    let taken = Instant::now();
    let (offsets, scrapes) =
        futures::future::join(replica_offsets(admin, &partitions, timeout), scrapes).await;
    let partitions = partitions
        .into_iter()
        .map(|(topic, info)| {
            let id = (topic.clone(), info.partition);
            let log_ends = info
                .replicas
                .iter()
                .filter_map(|&broker| Some((broker, offsets.log_end(&id, broker)?.clone())))
                .collect();
            PartitionSample {
                high_watermark: offsets.high_watermark(&id),
                topic,
                info,
                log_ends,
            }
        })
        .collect();
    Ok(Sample {
        taken,
        partitions,
        metrics: scrapes.into_iter().collect(),
    })
}

/// The partitions of `topics` (every non-internal topic when empty), by topic and index.
fn sampled_partitions(metadata: &Metadata, topics: &[String]) -> Vec<(String, PartitionInfo)> {
    let mut partitions: Vec<(String, PartitionInfo)> = metadata
        .topics
        .values()
        .filter(|t| {
            if topics.is_empty() {
                !t.is_internal
            } else {
                topics.contains(&t.name)
            }
        })
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.clone(), p.clone())))
        .collect();
    partitions.sort_by(|a, b| (&a.0, a.1.partition).cmp(&(&b.0, b.1.partition)));
    partitions
}

/// The per-topic byte counters `top` uses from one `/metrics` text.
pub fn topic_counters(text: &str) -> TopicCounters {
    let mut counters = TopicCounters::default();
    for sample in scrape::parse(text) {
        let Some(topic) = sample.label("topic") else {
            continue;
        };
        if sample.name.starts_with(TOPIC_METRIC_PREFIX) {
            counters.per_topic_series = true;
        }
        if sample.name != TOPIC_BYTES_IN_METRIC && sample.name != TOPIC_BYTES_OUT_METRIC {
            continue;
        }
        *counters
            .values
            .entry((sample.name.clone(), topic.to_string()))
            .or_insert(0.0) += sample.value;
    }
    counters
}

/// One topic's line in `top`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopicRates {
    pub topic: String,
    pub partitions: usize,
    /// Records appended per second (None when no partition's offsets were known twice).
    pub records_per_sec: Option<f64>,
    /// From `/metrics`: None when no endpoint read in both samples exports per-topic
    /// series (none given, none answered, or per-topic metrics off); see the module doc.
    pub bytes_in_per_sec: Option<f64>,
    pub bytes_out_per_sec: Option<f64>,
    pub under_replicated_partitions: usize,
    pub offline_partitions: usize,
    /// The largest replica lag (offsets) among its partitions.
    pub max_lag: Option<i64>,
    pub unreachable_replicas: usize,
}

/// One partition's line in `top`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    pub leader: Option<i32>,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub under_replicated: bool,
    pub records_per_sec: Option<f64>,
    /// The largest lag (offsets) of a replica behind the leader's log end offset.
    pub max_lag: Option<i64>,
    /// The replica with that lag, when it is above 0.
    pub max_lag_replica: Option<i32>,
    /// Replicas whose broker gave no offset.
    pub unavailable_replicas: Vec<i32>,
}

/// One refresh of `top`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopView {
    pub iteration: u64,
    /// Wall-clock time of the refresh, ms since the epoch.
    pub time_ms: i64,
    /// Time between the two samples the rates come from.
    pub elapsed_ms: u64,
    pub topics: Vec<TopicRates>,
    pub partitions: Vec<PartitionLag>,
    /// Endpoints whose `/metrics` could not be read, with why.
    pub metrics_errors: BTreeMap<String, String>,
}

/// The rates and lags between two samples.
pub fn top_view(previous: &Sample, current: &Sample, iteration: u64, time_ms: i64) -> TopView {
    let elapsed = current.taken.saturating_duration_since(previous.taken);
    let seconds = elapsed.as_secs_f64();
    let partitions = partition_lags(previous, current, seconds);
    let topics = topic_rates(&partitions, &ByteRates::between(previous, current, seconds));
    TopView {
        iteration,
        time_ms,
        elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        topics,
        partitions,
        metrics_errors: current
            .metrics
            .iter()
            .filter_map(|(endpoint, r)| Some((endpoint.clone(), r.as_ref().err()?.clone())))
            .collect(),
    }
}

/// `delta` per `seconds` (a negative delta counts as 0; 0 when no time passed).
fn per_second(delta: i64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        delta.max(0) as f64 / seconds
    } else {
        0.0
    }
}

/// Every partition of `current`, with its records/s since `previous`, `seconds` earlier.
fn partition_lags(previous: &Sample, current: &Sample, seconds: f64) -> Vec<PartitionLag> {
    let before: HashMap<(&str, i32), &PartitionSample> = previous
        .partitions
        .iter()
        .map(|p| ((p.topic.as_str(), p.info.partition), p))
        .collect();
    current
        .partitions
        .iter()
        .map(|now| {
            let then = before.get(&(now.topic.as_str(), now.info.partition));
            partition_lag(now, then.copied(), seconds)
        })
        .collect()
}

/// One partition's line: records/s since `then` (its leader's log end offset delta, the
/// high watermark's when either leader end is unknown), its most lagging replica and the
/// replicas whose broker gave no offset.
fn partition_lag(
    now: &PartitionSample,
    then: Option<&PartitionSample>,
    seconds: f64,
) -> PartitionLag {
    let delta = then.and_then(|then| match (then.leader_end(), now.leader_end()) {
        (Some(a), Some(b)) => Some(b - a),
        _ => Some(now.high_watermark? - then.high_watermark?),
    });
    let leader_end = now.leader_end();
    let mut max_lag: Option<(i64, i32)> = None;
    let mut unavailable_replicas = Vec::new();
    for (&broker, end) in &now.log_ends {
        match (end, leader_end) {
            (Ok(end), Some(leader_end)) => {
                let lag = (leader_end - end).max(0);
                if max_lag.is_none_or(|(worst, _)| lag > worst) {
                    max_lag = Some((lag, broker));
                }
            }
            (Ok(_), None) => {}
            (Err(_), _) => unavailable_replicas.push(broker),
        }
    }
    PartitionLag {
        topic: now.topic.clone(),
        partition: now.info.partition,
        leader: now.info.leader,
        replicas: now.info.replicas.clone(),
        isr: now.info.isr.clone(),
        under_replicated: is_under_replicated(&now.info),
        records_per_sec: delta.map(|delta| per_second(delta, seconds)),
        max_lag: max_lag.map(|(lag, _)| lag),
        max_lag_replica: max_lag
            .filter(|(lag, _)| *lag > 0)
            .map(|(_, broker)| broker),
        unavailable_replicas,
    }
}

/// Bytes in and out per second by topic, from the `/metrics` endpoints read in both
/// samples (only they give a rate).
struct ByteRates {
    bytes_in: BTreeMap<String, f64>,
    bytes_out: BTreeMap<String, f64>,
    /// Whether any of those endpoints exports per-topic series.
    per_topic_series: bool,
}

impl ByteRates {
    fn between(previous: &Sample, current: &Sample, seconds: f64) -> ByteRates {
        let read_twice: Vec<(&TopicCounters, &TopicCounters)> = current
            .metrics
            .iter()
            .filter_map(
                |(endpoint, now)| match (now, previous.metrics.get(endpoint)) {
                    (Ok(now), Some(Ok(then))) => Some((then, now)),
                    _ => None,
                },
            )
            .collect();
        ByteRates {
            bytes_in: counter_rates(&read_twice, TOPIC_BYTES_IN_METRIC, seconds),
            bytes_out: counter_rates(&read_twice, TOPIC_BYTES_OUT_METRIC, seconds),
            per_topic_series: read_twice.iter().any(|(_, now)| now.per_topic_series),
        }
    }

    fn bytes_in_per_sec(&self, topic: &str) -> Option<f64> {
        self.known(&self.bytes_in, topic)
    }

    fn bytes_out_per_sec(&self, topic: &str) -> Option<f64> {
        self.known(&self.bytes_out, topic)
    }

    /// A topic without a series where per-topic series exist had no such traffic (0);
    /// where none exist, its rate is unknown.
    fn known(&self, rates: &BTreeMap<String, f64>, topic: &str) -> Option<f64> {
        rates
            .get(topic)
            .copied()
            .or(self.per_topic_series.then_some(0.0))
    }
}

/// Per topic, counter `metric`'s increase per second summed over the endpoints read twice
/// (then, now).
fn counter_rates(
    read_twice: &[(&TopicCounters, &TopicCounters)],
    metric: &str,
    seconds: f64,
) -> BTreeMap<String, f64> {
    let mut rates = BTreeMap::new();
    for (then, now) in read_twice {
        for ((name, topic), value) in &now.values {
            if name != metric {
                continue;
            }
            let before = then
                .values
                .get(&(name.clone(), topic.clone()))
                .copied()
                .unwrap_or(0.0);
            // A counter that went down restarted with its broker: count from zero.
            let delta = if *value >= before {
                value - before
            } else {
                *value
            };
            let rate = if seconds > 0.0 { delta / seconds } else { 0.0 };
            *rates.entry(topic.clone()).or_insert(0.0) += rate;
        }
    }
    rates
}

/// One line per topic: its partitions' counts, records/s and largest lag, and its byte
/// rates.
fn topic_rates(partitions: &[PartitionLag], bytes: &ByteRates) -> Vec<TopicRates> {
    let mut topics: BTreeMap<&str, TopicRates> = BTreeMap::new();
    for p in partitions {
        let entry = topics.entry(&p.topic).or_insert_with(|| TopicRates {
            topic: p.topic.clone(),
            partitions: 0,
            records_per_sec: None,
            bytes_in_per_sec: None,
            bytes_out_per_sec: None,
            under_replicated_partitions: 0,
            offline_partitions: 0,
            max_lag: None,
            unreachable_replicas: 0,
        });
        entry.partitions += 1;
        if let Some(rate) = p.records_per_sec {
            *entry.records_per_sec.get_or_insert(0.0) += rate;
        }
        entry.under_replicated_partitions += usize::from(p.under_replicated);
        entry.offline_partitions += usize::from(p.leader.is_none());
        if let Some(lag) = p.max_lag {
            entry.max_lag = Some(entry.max_lag.map_or(lag, |worst| worst.max(lag)));
        }
        entry.unreachable_replicas += p.unavailable_replicas.len();
    }
    for (topic, rates) in topics.iter_mut() {
        rates.bytes_in_per_sec = bytes.bytes_in_per_sec(topic);
        rates.bytes_out_per_sec = bytes.bytes_out_per_sec(topic);
    }
    topics.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::test_support::partition;

    fn partition_sample(
        index: i32,
        high_watermark: i64,
        log_ends: &[(i32, Result<i64, Unavailable>)],
        isr: &[i32],
    ) -> PartitionSample {
        let replicas: Vec<i32> = log_ends.iter().map(|(b, _)| *b).collect();
        PartitionSample {
            topic: "t".to_string(),
            info: partition(index, Some(replicas[0]), &replicas, isr),
            high_watermark: Some(high_watermark),
            log_ends: log_ends.iter().cloned().collect(),
        }
    }

    #[test]
    fn top_rates_come_from_offset_and_counter_deltas() {
        let start = Instant::now();
        let counters = |bytes_in: f64| -> Result<TopicCounters, String> {
            Ok(TopicCounters {
                values: BTreeMap::from([(
                    (TOPIC_BYTES_IN_METRIC.to_string(), "t".to_string()),
                    bytes_in,
                )]),
                per_topic_series: true,
            })
        };
        let previous = Sample {
            taken: start,
            partitions: vec![
                partition_sample(0, 100, &[(1, Ok(100)), (2, Ok(100))], &[1, 2]),
                partition_sample(1, 50, &[(2, Ok(50)), (1, Ok(50))], &[2, 1]),
            ],
            metrics: BTreeMap::from([
                ("a:1".to_string(), counters(1_000.0)),
                ("b:1".to_string(), counters(500.0)),
            ]),
        };
        let current = Sample {
            taken: start + Duration::from_secs(2),
            partitions: vec![
                partition_sample(0, 300, &[(1, Ok(300)), (2, Ok(300))], &[1, 2]),
                partition_sample(
                    1,
                    60,
                    &[
                        (2, Ok(90)),
                        (1, Err(Unavailable::Unreachable("gone".into()))),
                    ],
                    &[2],
                ),
            ],
            metrics: BTreeMap::from([
                ("a:1".to_string(), counters(3_000.0)),
                // Restarted: its counter starts again from zero.
                ("b:1".to_string(), counters(200.0)),
                ("c:1".to_string(), Err("refused".to_string())),
            ]),
        };
        let view = top_view(&previous, &current, 1, 0);
        assert_eq!(view.elapsed_ms, 2_000);
        // p0: 200 records in 2 s; p1: the leader's log end moved 40 (its HW only 10).
        assert_eq!(view.partitions[0].records_per_sec, Some(100.0));
        assert_eq!(view.partitions[1].records_per_sec, Some(20.0));
        assert_eq!(view.partitions[1].unavailable_replicas, vec![1]);
        assert!(view.partitions[1].under_replicated);
        assert_eq!(view.partitions[0].max_lag, Some(0));
        let topic = &view.topics[0];
        assert_eq!(topic.records_per_sec, Some(120.0));
        // (2000 + 200) bytes over 2 s.
        assert_eq!(topic.bytes_in_per_sec, Some(1_100.0));
        // Per-topic series are exported, just none of bytes out for t: nothing consumed.
        assert_eq!(topic.bytes_out_per_sec, Some(0.0));
        assert_eq!(topic.under_replicated_partitions, 1);
        assert_eq!(topic.unreachable_replicas, 1);
        assert_eq!(
            view.metrics_errors,
            BTreeMap::from([("c:1".to_string(), "refused".to_string())])
        );
    }

    #[test]
    fn top_without_metrics_or_a_previous_sample_has_no_rates() {
        let start = Instant::now();
        let previous = Sample {
            taken: start,
            partitions: Vec::new(),
            metrics: BTreeMap::new(),
        };
        let current = Sample {
            taken: start + Duration::from_secs(1),
            partitions: vec![partition_sample(
                0,
                10,
                &[(1, Ok(12)), (2, Ok(10))],
                &[1, 2],
            )],
            metrics: BTreeMap::new(),
        };
        let view = top_view(&previous, &current, 1, 0);
        assert_eq!(view.partitions[0].records_per_sec, None);
        assert_eq!(view.partitions[0].max_lag, Some(2));
        assert_eq!(view.partitions[0].max_lag_replica, Some(2));
        assert_eq!(view.topics[0].records_per_sec, None);
        assert_eq!(view.topics[0].bytes_in_per_sec, None);
    }

    #[test]
    fn counters_are_summed_per_topic_from_metrics_text() {
        let text = "# TYPE sluice_topic_bytes_in_total counter\n\
            sluice_topic_bytes_in_total{topic=\"a\"} 10\n\
            sluice_topic_bytes_in_total{topic=\"b\"} 5\n\
            sluice_topic_bytes_out_total{topic=\"a\"} 7\n\
            sluice_bytes_in_total 99\n";
        let counters = topic_counters(text);
        assert!(counters.per_topic_series);
        assert_eq!(counters.values.len(), 3);
        assert_eq!(
            counters.values[&(TOPIC_BYTES_IN_METRIC.to_string(), "a".to_string())],
            10.0
        );
        assert_eq!(
            counters.values[&(TOPIC_BYTES_OUT_METRIC.to_string(), "a".to_string())],
            7.0
        );
        // Any per-topic series says per-topic metrics are on; broker-wide ones do not.
        let fetches = topic_counters("sluice_topic_fetch_requests_total{topic=\"a\"} 3\n");
        assert!(fetches.per_topic_series && fetches.values.is_empty());
        let off = topic_counters("sluice_bytes_in_total 99\nsluice_messages_in_total 3\n");
        assert_eq!(off, TopicCounters::default());
    }

    #[test]
    fn byte_rates_are_unknown_where_no_endpoint_exports_per_topic_series() {
        // Brokers run with --metrics-per-partition false: /metrics answers, without any
        // sluice_topic_* series. The rate is unknown, not 0 B/s.
        let start = Instant::now();
        let off = || topic_counters("sluice_bytes_in_total 500\nsluice_messages_in_total 5\n");
        let sample = |taken, end| Sample {
            taken,
            partitions: vec![partition_sample(0, end, &[(1, Ok(end))], &[1])],
            metrics: BTreeMap::from([("http://a:1/metrics".to_string(), Ok(off()))]),
        };
        let view = top_view(
            &sample(start, 10),
            &sample(start + Duration::from_secs(1), 20),
            1,
            0,
        );
        let topic = &view.topics[0];
        assert_eq!(topic.records_per_sec, Some(10.0));
        assert_eq!(topic.bytes_in_per_sec, None);
        assert_eq!(topic.bytes_out_per_sec, None);
        assert!(view.metrics_errors.is_empty());

        // An endpoint read only once gives no rate either.
        let mut first = sample(start, 10);
        first
            .metrics
            .insert("http://b:1/metrics".to_string(), Err("refused".to_string()));
        let mut second = sample(start + Duration::from_secs(1), 20);
        second.metrics.insert(
            "http://b:1/metrics".to_string(),
            Ok(topic_counters(
                "sluice_topic_bytes_in_total{topic=\"t\"} 100\n",
            )),
        );
        assert_eq!(
            top_view(&first, &second, 1, 0).topics[0].bytes_in_per_sec,
            None
        );
    }
}
