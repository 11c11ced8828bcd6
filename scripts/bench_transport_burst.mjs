// 100 concurrent DetectFaces from the AWS SDK for JavaScript v3 with its defaults (standard retry
// mode, 3 attempts), BURSTS times. Run by scripts/bench_transport_load.py --js (which starts the
// server and sets ENDPOINT, KEY, SECRET, IMAGES); needs node and, not a project dependency,
// `npm install @aws-sdk/client-rekognition` run in the folder given as --js-modules.
import { RekognitionClient, DetectFacesCommand } from "@aws-sdk/client-rekognition";
import { readFileSync, readdirSync } from "fs";
import { join } from "path";

const root = process.env.IMAGES;
const images = [];
for (const person of readdirSync(root).sort().slice(0, 40)) {
  const files = readdirSync(join(root, person)).filter(f => f.endsWith(".jpg")).sort();
  if (files.length) images.push(readFileSync(join(root, person, files[0])));
}
const n = Number(process.env.N || 100);
const bursts = Number(process.env.BURSTS || 3);
const clients = Array.from({ length: n }, () => new RekognitionClient({
  endpoint: process.env.ENDPOINT, region: "us-east-1",
  credentials: { accessKeyId: process.env.KEY, secretAccessKey: process.env.SECRET },
}));
const lat = []; const codes = {};
for (let b = 0; b < bursts; b++) {
  await Promise.all(clients.map(async (c, i) => {
    const t = performance.now();
    try {
      await c.send(new DetectFacesCommand({ Image: { Bytes: images[i % images.length] } }));
      lat.push(performance.now() - t);
    } catch (e) {
      const code = e.name || "Error"; codes[code] = (codes[code] || 0) + 1;
    }
  }));
}
lat.sort((a, b) => a - b);
const pct = q => lat.length ? Math.round(lat[Math.min(lat.length - 1, Math.floor(q * lat.length))]) : null;
console.log(JSON.stringify({ sdk: "aws-sdk-js-v3", concurrent: n, bursts, ok: lat.length,
  failed: Object.values(codes).reduce((a, b) => a + b, 0), errors_by_code: codes, p50_ms: pct(0.5), p99_ms: pct(0.99) }));
