// Preloaded into every node a test spawns (spawnNode in node.ts): the node ends once the test
// process that spawned it is gone. tap SIGKILLs a test file that outlives its timeout, and then
// the teardowns that kill its nodes never run: the nodes lived on, each burning CPU under every
// later test. Checked twice a second, unref'd (it keeps nothing alive).
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.kill(process.pid, "SIGKILL");
}, 500).unref();
