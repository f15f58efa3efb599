#!/usr/bin/env node
// Consumer groups with KafkaJS against a broker: the scenario of
// tests/interop/group_consume.py. Three members of one group (three KafkaJS consumers in
// this process) share a 6-partition topic; once the group is stable (each member holds two
// partitions, as its last GROUP_JOIN event says) records are produced, every record is
// consumed exactly once, each member commits what it consumed (commitOffsets; autoCommit is
// off), and the group's committed offsets (admin.fetchOffsets, OffsetFetch) are the log end
// offsets (admin.fetchTopicOffsets, ListOffsets). The group is also listed
// (admin.listGroups) and described (admin.describeGroups: Stable, three members, two
// partitions each).
//
//     node tests/node/group_consume.js --bootstrap 127.0.0.1:9092 [--records N] [--timeout S]
//
// Exits 0 and prints a SUMMARY line when all of that held; 1 otherwise, saying what did not.
// SLUICE_KAFKAJS_LOG=debug|info|warn|error sets KafkaJS's own log level (default warn).
'use strict';

const { AssignerProtocol, Kafka, Partitioners, logLevel } = require('kafkajs');

const PARTITIONS = 6;
const MEMBERS = 3;
const POLL_MS = 100;

function log(msg) {
  const time = new Date().toISOString().slice(11, 19);
  console.log(`[group_consume.js ${time}] ${msg}`);
}

class Failure extends Error {}

function fail(msg) {
  throw new Failure(msg);
}

function parseArgs(argv) {
  const args = { bootstrap: null, records: 3000, timeoutS: 90 };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) fail(`${flag} needs a value`);
    if (flag === '--bootstrap') args.bootstrap = value;
    else if (flag === '--records') args.records = Number.parseInt(value, 10);
    else if (flag === '--timeout') args.timeoutS = Number.parseFloat(value);
    else fail(`unknown argument ${flag}`);
  }
  if (!args.bootstrap) fail('--bootstrap host:port is required');
  if (!(args.records > 0) || !(args.timeoutS > 0)) fail('--records and --timeout must be positive');
  return args;
}

function kafkaLogLevel() {
  const name = (process.env.SLUICE_KAFKAJS_LOG || 'warn').toUpperCase();
  if (!(name in logLevel)) fail(`SLUICE_KAFKAJS_LOG=${name}: not a KafkaJS log level`);
  return logLevel[name];
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitUntil(what, timeoutS, condition) {
  const deadline = Date.now() + timeoutS * 1000;
  while (!condition()) {
    if (Date.now() > deadline) fail(`timed out after ${timeoutS} s waiting for ${what}`);
    await sleep(POLL_MS);
  }
}

/** What the members report. */
class Shared {
  constructor() {
    this.consumed = new Map(); // "partition:offset" -> {member, value}
    this.duplicates = [];
    this.assignments = new Map(); // member -> sorted partitions (its last GROUP_JOIN)
    this.consumedEnds = new Map(); // member -> Map(partition -> last offset consumed + 1)
    this.errors = [];
  }

  record(member, partition, offset, value) {
    const key = `${partition}:${offset}`;
    const seen = this.consumed.get(key);
    if (seen) this.duplicates.push({ key, first: seen.member, again: member });
    else this.consumed.set(key, { member, value });
    const ends = this.consumedEnds.get(member);
    ends.set(partition, Math.max(ends.get(partition) || 0, offset + 1));
  }
}

function kafkaFor(args, clientId) {
  return new Kafka({
    clientId,
    brokers: [args.bootstrap],
    logLevel: kafkaLogLevel(),
    connectionTimeout: 10000,
    requestTimeout: 30000,
  });
}

async function startMember(args, topic, group, member, shared) {
  const consumer = kafkaFor(args, `member-${member}`).consumer({
    groupId: group,
    sessionTimeout: 10000,
    heartbeatInterval: 1000,
    maxWaitTimeInMs: 500,
  });
  shared.consumedEnds.set(member, new Map());
  consumer.on(consumer.events.GROUP_JOIN, (event) => {
    const partitions = (event.payload.memberAssignment[topic] || []).slice().sort((a, b) => a - b);
    shared.assignments.set(member, partitions);
    log(`member ${member} joined generation as ${event.payload.memberId}: partitions [${partitions}]`);
  });
  consumer.on(consumer.events.CRASH, (event) => {
    shared.errors.push(`member ${member} crashed: ${event.payload.error}`);
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      shared.record(member, partition, Number(message.offset), message.value.toString());
    },
  });
  return consumer;
}

