// Large files and the quota through the unmodified microsandbox SDK, then the same volume read
// back by the other ways into sandfs: its own /v1 files API and a /dev/fuse mount requested
// with POST /v1/mounts (read through the mountpoint with node's fs).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { rejectsWith, sdk, startServer, useServer } from './lib.mjs';

const { Volume } = sdk;
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');

describe('100 MiB, the quota and the other ways in', () => {
  let srv;
  let fs;
  let bigSha;
  before(async () => {
    srv = await startServer();
    useServer(srv);
    fs = (await Volume.builder('bulk').quota(1024).label('suite', 'msb_sdk').create()).fs();
  });
  after(async () => {
    await srv?.stop();
  });

  it('streams 100 MiB in and reads it back by checksum', async () => {
    const hash = createHash('sha256');
    const sink = await fs.writeStream('big.bin');
    for (let i = 0; i < 100; i++) {
      const chunk = randomBytes(MiB);
      hash.update(chunk);
      await sink.write(chunk);
    }
    await sink.close();
    bigSha = hash.digest('hex');

    assert.equal((await fs.stat('big.bin')).size, 100 * MiB);
    const back = createHash('sha256');
    let n = 0;
    let chunks = 0;
    for await (const c of await fs.readStream('big.bin')) {
      back.update(c);
      n += c.byteLength;
      chunks += 1;
    }
    assert.equal(n, 100 * MiB);
    assert.ok(chunks > 1, `the read arrived as a stream of chunks (${chunks})`);
    assert.equal(back.digest('hex'), bigSha, 'readStream returns the bytes written');
    assert.equal(sha256(await fs.read('big.bin')), bigSha, 'read returns the bytes written');

    const h = await Volume.get('bulk');
    assert.ok(h.usedBytes >= 100 * MiB && h.usedBytes < 110 * MiB,
              `used_bytes is real: ${h.usedBytes}`);
  });

  it('refuses to grow the volume past its quota and leaves no partial file', async () => {
    const chunk = randomBytes(MiB);
    const e = await rejectsWith((async () => {
      const sink = await fs.writeStream('too-big.bin');
      for (let i = 0; i < 1024; i++) await sink.write(chunk);  // 100 MiB + 1 GiB > 1 GiB
      await sink.close();
    })(), sdk.CloudHttpError, 'a stream past the quota');
    assert.match(e.message, /507|quota/i, e.message);
    assert.equal(await fs.exists('too-big.bin'), false, 'the refused upload left nothing');
    assert.equal((await fs.stat('big.bin')).size, 100 * MiB, 'the earlier file is intact');
    const h = await Volume.get('bulk');
    assert.ok(h.usedBytes <= GiB, `used ${h.usedBytes} stays within the 1 GiB quota`);
    await fs.write('small-after.txt', 'still writable');
    assert.equal(await fs.readToString('small-after.txt'), 'still writable');
  });

  it('shows the SDK\'s files through sandfs\'s own API', async () => {
    await fs.mkdir('docs');
    await fs.write('docs/note.txt', 'written by the SDK\n');
    let res = await srv.api('GET', '/v1/volumes/bulk/files/docs/note.txt');
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'written by the SDK\n');

    res = await srv.api('GET', '/v1/volumes/bulk/files/big.bin');
    assert.equal(res.status, 200);
    const hash = createHash('sha256');
    for await (const c of res.body) hash.update(c);
    assert.equal(hash.digest('hex'), bigSha, 'the 100 MiB file through /v1');

    res = await srv.api('GET', '/v1/volumes/bulk');
    const v = await res.json();
    assert.equal(v.quota_bytes, GiB);
    assert.deepEqual(v.labels, { suite: 'msb_sdk' });
    assert.ok(v.used_bytes >= 100 * MiB, `used_bytes ${v.used_bytes}`);

    // And the other way: what sandfs's API writes, the SDK reads.
    res = await srv.api('PUT', '/v1/volumes/bulk/files/docs/from-api.txt', { body: 'native' });
    assert.ok(res.ok, `PUT through /v1: ${res.status}`);
    assert.equal(await fs.readToString('docs/from-api.txt'), 'native');
  });

  it('shows the SDK\'s files through a /dev/fuse mount of the volume', async () => {
    const mnt = join(srv.dataDir, '..', 'mnt');
    mkdirSync(mnt);
    let res = await srv.api('POST', '/v1/mounts', {
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({
        sandbox_id: 'sb-msb-sdk', guest_path: '/data',
        source: { type: 'named', name: 'bulk', mode: 'existing' },
        transport: { type: 'fuse', mountpoint: mnt },
      }),
    });
    const m = await res.json();
    assert.equal(res.status, 201, JSON.stringify(m));
    assert.equal(m.state, 'mounted');
    try {
      assert.equal(await readFile(join(mnt, 'docs', 'note.txt'), 'utf8'), 'written by the SDK\n');
      assert.equal(sha256(await readFile(join(mnt, 'big.bin'))), bigSha,
                   'the 100 MiB file through the kernel');
      assert.equal(statSync(join(mnt, 'big.bin')).size, 100 * MiB);
      assert.deepEqual(readdirSync(mnt).sort(),
                       ['big.bin', 'docs', 'small-after.txt'], 'the mount lists the volume');
      // A write through the mount is seen by the SDK.
      const { writeFile } = await import('node:fs/promises');
      await writeFile(join(mnt, 'docs', 'from-kernel.txt'), 'through /dev/fuse');
      assert.equal(await fs.readToString('docs/from-kernel.txt'), 'through /dev/fuse');
      // While mounted, removing the volume through the SDK is refused, not a 500.
      await rejectsWith(Volume.remove('bulk'), sdk.CloudHttpError, 'remove while mounted');
    } finally {
      res = await srv.api('DELETE', `/v1/mounts/${m.id}`);
      assert.equal(res.status, 204, 'unmount');
    }
    await Volume.remove('bulk');
    await rejectsWith(Volume.get('bulk'), sdk.VolumeNotFoundError, 'get after remove');
  });
});
