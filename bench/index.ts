/**
 * `npm run bench`: the side-by-side benchmark (this service vs Socket.IO vs plain ws) arrives
 * with the performance issue; until then this says so instead of failing.
 */
process.stdout.write('No benchmarks yet: the workloads (A–F) and targets come with the performance issue.\n');
