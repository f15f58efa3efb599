//! A blocking, minimal Kafka client for tests that need to send exact bytes: well-formed
//! requests through the `kafka-protocol` codecs, or deliberately broken frames.
//!
//! Besides the connection it has builders for the single-partition requests the tests
//! send (Produce v9, Fetch v11, Metadata v9), so each test states only what it varies.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, DescribeQuorumRequest, DescribeQuorumResponse,
    FetchRequest, FetchResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use sluice_protocol::batch::Compression;
use sluice_protocol::header;
use sluice_protocol::records::{encode_batch, Record};

/// A raw connection with a 10-second read timeout.
pub struct RawConnection {
    stream: TcpStream,
    correlation_id: i32,
    /// Topics [`ensure_topic`](Self::ensure_topic) found with leaders.
    known_topics: std::collections::HashSet<String>,
}

impl RawConnection {
    pub fn connect(address: &str) -> std::io::Result<RawConnection> {
        let stream = TcpStream::connect(address)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        Ok(RawConnection {
            stream,
            correlation_id: 0,
            known_topics: Default::default(),
        })
    }

    /// Connect within `timeout`, and give reads and writes that timeout too (for asking
    /// brokers that may be dead or stopped).
    pub fn connect_timeout(address: &str, timeout: Duration) -> std::io::Result<RawConnection> {
        let socket_address: std::net::SocketAddr = address.parse().map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{address}: {e}"))
        })?;
        let stream = TcpStream::connect_timeout(&socket_address, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(RawConnection {
            stream,
            correlation_id: 0,
            known_topics: Default::default(),
        })
    }

    /// Do what a client does before its first produce to a topic: ask for its metadata with
    /// auto-creation allowed (brokers create topics only from Metadata, as Kafka does), until
    /// every partition has a leader (at most 10 s). Once per topic per connection; an error
    /// (a broker that does not answer) is left to the produce that follows.
    pub fn ensure_topic(&mut self, topic: &str) {
        if self.known_topics.contains(topic) {
            return;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            let request = MetadataRequest::default()
                .with_topics(Some(vec![
                    MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
                ]))
                .with_allow_auto_topic_creation(true);
            let Ok(response) =
                self.request::<_, MetadataResponse>(ApiKey::Metadata, METADATA_VERSION, &request)
            else {
                return;
            };
            let ready = response.topics.iter().all(|t| {
                t.error_code == 0
                    && !t.partitions.is_empty()
                    && t.partitions.iter().all(|p| p.leader_id.0 >= 0)
            });
            if ready {
                self.known_topics.insert(topic.to_string());
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Change how long a read waits for the broker (10 s after [`connect`](Self::connect)).
    pub fn set_read_timeout(&mut self, timeout: Duration) -> std::io::Result<()> {
        self.stream.set_read_timeout(Some(timeout))
    }

    /// Send a well-formed request and read its response.
    pub fn request<Req: Encodable, Resp: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        request: &Req,
    ) -> std::io::Result<Resp> {
        self.send(api_key, version, request)?;
        self.read_response(api_key, version)
    }

    /// Read the response to the last request sent with [`send`](Self::send) (for a test
    /// that sends now and reads later, e.g. across a SIGSTOP of the broker).
    pub fn read_response<Resp: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
    ) -> std::io::Result<Resp> {
        let mut frame = self.read_frame()?;
        let (correlation_id, response) =
            header::decode_response::<Resp>(api_key, version, &mut frame)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
        assert_eq!(
            correlation_id, self.correlation_id,
            "responses must come back in order"
        );
        Ok(response)
    }

    /// Send a well-formed request without reading a response (acks=0).
    pub fn send<Req: Encodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        request: &Req,
    ) -> std::io::Result<()> {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("sluice-raw-test")));
        let frame = header::encode_request(api_key, &header, request)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        self.stream.write_all(&frame)
    }

    /// Write arbitrary bytes.
    pub fn write_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Read one response frame (without its length prefix).
    pub fn read_frame(&mut self) -> std::io::Result<Bytes> {
        let mut length = [0u8; 4];
        self.stream.read_exact(&mut length)?;
        let length = i32::from_be_bytes(length);
        let length = usize::try_from(length)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "negative length"))?;
        let mut body = vec![0u8; length];
        self.stream.read_exact(&mut body)?;
        Ok(Bytes::from(body))
    }

    /// Whether the broker closed the connection (read returns EOF or reset) within the
    /// read timeout.
    pub fn is_closed_by_peer(&mut self) -> bool {
        let mut buf = [0u8; 64];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }

    pub fn last_correlation_id(&self) -> i32 {
        self.correlation_id
    }
}

