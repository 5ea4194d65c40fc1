#!/usr/bin/env node
// trainchain sponsor client: the way a sponsor uses polkadot.js.
//
//   node sponsor.js create-job --model mlp:64-32-10 --rounds 5 --reward 1000 [options]
//   node sponsor.js show --job 0
//   node sponsor.js watch --job 0 [--until-ended]
//   node sponsor.js cancel --job 0
//
// Common options: --node ws://127.0.0.1:9944, --suri //Alice (or env SPONSOR_SURI), --json.
// Amounts are in TRAIN (12 decimals) unless --planck is given.
import { ApiPromise, WsProvider } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { execFileSync } from 'node:child_process';

const USAGE = `usage: sponsor.js <create-job|show|watch|cancel|approve-verifier|join-verifier|challenge> [options]
  create-job  --model SPEC --rounds N --reward AMOUNT [--model-commitment 0x..] [--dataset-commitment 0x..]
              [--dataset NAME] [--min N] [--max N] [--round-length BLOCKS] [--commit-window BLOCKS]
              [--bond AMOUNT] [--max-samples N] [--max-failed-rounds N] [--lr 0.05] [--batch 32]
              [--local-steps N] [--inner sgd:0.9|adamw:WD] [--outer avg|nesterov:LR:MOMENTUM] [--schedule cosine:WARMUP] [--inner-state kept|fresh]
              [--standardize TRAIN.csv | --input standard:...]  (fit the input standardisation every
              contributor and verifier applies; stored in the metadata as input=...)
              [--trainer PATH]   (--inner/--outer/--standardize: the training plan, covered by the commitment)
              verified job: --verifiers K --validation-set FILE|0x.. [--verifier-bond AMOUNT]
              [--verifier-share PERCENT] [--scoring-window BLOCKS] [--challenge-period BLOCKS]
              [--challenge-bond AMOUNT] [--restricted]
              public dataset (verified jobs): --public-data FILE --shards N [--recompute R]
              (the chain assigns each contributor a shard per round; verifiers re-compute R)
  show        --job ID
  watch       --job ID [--until-ended] [--timeout SECONDS]
  cancel      --job ID
  approve-verifier --job ID --who SS58      (restricted jobs; sponsor only)
  join-verifier    --job ID                 (bonds --suri as a verifier of the job)
  challenge        --job ID --round R       (bonds a challenge of the round's scores)
common: --node URL (default ws://127.0.0.1:9944)  --suri SURI (default //Alice, or $SPONSOR_SURI)  --json  --planck`;

function parseArgs(argv) {
  const [cmd, ...rest] = argv;
  const opts = {};
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if (!a.startsWith('--')) fail(`unexpected argument '${a}'`);
    const key = a.slice(2);
    const next = rest[i + 1];
    if (next === undefined || next.startsWith('--')) opts[key] = true;
    else { opts[key] = next; i++; }
  }
  return { cmd, opts };
}

function fail(msg) {
  console.error(`error: ${msg}`);
  process.exit(1);
}

const { cmd, opts } = parseArgs(process.argv.slice(2));
if (!cmd || cmd === '--help' || cmd === 'help') { console.log(USAGE); process.exit(cmd ? 0 : 2); }
const JSON_OUT = !!opts.json;
const out = (obj, text) => console.log(JSON_OUT ? JSON.stringify(obj) : text);

const DECIMALS = 12n;
function toPlanck(v) {
  if (opts.planck) return BigInt(v);
  const [whole, frac = ''] = String(v).split('.');
  if (!/^\d+$/.test(whole) || !/^\d*$/.test(frac) || frac.length > Number(DECIMALS)) fail(`bad amount '${v}'`);
  return BigInt(whole) * 10n ** DECIMALS + BigInt(frac.padEnd(Number(DECIMALS), '0') || '0');
}
function fmt(planck) {
  const p = BigInt(planck);
  const whole = p / 10n ** DECIMALS;
  const frac = (p % 10n ** DECIMALS).toString().padStart(Number(DECIMALS), '0').replace(/0+$/, '');
  return frac ? `${whole}.${frac}` : `${whole}`;
}
function int(name, def) {
  const v = opts[name] ?? def;
  if (v === undefined) fail(`--${name} is required`);
  if (!/^\d+$/.test(String(v))) fail(`--${name} must be a non-negative integer, got '${v}'`);
  return Number(v);
}
function jobId() { return int('job'); }

