/**
 * The V8 flags KubeProxy's processes run with. V8 reads them when it sets up the heap, so they
 * must be on the node command line (`v8.setFlagsFromString` at startup is too late for them):
 * the Docker image's ENTRYPOINT and the benchmark spell them out (test/deploy-dockerfile.test.ts
 * keeps the image in step with this list), the cluster primary adds them to its workers'
 * (withV8Flags). bin/kubeproxy's shebang cannot carry them (`env -S` is not in BusyBox), so a
 * single process started through the bin runs without them: the README says so.
 *
 * `--no-memory-reducer`: once a process has been idle for about 8 s after load, V8's memory
 * reducer runs full GCs to shrink the heap and leaves the old generation's limit just above
 * what is live. When load comes back, each full GC moves the requests in flight into the old
 * generation, which fills it to the next limit: some processes then run a full GC every
 * ~100 ms for as long as the load lasts, at half their throughput. Measured on 64 KiB GETs,
 * six processes started and idled as a load balancer's lull would leave them, two rounds each:
 * without the flag 0 to 3 of the six per run did 86–163 full GCs (every one of them after two
 * memory-reducer GCs) at 230–400 µs of CPU a request, the others 6–46 at 105–170 µs; with it,
 * 13–46 full GCs in every process, none stuck. A proxy's load comes and goes, and its peak
 * heap is what a pod must be sized for anyway: what the flag costs is that an idle process
 * keeps that heap instead of shrinking it.
 */
export const V8_FLAGS: readonly string[] = ['--no-memory-reducer'];

/** `execArgv` with each of V8_FLAGS it lacks appended (a process's own flags come first). */
export function withV8Flags(execArgv: readonly string[]): string[] {
  return [...execArgv, ...V8_FLAGS.filter((flag) => !execArgv.includes(flag))];
}
