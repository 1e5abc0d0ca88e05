// A hub client for the tests: the real @microsoft/signalr client, unchanged.
// usage: node client.mjs <hubUrl> <token> [--job ID] [--service ID] [--job-type T] [--resume N]
// Prints one JSON object a line: {"ready":true} once connected and subscribed, then
// {"target":..., "arguments":[...]} per event, {"resume":...}, {"closed":...}, {"error":...}.
import * as signalR from "@microsoft/signalr";

const TARGETS = [
  "JobStatusChanged",
  "HealthStatusChanged",
  "AlertTriggered",
  "ResourceMetricsUpdated",
  "ResourceAlertTriggered",
  "JobCommandExpired",
];
const METHODS = { "--job": "SubscribeJob", "--service": "SubscribeService", "--job-type": "SubscribeJobType" };

const [hubUrl, token, ...rest] = process.argv.slice(2);
const print = (value) => process.stdout.write(JSON.stringify(value) + "\n");

const connection = new signalR.HubConnectionBuilder()
  .withUrl(hubUrl, { accessTokenFactory: () => token })
  .configureLogging(signalR.LogLevel.Warning)
  .build();
for (const target of TARGETS) {
  connection.on(target, (...args) => print({ target, arguments: args, at: Date.now() }));
}
connection.onclose((error) => {
  print({ closed: error ? String(error.message ?? error) : null });
  process.exit(0);
});

try {
  await connection.start();
  let resume = null;
  for (let i = 0; i < rest.length; i += 2) {
    if (rest[i] === "--resume") resume = Number(rest[i + 1]);
    else await connection.invoke(METHODS[rest[i]], rest[i + 1]);
  }
  if (resume !== null) print({ resume: await connection.invoke("Resume", resume) });
  print({ ready: true });
} catch (error) {
  print({ error: String(error.message ?? error) });
  process.exit(1);
}
process.stdin.on("end", () => connection.stop());
process.stdin.resume();