async function connect() {
  const url = opts.node || process.env.TRAINCHAIN_NODE || 'ws://127.0.0.1:9944';
  const provider = new WsProvider(url, false);
  const timer = setTimeout(() => fail(`cannot reach a node at ${url}`), 15000);
  provider.on('error', () => {});
  await provider.connect();
  const api = await ApiPromise.create({ provider, throwOnConnect: true, noInitWarn: true });
  clearTimeout(timer);
  if (!api.tx.trainingRewards) fail(`the chain at ${url} has no TrainingRewards pallet`);
  api.training = (method, params) => provider.send(`training_${method}`, params);
  return api;
}

async function signer() {
  await cryptoWaitReady();
  const suri = opts.suri || process.env.SPONSOR_SURI || '//Alice';
  return new Keyring({ type: 'sr25519', ss58Format: 42 }).addFromUri(suri);
}

// Submit, wait for inclusion in a block, and report a dispatch error by its pallet error name.
function submit(api, tx, pair) {
  return new Promise((resolve, reject) => {
    tx.signAndSend(pair, ({ status, events, dispatchError }) => {
      if (dispatchError) {
        if (dispatchError.isModule) {
          const d = api.registry.findMetaError(dispatchError.asModule);
          reject(new Error(`${d.section}.${d.name}: ${d.docs.join(' ').trim()}`));
        } else reject(new Error(dispatchError.toString()));
        return;
      }
      if (status.isInBlock || status.isFinalized) resolve({ blockHash: status.isInBlock ? status.asInBlock : status.asFinalized, events });
    }).catch(reject);
  });
}

// Whether the job's contributors keep their inner optimiser's state across rounds (DiLoCo).
function keepInnerState() {
  const v = opts['inner-state'] ?? 'fresh';
  if (v !== 'kept' && v !== 'fresh') fail(`--inner-state is kept or fresh, not ${v}`);
  return v === 'kept';
}

// The model commitment and the job's input transform ('raw', or the 'standard:...' that
// 'trainchain-trainer hash --standardize FILE' fits on the sponsor's training data).
function modelCommitment(model) {
  if (opts['model-commitment']) return { commitment: opts['model-commitment'], input: opts.input || 'raw' };
  const trainer = opts.trainer || process.env.TRAINER_BIN || 'trainchain-trainer';
  try {
    const plan = [];
    if (opts.inner) plan.push('--inner', opts.inner);
    if (opts.outer) plan.push('--outer', opts.outer);
    if (opts.schedule) plan.push('--schedule', opts.schedule);
    if (keepInnerState()) plan.push('--keep-inner-state');
    if (opts.standardize) plan.push('--standardize', opts.standardize);
    else if (opts.input) plan.push('--input', opts.input);
    const text = execFileSync(trainer, ['hash', '--model', model, ...plan, '--json'], { encoding: 'utf8' });
    const parsed = JSON.parse(text.trim().split('\n').pop());
    const c = parsed.model_commitment || parsed.commitment;
    if (!c) fail(`'${trainer} hash' printed no model_commitment`);
    return { commitment: c, input: parsed.input || 'raw' };
  } catch (e) {
    fail(`cannot compute the model commitment with '${trainer} hash --model ${model}' (${e.message.split('\n')[0]}); pass --model-commitment 0x...`);
  }
}

// The verification part of a job spec, or null (contributors paid by committed samples).
async function verificationSpec() {
  if (opts.verifiers === undefined) return null;
  const set = opts['validation-set'] || fail('--validation-set FILE|0x.. is required with --verifiers');
  const { blake2AsHex } = await import('@polkadot/util-crypto');
  const { readFileSync } = await import('node:fs');
  return {
    verifiersPerRound: int('verifiers'),
    verifierBond: toPlanck(opts['verifier-bond'] ?? 10),
    verifierShare: Math.round(Number(opts['verifier-share'] ?? 10) * 1e7),
    scoringWindow: int('scoring-window', 10),
    challengePeriod: int('challenge-period', 10),
    challengeBond: toPlanck(opts['challenge-bond'] ?? 50),
    validationSet: /^0x[0-9a-fA-F]{64}$/.test(set) ? set : blake2AsHex(readFileSync(set), 256),
    restricted: !!opts.restricted,
    publicData: publicDataSpec(),
  };
}

