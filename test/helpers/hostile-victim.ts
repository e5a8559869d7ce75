// The hostile mix's victim, run as its own process (so that the mix's clients, which parse and
// build megabytes, do not delay its clock): a typing frame every `everyMs` on its own group for
// `durationMs`, then one JSON line on stdout: {rtts: [ms...], unanswered, waited}, `waited` being
// the share of that time its main thread spent waiting for a core (/proc/self/schedstat: on a
// busy machine the victim's own scheduling delays its round trips too). The round trip is to
// the frame's own typing event coming back through the group's fan-out (in order), which the
// bench's bare-uWS baseline serves too.
// argv: <ws url> <token> <durationMs> <everyMs>
import { readFileSync } from "node:fs";
import WebSocket from "ws";

/** Nanoseconds this process's main thread has waited on a run queue. */
const waitedNs = () => Number(readFileSync("/proc/self/schedstat", "utf8").split(" ")[1]);

const [url, token, durationMs, everyMs] = process.argv.slice(2) as [string, string, string, string];
const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${token}` }, perMessageDeflate: false });
const sentAt: number[] = [];
const rtts: number[] = [];
ws.on("message", (d) => {
  const f = JSON.parse(d.toString()) as { operation: string; user?: string };
  const t0 = f.operation === "typing" && f.user === "victim" ? sentAt.shift() : undefined;
  if (t0 !== undefined) rtts.push(performance.now() - t0);
});
ws.once("error", (err) => {
  process.stdout.write(`${JSON.stringify({ error: err.message })}\n`);
  process.exit(1);
});
ws.once("open", async () => {
  const until = Date.now() + Number(durationMs);
  const [start, waitedAtStart] = [performance.now(), waitedNs()];
  for (let i = 0; Date.now() < until; i++) {
    sentAt.push(performance.now());
    ws.send(JSON.stringify({ operation: "typing", user: "victim", typing_status: "typing", request_id: `v${i}` }));
    await new Promise((r) => setTimeout(r, Number(everyMs)));
  }
  const waited = (waitedNs() - waitedAtStart) / 1e6 / (performance.now() - start);
  await new Promise((r) => setTimeout(r, 2_000)); // the last answers
  process.stdout.write(`${JSON.stringify({ rtts, unanswered: sentAt.length, waited })}\n`);
  ws.close();
  process.exit(0);
});
