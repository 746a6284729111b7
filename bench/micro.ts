// The loop of the in-process micro-benchmarks (access-log-line.ts, metric-cells.ts): every case
// run N times per round, rounds interleaved (the order reversed every other round so no case is
// always first), each case warmed up before it is timed. Returns ns per call: the median over the
// rounds.
export function runMicro(cases: Record<string, (i: number) => void>, rounds: number, n: number): Map<string, number> {
  const samples = new Map<string, number[]>();
  for (let round = 0; round < rounds; round++) {
    const names = Object.keys(cases);
    if (round % 2 === 1) names.reverse();
    for (const name of names) {
      const fn = cases[name]!;
      for (let i = 0; i < n / 10; i++) fn(i); // warm-up
      const start = process.hrtime.bigint();
      for (let i = 0; i < n; i++) fn(i);
      const xs = samples.get(name) ?? [];
      xs.push(Number(process.hrtime.bigint() - start) / n);
      samples.set(name, xs);
    }
  }
  const medians = new Map<string, number>();
  for (const [name, xs] of samples) medians.set(name, [...xs].sort((a, b) => a - b)[xs.length >> 1]!);
  return medians;
}