// The public dataset of a verified job: the Merkle root of its shards, from
// 'trainchain-trainer hash --data FILE --shards N' (the trainer splits and hashes the rows).
function publicDataSpec() {
  if (opts['public-data'] === undefined) return null;
  if (keepInnerState()) fail("--inner-state kept: a public-data job's updates are re-computed from the round's model alone, so its contributors cannot keep their optimiser's state");
  const shards = int('shards');
  const trainer = opts.trainer || process.env.TRAINER_BIN || 'trainchain-trainer';
  let root;
  try {
    const text = execFileSync(trainer, ['hash', '--data', opts['public-data'], '--shards', String(shards), '--json'], { encoding: 'utf8' });
    root = JSON.parse(text.trim().split('\n').pop()).shards_root;
  } catch (e) {
    fail(`cannot hash the public dataset with '${trainer} hash --data ${opts['public-data']} --shards ${shards}' (${e.message.split('\n')[0]})`);
  }
  return { shardsRoot: root, shards, recompute: int('recompute', 1) };
}

async function createJob(api) {
  const pair = await signer();
  const model = opts.model || fail('--model is required (e.g. mlp:64-32-10)');
  const rounds = int('rounds');
  const reward = toPlanck(opts.reward ?? fail('--reward is required'));
  const dataset = opts.dataset || 'digits';
  const { blake2AsHex } = await import('@polkadot/util-crypto');
  const { commitment, input } = modelCommitment(model);
  const metadata = `model=${model};data=${dataset}` + (opts.inner ? `;inner=${opts.inner}` : '') + (opts.outer ? `;outer=${opts.outer}` : '')
    + (opts.schedule ? `;schedule=${opts.schedule}` : '') + (input !== 'raw' ? `;input=${input}` : '')
    + (keepInnerState() ? ';inner_state=kept' : '');
  if (metadata.length > 1024) fail(`the job's metadata is ${metadata.length} bytes, over the chain's 1024`);
  const spec = {
    modelCommitment: commitment,
    datasetCommitment: opts['dataset-commitment'] || blake2AsHex(dataset, 256),
    metadata,
    hyperparameters: {
      learningRatePpm: Math.round(Number(opts.lr ?? 0.1) * 1e6),
      batchSize: int('batch', 32),
      localSteps: int('local-steps', 40),
    },
    minContributors: int('min', 2),
    maxContributors: int('max', 8),
    roundLength: int('round-length', 20),
    commitWindow: int('commit-window', 10),
    contributorBond: toPlanck(opts.bond ?? 10),
    maxSamples: int('max-samples', 100000),
    maxFailedRounds: int('max-failed-rounds', 3),
    verification: await verificationSpec(),
  };
  const { events } = await submit(api, api.tx.trainingRewards.createJob(spec, reward, rounds), pair);
  const created = events.find(({ event }) => api.events.trainingRewards.JobCreated.is(event));
  if (!created) fail('JobCreated event not found');
  const { jobId, escrow } = created.event.data;
  out({ event: 'job_created', jobId: jobId.toNumber(), sponsor: pair.address, escrow: escrow.toString(), modelCommitment: spec.modelCommitment, metadata: spec.metadata },
    `created job ${jobId} (sponsor ${pair.address}, escrow ${fmt(escrow.toString())} TRAIN, model ${model} ${spec.modelCommitment})`);
}

async function show(api) {
  const job = await api.training('job', [jobId(), null]);
  if (!job) fail(`unknown job ${jobId()}`);
  const rounds = await api.training('rounds', [jobId(), null]);
  const contributors = await api.training('contributors', [jobId(), null]);
  if (JSON_OUT) { console.log(JSON.stringify({ job, rounds, contributors })); return; }
  console.log(`job ${job.jobId}: ${job.phase}, round ${job.currentRound}, ${job.finalizedRounds}/${job.rounds} finalised, ${job.contributors} contributors`);
  const pub = job.verification && job.verification.publicData;
  if (pub) console.log(`  public dataset: ${pub.shards} shards, root ${pub.shardsRoot}, ${pub.recompute} re-computed per round`);
  console.log(`  escrow: deposited ${fmt(job.escrow.deposited)} held ${fmt(job.escrow.held)} paid ${fmt(job.escrow.paidContributors)} + ${fmt(job.escrow.paidSubmitters)} refunded ${fmt(job.escrow.refunded)}`);
  for (const r of rounds) {
    console.log(`  round ${r.round}: ${r.outcome}${r.modelHash ? ` model ${r.modelHash}` : ''}${r.metric != null ? ` metric ${(r.metric / 1e4).toFixed(2)}%` : ''}`);
    if (r.settling) console.log('    payouts wait for the verifiers (scoring or challenge window)');
    if (r.assignedShards && r.assignedShards.length) console.log(`    assigned shards ${r.assignedShards.join(', ')} (seed ${r.seed})`);
    r.payouts.forEach((p, i) => console.log(`    ${p.who} ${p.samples} samples${r.scores.length ? ` score ${r.scores[i]}` : ''} -> ${fmt(p.amount)} TRAIN`));
  }
}

