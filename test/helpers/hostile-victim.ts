// The hostile mix's victim, run as its own process (so that the mix's clients, which parse and
// build megabytes, do not delay its clock): a typing frame every `everyMs` on its own group for
// `durationMs`, then one JSON line on stdout: {rtts: [ms...], unanswered}. The round trip is to
// the frame's own typing event coming back through the group's fan-out (in order), which the
// bench's bare-uWS baseline serves too.
// argv: <ws url> <token> <durationMs> <everyMs>
import WebSocket from "ws";

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
  for (let i = 0; Date.now() < until; i++) {
    sentAt.push(performance.now());
    ws.send(JSON.stringify({ operation: "typing", user: "victim", typing_status: "typing", request_id: `v${i}` }));
    await new Promise((r) => setTimeout(r, Number(everyMs)));
  }
  await new Promise((r) => setTimeout(r, 2_000)); // the last answers
  process.stdout.write(`${JSON.stringify({ rtts, unanswered: sentAt.length })}\n`);
  ws.close();
  process.exit(0);
});
