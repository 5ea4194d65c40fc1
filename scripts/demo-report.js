#!/usr/bin/env node
// Follows a job on-chain and reports each round once it is paid: contributors, accuracy,
// model hash, each contributor's verifier score and payout (verified jobs), each trainer's
// balance change; ends with a summary table and an SVG plot of accuracy per round. Used by
// scripts/demo.sh.
//
//   node scripts/demo-report.js --node ws://127.0.0.1:9944 --job 0 --out out/demo \
//        --trainers //Bob,//Charlie,//Dave --sponsor //Alice [--timeout 1800]
import { createRequire } from 'node:module';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
const require = createRequire(new URL('./sponsor/package.json', import.meta.url));
const { ApiPromise, WsProvider } = require('@polkadot/api');
const { Keyring } = require('@polkadot/keyring');
const { cryptoWaitReady } = require('@polkadot/util-crypto');

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
const jobId = Number(args.job);
const timeoutMs = Number(args.timeout ?? 1800) * 1000;
const UNIT = 10n ** 12n;
const fmt = (p) => { const n = BigInt(p); const s = n < 0n ? '-' : ''; const a = n < 0n ? -n : n; return `${s}${a / UNIT}.${(a % UNIT).toString().padStart(12, '0').slice(0, 4)}`; };

await cryptoWaitReady();
const keyring = new Keyring({ type: 'sr25519', ss58Format: 42 });
const trainers = args.trainers.split(',').map((suri) => ({ suri, address: keyring.addFromUri(suri).address }));
const sponsor = keyring.addFromUri(args.sponsor || '//Alice').address;
const provider = new WsProvider(args.node);
const api = await ApiPromise.create({ provider, noInitWarn: true });
const training = (method, params) => provider.send(`training_${method}`, params);
const free = async (a) => (await api.query.system.account(a)).data.free.toBigInt();

const start = {};
for (const t of trainers) start[t.address] = await free(t.address);
start[sponsor] = await free(sponsor);
const rows = [];
const started = Date.now();
let previous = { ...start };
let lastRound = -1;
let ended = null;

while (!ended && Date.now() - started < timeoutMs) {
  const job = await training('job', [jobId, null]);
  const rounds = await training('rounds', [jobId, null]);
  for (const r of rounds.filter((r) => r.round > lastRound)) {
    // A verified round is reported once its payouts are made (scored, challenge window over).
    if (r.settling) break;
    lastRound = r.round;
    const now = {};
    for (const t of trainers) now[t.address] = await free(t.address);
    const acc = r.metric != null ? r.metric / 1e4 : null;
    const deltas = trainers.map((t) => now[t.address] - previous[t.address]);
    previous = { ...previous, ...now };
    const included = r.payouts.map((p) => trainers.find((t) => t.address === p.who)?.suri ?? p.who.slice(0, 8));
    rows.push({ round: r.round, outcome: r.outcome, included, acc, model: r.modelHash, deltas, closedAt: r.closedAt, scores: r.scores ?? [] });
    console.log(`round ${r.round}: ${r.outcome} at block ${r.closedAt}` +
      (r.outcome === 'finalized' ? `, ${included.length} contributors (${included.join(' ')}), accuracy ${acc?.toFixed(2)}%, model ${r.modelHash}` : ''));
    if (r.scores?.length) {
      console.log('   verified: ' + r.payouts.map((p, i) => `${included[i]} score ${r.scores[i]} -> ${fmt(p.amount)}`).join(', ') +
        `; verifiers paid: ${(r.verifierPayouts ?? []).map((v) => `${v.who.slice(0, 8)} ${fmt(v.amount)}`).join(', ') || 'none'}`);
    }
    console.log('   balance change: ' + trainers.map((t, i) => `${t.suri} ${deltas[i] >= 0n ? '+' : ''}${fmt(deltas[i])}`).join(', '));
  }
  const settling = job.verification?.openSettlements ?? 0;
  if (['completed', 'failed', 'cancelled'].includes(job.phase) && settling === 0 && !rounds.some((r) => r.round > lastRound)) ended = job;
  else await new Promise((r) => setTimeout(r, 2000));
}
if (!ended) { console.error(`error: job ${jobId} did not end within ${timeoutMs / 1000} s`); process.exit(1); }

