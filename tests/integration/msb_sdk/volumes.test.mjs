// Volume lifecycle through the unmodified microsandbox SDK against a real `sandfsd serve`:
// create with a quota and labels, list, get, the default volume, the SDK's error classes, 20
// concurrent creates of one name, remove, and handles pinned to a volume's id.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rejectsWith, sdk, startServer, uniqueName, useServer } from './lib.mjs';

const { Volume } = sdk;
const GiB = 1024 * 1024 * 1024;

describe('volumes through the SDK', () => {
  let srv;
  before(async () => {
    srv = await startServer();
    useServer(srv);
  });
  after(async () => {
    await srv?.stop();
  });

  it('creates a volume with a quota and labels; list and get report them', async () => {
    const name = uniqueName('quota');
    const vol = await Volume.builder(name).quota(2048).label('team', 'ml').label('tier', 'gold')
                    .create();
    assert.equal(vol.name, name);

    const listed = (await Volume.list()).filter((h) => h.name === name);
    assert.equal(listed.length, 1, 'list shows the new volume once');
    for (const h of [listed[0], await Volume.get(name)]) {
      assert.equal(h.name, name);
      assert.equal(h.isDefault, false);
      assert.equal(h.quotaMib, 2048);
      assert.equal(h.capacityBytes, 2 * GiB);
      assert.deepEqual(Object.fromEntries(h.labels), { team: 'ml', tier: 'gold' });
      assert.equal(typeof h.usedBytes, 'number');
      assert.ok(h.createdAt instanceof Date && !Number.isNaN(h.createdAt.getTime()),
                `createdAt is a date: ${h.createdAt}`);
    }

    // The same volume as sandfs's own API sees it: the SDK's capacity is the volume's quota.
    const res = await srv.api('GET', `/v1/volumes/${name}`);
    assert.equal(res.status, 200);
    const native = await res.json();
    assert.equal(native.quota_bytes, 2 * GiB);
    assert.deepEqual(native.labels, { team: 'ml', tier: 'gold' });
  });

  it('creates a volume without a quota (unlimited) and lists it with every other volume', async () => {
    const a = uniqueName('plain');
    const b = uniqueName('plain');
    await Volume.builder(a).create();
    await Volume.builder(b).create();
    const names = (await Volume.list()).map((h) => h.name);
    assert.ok(names.includes(a) && names.includes(b), `list: ${names}`);
    const h = await Volume.get(a);
    assert.equal(h.quotaMib, null);
    assert.equal(h.capacityBytes, null);
    assert.deepEqual(h.labels, []);
  });

  it('refuses a second volume of the same name with VolumeAlreadyExistsError', async () => {
    const name = uniqueName('dup');
    await Volume.builder(name).create();
    await rejectsWith(Volume.builder(name).create(), sdk.VolumeAlreadyExistsError, 'second create');
    await rejectsWith(Volume.builder(name).quota(1024).create(), sdk.VolumeAlreadyExistsError,
                      'second create with a quota');
  });

  it('lets exactly one of 20 concurrent creates of one name win', async () => {
    const name = uniqueName('race');
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => Volume.builder(name).label('n', String(i)).create()));
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r) => r.status === 'rejected');
    assert.equal(won.length, 1, `exactly one create wins: ${won.length}`);
    for (const r of lost) {
      assert.ok(r.reason instanceof sdk.VolumeAlreadyExistsError,
                `a losing create is VolumeAlreadyExistsError: ${r.reason?.constructor?.name}: ` +
                r.reason?.message);
    }
    const same = (await Volume.list()).filter((h) => h.name === name);
    assert.equal(same.length, 1, 'one volume of that name exists');
    // The winner's label is the one stored.
    const winner = results.findIndex((r) => r.status === 'fulfilled');
    assert.deepEqual(Object.fromEntries(same[0].labels), { n: String(winner) });
  });

  it('reports a missing volume as VolumeNotFoundError', async () => {
    await rejectsWith(Volume.get('no-such-volume'), sdk.VolumeNotFoundError, 'get');
    await rejectsWith(Volume.remove('no-such-volume'), sdk.VolumeNotFoundError, 'remove');
  });

  it('refuses invalid names and quotas with InvalidConfigError', async () => {
    for (const bad of ['../escape', 'a/b', '.hidden', '', 'x'.repeat(129)]) {
      await rejectsWith(Volume.builder(bad).create(), sdk.InvalidConfigError,
                        `create ${JSON.stringify(bad)}`);
    }
    const names = (await Volume.list()).map((h) => h.name);
    assert.ok(!names.includes('../escape') && !names.includes('a/b'), `list: ${names}`);
    // Not whole GiB: the SDK refuses before sending anything.
    await rejectsWith(Volume.builder(uniqueName('half')).quota(1536).create(),
                      sdk.InvalidConfigError, 'quota of 1.5 GiB');
  });

  it('removes volumes by name and by handle', async () => {
    const a = uniqueName('rm');
    const b = uniqueName('rm');
    await Volume.builder(a).create();
    await Volume.builder(b).create();
    await Volume.remove(a);
    await rejectsWith(Volume.get(a), sdk.VolumeNotFoundError, 'get after remove');
    await rejectsWith(Volume.remove(a), sdk.VolumeNotFoundError, 'remove twice');
    const h = await Volume.get(b);
    await h.remove();
    const names = (await Volume.list()).map((v) => v.name);
    assert.ok(!names.includes(a) && !names.includes(b), `list after removes: ${names}`);
    const res = await srv.api('GET', `/v1/volumes/${b}`);
    assert.equal(res.status, 404, "sandfs's own API no longer has it");
  });

  it('keeps an old handle pinned to its volume after a remove and re-create of the name',
     async () => {
       const name = uniqueName('pin');
       const old = await Volume.get((await Volume.builder(name).create()).name);
       await old.fs().write('marker.txt', 'first');
       await Volume.remove(name);
       const fresh = await Volume.builder(name).create();
       await rejectsWith(old.fs().read('marker.txt'), sdk.VolumeNotFoundError,
                         'the old handle reads');
       await rejectsWith(old.fs().write('late.txt', 'x'), sdk.VolumeNotFoundError,
                         'the old handle writes');
       assert.equal(await fresh.fs().exists('marker.txt'), false);
       assert.equal(await fresh.fs().exists('late.txt'), false,
                    'the old handle never wrote into the new volume');
     });

  it('answers the default volume with VolumeNotFoundError when none is configured', async () => {
    await rejectsWith(Volume.getDefault(), sdk.VolumeNotFoundError, 'getDefault');
  });

  it('works the same when the backend is set through the SDK\'s own setDefaultBackend', async () => {
    sdk.setDefaultBackend({ kind: 'cloud', url: srv.msbUrl, apiKey: srv.token });
    try {
      assert.equal(sdk.defaultBackendKind(), 'cloud');
      const name = uniqueName('js-api');
      await Volume.builder(name).create();
      assert.ok((await Volume.list()).some((h) => h.name === name));
    } finally {
      useServer(srv);
    }
  });

  it('refuses a wrong token with CloudHttpError 401', async () => {
    useServer(srv, '0'.repeat(64));
    try {
      const e = await rejectsWith(Volume.list(), sdk.CloudHttpError, 'list with a wrong token');
      assert.match(e.message, /401/);
    } finally {
      useServer(srv);
    }
  });
});

