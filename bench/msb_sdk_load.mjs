// msb_sdk_load: the unmodified microsandbox Node SDK as a load client of `sandfsd serve`'s /msb
// prefix, the counterpart of bench/api_load for sandfs's native API (bench/msb_sdk.sh runs both).
//
//   MSB_SDK_DIR=<npm --prefix dir> node bench/msb_sdk_load.mjs --url http://127.0.0.1:P/msb
//       --token-file F --op create|list|write|read [--concurrency 1] [--seconds 5]
//       [--volume bench] [--prefix load]
//
// --concurrency loops, each with one SDK call in flight, for --seconds:
//   create  Volume.builder("<prefix>-<loop>-<i>").create()      POST /v1/volumes
//   list    Volume.list()                                       GET /v1/volumes
//   write   fs.write("w<loop>-<i % 64>", 4 KiB)                 PUT …/files/content
//   read    fs.read("r4k") (a 4 KiB file the caller put there)  GET …/files/content
// Every call is checked (list: non-empty; read: 4096 bytes). Prints one line like api_load:
//   op=… connections=… requests=… errors=… rps=… p50_us=… p99_us=… max_us=…
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const args = { concurrency: 1, seconds: 5, volume: 'bench', prefix: 'load' };
for (let i = 2; i < process.argv.length; i += 2) {
  const key = process.argv[i].replace(/^--/, '').replace(/-(.)/g, (_, c) => c.toUpperCase());
  args[key] = process.argv[i + 1];
}
if (!['create', 'list', 'write', 'read'].includes(args.op)) {
  console.error('msb_sdk_load: --op create|list|write|read');
  process.exit(2);
}
const sdk = await import(pathToFileURL(
  join(process.env.MSB_SDK_DIR, 'node_modules', 'microsandbox', 'dist', 'index.js')).href);
const token = args.token ?? readFileSync(args.tokenFile, 'utf8').trim();
sdk.setDefaultBackend({ kind: 'cloud', url: args.url, apiKey: token });

const data = Buffer.alloc(4096, 'x');
const fs = args.op === 'write' || args.op === 'read'
  ? (await sdk.Volume.get(args.volume)).fs() : null;
const ops = {
  create: async (loop, i) => {
    await sdk.Volume.builder(`${args.prefix}-${loop}-${i}`).create();
    return true;
  },
  list: async () => (await sdk.Volume.list()).length > 0,
  write: async (loop, i) => {
    await fs.write(`w${loop}-${i % 64}`, data);
    return true;
  },
  read: async () => (await fs.read('r4k')).length === 4096,
};
const op = ops[args.op];
const seconds = Number(args.seconds);
const concurrency = Number(args.concurrency);
const lat = [];
let errors = 0;
let firstError;
let stop = false;
const start = process.hrtime.bigint();
const loops = Array.from({ length: concurrency }, async (_, loop) => {
  for (let i = 0; !stop; i++) {
    const t0 = process.hrtime.bigint();
    let ok = false;
    try {
      ok = await op(loop, i);
    } catch (e) {
      firstError ??= e;
    }
    lat.push(Number((process.hrtime.bigint() - t0) / 1000n));
    if (!ok && ++errors > 1000) throw new Error(`too many errors, first: ${firstError?.message}`);
  }
});
setTimeout(() => { stop = true; }, seconds * 1000);
await Promise.all(loops);
const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
lat.sort((a, b) => a - b);
const pct = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : 0);
console.log(`op=${args.op} connections=${concurrency} requests=${lat.length} errors=${errors} ` +
            `rps=${Math.round(lat.length / elapsed)} p50_us=${pct(0.5)} p99_us=${pct(0.99)} ` +
            `max_us=${lat.at(-1) ?? 0}`);
if (firstError) console.error(`msb_sdk_load: first error: ${firstError.message}`);
process.exit(errors === 0 ? 0 : 1);
