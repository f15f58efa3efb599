//! Broker configuration: flags, a TOML file (`--config`) and `SLUICE_*` environment
//! variables, in that order of precedence, over built-in defaults.
//!
//! Every option is declared once in the [`options!`] table below, which generates the clap
//! flags (all optional so that "not given" can be told apart from "given the default"), the
//! TOML file struct, the environment lookup and the merged [`Config`]. `sluiced --help`
//! lists each option with its default and environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use clap::Parser;
use serde::Deserialize;

use crate::storage::{Durability, LogConfig};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "unknown log format '{other}' (expected text or json)"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for LogFormat {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Durability {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_durability(&s).map_err(serde::de::Error::custom)
    }
}

/// Parse a boolean the way operators write it.
fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        other => Err(format!("'{other}' is not a boolean (true/false)")),
    }
}

macro_rules! options {
    ($( $help:literal $field:ident : $ty:ty = $default:expr, $shown:literal, $flag:literal, $env:literal, $parse:expr; )*) => {
        /// Command-line flags. Every option is optional here; defaults are applied after
        /// merging with the TOML file and the environment.
        #[derive(Debug, Parser, Default)]
        #[command(
            name = "sluiced",
            version,
            about = "Sluice broker: a Kafka-protocol commit-log broker in one binary",
            long_about = "Sluice broker: a partitioned commit-log broker that speaks the Kafka wire protocol.\n\n\
                Options come from flags, then the TOML file given by --config, then SLUICE_* environment \
                variables, then the defaults shown. TOML keys are the flag names with '-' replaced by '_' \
                (e.g. data_dir = \"/var/lib/sluice\").",
        )]
        pub struct Flags {
            /// TOML configuration file (keys are flag names with '_' for '-')
            #[arg(long, value_name = "FILE")]
            pub config: Option<PathBuf>,
            $(
                #[arg(long = $flag, value_parser = $parse, help = concat!($help, " [default: ", $shown, "]"),
                      long_help = concat!($help, "\n[default: ", $shown, "] [env: ", $env, "]"))]
                pub $field: Option<$ty>,
            )*
        }

        /// The TOML file's contents.
        #[derive(Debug, Deserialize, Default)]
        #[serde(deny_unknown_fields)]
        pub struct FileConfig {
            $( pub $field: Option<$ty>, )*
        }

        /// The merged configuration the broker runs with.
        #[derive(Debug, Clone)]
        pub struct Config {
            $( #[doc = $help] pub $field: $ty, )*
        }

        impl Config {
            /// Merge flags over the file over the environment over defaults.
            pub fn merge(
                flags: Flags,
                file: FileConfig,
                env: &dyn Fn(&str) -> Option<String>,
            ) -> Result<Config, String> {
                Ok(Config {
                    $(
                        $field: match flags.$field.or(file.$field) {
                            Some(v) => v,
                            None => match env($env) {
                                Some(raw) => ($parse)(raw.as_str())
                                    .map_err(|e| format!("environment variable {}: {}", $env, e))?,
                                None => $default,
                            },
                        },
                    )*
                })
            }
        }
    };
}

/// A positive rate, as Kafka's double (`1.7976931348623157E308`, its default, is no limit).
fn parse_bytes_per_second(s: &str) -> Result<u64, String> {
    match s.trim().parse::<f64>() {
        Ok(rate) if rate >= 1.0 => Ok(if rate >= u64::MAX as f64 {
            u64::MAX
        } else {
            rate as u64
        }),
        Ok(_) => Err(format!("'{s}': must be at least 1 byte per second")),
        Err(e) => Err(format!("'{s}': {e}")),
    }
}

fn parse_from_str<T: FromStr>(s: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    s.parse::<T>().map_err(|e| format!("'{s}': {e}"))
}

/// The controller quorum: voter ids and their internal listener addresses, from
/// `1@host:port,2@host:port,...`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Voters(pub Vec<(i32, String)>);

