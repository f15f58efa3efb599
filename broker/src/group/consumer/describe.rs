//! ConsumerGroupDescribe for one group (Kafka's `ConsumerGroup.asDescribedGroup`).

use super::member::Member;
use super::types::{
    DescribedMember, DescribedTopicPartitions, GroupDescription, Partitions, TopicsSnapshot,
};
use super::ConsumerGroup;

/// ConsumerGroupDescribe v1's member type for a member using the consumer protocol.
const MEMBER_TYPE_CONSUMER: i8 = 1;

impl ConsumerGroup {
    /// The group as ConsumerGroupDescribe reports it. Topic names come from `topics`;
    /// partitions of topics it does not know (deleted) are left out, as Kafka does.
    pub fn describe(&self, topics: &TopicsSnapshot) -> GroupDescription {
        let members = self.data.members.values();
        GroupDescription {
            group_id: self.group_id.clone(),
            group_state: self.state().as_str(),
            group_epoch: self.data.group_epoch,
            assignment_epoch: self.data.assignment_epoch,
            assignor_name: self.preferred_assignor().name().to_string(),
            members: members.map(|m| self.describe_member(m, topics)).collect(),
        }
    }

    fn describe_member(&self, member: &Member, topics: &TopicsSnapshot) -> DescribedMember {
        let metadata = &member.metadata;
        let target = self.target_assignment(&member.member_id);
        DescribedMember {
            member_id: member.member_id.clone(),
            instance_id: metadata.instance_id.clone(),
            rack_id: metadata.rack_id.clone(),
            member_epoch: member.member_epoch(),
            client_id: metadata.client_id.clone(),
            client_host: metadata.client_host.clone(),
            subscribed_topic_names: metadata.subscribed_topic_names.clone(),
            subscribed_topic_regex: metadata.subscribed_topic_regex.clone(),
            assignment: described(&member.current.assigned_partitions, topics),
            target_assignment: described(&target, topics),
            member_type: MEMBER_TYPE_CONSUMER,
        }
    }
}

fn described(partitions: &Partitions, topics: &TopicsSnapshot) -> Vec<DescribedTopicPartitions> {
    partitions
        .iter()
        .filter_map(|(topic_id, set)| {
            let name = topics.name_of(*topic_id)?;
            Some(DescribedTopicPartitions {
                topic_id: *topic_id,
                topic_name: name.to_string(),
                partitions: set.iter().copied().collect(),
            })
        })
        .collect()
}
