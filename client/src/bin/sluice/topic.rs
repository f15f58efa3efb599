//! `sluice topic`: create, list, describe, grow (and alter the configs of) and delete topics,
//! and delete records. `topic describe` is an
//! operator view: gathered by [`crate::health::topic::topic_health`], printed by
//! [`crate::views::topic_health`].

use std::io::Write;
use std::time::Duration;

use clap::Subcommand;
use sluice_client::{Admin, ConfigOp};

use crate::output::Output;
use crate::{health, parse_key_value, view_admin, views};

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic; returns once every partition has a leader.
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions.
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        /// Replicas per partition.
        #[arg(long, default_value_t = 1)]
        replication_factor: i16,
        /// Topic config override, e.g. --config retention.ms=86400000 (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
    },
    /// List topics (internal topics are left out).
    List,
    /// Show a topic's partitions, replicas and their lag, and its config overrides.
    ///
    /// The config overrides, and per partition: leader, leader epoch, replicas,
    /// in-sync replicas (ISR), high watermark, and per replica its log end offset (asked of
    /// that replica's broker; "unreachable" if it cannot be asked), its lag in offsets (the
    /// leader's log end offset - its own) and its lag in ms: the age of the oldest record it
    /// lacks, i.e. now - the timestamp of the leader's record at the replica's log end
    /// offset (0 when caught up; "-" when that record is not yet below the high watermark,
    /// so not readable, or cannot be read). Under-replicated partitions (fewer in-sync
    /// replicas than replicas) are marked "!" and counted on the last line.
    Describe {
        /// Topic name.
        name: String,
        /// Show every config, not only the ones set on this topic.
        #[arg(long)]
        all_configs: bool,
        /// table, or json: one pretty-printed object {topic, internal, partition_count,
        /// replication_factor, configs: {name: value}, under_replicated_partitions,
        /// partitions: [{partition, leader, leader_epoch, replicas, isr, offline_replicas,
        /// high_watermark, under_replicated, replica_states: [{broker, leader, in_isr,
        /// log_end_offset, lag, lag_ms, unavailable: null or {kind: "unreachable" or
        /// "error", detail}}]}]}; unknown values are null.
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
        /// How long one broker may take to answer before its replicas count as unreachable.
        #[arg(long, default_value_t = 5000, value_name = "MS")]
        timeout_ms: u64,
    },
    /// Grow a topic to a larger number of partitions, and/or change its config overrides.
    ///
    /// Config changes apply live on every broker (as `kafka-configs --alter`); they are
    /// checked as at creation and all apply or none. `durability` is fixed at creation.
    #[command(group(clap::ArgGroup::new("change").required(true).multiple(true)
        .args(["partitions", "configs", "delete_configs"])))]
    Alter {
        /// Topic name.
        name: String,
        /// The new total number of partitions.
        #[arg(long)]
        partitions: Option<i32>,
        /// Set a config override, e.g. --config retention.ms=86400000 (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
        /// Remove a config override: the broker default applies again (repeatable).
        #[arg(long = "delete-config", value_name = "KEY")]
        delete_configs: Vec<String>,
    },
    /// Delete the records below an offset (as kafka-delete-records): the partitions' log
    /// start offsets move there on every replica; consumers can no longer read below it.
    DeleteRecords {
        /// Topic name.
        name: String,
        /// The partition (repeatable; default: every partition).
        #[arg(long = "partition")]
        partitions: Vec<i32>,
        /// Delete every record below this offset; -1 (the default) deletes everything below
        /// the high watermark.
        #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
        before: i64,
    },
    /// Delete a topic and its data.
    Delete {
        /// Topic name.
        name: String,
    },
}