impl FromStr for Voters {
    type Err = String;
    fn from_str(s: &str) -> Result<Voters, String> {
        let mut voters: Vec<(i32, String)> = Vec::new();
        for item in s.split(',').map(str::trim).filter(|item| !item.is_empty()) {
            let (id, address) = item
                .split_once('@')
                .ok_or_else(|| format!("voter '{item}' is not ID@HOST:PORT"))?;
            let id: i32 = id
                .parse()
                .map_err(|_| format!("voter '{item}' has a bad id '{id}'"))?;
            if id < 0 {
                return Err(format!("voter '{item}': ids are non-negative"));
            }
            let (host, port) = address
                .rsplit_once(':')
                .ok_or_else(|| format!("voter '{item}' has no port"))?;
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(format!("voter '{item}' is not ID@HOST:PORT"));
            }
            if voters.iter().any(|(existing, _)| *existing == id) {
                return Err(format!("voter id {id} is listed twice"));
            }
            voters.push((id, address.to_string()));
        }
        Ok(Voters(voters))
    }
}

impl<'de> Deserialize<'de> for Voters {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn parse_durability(s: &str) -> Result<Durability, String> {
    s.parse::<Durability>().map_err(|e| e.to_string())
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

options! {
    "This broker's id in the cluster"
    node_id: i32 = 1, "1", "node-id", "SLUICE_NODE_ID", parse_from_str::<i32>;
    "Directory holding the partition logs and metadata"
    data_dir: PathBuf = PathBuf::from("./sluice-data"), "./sluice-data", "data-dir", "SLUICE_DATA_DIR", parse_from_str::<PathBuf>;
    "Address the Kafka listener binds to"
    listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 9092)), "127.0.0.1:9092", "listen", "SLUICE_LISTEN", parse_from_str::<SocketAddr>;
    "HOST:PORT clients are told to connect to (default: the listen address)"
    advertised_listener: String = String::new(), "the listen address", "advertised-listener", "SLUICE_ADVERTISED_LISTENER", parse_from_str::<String>;
    "Address serving Prometheus metrics at /metrics"
    metrics_listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 9644)), "127.0.0.1:9644", "metrics-listen", "SLUICE_METRICS_LISTEN", parse_from_str::<SocketAddr>;
    "Create unknown topics a Metadata request names, when the client allows it (Kafka auto.create.topics.enable; never from Produce) (true|false)"
    auto_create_topics: bool = true, "true", "auto-create-topics", "SLUICE_AUTO_CREATE_TOPICS", parse_bool;
    "Partitions of a topic created without a partition count (Kafka num.partitions)"
    default_partitions: i32 = 1, "1", "default-partitions", "SLUICE_DEFAULT_PARTITIONS", parse_from_str::<i32>;
    "Segment size in bytes before a new segment is rolled (Kafka segment.bytes)"
    segment_bytes: u64 = 1 << 30, "1073741824 (1 GiB)", "segment-bytes", "SLUICE_SEGMENT_BYTES", parse_from_str::<u64>;
    "Segment age in milliseconds before a new segment is rolled (Kafka segment.ms)"
    segment_ms: u64 = 7 * DAY_MS as u64, "604800000 (7 days)", "segment-ms", "SLUICE_SEGMENT_MS", parse_from_str::<u64>;
    "Delete segments older than this many milliseconds; -1 keeps them forever (retention.ms)"
    retention_ms: i64 = 7 * DAY_MS, "604800000 (7 days)", "retention-ms", "SLUICE_RETENTION_MS", parse_from_str::<i64>;
    "Delete old segments while a partition is larger than this many bytes; -1 = no limit"
    retention_bytes: i64 = -1, "-1", "retention-bytes", "SLUICE_RETENTION_BYTES", parse_from_str::<i64>;
    "How often the retention task runs, in milliseconds"
    retention_check_interval_ms: u64 = 300_000, "300000 (5 minutes)", "retention-check-interval-ms", "SLUICE_RETENTION_CHECK_INTERVAL_MS", parse_from_str::<u64>;
    "How often the log cleaner looks for compacted partitions due for cleaning (Kafka log.cleaner.backoff.ms)"
    log_cleaner_backoff_ms: u64 = 15_000, "15000", "log-cleaner-backoff-ms", "SLUICE_LOG_CLEANER_BACKOFF_MS", parse_from_str::<u64>;
    "Memory for the log cleaner's key map, in bytes: a pass cleans as far as this many keys' entries reach (Kafka log.cleaner.dedupe.buffer.size)"
    log_cleaner_dedupe_buffer_size: u64 = 128 << 20, "134217728 (128 MiB)", "log-cleaner-dedupe-buffer-size", "SLUICE_LOG_CLEANER_DEDUPE_BUFFER_SIZE", parse_from_str::<u64>;
    "Bytes per second the log cleaner may read plus write; a decimal number, e.g. 5e7 (Kafka log.cleaner.io.max.bytes.per.second)"
    log_cleaner_io_max_bytes_per_second: u64 = u64::MAX, "unlimited", "log-cleaner-io-max-bytes-per-second", "SLUICE_LOG_CLEANER_IO_MAX_BYTES_PER_SECOND", parse_bytes_per_second;
    "replicated: acknowledge from the page cache; fsync: group-commit fsync before acks=all answers and records become visible"
    durability: Durability = Durability::Replicated, "replicated", "durability", "SLUICE_DURABILITY", parse_durability;
    "Largest record batch accepted, in bytes (Kafka message.max.bytes)"
    message_max_bytes: usize = 1_048_588, "1048588", "message-max-bytes", "SLUICE_MESSAGE_MAX_BYTES", parse_from_str::<usize>;
    "Largest request frame accepted, in bytes (Kafka socket.request.max.bytes)"
    frame_bytes_max: usize = 100 * 1024 * 1024, "104857600 (100 MiB)", "frame-bytes-max", "SLUICE_FRAME_BYTES_MAX", parse_from_str::<usize>;
    "Largest fetch response, in bytes (Kafka fetch.max.bytes)"
    fetch_bytes_max: usize = 55 * 1024 * 1024, "57671680 (55 MiB)", "fetch-bytes-max", "SLUICE_FETCH_BYTES_MAX", parse_from_str::<usize>;
    "Incremental fetch sessions (KIP-227) kept at once; 0 turns them off and every fetch is a full one (Kafka max.incremental.fetch.session.cache.slots)"
    fetch_session_cache_slots: usize = 1000, "1000", "fetch-session-cache-slots", "SLUICE_FETCH_SESSION_CACHE_SLOTS", parse_from_str::<usize>;
    "Maximum open client connections; further connections are closed at once"
    connections_max: usize = 4096, "4096", "connections-max", "SLUICE_CONNECTIONS_MAX", parse_from_str::<usize>;
    "Close a connection that completed no request and had nothing left to answer for this many milliseconds; a client holding half a frame counts as idle (Kafka connections.max.idle.ms)"
    connections_max_idle_ms: u64 = 600_000, "600000 (10 min)", "connections-max-idle-ms", "SLUICE_CONNECTIONS_MAX_IDLE_MS", parse_from_str::<u64>;
    "Bytes of client requests (and consumer fetch responses) held until their replies are written, across all connections; when they are all taken, sockets are not read until some come back and fetches answer less (Kafka queued.max.request.bytes, unbounded by default there). At least frame-bytes-max"
    queued_max_request_bytes: usize = 256 * 1024 * 1024, "268435456 (256 MiB)", "queued-max-request-bytes", "SLUICE_QUEUED_MAX_REQUEST_BYTES", parse_from_str::<usize>;
    "Requests read ahead per connection while earlier ones are still being answered"
    in_flight_requests_max: usize = 32, "32", "in-flight-requests-max", "SLUICE_IN_FLIGHT_REQUESTS_MAX", parse_from_str::<usize>;
    "Milliseconds to let in-flight requests finish on SIGTERM before closing connections"
    shutdown_timeout_ms: u64 = 10_000, "10000", "shutdown-timeout-ms", "SLUICE_SHUTDOWN_TIMEOUT_MS", parse_from_str::<u64>;
    "Address of the internal listener carrying controller (Raft) and broker-to-controller traffic; required with --controller-voters"
    internal_listen: String = String::new(), "none (single node)", "internal-listen", "SLUICE_INTERNAL_LISTEN", parse_from_str::<String>;
    "The controller quorum as ID@HOST:PORT,...; each voter's address is its --internal-listen. Empty: this node is a single-node cluster and its own controller"
    controller_voters: Voters = Voters::default(), "none (single node)", "controller-voters", "SLUICE_CONTROLLER_VOTERS", parse_from_str::<Voters>;
    "Milliseconds between a broker's heartbeats to the active controller"
    broker_heartbeat_interval_ms: u64 = 500, "500", "broker-heartbeat-interval-ms", "SLUICE_BROKER_HEARTBEAT_INTERVAL_MS", parse_from_str::<u64>;
    "A broker not heard from for this many milliseconds is fenced: removed from ISRs, its leaderships moved (Kafka broker.session.timeout.ms)"
    broker_session_timeout_ms: u64 = 9_000, "9000", "broker-session-timeout-ms", "SLUICE_BROKER_SESSION_TIMEOUT_MS", parse_from_str::<u64>;
    "A follower that has not caught up for this many milliseconds leaves the ISR (Kafka replica.lag.time.max.ms)"
    replica_lag_time_max_ms: u64 = 30_000, "30000", "replica-lag-time-max-ms", "SLUICE_REPLICA_LAG_TIME_MAX_MS", parse_from_str::<u64>;
    "Longest a follower's fetch waits at the leader for new records, in milliseconds (Kafka replica.fetch.wait.max.ms)"
    replica_fetch_wait_max_ms: u64 = 500, "500", "replica-fetch-wait-max-ms", "SLUICE_REPLICA_FETCH_WAIT_MAX_MS", parse_from_str::<u64>;
    "Default min.insync.replicas of topics: acks=all needs this many in-sync replicas (clamped to the replication factor)"
    min_insync_replicas: i32 = 1, "1", "min-insync-replicas", "SLUICE_MIN_INSYNC_REPLICAS", parse_from_str::<i32>;
    "Replication factor of topics created without one (auto-created topics included; Kafka default.replication.factor)"
    default_replication_factor: i16 = 1, "1", "default-replication-factor", "SLUICE_DEFAULT_REPLICATION_FACTOR", parse_from_str::<i16>;
    "Partitions of the internal __consumer_offsets topic, created on first use; never change it afterwards: every group would move (Kafka offsets.topic.num.partitions)"
    offsets_topic_num_partitions: i32 = 50, "50", "offsets-topic-num-partitions", "SLUICE_OFFSETS_TOPIC_NUM_PARTITIONS", parse_from_str::<i32>;
    "Segment size of __consumer_offsets, set when it is created (Kafka offsets.topic.segment.bytes)"
    offsets_topic_segment_bytes: u64 = 100 << 20, "104857600 (100 MiB)", "offsets-topic-segment-bytes", "SLUICE_OFFSETS_TOPIC_SEGMENT_BYTES", parse_from_str::<u64>;
    "Replication factor of __consumer_offsets, clamped to the brokers there are when it is created (Kafka offsets.topic.replication.factor)"
    offsets_topic_replication_factor: i16 = 3, "3", "offsets-topic-replication-factor", "SLUICE_OFFSETS_TOPIC_REPLICATION_FACTOR", parse_from_str::<i16>;
    "Shortest session timeout a group member may ask for (Kafka group.min.session.timeout.ms)"
    group_min_session_timeout_ms: i32 = 6_000, "6000", "group-min-session-timeout-ms", "SLUICE_GROUP_MIN_SESSION_TIMEOUT_MS", parse_from_str::<i32>;
    "Longest session timeout a group member may ask for (Kafka group.max.session.timeout.ms)"
    group_max_session_timeout_ms: i32 = 1_800_000, "1800000", "group-max-session-timeout-ms", "SLUICE_GROUP_MAX_SESSION_TIMEOUT_MS", parse_from_str::<i32>;
    "Most members a classic group accepts (Kafka group.max.size)"
    group_max_size: i32 = i32::MAX, "2147483647", "group-max-size", "SLUICE_GROUP_MAX_SIZE", parse_from_str::<i32>;
    "How long the first rebalance of an empty group waits for more members, extended while they keep joining (Kafka group.initial.rebalance.delay.ms)"
    group_initial_rebalance_delay_ms: i32 = 3_000, "3000", "group-initial-rebalance-delay-ms", "SLUICE_GROUP_INITIAL_REBALANCE_DELAY_MS", parse_from_str::<i32>;
    "How long committed offsets are kept: from when a group with members became empty, else from the commit (Kafka offsets.retention.minutes)"
    offsets_retention_minutes: i64 = 10_080, "10080 (7 days)", "offsets-retention-minutes", "SLUICE_OFFSETS_RETENTION_MINUTES", parse_from_str::<i64>;
    "How often expired committed offsets are removed (Kafka offsets.retention.check.interval.ms)"
    offsets_retention_check_interval_ms: u64 = 600_000, "600000", "offsets-retention-check-interval-ms", "SLUICE_OFFSETS_RETENTION_CHECK_INTERVAL_MS", parse_from_str::<u64>;
    "How often the group coordinator refreshes its group metrics: groups by state, members, rebalances and consumer lag (sluice_group_lag)"
    group_metrics_interval_ms: u64 = 10_000, "10000", "group-metrics-interval-ms", "SLUICE_GROUP_METRICS_INTERVAL_MS", parse_from_str::<u64>;
    "Session timeout of consumer group members (KIP-848, group.protocol=consumer): a member that does not heartbeat for this long is removed (Kafka group.consumer.session.timeout.ms)"
    group_consumer_session_timeout_ms: i32 = 45_000, "45000", "group-consumer-session-timeout-ms", "SLUICE_GROUP_CONSUMER_SESSION_TIMEOUT_MS", parse_from_str::<i32>;
    "How often consumer group members (KIP-848) are told to heartbeat (Kafka group.consumer.heartbeat.interval.ms)"
    group_consumer_heartbeat_interval_ms: i32 = 5_000, "5000", "group-consumer-heartbeat-interval-ms", "SLUICE_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS", parse_from_str::<i32>;
    "Default unclean.leader.election.enable of topics: elect a leader from outside the ISR when no in-sync replica is left (may lose acknowledged records)"
    unclean_leader_election: bool = false, "false", "unclean-leader-election", "SLUICE_UNCLEAN_LEADER_ELECTION", parse_bool;
    "This broker's rack (availability zone); consumers in the same rack may fetch from it as a follower (KIP-392), and replicas are spread across racks. Empty: no rack"
    rack: String = String::new(), "none", "rack", "SLUICE_RACK", parse_from_str::<String>;
    "Move leadership back to preferred replicas when a broker's imbalance passes the threshold (Kafka auto.leader.rebalance.enable)"
    auto_leader_rebalance: bool = true, "true", "auto-leader-rebalance", "SLUICE_AUTO_LEADER_REBALANCE", parse_bool;
    "How often the active controller checks leader imbalance, in milliseconds (Kafka leader.imbalance.check.interval.seconds)"
    leader_imbalance_check_interval_ms: u64 = 300_000, "300000", "leader-imbalance-check-interval-ms", "SLUICE_LEADER_IMBALANCE_CHECK_INTERVAL_MS", parse_from_str::<u64>;
    "Percentage of a broker's preferred partitions it may not lead before the rebalance acts (Kafka leader.imbalance.per.broker.percentage)"
    leader_imbalance_per_broker_percentage: u32 = 10, "10", "leader-imbalance-per-broker-percentage", "SLUICE_LEADER_IMBALANCE_PER_BROKER_PERCENTAGE", parse_from_str::<u32>;
    "Bytes per second a leader sends to replicas a reassignment is adding (all of them together); 0 = no limit (Kafka leader.replication.throttled.rate)"
    reassignment_throttle_bytes_per_sec: u64 = 0, "0 (no limit)", "reassignment-throttle-bytes-per-sec", "SLUICE_REASSIGNMENT_THROTTLE_BYTES_PER_SEC", parse_from_str::<u64>;
    "Export the series labelled by topic and partition: per-partition and per-follower gauges (high watermark, log end, ISR size, follower lag) and the per-topic sluice_topic_* counters; turn off on brokers with many partitions to bound label cardinality"
    metrics_per_partition: bool = true, "true", "metrics-per-partition", "SLUICE_METRICS_PER_PARTITION", parse_bool;
    "Log line format: text or json. The level comes from RUST_LOG (default info,openraft=warn; e.g. RUST_LOG=sluice_broker=debug)"
    log_format: LogFormat = LogFormat::Text, "text", "log-format", "SLUICE_LOG_FORMAT", parse_from_str::<LogFormat>;
}