async function simpleCall(api, tx, eventName, obj, text) {
  const pair = await signer();
  const { events } = await submit(api, tx, pair);
  if (!events.find(({ event }) => api.events.trainingRewards[eventName].is(event))) fail(`${eventName} event not found`);
  out({ ...obj, by: pair.address }, text);
}

const approveVerifier = (api) => simpleCall(api, api.tx.trainingRewards.approveVerifier(jobId(), opts.who || fail('--who is required')),
  'VerifierApproved', { event: 'verifier_approved', jobId: jobId(), who: opts.who }, `approved ${opts.who} as a verifier of job ${jobId()}`);
const joinVerifier = (api) => simpleCall(api, api.tx.trainingRewards.joinAsVerifier(jobId()),
  'VerifierJoined', { event: 'verifier_joined', jobId: jobId() }, `joined job ${jobId()} as a verifier`);
const challenge = (api) => simpleCall(api, api.tx.trainingRewards.challengeRound(jobId(), int('round')),
  'RoundChallenged', { event: 'round_challenged', jobId: jobId(), round: int('round') }, `challenged round ${int('round')} of job ${jobId()}`);

async function watch(api) {
  const id = jobId();
  const until = !!opts['until-ended'];
  const timeoutMs = Number(opts.timeout ?? 0) * 1000;
  const started = Date.now();
  return new Promise(async (resolve) => {
    const unsub = await api.query.system.events((records) => {
      for (const { event } of records) {
        if (event.section !== 'trainingRewards') continue;
        const data = event.data.toJSON();
        const named = {};
        event.meta.fields.forEach((f, i) => { named[f.name.toString()] = Array.isArray(data) ? data[i] : data; });
        if (named.jobId !== undefined && Number(named.jobId) !== id) continue;
        out({ event: event.method, ...named }, `${event.method} ${JSON.stringify(named)}`);
        if (until && ['JobCompleted', 'JobFailed', 'JobCancelled'].includes(event.method)) { unsub(); resolve(); }
      }
      if (timeoutMs && Date.now() - started > timeoutMs) { unsub(); resolve(); }
    });
  });
}

async function cancel(api) {
  const pair = await signer();
  const { events } = await submit(api, api.tx.trainingRewards.cancelJob(jobId()), pair);
  const ended = events.find(({ event }) => api.events.trainingRewards.JobCancelled.is(event));
  if (ended) {
    const refunded = ended.event.data.refunded.toString();
    out({ event: 'job_cancelled', jobId: jobId(), refunded }, `cancelled job ${jobId()}, refunded ${fmt(refunded)} TRAIN`);
    return;
  }
  // Contributors committed in the open round: it is settled (paid if it finalises) and the
  // job ends when it closes; everything else was refunded now.
  const scheduled = events.find(({ event }) => api.events.trainingRewards.CancellationScheduled.is(event));
  const refunded = scheduled ? scheduled.event.data.refunded.toString() : '0';
  out({ event: 'cancellation_scheduled', jobId: jobId(), refunded },
    `job ${jobId()} ends when its open round closes (committed work is still paid); refunded ${fmt(refunded)} TRAIN now`);
}

const commands = {
  'create-job': createJob, show, watch, cancel,
  'approve-verifier': approveVerifier, 'join-verifier': joinVerifier, challenge,
};
if (!commands[cmd]) fail(`unknown command '${cmd}'\n${USAGE}`);
const api = await connect();
try {
  await commands[cmd](api);
} catch (e) {
  fail(e.message);
} finally {
  await api.disconnect();
}
