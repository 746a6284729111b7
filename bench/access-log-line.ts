// `node --import tsx bench/access-log-line.ts`: what the access log's line building spends on
// its strings and durations, the way src/observability/access-log.ts does it against the plain
// alternatives, in the same process, interleaved over rounds. A line quotes about nine strings
// (request id, method, host, path, service, instance, cache result, client IP, User-Agent) and
// writes two durations. Prints ns per line's worth; the median over the rounds.
import { millisText } from '../src/observability/access-log.ts';
import { runMicro } from './micro.ts';

const ROUNDS = 9;
const N = 500_000;
const STRINGS = ['5f0c2b1e-1d2a-4c7e-9a55-0e1f4b7c9d21', 'GET', 'shop.example.com', '/items/42', 'shop', '10.0.3.17:8080', 'miss', '10.0.0.5', 'curl/8.5.0'];

/** The access log's quoting (access-log.ts `str`): JSON.stringify only for a value that needs escaping. */
function quoteIfNeeded(value: string): string {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return JSON.stringify(value);
  }
  return `"${value}"`;
}

let sink = 0;
const cases: Record<string, (i: number) => void> = {
  '9 strings: JSON.stringify': () => {
    for (const s of STRINGS) sink += JSON.stringify(s).length;
  },
  '9 strings: escape check, then quotes (access log)': () => {
    for (const s of STRINGS) sink += quoteIfNeeded(s).length;
  },
  '2 durations: millisText (access log)': (i) => {
    sink += millisText(0.3 + i * 0.0137).length + millisText(i * 0.0071).length;
  },
  '2 durations: String(Math.round(ms * 1000) / 1000)': (i) => {
    sink += String(Math.round((0.3 + i * 0.0137) * 1000) / 1000).length + String(Math.round(i * 0.0071 * 1000) / 1000).length;
  },
};

const medians = runMicro(cases, ROUNDS, N);
console.log(`| per line (median of ${ROUNDS} rounds × ${N.toLocaleString('en')}) | ns |`);
console.log('|---|---:|');
for (const [name, ns] of medians) console.log(`| ${name} | ${ns.toFixed(0)} |`);
if (sink === 0) console.log(''); // keeps the work observable