/// The Produce version the builders here are sent at.
pub const PRODUCE_VERSION: i16 = 9;
/// The Fetch version the builders here are sent at.
pub const FETCH_VERSION: i16 = 11;
/// How long an acks=all produce may wait for the ISR (unused by acks 0 and 1).
pub const PRODUCE_TIMEOUT_MS: i32 = 10_000;
/// The whole-response byte limit of [`fetch_request`]; the partition limit is what tests vary.
pub const FETCH_RESPONSE_BYTES_MAX: i32 = 50 << 20;

/// `topic` as the protocol's topic name.
pub fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// A Produce request carrying one record batch (`records`, already encoded) for one
/// partition.
pub fn produce_request(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(PRODUCE_TIMEOUT_MS)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])])
}

/// Produce one record batch and return the partition's (error code, base offset). Panics
/// if no response comes back, so not for acks=0.
pub fn produce_batch(
    conn: &mut RawConnection,
    topic: &str,
    partition: i32,
    records: Bytes,
    acks: i16,
) -> (i16, i64) {
    conn.ensure_topic(topic);
    let response: ProduceResponse = conn
        .request(
            ApiKey::Produce,
            PRODUCE_VERSION,
            &produce_request(topic, partition, records, acks),
        )
        .expect("produce response");
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// A consumer's Fetch of one partition from `offset` that answers at once (max wait 0,
/// min bytes 0); a long poll sets `with_max_wait_ms` and `with_min_bytes` on the result.
pub fn fetch_request(
    topic: &str,
    partition: i32,
    offset: i64,
    partition_max_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(FETCH_RESPONSE_BYTES_MAX)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(partition_max_bytes)])])
}

/// Send a Fetch and return its response; panics if none comes back.
pub fn fetch(conn: &mut RawConnection, request: &FetchRequest) -> FetchResponse {
    conn.request(ApiKey::Fetch, FETCH_VERSION, request)
        .expect("fetch response")
}

/// The Metadata version [`metadata`] asks at (flexible; leader epochs and controller id).
pub const METADATA_VERSION: i16 = 9;

/// Ask for the brokers, the controller and the given topics (all topics with `None`)
/// without auto-creating any.
pub fn metadata(
    conn: &mut RawConnection,
    topics: Option<&[&str]>,
) -> std::io::Result<MetadataResponse> {
    let request = MetadataRequest::default()
        .with_topics(topics.map(|topics| {
            topics
                .iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                .collect()
        }))
        .with_allow_auto_topic_creation(false);
    conn.request(ApiKey::Metadata, METADATA_VERSION, &request)
}

/// The controller quorum's leader (the active controller) as the node behind `conn` knows
/// it, from DescribeQuorum of `__cluster_metadata`-0: the leader answers it, any other node
/// names the leader it knows beside NOT_LEADER_OR_FOLLOWER. `None` while it knows none.
pub fn quorum_leader(conn: &mut RawConnection) -> Option<i32> {
    use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
    let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(topic_name("__cluster_metadata"))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let response: DescribeQuorumResponse =
        conn.request(ApiKey::DescribeQuorum, 1, &request).ok()?;
    let leader = response.topics.first()?.partitions.first()?.leader_id.0;
    (leader >= 0).then_some(leader)
}