const e = ended.escrow;
console.log(`\njob ${jobId} ${ended.phase}: ${ended.finalizedRounds}/${ended.rounds} rounds finalised`);
// Where each round's time went, from the trainers' own reports (mean over trainers, ms):
// local training, the peer exchange (averaging over libp2p minus training), and the chain
// (commit, aggregate, inclusion and waiting for the round to close).
const readReports = () => trainers.flatMap((_, i) => {
  const f = join(args.out, `trainer-${i}.jsonl`);
  if (!existsSync(f)) return [];
  return readFileSync(f, 'utf8').split('\n').flatMap((l) => { try { const v = JSON.parse(l); return v.event === 'round' ? [v] : []; } catch { return []; } });
});
// The trainers print a round after they see it close: give them a moment for the last one.
let reports = readReports();
for (let i = 0; i < 15 && rows.length && !reports.some((v) => v.round === rows[rows.length - 1].round); i++) {
  await new Promise((r) => setTimeout(r, 1000));
  reports = readReports();
}
const split = (round) => {
  const rs = reports.filter((v) => v.round === round);
  if (!rs.length) return ['-', '-', '-'];
  const mean = (f) => Math.round(rs.reduce((a, v) => a + f(v), 0) / rs.length);
  return [mean((v) => v.compute_ms), mean((v) => Math.max(0, v.peer_round_ms - v.compute_ms)), mean((v) => v.chain_ms)];
};
console.log('| round | outcome | contributors | accuracy % | model hash | verifier scores (µ-loss) | train ms | peer exchange ms | chain ms |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of rows) {
  r.split = split(r.round);
  const scores = r.scores.length ? r.scores.map((s, i) => `${r.included[i]} ${s}`).join(', ') : '-';
  console.log(`| ${r.round} | ${r.outcome} | ${r.included.length} | ${r.acc?.toFixed(2) ?? '-'} | ${r.model ? r.model.slice(0, 18) + '…' : '-'} | ${scores} | ${r.split.join(' | ')} |`);
}
console.log('\n| account | earned (TRAIN, net of fees) |');
console.log('| --- | --- |');
for (const t of trainers) console.log(`| ${t.suri} | ${fmt((await free(t.address)) - start[t.address])} |`);
const deposited = BigInt(e.deposited), paid = BigInt(e.paidContributors), subs = BigInt(e.paidSubmitters), refunded = BigInt(e.refunded);
const verifiers = BigInt(e.paidVerifiers ?? 0);
console.log(`\nescrow: deposited ${fmt(deposited)} = paid to contributors ${fmt(paid)} + submitters ${fmt(subs)} + verifiers ${fmt(verifiers)} + refunded ${fmt(refunded)}` +
  ` (${deposited === paid + subs + verifiers + refunded ? 'exact' : 'MISMATCH'})`);

// SVG plot of accuracy per round.
const pts = rows.filter((r) => r.acc != null);
const W = 640, H = 360, L = 60, B = 40, T = 30, R = 20;
const maxRound = Math.max(1, ...rows.map((r) => r.round));
const x = (r) => L + (r / maxRound) * (W - L - R);
const y = (a) => T + (1 - a / 100) * (H - T - B);
const path = pts.map((p, i) => `${i ? 'L' : 'M'}${x(p.round).toFixed(1)},${y(p.acc).toFixed(1)}`).join(' ');
const grid = [0, 25, 50, 75, 100].map((a) => `<line x1="${L}" x2="${W - R}" y1="${y(a)}" y2="${y(a)}" stroke="#ddd"/><text x="${L - 8}" y="${y(a) + 4}" text-anchor="end" font-size="12">${a}%</text>`).join('');
const ticks = rows.map((r) => `<text x="${x(r.round)}" y="${H - B + 18}" text-anchor="middle" font-size="12">${r.round}</text>`).join('');
const dots = pts.map((p) => `<circle cx="${x(p.round)}" cy="${y(p.acc)}" r="4" fill="#1f77b4"><title>round ${p.round}: ${p.acc.toFixed(2)}%</title></circle>`).join('');
const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="18" text-anchor="middle" font-size="14">trainchain job ${jobId}: test accuracy of the on-chain model per round</text>
${grid}${ticks}
<text x="${W / 2}" y="${H - 6}" text-anchor="middle" font-size="12">round</text>
<path d="${path}" fill="none" stroke="#1f77b4" stroke-width="2"/>${dots}
</svg>\n`;
writeFileSync(join(args.out, 'accuracy.svg'), svg);
writeFileSync(join(args.out, 'rounds.json'), JSON.stringify(rows, (k, v) => (typeof v === 'bigint' ? v.toString() : v), 2));
await api.disconnect();
process.exit(ended.phase === 'completed' ? 0 : 1);