impl Config {
    /// Load from the process's flags, the TOML file they name, and the environment.
    pub fn load() -> Result<Config, String> {
        Self::load_from(Flags::parse(), &|name| std::env::var(name).ok())
    }

    pub fn load_from(flags: Flags, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, String> {
        let config_path = flags
            .config
            .clone()
            .or_else(|| env("SLUICE_CONFIG").map(PathBuf::from));
        let file = match config_path {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| format!("config file {}: {e}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let config = Config::merge(flags, file, env)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.default_partitions < 1 {
            return Err(format!(
                "default-partitions must be at least 1, got {}",
                self.default_partitions
            ));
        }
        if self.segment_bytes < 1024 {
            return Err(format!(
                "segment-bytes must be at least 1024, got {}",
                self.segment_bytes
            ));
        }
        if self.message_max_bytes < 64 || self.message_max_bytes > self.frame_bytes_max {
            return Err(format!(
                "message-max-bytes must be between 64 and frame-bytes-max ({}), got {}",
                self.frame_bytes_max, self.message_max_bytes
            ));
        }
        if self.queued_max_request_bytes < self.frame_bytes_max {
            return Err(format!(
                "queued-max-request-bytes ({}) must be at least frame-bytes-max ({}): a request of the largest size must fit",
                self.queued_max_request_bytes, self.frame_bytes_max
            ));
        }
        if self.connections_max == 0
            || self.in_flight_requests_max == 0
            || self.connections_max_idle_ms == 0
        {
            return Err(
                "connections-max, in-flight-requests-max and connections-max-idle-ms must be at least 1"
                    .into(),
            );
        }
        if self.retention_ms < -1 || self.retention_bytes < -1 {
            return Err(
                "retention-ms and retention-bytes must be -1 (no limit) or positive".into(),
            );
        }
        if self.broker_heartbeat_interval_ms == 0
            || self.broker_session_timeout_ms <= self.broker_heartbeat_interval_ms
        {
            return Err(format!(
                "broker-session-timeout-ms ({}) must be larger than broker-heartbeat-interval-ms ({}), which must be positive",
                self.broker_session_timeout_ms, self.broker_heartbeat_interval_ms
            ));
        }
        if self.replica_lag_time_max_ms == 0 || self.replica_fetch_wait_max_ms == 0 {
            return Err(
                "replica-lag-time-max-ms and replica-fetch-wait-max-ms must be positive".into(),
            );
        }
        if !(1..=crate::storage::TOPIC_PARTITIONS_MAX).contains(&self.offsets_topic_num_partitions)
            || self.offsets_topic_replication_factor < 1
        {
            return Err(format!(
                "offsets-topic-num-partitions ({}) must be 1 to {} and offsets-topic-replication-factor ({}) at least 1",
                self.offsets_topic_num_partitions,
                crate::storage::TOPIC_PARTITIONS_MAX,
                self.offsets_topic_replication_factor
            ));
        }
        if self.group_consumer_session_timeout_ms < 1
            || self.group_consumer_heartbeat_interval_ms < 1
            || self.group_consumer_heartbeat_interval_ms >= self.group_consumer_session_timeout_ms
        {
            return Err(format!(
                "group-consumer-heartbeat-interval-ms ({}) must be positive and below group-consumer-session-timeout-ms ({})",
                self.group_consumer_heartbeat_interval_ms, self.group_consumer_session_timeout_ms
            ));
        }
        if self.offsets_retention_minutes < 1 {
            return Err(format!(
                "offsets-retention-minutes ({}) must be at least 1",
                self.offsets_retention_minutes
            ));
        }
        if self.group_min_session_timeout_ms < 0
            || self.group_max_session_timeout_ms < self.group_min_session_timeout_ms
            || self.group_max_size < 1
            || self.group_initial_rebalance_delay_ms < 0
        {
            return Err(format!(
                "group settings out of range: group-min-session-timeout-ms {} must be >= 0 and <= group-max-session-timeout-ms {}, group-max-size {} >= 1, group-initial-rebalance-delay-ms {} >= 0",
                self.group_min_session_timeout_ms,
                self.group_max_session_timeout_ms,
                self.group_max_size,
                self.group_initial_rebalance_delay_ms
            ));
        }
        if self.min_insync_replicas < 1 || self.default_replication_factor < 1 {
            return Err(format!(
                "min-insync-replicas ({}) and default-replication-factor ({}) must be at least 1",
                self.min_insync_replicas, self.default_replication_factor
            ));
        }
        let internal_listen = self.internal_listen()?;
        if !self.controller_voters.0.is_empty() {
            let Some(internal) = internal_listen else {
                return Err(
                    "--controller-voters needs --internal-listen (this node's controller address)"
                        .into(),
                );
            };
            if let Some((_, address)) = self
                .controller_voters
                .0
                .iter()
                .find(|(id, _)| *id == self.node_id)
            {
                let port_matches = address
                    .rsplit_once(':')
                    .and_then(|(_, port)| port.parse::<u16>().ok())
                    == Some(internal.port());
                if !port_matches {
                    return Err(format!(
                        "node {} is voter {address} but --internal-listen is {internal}: a voter's address is its internal listener",
                        self.node_id
                    ));
                }
            }
        }
        self.advertised()?;
        Ok(())
    }

    /// The internal listener's address, if one is configured.
    pub fn internal_listen(&self) -> Result<Option<SocketAddr>, String> {
        if self.internal_listen.is_empty() {
            return Ok(None);
        }
        self.internal_listen
            .parse()
            .map(Some)
            .map_err(|e| format!("internal-listen '{}': {e}", self.internal_listen))
    }

    /// The host and port clients are told to connect to.
    pub fn advertised(&self) -> Result<(String, i32), String> {
        if self.advertised_listener.is_empty() {
            return Ok((self.listen.ip().to_string(), i32::from(self.listen.port())));
        }
        let (host, port) = self.advertised_listener.rsplit_once(':').ok_or_else(|| {
            format!(
                "advertised-listener '{}' is not HOST:PORT",
                self.advertised_listener
            )
        })?;
        let port: u16 = port.parse().map_err(|_| {
            format!(
                "advertised-listener '{}' has a bad port",
                self.advertised_listener
            )
        })?;
        Ok((
            host.trim_matches(|c| c == '[' || c == ']').to_string(),
            i32::from(port),
        ))
    }

    /// Defaults for every partition log, before per-topic overrides.
    /// The group coordinator's settings.
    pub fn coordinator_config(&self) -> crate::group::coordinator::CoordinatorConfig {
        crate::group::coordinator::CoordinatorConfig {
            group: self.classic_group_config(),
            consumer: crate::group::consumer::ConsumerGroupConfig {
                session_timeout_ms: self.group_consumer_session_timeout_ms,
                heartbeat_interval_ms: self.group_consumer_heartbeat_interval_ms,
                ..Default::default()
            },
            offsets_retention_ms: self.offsets_retention_minutes.saturating_mul(60_000),
            offsets_retention_check_interval: std::time::Duration::from_millis(
                self.offsets_retention_check_interval_ms.max(1),
            ),
            metrics_interval: std::time::Duration::from_millis(
                self.group_metrics_interval_ms.max(1),
            ),
        }
    }

    /// The group coordinator's classic-group settings.
    pub fn classic_group_config(&self) -> crate::group::classic::ClassicGroupConfig {
        crate::group::classic::ClassicGroupConfig {
            session_timeout_ms_min: self.group_min_session_timeout_ms,
            session_timeout_ms_max: self.group_max_session_timeout_ms,
            group_size_max: usize::try_from(self.group_max_size).unwrap_or(usize::MAX),
            initial_rebalance_delay_ms: self.group_initial_rebalance_delay_ms,
            ..Default::default()
        }
    }

    pub fn log_defaults(&self) -> LogConfig {
        LogConfig {
            segment_bytes_max: self.segment_bytes,
            segment_ms_max: self.segment_ms,
            retention_ms: u64::try_from(self.retention_ms).ok(),
            retention_bytes: u64::try_from(self.retention_bytes).ok(),
            batch_bytes_max: self.message_max_bytes,
            durability: self.durability,
            ..LogConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_match_the_documentation() {
        let config = Config::load_from(Flags::default(), &no_env).unwrap();
        assert_eq!(config.node_id, 1);
        assert_eq!(config.listen.to_string(), "127.0.0.1:9092");
        assert_eq!(config.metrics_listen.to_string(), "127.0.0.1:9644");
        assert_eq!(config.data_dir, PathBuf::from("./sluice-data"));
        assert!(config.auto_create_topics);
        assert_eq!(config.message_max_bytes, 1_048_588);
    }

    #[test]
    fn flags_beat_file_beat_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.toml");
        std::fs::write(&path, "node_id = 7\ndefault_partitions = 3\n").unwrap();
        let flags = Flags::parse_from([
            "sluiced",
            "--config",
            path.to_str().unwrap(),
            "--node-id",
            "9",
        ]);
        let env = |name: &str| match name {
            "SLUICE_NODE_ID" => Some("5".to_string()),
            "SLUICE_DEFAULT_PARTITIONS" => Some("4".to_string()),
            "SLUICE_SEGMENT_BYTES" => Some("4096".to_string()),
            _ => None,
        };
        let config = Config::load_from(flags, &env).unwrap();
        assert_eq!(config.node_id, 9, "flag wins");
        assert_eq!(config.default_partitions, 3, "file beats environment");
        assert_eq!(config.segment_bytes, 4096, "environment beats default");
    }

    #[test]
    fn bad_values_are_reported_with_their_source() {
        let env = |name: &str| (name == "SLUICE_DURABILITY").then(|| "sometimes".to_string());
        let err = Config::load_from(Flags::default(), &env).unwrap_err();
        assert!(err.contains("SLUICE_DURABILITY"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "no_such_option = 1\n").unwrap();
        let flags = Flags::parse_from(["sluiced", "--config", path.to_str().unwrap()]);
        let err = Config::load_from(flags, &no_env).unwrap_err();
        assert!(err.contains("no_such_option"), "{err}");
    }

    #[test]
    fn the_request_pool_must_hold_the_largest_request() {
        let config = Config::load_from(Flags::default(), &no_env).unwrap();
        assert_eq!(config.queued_max_request_bytes, 256 << 20);
        let flags = Flags::parse_from([
            "sluiced",
            "--queued-max-request-bytes",
            "1048576",
            "--frame-bytes-max",
            "2097152",
        ]);
        let err = Config::load_from(flags, &no_env).unwrap_err();
        assert!(err.contains("queued-max-request-bytes"), "{err}");
    }

    #[test]
    fn advertised_listener_defaults_to_listen_address() {
        let flags = Flags::parse_from(["sluiced", "--listen", "127.0.0.1:19092"]);
        let config = Config::load_from(flags, &no_env).unwrap();
        assert_eq!(
            config.advertised().unwrap(),
            ("127.0.0.1".to_string(), 19092)
        );
        let flags = Flags::parse_from(["sluiced", "--advertised-listener", "broker1:9092"]);
        let config = Config::load_from(flags, &no_env).unwrap();
        assert_eq!(config.advertised().unwrap(), ("broker1".to_string(), 9092));
    }

    #[test]
    fn controller_voters_parse_from_flags_and_toml() {
        let flags = Flags::parse_from([
            "sluiced",
            "--node-id",
            "2",
            "--internal-listen",
            "127.0.0.1:9102",
            "--controller-voters",
            "1@127.0.0.1:9101,2@127.0.0.1:9102,3@host3:9103",
        ]);
        let config = Config::load_from(flags, &no_env).unwrap();
        assert_eq!(
            config.controller_voters.0,
            vec![
                (1, "127.0.0.1:9101".to_string()),
                (2, "127.0.0.1:9102".to_string()),
                (3, "host3:9103".to_string())
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.toml");
        std::fs::write(
            &path,
            "node_id = 1\ninternal_listen = \"127.0.0.1:9101\"\ncontroller_voters = \"1@127.0.0.1:9101\"\n",
        )
        .unwrap();
        let flags = Flags::parse_from(["sluiced", "--config", path.to_str().unwrap()]);
        let config = Config::load_from(flags, &no_env).unwrap();
        assert_eq!(
            config.controller_voters.0,
            vec![(1, "127.0.0.1:9101".to_string())]
        );
    }

    #[test]
    fn bad_cluster_settings_are_refused_with_a_reason() {
        for (args, expected) in [
            (
                vec!["--controller-voters", "1@127.0.0.1:9101"],
                "needs --internal-listen",
            ),
            (vec!["--controller-voters", "x@h:1"], "bad id"),
            (vec!["--controller-voters", "1@h:1,1@h:2"], "listed twice"),
            (vec!["--controller-voters", "1@nohostport"], "no port"),
            (
                vec![
                    "--internal-listen",
                    "127.0.0.1:7",
                    "--controller-voters",
                    "1@127.0.0.1:8",
                ],
                "a voter's address is its internal listener",
            ),
            (
                vec![
                    "--broker-session-timeout-ms",
                    "100",
                    "--broker-heartbeat-interval-ms",
                    "500",
                ],
                "broker-session-timeout-ms",
            ),
            (vec!["--min-insync-replicas", "0"], "min-insync-replicas"),
        ] {
            let flags =
                Flags::try_parse_from(std::iter::once("sluiced").chain(args.iter().copied()));
            let error = match flags {
                Err(error) => error.to_string(),
                Ok(flags) => Config::load_from(flags, &no_env).unwrap_err(),
            };
            assert!(error.contains(expected), "{args:?}: {error}");
        }
    }
}