describe('a configured default volume', () => {
  let srv;
  before(async () => {
    srv = await startServer(['--msb-default-volume', 'shared']);
    useServer(srv);
  });
  after(async () => {
    await srv?.stop();
  });

  it('is what getDefault answers, with working files', async () => {
    await Volume.builder('shared').label('k', 'v').create();
    const d = await Volume.getDefault();
    // The SDK's isDefault is `kind == "host"` on the wire, which sandfs answers for the
    // configured default on every route.
    assert.equal(d.isDefault, true, 'getDefault marks it as the default');
    const listed = (await Volume.list()).filter((h) => h.name === 'shared');
    assert.equal(listed.length, 1);
    assert.equal(listed[0].isDefault, true, 'list marks it as the default');
    await Volume.builder('other').create();
    assert.equal((await Volume.get('other')).isDefault, false, 'another volume is not');
    await d.fs().write('seen.txt', 'through the default');
    assert.equal(await (await Volume.get('shared')).fs().readToString('seen.txt'),
                 'through the default');
    const res = await srv.api('GET', '/v1/volumes/shared/files/seen.txt');
    assert.equal(await res.text(), 'through the default');
    // The configured default cannot be removed while it is configured.
    const e = await rejectsWith(Volume.remove('shared'), sdk.CloudHttpError, 'remove the default');
    assert.match(e.message, /409/);
    assert.equal((await Volume.list()).filter((h) => h.name === 'shared').length, 1);
  });
});
