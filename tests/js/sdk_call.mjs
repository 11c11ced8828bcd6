// One Rekognition call through the AWS SDK for JavaScript v3, for the Python tests.
//
// stdin: {"endpoint", "region", "accessKeyId", "secretAccessKey", "operation": "SearchFacesByImage",
//         "params": {...}, "headers": {"X-Faceledger-Purpose": "..."}}
// Any "Bytes" member given as a string is base64 and sent as bytes.
// stdout: {"response": <the SDK's parsed output, $metadata removed>, "status": 200, "headers": {...}}
//     or  {"error": {"name", "message"}, "status": 400, "headers": {...}}
// The raw HTTP headers come from a deserialize-step middleware: the SDK's way to reach them.
import * as rek from "@aws-sdk/client-rekognition";

function decodeBytes(value) {
  if (Array.isArray(value)) return value.map(decodeBytes);
  if (value && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = k === "Bytes" && typeof v === "string" ? Uint8Array.from(Buffer.from(v, "base64")) : decodeBytes(v);
    }
    return out;
  }
  return value;
}

function plain(value) {
  if (value instanceof Uint8Array) return Buffer.from(value).toString("base64");
  if (value instanceof Date) return value.getTime() / 1000;
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).filter(([k]) => k !== "$metadata").map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const req = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const Command = rek[`${req.operation}Command`];
if (!Command) {
  process.stdout.write(JSON.stringify({ error: { name: "UnknownOperation", message: req.operation } }));
  process.exit(2);
}
const client = new rek.RekognitionClient({
  endpoint: req.endpoint,
  region: req.region || "us-east-1",
  credentials: { accessKeyId: req.accessKeyId, secretAccessKey: req.secretAccessKey },
  maxAttempts: 1,
});
let raw = { status: null, headers: {} };
client.middlewareStack.add(
  (next) => async (args) => {
    for (const [k, v] of Object.entries(req.headers || {})) args.request.headers[k] = v;
    return next(args);
  },
  { step: "build", name: "faceledgerRequestHeaders" }, // before signing, so they are signed too
);
client.middlewareStack.add(
  (next) => async (args) => {
    const out = await next(args);
    raw = { status: out.response.statusCode, headers: out.response.headers };
    return out;
  },
  { step: "deserialize", name: "faceledgerRawHeaders" },
);
try {
  const response = await client.send(new Command(decodeBytes(req.params || {})));
  process.stdout.write(JSON.stringify({ response: plain(response), ...raw }));
} catch (err) {
  process.stdout.write(JSON.stringify({ error: { name: err.name, message: err.message }, ...raw }));
}
