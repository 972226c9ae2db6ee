// End-to-end tests of the web UI in headless Chromium (Debian's
// /usr/bin/chromium driven by playwright-core; no browser download),
// against the real daemon: `carebridge demo` (simulated home, embedded
// broker, SQLite store, rule engine, hub) on loopback ports, and
// `carebridge run` with a config file for HTTPS. New devices, readings and
// alarms are made the way a real sensor makes them: an MQTT publish to the
// gateway's embedded broker (`carebridge/in/<device>`).
//
// Env: E2E_BIN   = path of the carebridge binary (run.sh sets it),
//      E2E_SHOTS = screenshot directory (default ../../target/e2e-screenshots).
import { test, before, after } from 'node:test';
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

let demo, base, mqttPort, dataDir, profile, ctx, page;
const consoleErrors = [];
const metrics = {};
let demoLog = '';
let setupCode = '';

// ---- a minimal MQTT 3.1.1 publisher (QoS 0), like a Wi-Fi sensor ----
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
function publish(device, payload) {
  return new Promise((ok, fail) => {
    const sock = connect(mqttPort, '127.0.0.1');
    const timer = setTimeout(() => { sock.destroy(); fail(new Error('MQTT publish timed out')); }, 10000);
    sock.on('error', e => { clearTimeout(timer); fail(e); });
    sock.on('connect', () => {
      const id = 'e2e-' + Math.random().toString(16).slice(2, 10);
      sock.write(mqttPacket(0x10, Buffer.concat([mqttString('MQTT'), Buffer.from([4, 2, 0, 60]), mqttString(id)])));
    });
    sock.once('data', d => {
      if (d[0] !== 0x20 || d[3] !== 0) { clearTimeout(timer); sock.destroy(); return fail(new Error('CONNACK refused')); }
      const body = Buffer.concat([mqttString('carebridge/in/' + device), Buffer.from(JSON.stringify(payload))]);
      sock.write(mqttPacket(0x30, body));
      sock.end(mqttPacket(0xe0, Buffer.alloc(0)), () => { clearTimeout(timer); ok(); });
    });
  });
}

async function shot(name) {
  await page.screenshot({ path: join(SHOTS, name + '.png'), fullPage: true });
}

// Loads `path`, returning its page weight (bytes of every response except
// the event stream) and first contentful paint.
async function measure(path) {
  let bytes = 0;
  const pending = [];
  const onResp = r => {
    if ((r.headers()['content-type'] || '').includes('event-stream')) return;
    pending.push(r.body().then(b => { bytes += b.length; }).catch(() => {}));
  };
  page.on('response', onResp);
  const t0 = Date.now();
  await page.goto(base + path);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 10000 });
  const ready = Date.now() - t0;
  page.off('response', onResp);
  await Promise.all(pending);
  const fcp = await page.evaluate(() => {
    const e = performance.getEntriesByName('first-contentful-paint')[0];
    return e ? Math.round(e.startTime) : null;
  });
  metrics[path] = { bytes, fcp_ms: fcp, ready_ms: ready };
  return metrics[path];
}

// Starts the binary and resolves with the match of `re` on its output.
function startGateway(args, re, onOut) {
  const child = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: 'info' } });
  const found = new Promise((ok, fail) => {
    let out = '';
    const look = d => {
      out += d; if (onOut) onOut(String(d));
      const m = out.match(re);
      if (m) ok(m);
    };
    child.stdout.on('data', look);
    child.stderr.on('data', look);
    child.on('exit', c => fail(new Error('carebridge exited ' + c + ':\n' + out.slice(-3000))));
    setTimeout(() => fail(new Error('carebridge did not start:\n' + out.slice(-3000))), 30000);
  });
  return { child, found };
}

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), 'cb-e2e-demo-'));
  profile = mkdtempSync(join(tmpdir(), 'cb-e2e-profile-'));
  const g = startGateway(['demo', '--data', dataDir, '--web', '127.0.0.1:0', '--mqtt', '127.0.0.1:0', '--speed', '60'],
    // Wait for the whole banner: it may arrive in more than one chunk.
    /web UI\s+(http:\/\/\S+?)\/\s[\s\S]*?setup code\s+(\S+)\s+\(first visit/, d => { demoLog = (demoLog + d).slice(-20000); });
  demo = g.child;
  const banner = await g.found;
  base = banner[1];
  setupCode = banner[2];
  mqttPort = Number(demoLog.match(/MQTT broker\s+mqtt:\/\/[\d.]+:(\d+)/)[1]);
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium', headless: true, args: ARGS,
    viewport: { width: 1280, height: 860 },
  });
  page = ctx.pages()[0] || await ctx.newPage();
  page.on('console', m => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('dialog', d => d.accept());
});

