// @auth0/mdl's reader verification of one DeviceResponse, in a loop, for
// `shomei bench mdoc-verify` (which writes the files and runs this).
//
//   node bench_auth0.mjs RESPONSE.cbor TRANSCRIPT.cbor IACA.pem SECONDS
//
// RESPONSE: the decrypted DeviceResponse (CBOR); TRANSCRIPT: the
// SessionTranscriptBytes (#6.24(bstr)); IACA: the trusted IACA (PEM).
// Checks the response once (every check must pass: the default onCheck
// throws on a failure), warms up, then loops
// `new Verifier([iaca]).verify(response, {encodedSessionTranscript})` one
// at a time for SECONDS and prints one JSON line with the rate.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Verifier } from '@auth0/mdl';

const [responsePath, transcriptPath, iacaPath, secondsArg] = process.argv.slice(2);
if (!responsePath || !transcriptPath || !iacaPath || !secondsArg) {
  console.error('usage: node bench_auth0.mjs RESPONSE TRANSCRIPT IACA_PEM SECONDS');
  process.exit(2);
}
const seconds = Number(secondsArg);
if (!(seconds > 0)) {
  console.error('SECONDS must be a positive number');
  process.exit(2);
}
const response = readFileSync(responsePath);
const transcript = readFileSync(transcriptPath);
const iaca = readFileSync(iacaPath, 'utf8');
const options = { encodedSessionTranscript: transcript };
const version = createRequire(import.meta.url)('@auth0/mdl/package.json').version;

async function once() {
  const decoded = await new Verifier([iaca]).verify(response, options);
  if (!decoded.documents || decoded.documents.length !== 1) {
    throw new Error('expected one document');
  }
}

// Must pass before it is timed.
await once();

const run = async (ns) => {
  const start = process.hrtime.bigint();
  let n = 0;
  while (process.hrtime.bigint() - start < ns) {
    await once();
    n += 1;
  }
  return { n, ns: Number(process.hrtime.bigint() - start) };
};

// Warm-up (JIT), a tenth of the time, at most one second.
await run(BigInt(Math.round(Math.min(1, seconds / 10) * 1e9)));

const cpu0 = process.cpuUsage();
const { n, ns } = await run(BigInt(Math.round(seconds * 1e9)));
const cpu = process.cpuUsage(cpu0);
const wall = ns / 1e9;
const cpuSeconds = (cpu.user + cpu.system) / 1e6;
console.log(JSON.stringify({
  implementation: '@auth0/mdl',
  version,
  node: process.version,
  count: n,
  seconds: wall,
  ops_per_s: n / wall,
  cpu_seconds: cpuSeconds,
  cpu_cores: cpuSeconds / wall,
}));
