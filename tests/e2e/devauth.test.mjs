// The Wi-Fi device credentials page in headless Chromium against the real
// daemon (`carebridge run`): an installer makes a credential for a device,
// sees it once (text and QR code), a device logs in to the local broker
// with it, the installer revokes it, and the device is refused. The broker
// listens on the network with allow_anonymous = true, so every page shows
// the standing warning.
//
// Env: E2E_BIN (run.sh sets it), E2E_SHOTS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { mkdtempSync, readFileSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const BIN = process.env.E2E_BIN || resolve(here, '../../target/debug/carebridge');
const SHOTS = process.env.E2E_SHOTS || resolve(here, '../../target/e2e-screenshots');
const PASSWORD = 'correct horse battery';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

function mqttString(s) {
  const b = Buffer.from(s, 'utf8');
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 255]), b]);
}
function mqttPacket(type, body) {
  const len = [];
  let n = body.length;
  do { let d = n % 128; n = Math.floor(n / 128); if (n > 0) d |= 128; len.push(d); } while (n > 0);
  return Buffer.concat([Buffer.from([type, ...len]), body]);
}
// CONNECTs with a user name and password; resolves with the CONNACK code.
function login(port, user, pass) {
  return new Promise((ok, fail) => {
    const sock = connect(port, '127.0.0.1');
    const timer = setTimeout(() => { sock.destroy(); fail(new Error('no CONNACK')); }, 10000);
    sock.on('error', e => { clearTimeout(timer); fail(e); });
    sock.on('connect', () => sock.write(mqttPacket(0x10, Buffer.concat([mqttString('MQTT'),
      Buffer.from([4, 0xc2, 0, 60]), mqttString('e2e-' + user), mqttString(user), mqttString(pass)]))));
    sock.once('data', d => { clearTimeout(timer); sock.destroy(); ok(d[0] === 0x20 ? d[3] : -1); });
  });
}
const freePort = () => new Promise(ok => { const sv = createServer(); sv.listen(0, '127.0.0.1', () => { const p = sv.address().port; sv.close(() => ok(p)); }); });

test('an installer makes a device credential (shown once, with a QR code), the device logs in, revoking it shuts the device out', async () => {
  mkdirSync(SHOTS, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), 'cb-e2e-cred-'));
  const prof = mkdtempSync(join(tmpdir(), 'cb-e2e-cred-profile-'));
  const conf = join(dir, 'carebridge.toml');
  const port = await freePort();
  writeFileSync(conf, `[gateway]\nid = "cred-home"\ndata_dir = "${join(dir, 'data')}"\n\n` +
    `[local_broker]\nlisten = "0.0.0.0:${port}"\ndevice_credentials = true\nallow_anonymous = true\n\n[web]\nlisten = "127.0.0.1:0"\n`);
  const child = spawn(BIN, ['run', '--config', conf], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: 'info' } });
  let out = '';
  const url = await new Promise((ok, fail) => {
    const look = d => { out += d; const m = out.match(/url\S*?=\S*?(https:\/\/[\d.:]+)\//); if (m) ok(m[1]); };
    child.stdout.on('data', look); child.stderr.on('data', look);
    child.on('exit', c => fail(new Error('carebridge exited ' + c + ':\n' + out.slice(-3000))));
    setTimeout(() => fail(new Error('carebridge did not start:\n' + out.slice(-3000))), 30000);
  });
  const ctx = await chromium.launchPersistentContext(prof, {
    executablePath: '/usr/bin/chromium', headless: true, args: ARGS, ignoreHTTPSErrors: true,
    viewport: { width: 1280, height: 900 },
  });
  const errors = [];
  try {
    const p = ctx.pages()[0] || await ctx.newPage();
    p.on('console', m => { if (m.type() === 'error') errors.push(m.text()); });
    p.on('dialog', d => d.accept());
    await p.goto(url + '/');
    await p.waitForSelector('body[data-ready="true"]');
    await p.fill('input[name=code]', readFileSync(join(dir, 'data', 'setup-code'), 'utf8').trim());
    await p.fill('input[name=username]', 'admin');
    await p.fill('input[name=password]', PASSWORD);
    await Promise.all([p.waitForURL(url + '/'), p.click('button[type=submit]')]);
    await p.waitForSelector('body[data-ready="true"]');
    // The standing warning: the broker is open to the network.
    assert.match(await p.textContent('.standing'), /accepts anyone on the network/);

    await p.click('a[data-nav="credentials"]');
    await p.waitForSelector('body[data-ready="true"]');
    assert.match(await p.textContent('.standing'), /allow_anonymous/, 'the warning stands on every page');
    // A hostile id is refused inline.
    await p.fill('input[name=device]', 'bath/#');
    await p.click('#credential-form button[type=submit]');
    await p.locator('input[name=device] + .field-error').waitFor();
    // A real one is made and shown once.
    await p.fill('input[name=device]', 'bath-sensor');
    await p.click('#credential-form button[type=submit]');
    await p.waitForSelector('#issued-card');
    const user = (await p.textContent('#issued-user')).trim();
    const secret = (await p.textContent('#issued-password')).trim();
    assert.equal(user, 'bath-sensor');
    assert.match(secret, /^[0-9a-f]{32}$/);
    assert.equal(await p.locator('#issued-qr svg path').count(), 1, 'QR code rendered');
    await p.waitForSelector('tr[data-credential="bath-sensor"]');
    await p.screenshot({ path: join(SHOTS, 'credentials-issued.png'), fullPage: true });
    // The file holds a MAC, never the secret.
    const file = readFileSync(join(dir, 'data', 'devauth', 'credentials.json'), 'utf8');
    assert.ok(file.includes('"bath-sensor"') && !file.includes(secret));

    assert.equal(await login(port, 'bath-sensor', secret), 0, 'the device logs in');
    assert.equal(await login(port, 'bath-sensor', 'wrong'), 4, 'a wrong password is refused');

    // Reloading never shows the secret again.
    await p.reload();
    await p.waitForSelector('tr[data-credential="bath-sensor"]');
    assert.ok(!(await p.textContent('main')).includes(secret));

    await p.click('button[data-revoke="bath-sensor"]');
    await p.waitForSelector('tr[data-credential="bath-sensor"]', { state: 'detached' });
    assert.equal(await login(port, 'bath-sensor', secret), 4, 'revoked: refused');
    await p.screenshot({ path: join(SHOTS, 'credentials-revoked.png'), fullPage: true });

    // Both changes are in the audit log.
    await p.goto(url + '/system');
    await p.waitForSelector('#audit');
    const audit = await p.textContent('#audit');
    assert.match(audit, /device_credential\.create/);
    assert.match(audit, /device_credential\.revoke/);
    assert.deepEqual(errors.filter(e => !/status of (400|401|403|409)/.test(e)), []);
  } finally {
    await ctx.close();
    child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
    rmSync(prof, { recursive: true, force: true });
  }
});