after(async () => {
  writeFileSync(join(SHOTS, 'metrics.json'), JSON.stringify(metrics, null, 2));
  console.log('budgets:', JSON.stringify(metrics));
  if (ctx) await ctx.close();
  if (demo) demo.kill('SIGTERM');
  rmSync(profile, { recursive: true, force: true });
  rmSync(dataDir, { recursive: true, force: true });
});

test('first boot of the demo: setup with the one-time code, wrong code named inline', async () => {
  const m = await measure('/');
  assert.match(page.url(), /\/setup$/, 'a fresh gateway sends you to setup');
  assert.equal(await page.isVisible('#nav'), false, 'no navigation before login');
  await shot('01-setup');
  await page.fill('input[name=code]', 'AAAA-BBBB-CCCC');
  await page.fill('input[name=username]', 'admin');
  await page.fill('input[name=password]', PASSWORD);
  await page.click('button[type=submit]');
  const err = page.locator('input[name=code] + .field-error');
  await err.waitFor();
  assert.match(await err.textContent(), /wrong setup code/);
  // The code the demo printed in its banner (also in <data>/setup-code).
  const code = setupCode;
  assert.equal(code, readFileSync(join(dataDir, 'setup-code'), 'utf8').trim());
  await page.fill('input[name=code]', code);
  await Promise.all([page.waitForURL(base + '/'), page.click('button[type=submit]')]);
  await page.waitForSelector('body[data-ready="true"]');
  assert.ok(m.bytes < 150 * 1024, 'setup page weight ' + m.bytes);
});

test('overview shows the demo gateway health and fits the budgets', async () => {
  const m = await measure('/');
  const text = await page.textContent('main');
  for (const s of ['demo-home', 'Uplinks', 'mqtt', 'Backlog', 'telemetry', 'Europe/London', 'Open alerts']) {
    assert.ok(text.includes(s), 'overview shows ' + s);
  }
  assert.ok(m.bytes < 150 * 1024, 'page weight ' + m.bytes);
  assert.ok(m.fcp_ms !== null && m.fcp_ms < 1000, 'first render ' + m.fcp_ms + ' ms');
  await shot('02-overview');
});

test('the overview mode card sets away mode and back home', async () => {
  await page.goto(base + '/');
  await page.waitForSelector('[data-card=mode]');
  await page.click('button[data-mode=away]');
  const shows = (re) => page.waitForFunction((src) => {
    const e = document.querySelector('[data-card=mode] .big');
    return e !== null && new RegExp(src).test(e.textContent);
  }, re.source);
  await shows(/^Away/);
  assert.match(await page.textContent('[data-card=mode] .big'), /web UI \(admin\)/);
  await page.click('button[data-mode=home]');
  await shows(/^Home/);
});

test('pairing: permit join with a countdown, the simulated Zigbee devices appear live', async () => {
  const m = await measure('/devices');
  assert.ok(m.bytes < 150 * 1024);
  await page.waitForSelector('tr[data-device="hall-motion"], tr[data-device="front-door"]');
  assert.ok(await page.locator('#device-rows tr').count() >= 5, 'the simulated home is listed');
  assert.equal(await page.locator('tr[data-device^="zb-"]').count(), 0, 'nothing paired yet');
  await page.waitForFunction(() => document.body.dataset.live === 'connected');
  // The demo's simulated stick (ZNP on a pty) has seven devices waiting:
  // four plain ones and three real-looking ones (Aqara door, Tuya radar,
  // Frient panic button) with their real identities and quirky frames.
  await page.click('#permit-join');
  await page.waitForSelector('#join-msg:not(:empty)');
  assert.match(await page.textContent('#join-msg'), /Pairing open: \d+ s left/);
  assert.equal(await page.isDisabled('#permit-join'), true, 'one countdown at a time');
  await page.waitForSelector('tr[data-device="zb-00158d0000000007"]', { timeout: 60000 });
  await page.waitForFunction(() => document.querySelectorAll('tr[data-device^="zb-"]').length === 7, null, { timeout: 60000 });
  assert.match(await page.textContent('tr[data-device="zb-00158d0000000001"]'), /SIM-PIR/);
  assert.match(await page.textContent('tr[data-device="zb-00158d0000000005"]'), /lumi\.sensor_magnet\.aq2/);
  assert.match(await page.textContent('tr[data-device="zb-00158d0000000006"]'), /TS0601/);
  assert.match(await page.textContent('tr[data-device="zb-00158d0000000007"]'), /SOSZB-110/);
  await shot('03-devices-paired');
  // A Wi-Fi sensor joins by its first message on the local broker.
  await publish('porch-button', { kind: 'contact', value: 1 });
  await page.waitForSelector('tr[data-device="porch-button"]', { timeout: 10000 });
  assert.match(await page.textContent('tr[data-device="porch-button"]'), /contact/);
});