async function produce(args, topic) {
  const producer = kafkaFor(args, 'producer').producer({
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  const batchSize = 500;
  for (let start = 0; start < args.records; start += batchSize) {
    const messages = [];
    for (let i = start; i < Math.min(start + batchSize, args.records); i += 1) {
      messages.push({ key: `k${i}`, value: `v${i}`, partition: i % PARTITIONS });
    }
    await producer.send({ topic, acks: -1, messages });
  }
  await producer.disconnect();
}

/** ListGroups, DescribeGroups, then the committed offsets (OffsetFetch). */
async function adminChecks(admin, topic, group) {
  const listed = await admin.listGroups();
  const ids = listed.groups.map((g) => g.groupId);
  if (!ids.includes(group)) fail(`ListGroups does not list ${group}: ${JSON.stringify(ids)}`);

  const described = await admin.describeGroups([group]);
  const description = described.groups.find((g) => g.groupId === group);
  if (!description) fail(`DescribeGroups did not describe ${group}: ${JSON.stringify(described)}`);
  const members = {};
  for (const m of description.members) {
    const decoded = AssignerProtocol.MemberAssignment.decode(m.memberAssignment);
    const assignment = decoded ? decoded.assignment[topic] || [] : [];
    members[m.clientId] = assignment.slice().sort((a, b) => a - b);
  }
  log(`described: state ${description.state}, protocol ${description.protocol}, members ${JSON.stringify(members)}`);
  if (description.errorCode !== 0) fail(`DescribeGroups: error code ${description.errorCode}`);
  if (description.state !== 'Stable') fail(`DescribeGroups: state ${description.state}, not Stable`);
  const held = Object.values(members);
  if (held.length !== MEMBERS || held.some((p) => p.length !== PARTITIONS / MEMBERS)) {
    fail(`DescribeGroups: members ${JSON.stringify(members)}`);
  }

  const fetched = await admin.fetchOffsets({ groupId: group, topics: [topic] });
  const committed = {};
  for (const t of fetched) {
    for (const p of t.partitions) committed[p.partition] = Number(p.offset);
  }
  return committed;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const tag = `kafkajs-${process.pid}`;
  const topic = `group-consume-${tag}`;
  const group = `group-${tag}`;
  const admin = kafkaFor(args, 'admin').admin();
  const consumers = [];
  try {
    await admin.connect();
    const created = await admin.createTopics({
      topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }],
      waitForLeaders: true,
      timeout: args.timeoutS * 1000,
    });
    if (!created) fail(`createTopics: ${topic} already exists`);

    const shared = new Shared();
    for (let m = 0; m < MEMBERS; m += 1) {
      consumers.push(await startMember(args, topic, group, m, shared));
    }
    const balanced = () => {
      const held = [];
      for (let m = 0; m < MEMBERS; m += 1) held.push(shared.assignments.get(m) || []);
      const all = held.flat().sort((a, b) => a - b);
      return (
        held.every((p) => p.length === PARTITIONS / MEMBERS) &&
        JSON.stringify(all) === JSON.stringify([...Array(PARTITIONS).keys()])
      );
    };
    await waitUntil('every member to hold two partitions', args.timeoutS, balanced);
    log(`stable: ${JSON.stringify(Object.fromEntries(shared.assignments))}`);

    await produce(args, topic);
    await waitUntil(`${args.records} records consumed`, args.timeoutS, () => shared.consumed.size >= args.records);
    await sleep(1000); // anything more would be a duplicate

    // Each member commits the positions it consumed to, in its current generation.
    for (let m = 0; m < MEMBERS; m += 1) {
      const offsets = [...shared.consumedEnds.get(m)].map(([partition, end]) => ({
        topic,
        partition,
        offset: String(end),
      }));
      await consumers[m].commitOffsets(offsets);
      log(`member ${m} committed ${JSON.stringify(offsets.map((o) => [o.partition, o.offset]))}`);
    }

    const committed = await adminChecks(admin, topic, group);
    const logEnds = {};
    for (const p of await admin.fetchTopicOffsets(topic)) logEnds[p.partition] = Number(p.high);
    const consumedEnds = {};
    for (let p = 0; p < PARTITIONS; p += 1) consumedEnds[p] = 0;
    for (const key of shared.consumed.keys()) {
      const [partition, offset] = key.split(':').map(Number);
      consumedEnds[partition] = Math.max(consumedEnds[partition], offset + 1);
    }

    for (const consumer of consumers.splice(0)) await consumer.disconnect();
    if (shared.errors.length > 0) fail(`consumer errors: ${shared.errors.slice(0, 5).join('; ')}`);
    if (shared.duplicates.length > 0) {
      fail(`${shared.duplicates.length} records consumed twice, first ${JSON.stringify(shared.duplicates.slice(0, 3))}`);
    }
    if (shared.consumed.size !== args.records) {
      fail(`consumed ${shared.consumed.size} records, produced ${args.records}`);
    }
    for (let i = 0; i < args.records; i += 1) {
      const partition = i % PARTITIONS;
      const offset = Math.floor(i / PARTITIONS);
      const seen = shared.consumed.get(`${partition}:${offset}`);
      if (!seen || seen.value !== `v${i}`) {
        fail(`partition ${partition} offset ${offset}: expected v${i}, got ${seen ? seen.value : 'nothing'}`);
      }
    }
    log(`committed ${JSON.stringify(committed)}, log ends ${JSON.stringify(logEnds)}`);
    if (JSON.stringify(committed) !== JSON.stringify(logEnds)) {
      fail(`committed offsets ${JSON.stringify(committed)} are not the log end offsets ${JSON.stringify(logEnds)}`);
    }
    if (JSON.stringify(consumedEnds) !== JSON.stringify(logEnds)) {
      fail(`consumed up to ${JSON.stringify(consumedEnds)}, not to the log end offsets ${JSON.stringify(logEnds)}`);
    }
    console.log(`SUMMARY kafkajs: ${MEMBERS} members, ${args.records} records consumed once, offsets committed`);
  } finally {
    await Promise.allSettled(consumers.map((c) => c.disconnect()));
    await admin.disconnect().catch(() => {});
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    log(`FAIL: ${error instanceof Failure ? error.message : error.stack || error}`);
    process.exit(1);
  },
);