/// CreateTopics for one topic with `configs` (Kafka topic configs such as
/// `("min.insync.replicas", "2")`), a 30 s timeout.
pub fn create_topics_request(
    name: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[(&str, &str)],
) -> CreateTopicsRequest {
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    let configs = configs
        .iter()
        .map(|(key, value)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(key.to_string()))
                .with_value(Some(StrBytes::from_string(value.to_string())))
        })
        .collect();
    CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)
            .with_configs(configs)])
        .with_timeout_ms(30_000)
}

/// The topic's id (KIP-516), from a Metadata v12 answer (nil if the topic is unknown).
pub fn topic_id(conn: &mut RawConnection, topic: &str) -> uuid::Uuid {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
        ]))
        .with_allow_auto_topic_creation(false);
    let response: MetadataResponse = conn
        .request(ApiKey::Metadata, 12, &request)
        .expect("metadata response");
    response.topics[0].topic_id
}

/// One uncompressed batch holding a record per value (no key, no headers).
pub fn value_batch<V: AsRef<[u8]>>(values: &[V]) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .map(|v| Record {
            value: Some(Bytes::copy_from_slice(v.as_ref())),
            timestamp: 1_700_000_000_000,
            ..Default::default()
        })
        .collect();
    encode_batch(&records, Compression::None).expect("encode a record batch")
}

/// Produce `values` as one batch and return the partition's (error code, base offset), or
/// the IO error when no response came back (connection closed, read timeout).
pub fn try_produce_values<V: AsRef<[u8]>>(
    conn: &mut RawConnection,
    topic: &str,
    partition: i32,
    values: &[V],
    acks: i16,
    timeout_ms: i32,
) -> std::io::Result<(i16, i64)> {
    conn.ensure_topic(topic);
    let request =
        produce_request(topic, partition, value_batch(values), acks).with_timeout_ms(timeout_ms);
    let response: ProduceResponse = conn.request(ApiKey::Produce, PRODUCE_VERSION, &request)?;
    produce_result(&response)
}

/// The (error code, base offset) of the single partition of a Produce response.
pub fn produce_result(response: &ProduceResponse) -> std::io::Result<(i16, i64)> {
    let p = response
        .responses
        .first()
        .and_then(|t| t.partition_responses.first())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "produce response without the partition",
            )
        })?;
    Ok((p.error_code, p.base_offset))
}

/// GET a path from an HTTP server on `address` (HOST:PORT) and return the body. Enough
/// HTTP/1.0 for the metrics endpoint.
pub fn http_get(address: &str, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    match response.split_once("\r\n\r\n") {
        Some((_, body)) => Ok(body.to_string()),
        None => Ok(response),
    }
}

/// Scrape `/metrics` at `address` every 20 ms until `check` accepts the text, at most
/// `timeout`; the accepted text, or the last one seen (empty if the broker never answered)
/// for the caller's panic message.
pub fn wait_for_metrics(
    address: &str,
    timeout: Duration,
    check: impl Fn(&str) -> bool,
) -> Result<String, String> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let text = http_get(address, "/metrics").unwrap_or_default();
        if check(&text) {
            return Ok(text);
        }
        if std::time::Instant::now() >= deadline {
            return Err(text);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sum of every sample of a Prometheus metric whose name and labels start with `prefix`.
pub fn metric_sum(metrics_text: &str, prefix: &str) -> f64 {
    metrics_text
        .lines()
        .filter(|line| !line.starts_with('#') && line.starts_with(prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The value of the one sample named exactly `series`: a metric name, or a name with its
/// labels as the exporter prints them (`name{topic="t",partition="0"}`). `None` if absent.
pub fn metric_value(metrics_text: &str, series: &str) -> Option<f64> {
    metrics_text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            if key == series {
                value.parse().ok()
            } else {
                None
            }
        })
}