test('editing a device: hostile room refused inline, valid change saved and audited', async () => {
  await page.click('tr[data-device="front-door"] button');
  await page.fill('input[name=room]', 'hall; rm -rf /');
  await page.click('form button[type=submit]');
  const err = page.locator('input[name=room] + .field-error');
  await err.waitFor();
  assert.match(await err.textContent(), /^room: use lower-case letters/);
  await shot('04-device-error');
  await page.fill('input[name=room]', 'porch');
  await page.click('form button[type=submit]');
  await page.waitForFunction(() => /porch/.test((document.querySelector('tr[data-device="front-door"]') || {}).textContent || ''), null, { timeout: 10000 });
});

test('a rule with a mistake shows the line inline; the fix is applied without restart; try it replays history', async () => {
  const m = await measure('/rules');
  assert.ok(m.bytes < 150 * 1024);
  assert.match(await page.textContent('#rules-version'), /version 0 · from built-in/);
  const builtIn = await page.inputValue('#rules-text');
  const cold = '\n[[rule]]\nid = "cold-home"\ntype = "threshold"\nkind = "temperature"\nbelow = "cold"\n';
  await page.fill('#rules-text', builtIn + cold);
  await page.click('#rules-apply');
  await page.waitForSelector('#rules-problems li');
  const problem = await page.textContent('#rules-problems');
  const badLine = (builtIn + cold).split('\n').findIndex(l => l.startsWith('below')) + 1;
  assert.match(problem, new RegExp('line ' + badLine + ':'), problem);
  assert.equal(await page.getAttribute('#rules-text', 'aria-invalid'), 'true');
  await shot('05-rules-error');
  await page.fill('#rules-text', builtIn + cold.replace('"cold"\n', '19.0\n'));
  await page.click('#rules-try-btn');
  await page.waitForSelector('#rules-try h2');
  assert.match(await page.textContent('#rules-try'), /Would have raised \d+ alert/);
  assert.match(await page.textContent('#rules-try'), /readings replayed/);
  await page.click('#rules-apply');
  await page.waitForSelector('#rules-msg.ok');
  assert.match(await page.textContent('#rules-msg'), /Applied without restart: version 1/);
  assert.equal(await page.locator('#rules-problems li').count(), 0);
  await measure('/rules');
  assert.match(await page.textContent('#rules-version'), /version 1 · from ui:admin/);
  await shot('06-rules-applied');
});

test('a live event streams in', async () => {
  await measure('/live');
  await page.waitForFunction(() => document.body.dataset.live === 'connected');
  await publish('kitchen-temp', { kind: 'temperature', value: 19.5 });
  // In words, by name when the device has one (this one has not).
  await page.waitForFunction(() => /kitchen-temp: 19\.5 °C temperature/.test(document.querySelector('#events').textContent), null, { timeout: 10000 });
  await shot('07-live');
});

