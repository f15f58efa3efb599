#!/usr/bin/env node
// KafkaJS's admin client and clients through daily operations against a broker:
//
//   - admin.createTopics (3 partitions, with a config), admin.alterConfigs (KafkaJS sends
//     the legacy AlterConfigs, which replaces a topic's overrides) and admin.describeConfigs;
//   - an idempotent producer (acks=all) sends 20 records uncompressed and 20 gzip-compressed
//     (KafkaJS's built-in codecs) to partition 0, timestamps base+0..39;
//   - admin.fetchTopicOffsetsByTimestamp (the record at base+25 is offset 25),
//     admin.fetchTopicOffsets, admin.deleteTopicRecords below offset 10 (the low watermark
//     follows);
//   - a consumer in a group reads the 30 records left and commits; admin.fetchOffsets gives
//     the end offset;
//   - admin.deleteTopics.
//
//     node tests/node/admin_check.js --bootstrap 127.0.0.1:9092 [--timeout S]
//
// Exits 0 and prints a SUMMARY line when all of that held; 1 otherwise, saying what did not.
'use strict';

const { CompressionTypes, ConfigResourceTypes, Kafka, Partitioners, logLevel } = require('kafkajs');

const TOPIC = 'kafkajs-admin';
const GROUP = 'kafkajs-admin-group';
const BASE = 1700000000000;
const PER_KIND = 20;

function log(msg) {
  console.log(`[admin_check.js ${new Date().toISOString().slice(11, 19)}] ${msg}`);
}

class Failure extends Error {}

function check(condition, msg) {
  if (!condition) throw new Failure(msg);
}

function parseArgs(argv) {
  const args = { bootstrap: null, timeoutS: 60 };
  for (let i = 0; i < argv.length; i += 2) {
    if (argv[i] === '--bootstrap') args.bootstrap = argv[i + 1];
    else if (argv[i] === '--timeout') args.timeoutS = Number(argv[i + 1]);
    else throw new Failure(`unknown flag ${argv[i]}`);
  }
  check(args.bootstrap, '--bootstrap is required');
  return args;
}

async function configValue(admin, name) {
  const described = await admin.describeConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name: TOPIC, configNames: [name] }],
    includeSynonyms: false,
  });
  const entry = described.resources[0].configEntries.find((c) => c.configName === name);
  return entry && entry.configValue;
}

async function run(args) {
  const kafka = new Kafka({
    clientId: 'sluice-admin-check',
    brokers: [args.bootstrap],
    logLevel: logLevel.WARN,
    retry: { retries: 10 },
  });
  const admin = kafka.admin();
  await admin.connect();
  check(
    await admin.createTopics({
      topics: [{ topic: TOPIC, numPartitions: 3, replicationFactor: 1, configEntries: [{ name: 'segment.bytes', value: '1048576' }] }],
      waitForLeaders: true,
    }),
    'createTopics said the topic existed',
  );
  await admin.alterConfigs({
    validateOnly: false,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: TOPIC, configEntries: [{ name: 'retention.ms', value: '3600000' }] }],
  });
  check((await configValue(admin, 'retention.ms')) === '3600000', 'retention.ms was not altered');
  // AlterConfigs replaced the overrides: segment.bytes is back to the default.
  check((await configValue(admin, 'segment.bytes')) !== '1048576', 'AlterConfigs kept an override it should have replaced');

  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  let n = 0;
  for (const compression of [CompressionTypes.None, CompressionTypes.GZIP]) {
    const messages = [];
    for (let i = 0; i < PER_KIND; i++, n++) {
      messages.push({ key: `k${n}`, value: `v${n}`, partition: 0, timestamp: String(BASE + n) });
    }
    await producer.send({ topic: TOPIC, acks: -1, compression, messages });
  }
  await producer.disconnect();

  const byTime = await admin.fetchTopicOffsetsByTimestamp(TOPIC, BASE + 25);
  const at = byTime.find((p) => p.partition === 0);
  check(at && at.offset === '25', `the record at base+25 is not offset 25: ${JSON.stringify(byTime)}`);
  const ends = await admin.fetchTopicOffsets(TOPIC);
  const end = ends.find((p) => p.partition === 0);
  check(end.high === String(2 * PER_KIND) && end.low === '0', `offsets ${JSON.stringify(end)}`);
  await admin.deleteTopicRecords({ topic: TOPIC, partitions: [{ partition: 0, offset: '10' }] });
  const after = (await admin.fetchTopicOffsets(TOPIC)).find((p) => p.partition === 0);
  check(after.low === '10', `the start offset is ${after.low} after deleting below 10`);

  const consumer = kafka.consumer({ groupId: GROUP });
  await consumer.connect();
  await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
  let consumed = 0;
  let resolveDone;
  const done = new Promise((resolve) => { resolveDone = resolve; });
  await consumer.run({
    autoCommit: true,
    eachMessage: async ({ partition, message }) => {
      check(partition === 0 && Number(message.offset) >= 10, `unexpected record at ${partition}/${message.offset}`);
      consumed += 1;
      if (consumed === 2 * PER_KIND - 10) resolveDone();
    },
  });
  await done;
  await consumer.commitOffsets([{ topic: TOPIC, partition: 0, offset: String(2 * PER_KIND) }]);
  await consumer.disconnect();
  const committed = await admin.fetchOffsets({ groupId: GROUP, topics: [TOPIC] });
  const p0 = committed[0].partitions.find((p) => p.partition === 0);
  check(p0.offset === String(2 * PER_KIND), `committed offset ${p0.offset}`);

  await admin.deleteTopics({ topics: [TOPIC] });
  await admin.disconnect();
  console.log('SUMMARY admin_check.js: configs (AlterConfigs), idempotent none+gzip, offsets by time, delete records, group consume and commit, delete topic: ok');
}

const args = (() => {
  try {
    return parseArgs(process.argv.slice(2));
  } catch (e) {
    log(`FAIL: ${e.message}`);
    process.exit(1);
  }
})();
const timer = setTimeout(() => {
  log(`FAIL: not done within ${args.timeoutS} s`);
  process.exit(1);
}, args.timeoutS * 1000);
run(args).then(
  () => {
    clearTimeout(timer);
    process.exit(0);
  },
  (e) => {
    log(`FAIL: ${e instanceof Failure ? e.message : e.stack}`);
    process.exit(1);
  },
);
