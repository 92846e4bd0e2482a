// Every VolumeFs method of the unmodified microsandbox SDK against a real `sandfsd serve`, the
// SDK's error classes for a missing file and an invalid path, and escapes that must stay inside
// the volume: `..`, absolute paths, NUL, encoded dots, and real symlinks planted on the host in
// the volume's directory.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync }
  from 'node:fs';
import { join } from 'node:path';
import { rejectsWith, sdk, startServer, useServer } from './lib.mjs';

const { Volume } = sdk;
const text = (u8) => Buffer.from(u8).toString('utf8');

describe('VolumeFs through the SDK', () => {
  let srv;
  let fs;
  let hostDir;  // the volume's directory on the host
  before(async () => {
    srv = await startServer();
    useServer(srv);
    const vol = await Volume.builder('files').quota(1024).create();
    fs = vol.fs();
    hostDir = join(srv.dataDir, 'volumes', 'files');
    assert.ok(lstatSync(hostDir).isDirectory(), `the volume lives at ${hostDir}`);
  });
  after(async () => {
    await srv?.stop();
  });

  it('writes, reads, stats and checks existence', async () => {
    await fs.write('hello.txt', 'hello world');
    assert.equal(text(await fs.read('hello.txt')), 'hello world');
    assert.equal(await fs.readToString('hello.txt'), 'hello world');
    assert.equal(readFileSync(join(hostDir, 'hello.txt'), 'utf8'), 'hello world',
                 'the bytes are in the volume directory on the host');
    await fs.write('bin.dat', new Uint8Array([0, 1, 2, 255]));
    assert.deepEqual([...(await fs.read('bin.dat'))], [0, 1, 2, 255]);
    await fs.write('hello.txt', 'short');
    assert.equal(await fs.readToString('hello.txt'), 'short', 'a write replaces the file');
    await fs.write('empty.txt', '');
    assert.equal((await fs.read('empty.txt')).length, 0);

    const st = await fs.stat('hello.txt');
    assert.equal(st.kind, 'file');
    assert.equal(st.size, 5);
    assert.equal(st.readonly, false);
    assert.equal(typeof st.mode, 'number');
    assert.ok(st.modified instanceof Date, `modified: ${st.modified}`);
    assert.equal(await fs.exists('hello.txt'), true);
    assert.equal(await fs.exists('nothing-here.txt'), false);
  });

  it('makes directories and lists them', async () => {
    await fs.mkdir('dir');
    await fs.mkdir('dir/sub');
    await fs.write('dir/sub/a.txt', 'aaa');
    await fs.write('dir/b.txt', 'bb');
    assert.equal((await fs.stat('dir')).kind, 'directory');
    assert.equal(await fs.exists('dir/sub'), true);

    const entries = await fs.list('dir');
    const byPath = Object.fromEntries(entries.map((e) => [e.path, e]));
    assert.deepEqual(Object.keys(byPath).sort(), ['dir/b.txt', 'dir/sub'], JSON.stringify(entries));
    assert.equal(byPath['dir/b.txt'].kind, 'file');
    assert.equal(byPath['dir/b.txt'].size, 2);
    assert.equal(byPath['dir/sub'].kind, 'directory');

    const root = (await fs.list('')).map((e) => e.path);
    for (const p of ['hello.txt', 'dir']) assert.ok(root.includes(p), `root list: ${root}`);
  });

  it('copies and renames', async () => {
    await fs.write('src.txt', 'copy me');
    await fs.copy('src.txt', 'dir/copy.txt');
    assert.equal(await fs.readToString('dir/copy.txt'), 'copy me');
    assert.equal(await fs.readToString('src.txt'), 'copy me', 'copy keeps the source');
    await fs.write('src.txt', 'changed');
    assert.equal(await fs.readToString('dir/copy.txt'), 'copy me', 'the copy is independent');

    await fs.rename('dir/copy.txt', 'dir/sub/moved.txt');
    assert.equal(await fs.exists('dir/copy.txt'), false);
    assert.equal(await fs.readToString('dir/sub/moved.txt'), 'copy me');
  });

  it('streams a file in and out in several chunks', async () => {
    const sink = await fs.writeStream('streamed.txt');
    for (const part of ['one ', 'two ', 'three']) await sink.write(part);
    await sink.close();
    assert.equal(await fs.readToString('streamed.txt'), 'one two three');
    const stream = await fs.readStream('streamed.txt');
    assert.equal(text(await stream.collect()), 'one two three');
    const chunks = [];
    for await (const c of await fs.readStream('streamed.txt')) chunks.push(Buffer.from(c));
    assert.equal(Buffer.concat(chunks).toString(), 'one two three');
  });

  it('removes files and directories', async () => {
    await fs.write('gone.txt', 'x');
    await fs.remove('gone.txt');
    assert.equal(await fs.exists('gone.txt'), false);
    assert.equal(existsSync(join(hostDir, 'gone.txt')), false);

    await fs.mkdir('tree');
    await fs.mkdir('tree/deep');
    await fs.write('tree/deep/f.txt', 'f');
    await assert.rejects(fs.remove('tree'), sdk.MicrosandboxError,
                         'remove (not recursive) of a non-empty directory fails');
    assert.equal(await fs.exists('tree/deep/f.txt'), true);
    await fs.removeDir('tree');
    assert.equal(await fs.exists('tree'), false);
    assert.equal(existsSync(join(hostDir, 'tree')), false);
  });

  it('reports a missing file as SandboxFsOpsError (the SDK\'s file-not-found class)', async () => {
    for (const [what, p] of [
      ['read', () => fs.read('missing.txt')],
      ['readStream', async () => (await fs.readStream('missing.txt')).collect()],
      ['stat', () => fs.stat('missing.txt')],
      ['remove', () => fs.remove('missing.txt')],
      ['removeDir', () => fs.removeDir('missing-dir')],
      ['list', () => fs.list('missing-dir')],
      ['copy', () => fs.copy('missing.txt', 'x.txt')],
      ['rename', () => fs.rename('missing.txt', 'x.txt')],
    ]) {
      const e = await rejectsWith(p(), sdk.SandboxFsOpsError, what);
      assert.ok(e.message.length > 0);
    }
    assert.equal(await fs.exists('x.txt'), false);
    // A write below a missing directory makes the parents (docs/msb-compat.md).
    await fs.write('made/on/write.txt', 'deep');
    assert.equal((await fs.stat('made/on')).kind, 'directory');
    assert.equal(await fs.readToString('made/on/write.txt'), 'deep');
  });

  it('reports a missing volume as VolumeNotFoundError on its files', async () => {
    const v = await Volume.builder('short-lived').create();
    const gone = v.fs();
    await Volume.remove('short-lived');
    await rejectsWith(gone.read('a'), sdk.VolumeNotFoundError, 'read');
    await rejectsWith(gone.write('a', 'x'), sdk.VolumeNotFoundError, 'write');
    await rejectsWith(gone.list(''), sdk.VolumeNotFoundError, 'list');
    await rejectsWith(gone.exists('a'), sdk.VolumeNotFoundError, 'exists');
  });

  it('refuses paths that leave the volume with InvalidConfigError', async () => {
    writeFileSync(join(srv.dataDir, 'outside.txt'), 'outside the volume');
    const escapes = ['..', '../outside.txt', '../../token', 'a/../../x', 'dir/../../outside.txt',
                     '/etc/passwd', '/hello.txt', '/', 'a\0b'];
    for (const p of escapes) {
      const q = JSON.stringify(p);
      await rejectsWith(fs.read(p), sdk.InvalidConfigError, `read ${q}`);
      await rejectsWith(fs.stat(p), sdk.InvalidConfigError, `stat ${q}`);
      await rejectsWith(fs.exists(p), sdk.InvalidConfigError, `exists ${q}`);
      await rejectsWith(fs.list(p), sdk.InvalidConfigError, `list ${q}`);
      await rejectsWith(fs.write(p, 'x'), sdk.InvalidConfigError, `write ${q}`);
      await rejectsWith(fs.remove(p), sdk.InvalidConfigError, `remove ${q}`);
      await rejectsWith(fs.removeDir(p), sdk.InvalidConfigError, `removeDir ${q}`);
      await rejectsWith(fs.mkdir(p), sdk.InvalidConfigError, `mkdir ${q}`);
      await rejectsWith(fs.copy('hello.txt', p), sdk.InvalidConfigError, `copy to ${q}`);
      await rejectsWith(fs.copy(p, 'stolen.txt'), sdk.InvalidConfigError, `copy from ${q}`);
      await rejectsWith(fs.rename('hello.txt', p), sdk.InvalidConfigError, `rename to ${q}`);
      await rejectsWith(fs.rename(p, 'stolen.txt'), sdk.InvalidConfigError, `rename from ${q}`);
    }
    assert.equal(readFileSync(join(srv.dataDir, 'outside.txt'), 'utf8'), 'outside the volume');
    assert.equal(await fs.exists('stolen.txt'), false);
    assert.equal(await fs.readToString('hello.txt'), 'short', 'hello.txt untouched');
    assert.ok(existsSync(join(srv.dataDir, 'token')), 'the token file is still there');
    assert.ok(existsSync(hostDir), 'the volume directory is still there');
  });

  it('takes encoded dots literally, never as ..', async () => {
    for (const name of ['%2e%2e', '%2E%2E%2Foutside.txt', 'Li4', '..%2f']) {
      try {
        await fs.write(name, 'literal');
      } catch (e) {
        assert.ok(e instanceof sdk.InvalidConfigError, `${name}: ${e.constructor.name}: ${e.message}`);
        continue;
      }
      assert.equal(await fs.readToString(name), 'literal');
      assert.equal(readFileSync(join(hostDir, name), 'utf8'), 'literal',
                   `${name} is a file of that very name in the volume`);
    }
    assert.equal(readFileSync(join(srv.dataDir, 'outside.txt'), 'utf8'), 'outside the volume');
  });

  it('never follows a symlink planted on the host inside the volume', async () => {
    const secretDir = join(srv.dataDir, 'secret');
    mkdirSync(secretDir);
    writeFileSync(join(secretDir, 'key.txt'), 'top secret');
    symlinkSync(secretDir, join(hostDir, 'dirlink'));
    symlinkSync(join(secretDir, 'key.txt'), join(hostDir, 'filelink'));
    symlinkSync('../../secret', join(hostDir, 'dir', 'rellink'));
    try {
      for (const p of ['dirlink/key.txt', 'dir/rellink/key.txt']) {
        await rejectsWith(fs.read(p), sdk.InvalidConfigError, `read ${p}`);
        await rejectsWith(fs.write(p, 'pwned'), sdk.InvalidConfigError, `write ${p}`);
        await rejectsWith(fs.remove(p), sdk.InvalidConfigError, `remove ${p}`);
        await rejectsWith(fs.copy(p, 'stolen.txt'), sdk.InvalidConfigError, `copy from ${p}`);
        await rejectsWith(fs.rename('hello.txt', p), sdk.InvalidConfigError, `rename to ${p}`);
      }
      await rejectsWith(fs.list('dirlink'), sdk.InvalidConfigError, 'list through dirlink');
      await rejectsWith(fs.mkdir('dirlink/new'), sdk.InvalidConfigError, 'mkdir through dirlink');
      await rejectsWith(fs.write('dirlink/new.txt', 'x'), sdk.InvalidConfigError,
                        'create through dirlink');
      await rejectsWith(fs.read('filelink'), sdk.InvalidConfigError, 'read a file symlink');
      await rejectsWith(fs.copy('filelink', 'stolen.txt'), sdk.InvalidConfigError,
                        'copy a file symlink');
      // Writing to the name of a final symlink must not write through it.
      try {
        await fs.write('filelink', 'pwned');
      } catch (e) {
        assert.ok(e instanceof sdk.InvalidConfigError, `write filelink: ${e.constructor.name}`);
      }
      // A listing with symlinks in it still decodes in the SDK (it knows only file/directory).
      const root = await fs.list('');
      assert.ok(root.every((e) => e.kind === 'file' || e.kind === 'directory'),
                JSON.stringify(root));
    } finally {
      assert.equal(readFileSync(join(secretDir, 'key.txt'), 'utf8'), 'top secret',
                   'the file outside the volume is unchanged');
      assert.deepEqual(
        ['new', 'new.txt', 'stolen.txt'].filter((n) => existsSync(join(secretDir, n))), [],
        'nothing was created outside the volume');
      assert.equal(await fs.exists('stolen.txt'), false);
      rmSync(join(hostDir, 'dirlink'));
      rmSync(join(hostDir, 'dir', 'rellink'));
      if (lstatSync(join(hostDir, 'filelink'), { throwIfNoEntry: false })?.isSymbolicLink()) {
        rmSync(join(hostDir, 'filelink'));
      }
    }
  });
});