test('a panic alarm arrives live, shows its rule, and is acknowledged in the gateway', async () => {
  await measure('/alerts');
  await page.waitForFunction(() => document.body.dataset.live === 'connected');
  // A pendant of its own: the simulated one may be inside its cooldown.
  await publish('hall-pendant', { kind: 'panic', value: true });
  const card = page.locator('#open-alerts [data-alert]', { hasText: 'rule panic' }).first();
  await card.waitFor({ timeout: 10000 });
  // Shown at once as queued or already delivered (the demo's uplink is its own broker).
  assert.match(await card.textContent(), /delivered via MQTT|waiting for an uplink/);
  assert.match(await page.textContent('#delivery'), /delivered upstream, by path: .*MQTT \d+/);
  await shot('08-alert-open');
  await card.locator('[data-ack]').click();
  await page.waitForFunction(() => [...document.querySelectorAll('#open-alerts [data-alert]')]
    .some(e => /rule panic/.test(e.textContent) && /acknowledged by admin/.test(e.textContent)), null, { timeout: 10000 });
  // After the refresh the card names the path that delivered this very alert.
  await page.waitForFunction(() => [...document.querySelectorAll('#open-alerts [data-alert]')]
    .some(e => /rule panic/.test(e.textContent) && /acknowledged by admin/.test(e.textContent) && /delivered via MQTT/.test(e.textContent)), null, { timeout: 10000 });
  await shot('09-alert-acked');
  await measure('/system');
  assert.match(await page.textContent('#audit'), /alert\.ack[\s\S]*panic on hall-pendant/);
});

test('commissioning walk-through turns a row green on the next event', async () => {
  const m = await measure('/commissioning');
  assert.ok(m.bytes < 150 * 1024);
  assert.match(await page.textContent('main'), /hall/);
  await page.waitForFunction(() => document.body.dataset.live === 'connected');
  await page.click('#walk');
  // The walk-through starts on the gateway's clock; events after it count.
  await page.waitForSelector('#walk-status:not(:empty)');
  await publish('hall-motion', { kind: 'motion', value: 1 });
  await page.waitForSelector('tr[data-device="hall-motion"].green', { timeout: 10000 });
  await shot('10-commissioning');
});

test('uplinks: MQTT test connection reaches the broker; system: OTA refusal, logs, backup', async () => {
  await measure('/uplinks');
  assert.match(await page.textContent('#lorawan-card'), /not configured/);
  await page.click('#mqtt-test');
  await page.waitForSelector('#mqtt-test-result.ok', { timeout: 15000 });
  assert.match(await page.textContent('#mqtt-test-result'), /Connected to mqtt:\/\/127\.0\.0\.1:\d+ in \d+ ms/);
  await shot('11-uplinks');
  await measure('/system');
  await page.setInputFiles('#ota-file', { name: 'fake.cbb', mimeType: 'application/octet-stream', buffer: Buffer.from('not a bundle') });
  await page.click('#ota-upload');
  await page.waitForSelector('#ota-msg.error');
  assert.match(await page.textContent('#ota-msg'), /bundle: refused: .*(not a carebridge bundle|trusted keys)/);
  await page.click('#logs');
  await page.waitForSelector('#system-msg:not(:empty)');
  assert.match(await page.textContent('#system-msg'), /not running under systemd/);
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#backup')]);
  const backup = JSON.parse(readFileSync(await dl.path(), 'utf8'));
  assert.equal(backup.rules.version, 1);
  assert.match(backup.config, /demo-home/);
  await measure('/system');
  const audit = await page.textContent('#audit');
  for (const a of ['setup.complete', 'device.update', 'rules.apply', 'alert.ack', 'ota.refused', 'system.backup']) assert.ok(audit.includes(a), 'audit has ' + a);
  await shot('12-system');
});

test('phone layout, logout and login again', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await measure('/');
  await shot('13-overview-phone');
  await page.setViewportSize({ width: 1280, height: 860 });
  await Promise.all([page.waitForURL(base + '/login'), page.click('#logout')]);
  await page.goto(base + '/devices');
  assert.match(page.url(), /\/login$/, 'logged out: pages redirect to login');
  await page.waitForSelector('body[data-ready="true"]');
  await page.fill('input[name=username]', 'admin');
  await page.fill('input[name=password]', 'not the password');
  await page.click('button[type=submit]');
  await page.waitForSelector('.error:not(:empty)');
  assert.match(await page.textContent('.error'), /wrong user name or password/);
  await shot('14-login-error');
  await page.fill('input[name=password]', PASSWORD);
  await Promise.all([page.waitForURL(base + '/'), page.click('button[type=submit]')]);
});