/// Run one `topic` subcommand.
pub async fn run(bootstrap: &str, command: TopicCommand) -> anyhow::Result<()> {
    let admin = match &command {
        TopicCommand::Describe { timeout_ms, .. } => {
            view_admin(bootstrap, Duration::from_millis(*timeout_ms)).await?
        }
        _ => Admin::new(bootstrap).await?,
    };
    let mut out = std::io::stdout().lock();
    match command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            admin
                .create_topic(&name, partitions, replication_factor, &configs)
                .await?;
            writeln!(out, "Created topic {name}.")?;
        }
        TopicCommand::List => {
            for name in admin.list_topics().await? {
                writeln!(out, "{name}")?;
            }
        }
        TopicCommand::Describe {
            name,
            all_configs,
            output,
            timeout_ms,
        } => {
            let timeout = Duration::from_millis(timeout_ms);
            let topic = health::topic::topic_health(&admin, &name, all_configs, timeout).await?;
            out.write_all(views::topic_health(&topic, output).as_bytes())?;
        }
        TopicCommand::Alter {
            name,
            partitions,
            configs,
            delete_configs,
        } => {
            if let Some(partitions) = partitions {
                admin.create_partitions(&name, partitions).await?;
                writeln!(out, "Topic {name} now has {partitions} partitions.")?;
            }
            let changes: Vec<ConfigOp> = configs
                .into_iter()
                .map(|(key, value)| ConfigOp::Set(key, value))
                .chain(delete_configs.into_iter().map(ConfigOp::Delete))
                .collect();
            if !changes.is_empty() {
                admin.alter_topic_configs(&name, &changes, false).await?;
                writeln!(out, "Updated the configs of topic {name}.")?;
            }
        }
        TopicCommand::DeleteRecords {
            name,
            partitions,
            before,
        } => {
            let partitions = if partitions.is_empty() {
                let topic = admin.describe_topic(&name).await?;
                topic.partitions.iter().map(|p| p.partition).collect()
            } else {
                partitions
            };
            let offsets: Vec<(i32, i64)> = partitions.iter().map(|&p| (p, before)).collect();
            let mut failed = 0;
            for (partition, answer) in admin.delete_records(&name, &offsets).await? {
                match answer {
                    Ok(low_watermark) => writeln!(
                        out,
                        "{name}-{partition}: records below {low_watermark} deleted"
                    )?,
                    Err(error) => {
                        failed += 1;
                        writeln!(out, "{name}-{partition}: {error}")?;
                    }
                }
            }
            if failed > 0 {
                anyhow::bail!("{failed} partition(s) of {name} kept their records");
            }
        }
        TopicCommand::Delete { name } => {
            admin.delete_topic(&name).await?;
            writeln!(out, "Deleted topic {name}.")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::tests::parse;
    use crate::{Cli, Command};

    #[test]
    fn topic_create_takes_partitions_replication_and_configs() {
        let cli = parse(&[
            "sluice",
            "topic",
            "create",
            "orders",
            "--partitions",
            "3",
            "--replication-factor",
            "2",
            "--config",
            "retention.ms=1000",
            "--config",
            "cleanup.policy=compact",
        ]);
        match cli.command {
            Command::Topic {
                command:
                    TopicCommand::Create {
                        name,
                        partitions,
                        replication_factor,
                        configs,
                    },
            } => {
                assert_eq!(name, "orders");
                assert_eq!(partitions, 3);
                assert_eq!(replication_factor, 2);
                assert_eq!(
                    configs,
                    vec![
                        ("retention.ms".to_string(), "1000".to_string()),
                        ("cleanup.policy".to_string(), "compact".to_string())
                    ]
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            Cli::try_parse_from(["sluice", "topic", "create", "t", "--config", "novalue"]).is_err()
        );
    }

    #[test]
    fn topic_describe_takes_output_and_timeout() {
        let describe = |args: &[&str]| match parse(args).command {
            Command::Topic {
                command:
                    TopicCommand::Describe {
                        name,
                        all_configs,
                        output,
                        timeout_ms,
                    },
            } => (name, all_configs, output, timeout_ms),
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(
            describe(&["sluice", "topic", "describe", "t"]),
            ("t".to_string(), false, Output::Table, 5000)
        );
        assert_eq!(
            describe(&[
                "sluice",
                "topic",
                "describe",
                "t",
                "--output",
                "json",
                "--all-configs",
                "--timeout-ms",
                "200"
            ]),
            ("t".to_string(), true, Output::Json, 200)
        );
    }

    #[test]
    fn topic_alter_takes_partitions_configs_or_both_but_something() {
        let alter = |args: &[&str]| match parse(args).command {
            Command::Topic {
                command:
                    TopicCommand::Alter {
                        name,
                        partitions,
                        configs,
                        delete_configs,
                    },
            } => (name, partitions, configs, delete_configs),
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(
            alter(&["sluice", "topic", "alter", "t", "--partitions", "4"]),
            ("t".to_string(), Some(4), vec![], vec![])
        );
        assert_eq!(
            alter(&[
                "sluice",
                "topic",
                "alter",
                "t",
                "--config",
                "retention.ms=5",
                "--delete-config",
                "segment.ms"
            ]),
            (
                "t".to_string(),
                None,
                vec![("retention.ms".to_string(), "5".to_string())],
                vec!["segment.ms".to_string()]
            )
        );
        assert!(Cli::try_parse_from(["sluice", "topic", "alter", "t"]).is_err());
    }
}
