//! What a chaos run runs against: a Sluice [`Cluster`] or an Apache Kafka
//! [`KafkaCluster`], behind one trait, so the same workload, nemesis and checker compare
//! the two. Process faults, the admin nemesis and (for a cluster started in a network lab)
//! the lab's faults work on both ([`ChaosTarget::lab_nodes`]); power cuts and clock jumps
//! need Sluice's harness ([`ChaosTarget::sluice`]).

use std::time::Duration;

use crate::cluster::PartitionState;
use crate::kafka_cluster::KafkaCluster;
use crate::netns::LabNodes;
use crate::raw::RawConnection;
use crate::Cluster;

/// A running cluster the harness can fault and question.
pub trait ChaosTarget {
    /// What the run's report calls it.
    fn name(&self) -> &'static str;
    fn bootstrap(&self) -> String;
    fn ids(&self) -> Vec<i32>;
    /// Running and not stopped.
    fn live_ids(&mut self) -> Vec<i32>;
    fn connect(&self, id: i32) -> std::io::Result<RawConnection>;
    fn create_topic(&mut self, name: &str, partitions: i32, rf: i16, configs: &[(&str, &str)]);
    fn partition_state(&mut self, topic: &str, partition: i32) -> Option<PartitionState>;
    fn controller_id(&mut self) -> Option<i32>;
    fn high_watermark(&mut self, topic: &str, partition: i32) -> Option<i64>;
    fn kill9(&mut self, id: i32);
    fn restart(&mut self, id: i32);
    fn restart_all(&mut self);
    fn sigstop(&mut self, id: i32);
    fn sigcont(&mut self, id: i32);
    fn sigterm(&mut self, id: i32);
    fn wait_exit(&mut self, id: i32, timeout: Duration);
    /// The tails of the nodes' logs.
    fn logs(&self) -> String;
    /// The Sluice cluster, for the faults only its harness has.
    fn sluice(&mut self) -> Option<&mut Cluster>;
    /// The nodes in the cluster's network lab, if it runs in one.
    fn lab_nodes(&self) -> Option<LabNodes<'_>>;
}

impl ChaosTarget for Cluster {
    fn name(&self) -> &'static str {
        "sluice"
    }
    fn bootstrap(&self) -> String {
        Cluster::bootstrap(self)
    }
    fn ids(&self) -> Vec<i32> {
        Cluster::ids(self)
    }
    fn live_ids(&mut self) -> Vec<i32> {
        Cluster::live_ids(self)
    }
    fn connect(&self, id: i32) -> std::io::Result<RawConnection> {
        Cluster::connect(self, id)
    }
    fn create_topic(&mut self, name: &str, partitions: i32, rf: i16, configs: &[(&str, &str)]) {
        Cluster::create_topic(self, name, partitions, rf, configs);
    }
    fn partition_state(&mut self, topic: &str, partition: i32) -> Option<PartitionState> {
        Cluster::partition_state(self, topic, partition)
    }
    fn controller_id(&mut self) -> Option<i32> {
        Cluster::controller_id(self)
    }
    fn high_watermark(&mut self, topic: &str, partition: i32) -> Option<i64> {
        Cluster::high_watermark(self, topic, partition)
    }
    fn kill9(&mut self, id: i32) {
        Cluster::kill9(self, id);
    }
    fn restart(&mut self, id: i32) {
        Cluster::restart(self, id);
    }
    fn restart_all(&mut self) {
        Cluster::restart_all(self);
    }
    fn sigstop(&mut self, id: i32) {
        Cluster::sigstop(self, id);
    }
    fn sigcont(&mut self, id: i32) {
        Cluster::sigcont(self, id);
    }
    fn sigterm(&mut self, id: i32) {
        Cluster::sigterm(self, id);
    }
    fn wait_exit(&mut self, id: i32, timeout: Duration) {
        Cluster::wait_exit(self, id, timeout);
    }
    fn logs(&self) -> String {
        Cluster::logs(self)
    }
    fn sluice(&mut self) -> Option<&mut Cluster> {
        Some(self)
    }
    fn lab_nodes(&self) -> Option<LabNodes<'_>> {
        Cluster::lab_nodes(self)
    }
}

impl ChaosTarget for KafkaCluster {
    fn name(&self) -> &'static str {
        "kafka"
    }
    fn bootstrap(&self) -> String {
        KafkaCluster::bootstrap(self)
    }
    fn ids(&self) -> Vec<i32> {
        KafkaCluster::ids(self)
    }
    fn live_ids(&mut self) -> Vec<i32> {
        KafkaCluster::live_ids(self)
    }
    fn connect(&self, id: i32) -> std::io::Result<RawConnection> {
        KafkaCluster::connect(self, id)
    }
    fn create_topic(&mut self, name: &str, partitions: i32, rf: i16, configs: &[(&str, &str)]) {
        KafkaCluster::create_topic(self, name, partitions, rf, configs);
    }
    fn partition_state(&mut self, topic: &str, partition: i32) -> Option<PartitionState> {
        KafkaCluster::partition_state(self, topic, partition)
    }
    fn controller_id(&mut self) -> Option<i32> {
        KafkaCluster::controller_id(self)
    }
    fn high_watermark(&mut self, topic: &str, partition: i32) -> Option<i64> {
        KafkaCluster::high_watermark(self, topic, partition)
    }
    fn kill9(&mut self, id: i32) {
        KafkaCluster::kill9(self, id);
    }
    fn restart(&mut self, id: i32) {
        KafkaCluster::restart(self, id);
    }
    fn restart_all(&mut self) {
        KafkaCluster::restart_all(self);
    }
    fn sigstop(&mut self, id: i32) {
        KafkaCluster::sigstop(self, id);
    }
    fn sigcont(&mut self, id: i32) {
        KafkaCluster::sigcont(self, id);
    }
    fn sigterm(&mut self, id: i32) {
        KafkaCluster::sigterm(self, id);
    }
    fn wait_exit(&mut self, id: i32, timeout: Duration) {
        KafkaCluster::wait_exit(self, id, timeout);
    }
    fn logs(&self) -> String {
        KafkaCluster::logs(self)
    }
    fn sluice(&mut self) -> Option<&mut Cluster> {
        None
    }
    fn lab_nodes(&self) -> Option<LabNodes<'_>> {
        KafkaCluster::lab_nodes(self)
    }
}