test('installer adds a carer, who sees no configuration controls', async () => {
  await measure('/system');
  await page.fill('form input[name=name]', 'carol');
  await page.selectOption('form select[name=role]', 'carer');
  await page.fill('form input[name=password][autocomplete=new-password]', 'short');
  await page.click('form:has(select) button[type=submit]');
  const err = page.locator('form:has(select) input[name=password] + .field-error');
  await err.waitFor();
  assert.match(await err.textContent(), /^password: must be at least 10 characters/);
  await page.fill('form:has(select) input[name=password]', PASSWORD);
  await page.click('form:has(select) button[type=submit]');
  await page.waitForSelector('td:text("carol")');
  await Promise.all([page.waitForURL(base + '/login'), page.click('#logout')]);
  await page.waitForSelector('body[data-ready="true"]');
  await page.fill('input[name=username]', 'carol');
  await page.fill('input[name=password]', PASSWORD);
  await Promise.all([page.waitForURL(base + '/'), page.click('button[type=submit]')]);
  await measure('/devices');
  assert.equal(await page.locator('#permit-join').count(), 0, 'no pairing for carers');
  assert.equal(await page.locator('#device-rows button').count(), 0, 'no edit buttons for carers');
  await measure('/rules');
  assert.equal(await page.locator('#rules-text').count(), 0, 'carers read the rules, no editor');
  assert.match(await page.textContent('main'), /cold-home/);
  await measure('/system');
  assert.equal(await page.locator('#audit').count(), 0);
  assert.equal(await page.locator('#password-form').count(), 1, 'carers can change their password');
  await shot('15-carer-system');
});

test('every page measured: weight under 150 KB and first render under 1 s', () => {
  assert.ok(Object.keys(metrics).length >= 8, Object.keys(metrics).join(' '));
  for (const [path, m] of Object.entries(metrics)) {
    assert.ok(m.bytes <= 150 * 1024, path + ' weighs ' + m.bytes + ' bytes');
    assert.ok(m.fcp_ms !== null && m.fcp_ms <= 1000, path + ' first render ' + m.fcp_ms + ' ms');
  }
});

test('no CSP violations or script errors on any page', () => {
  const bad = consoleErrors.filter(e => !/status of (400|401|403|409|422|503|501)/.test(e));
  assert.deepEqual(bad, []);
});

test('carebridge run over HTTPS (self-signed, per-device): setup and login with the __Host- secure cookie', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cb-e2e-tls-'));
  const prof = mkdtempSync(join(tmpdir(), 'cb-e2e-tls-profile-'));
  const conf = join(dir, 'carebridge.toml');
  // A gateway needs at least one input (the hub stops when none is
  // configured): the embedded broker on a free port.
  const port = await new Promise(ok => { const sv = createServer(); sv.listen(0, '127.0.0.1', () => { const p = sv.address().port; sv.close(() => ok(p)); }); });
  writeFileSync(conf, `[gateway]\nid = "tls-home"\ndata_dir = "${join(dir, 'data')}"\n\n[local_broker]\nlisten = "127.0.0.1:${port}"\n\n[web]\nlisten = "127.0.0.1:0"\n`);
  const g = startGateway(['run', '--config', conf], /url\S*?=\S*?(https:\/\/[\d.:]+)\//);
  try {
    const url = (await g.found)[1];
    const tctx = await chromium.launchPersistentContext(prof, {
      executablePath: '/usr/bin/chromium', headless: true, args: ARGS, ignoreHTTPSErrors: true,
    });
    const p = tctx.pages()[0] || await tctx.newPage();
    await p.goto(url + '/');
    assert.match(p.url(), /\/setup$/);
    await p.waitForSelector('body[data-ready="true"]');
    await p.fill('input[name=code]', readFileSync(join(dir, 'data', 'setup-code'), 'utf8').trim());
    await p.fill('input[name=username]', 'admin');
    await p.fill('input[name=password]', PASSWORD);
    await Promise.all([p.waitForURL(url + '/'), p.click('button[type=submit]')]);
    await p.waitForSelector('body[data-ready="true"]');
    assert.match(await p.textContent('main'), /tls-home/);
    const [c] = (await tctx.cookies()).filter(c => c.name.startsWith('__Host-'));
    assert.ok(c && c.secure && c.httpOnly && c.sameSite === 'Strict', JSON.stringify(c));
    await tctx.close();
  } finally {
    g.child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
    rmSync(prof, { recursive: true, force: true });
  }
});
