// The installer's day on a phone (390 × 844), in headless Chromium against
// the real daemon (`carebridge demo --speed 1`, so the simulated home stays
// quiet enough to see which device was just triggered): the card layout and
// the wrapping nav, pairing → Identify → name → commissioning → sign-off
// (printed to PDF), the uplink editor with test connection and rollback,
// and the notice when the session ends.
//
// Env: E2E_BIN, E2E_SHOTS as in e2e.test.mjs (run.sh sets them).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtempSync, mkdirSync, rmSync, statSync } from 'node:fs';
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
const PHONE = { width: 390, height: 844 };

let demo, base, mqttPort, dataDir, profile, ctx, page;
let log = '';
const consoleErrors = [];

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
      const id = 'field-' + Math.random().toString(16).slice(2, 10);
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
const shot = name => page.screenshot({ path: join(SHOTS, name + '.png'), fullPage: true });
async function go(path) {
  await page.goto(base + path);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 10000 });
}
// The element is on screen horizontally (not pushed off a 390 px phone).
async function onScreen(sel) {
  const b = await page.locator(sel).first().boundingBox();
  return b && b.x >= 0 && b.x + b.width <= PHONE.width + 0.5;
}

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), 'cb-field-demo-'));
  profile = mkdtempSync(join(tmpdir(), 'cb-field-profile-'));
  demo = spawn(BIN, ['demo', '--data', dataDir, '--web', '127.0.0.1:0', '--mqtt', '127.0.0.1:0', '--speed', '1'],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: 'info' } });
  const banner = await new Promise((ok, fail) => {
    const look = d => { log = (log + d).slice(-200000); const m = log.match(/web UI\s+(http:\/\/\S+?)\/\s[\s\S]*?setup code\s+(\S+)\s+\(first visit/); if (m) ok(m); };
    demo.stdout.on('data', look); demo.stderr.on('data', look);
    demo.on('exit', c => fail(new Error('carebridge exited ' + c + ':\n' + log.slice(-3000))));
    setTimeout(() => fail(new Error('carebridge did not start:\n' + log.slice(-3000))), 30000);
  });
  base = banner[1];
  mqttPort = Number(log.match(/MQTT broker\s+mqtt:\/\/[\d.]+:(\d+)/)[1]);
  ctx = await chromium.launchPersistentContext(profile, { executablePath: '/usr/bin/chromium', headless: true, args: ARGS, viewport: PHONE });
  page = ctx.pages()[0] || await ctx.newPage();
  page.on('console', m => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('dialog', d => d.accept());
  await go('/');
  await page.fill('input[name=code]', banner[2]);
  await page.fill('input[name=username]', 'installer');
  await page.fill('input[name=password]', PASSWORD);
  await Promise.all([page.waitForURL(base + '/'), page.click('button[type=submit]')]);
  await page.waitForSelector('body[data-ready="true"]');
});

after(async () => {
  if (ctx) await ctx.close();
  if (demo) demo.kill('SIGTERM');
  rmSync(profile, { recursive: true, force: true });
  rmSync(dataDir, { recursive: true, force: true });
});

test('phone: every nav link is on screen, devices are cards with labelled cells and a visible Edit', async () => {
  await go('/devices');
  for (const nav of ['uplinks', 'system', 'commissioning']) {
    assert.ok(await page.isVisible(`[data-nav="${nav}"]`), nav + ' visible');
    assert.ok(await onScreen(`[data-nav="${nav}"]`), nav + ' within the screen width');
  }
  await page.waitForSelector('tr[data-device="front-door"]');
  assert.equal(await page.isVisible('table.cards thead'), false, 'no header row to mismatch');
  const labels = await page.$$eval('tr[data-device="front-door"] td[data-label]', tds => tds.filter(t => t.offsetParent).map(t => getComputedStyle(t, '::before').content));
  for (const l of ['"Device"', '"Room"', '"Senses"', '"Last seen"', '"Battery"']) assert.ok(labels.includes(l), 'card shows ' + l + ' in ' + labels);
  assert.ok(await onScreen('tr[data-device="front-door"] [data-edit]'), 'Edit on screen');
  await shot('field-01-devices-phone');
});

test('pairing → identify → "trigger it now" → name, on a phone', async () => {
  await go('/devices');
  await page.waitForFunction(() => document.body.dataset.live === 'connected');
  await page.click('#permit-join');
  await page.waitForFunction(() => document.querySelectorAll('tr[data-device^="zb-"]').length === 7, null, { timeout: 60000 });
  const pir = 'tr[data-device="zb-00158d0000000001"]';
  assert.match(await page.textContent(pir), /SIM-PIR/);
  assert.match(await page.textContent(pir), /carebridge-sim/);
  await page.click(pir + ' [data-identify]');
  await page.waitForSelector(pir + ' [data-col="msg"].ok', { timeout: 10000 });
  assert.match(await page.textContent(pir + ' [data-col="msg"]'), /blinks or beeps for 10 s/);
  // The simulated device received ZCL Identify through the coordinator.
  const deadline = Date.now() + 10000;
  while (!/identifying[\s\S]*?zb-00158d0000000001|zb-00158d0000000001[\s\S]*?identifying/.test(log) && Date.now() < deadline) await new Promise(r => setTimeout(r, 200));
  assert.match(log, /simulated device identifying/);
  // Trigger one device: its row is the highlighted one, in words.
  await publish('porch-door', { kind: 'contact', value: 1 });
  await page.waitForSelector('tr[data-device="porch-door"].newest', { timeout: 10000 });
  assert.match(await page.textContent('tr[data-device="porch-door"] [data-col="event"]'), /Just now: open/);
  assert.equal(await page.locator('tr.newest').count(), 1);
  await shot('field-02-pairing-phone');
  await page.click(pir + ' [data-edit]');
  assert.match(await page.textContent('#device-form'), /Model\s*SIM-PIR/);
  await page.click('#identify');
  await page.waitForSelector('#identify-msg.ok');
  await page.fill('input[name=name]', 'Hall PIR');
  await page.fill('input[name=room]', 'hall');
  await page.click('#device-form button[type=submit]');
  await page.waitForFunction(() => /Hall PIR/.test((document.querySelector('tr[data-device="zb-00158d0000000001"]') || {}).textContent || ''), null, { timeout: 10000 });
  // A device whose configured room has a space is renamed without a room error.
  await page.click('tr[data-device="living-temp"] [data-edit]');
  assert.equal(await page.inputValue('input[name=room]'), 'living room');
  await page.fill('input[name=name]', 'Lounge thermometer');
  await page.click('#device-form button[type=submit]');
  await page.waitForFunction(() => /Lounge thermometer/.test((document.querySelector('tr[data-device="living-temp"]') || {}).textContent || ''), null, { timeout: 10000 });
});

test('commissioning: only events after the start count, a routine report does not pass a thermometer, signed off and printed', async () => {
  // Before the start: the door opened (must not count), and the lounge
  // thermometer's last routine report (the baseline of its rise test).
  await publish('porch-door', { kind: 'contact', value: 1 });
  await publish('living-temp', { kind: 'temperature', value: 20.0 });
  await go('/commissioning');
  await page.waitForFunction(() => document.body.dataset.live === 'connected');
  assert.match(await page.textContent('tr[data-device="porch-door"] [data-col="instruction"]'), /Open the door/);
  assert.match(await page.textContent('tr[data-device="living-temp"] [data-col="instruction"]'), /Breathe on the thermometer/);
  await page.click('#walk');
  await page.waitForSelector('#walk-status:not(:empty)');
  assert.equal(await page.locator('tr.green').count(), 0, 'nothing green at the start');
  await new Promise(r => setTimeout(r, 1100));
  await publish('porch-door', { kind: 'contact', value: 1 });
  await publish('living-temp', { kind: 'temperature', value: 20.1 });
  await publish('bedroom-temp', { kind: 'temperature', value: 17.0 });
  await page.waitForSelector('tr[data-device="porch-door"].green', { timeout: 10000 });
  await publish('bedroom-temp', { kind: 'temperature', value: 18.0 });
  await page.waitForSelector('tr[data-device="bedroom-temp"].green', { timeout: 10000 });
  assert.equal(await page.getAttribute('tr[data-device="living-temp"]', 'class'), 'waiting', 'a routine report does not pass');
  await page.fill('#signoff input[name=installer]', 'Sam Fitter');
  await page.click('#signoff button[type=submit]');
  await page.waitForSelector('#signoff-report');
  assert.match(await page.textContent('#signoff-installer'), /Sam Fitter/);
  assert.match(await page.textContent('#signoff-report tr[data-device="porch-door"]'), /passed/);
  assert.match(await page.textContent('#signoff-report tr[data-device="living-temp"]'), /not passed/);
  await page.emulateMedia({ media: 'print' });
  assert.ok(await page.isVisible('.signoff'), 'signature lines on the printout');
  assert.equal(await page.isVisible('#walk'), false, 'no buttons on the printout');
  const pdf = join(SHOTS, 'field-commissioning-signoff.pdf');
  await page.pdf({ path: pdf, format: 'A4' });
  assert.ok(statSync(pdf).size > 5000);
  await page.emulateMedia({ media: 'screen' });
  await shot('field-03-signoff-phone');
  // Kept: the page shows the last sign-off after a reload.
  await go('/commissioning');
  assert.match(await page.textContent('#last-signoff'), /Sam Fitter/);
});

test('uplinks: booleans read yes/no, a bad URL is named, test connection with the entered URL, save, roll back', async () => {
  await go('/uplinks');
  assert.match(await page.textContent('#mqtt-card'), /telemetry\s*yes/);
  await page.fill('input[name="uplink.mqtt.url"]', 'http://broker.example.org');
  await page.click('#uplinks-save');
  const err = page.locator('input[name="uplink.mqtt.url"] + .field-error');
  await err.waitFor();
  assert.match(await err.textContent(), /uplink\.mqtt\.url/);
  await page.fill('input[name="uplink.mqtt.url"]', 'mqtt://127.0.0.1:' + mqttPort);
  await page.fill('input[name="gateway.id"]', 'home-0042');
  await page.click('#uplinks-try');
  await page.waitForSelector('#uplinks-test li:not(.muted)', { timeout: 15000 });
  assert.match(await page.textContent('#uplinks-test'), /MQTT: connected to mqtt:\/\/127\.0\.0\.1:\d+ in \d+ ms/);
  // A port nobody listens on: a clear failure, naming the stage.
  await page.fill('input[name="uplink.mqtt.url"]', 'mqtt://127.0.0.1:9');
  await page.click('#uplinks-try');
  await page.waitForSelector('#uplinks-test li.error', { timeout: 15000 });
  assert.match(await page.textContent('#uplinks-test'), /MQTT: failed \(connect\)/);
  await page.fill('input[name="uplink.mqtt.url"]', 'mqtt://127.0.0.1:' + mqttPort);
  // The embedded demo broker takes no password; the secret is only saved.
  await page.fill('input[name="uplink.mqtt.password"]', 'a long broker secret');
  await page.fill('input[name="uplink.mqtt.username"]', 'home-0042');
  await page.click('#uplinks-save');
  await page.waitForSelector('#uplinks-msg.ok, #uplinks-form .field-error, #uplinks-form p.error:not(:empty)');
  assert.match(await page.textContent('#uplinks-msg'), /Saved as version \d+/);
  assert.match(await page.textContent('#uplinks-version'), /restart to use them/);
  assert.equal(await page.inputValue('input[name="gateway.id"]'), 'home-0042');
  assert.equal(await page.inputValue('input[name="uplink.mqtt.password"]'), '', 'the password is never shown');
  await shot('field-04-uplinks-phone');
  await page.click('#uplinks-rollback');
  await page.waitForSelector('#uplinks-msg.ok');
  assert.match(await page.textContent('#uplinks-msg'), /Rolled back to version \d+/);
  assert.equal(await page.inputValue('input[name="gateway.id"]'), 'demo-home');
});

test('carers\' Live shows names and words; when the session ends it says so and asks to log in again', async () => {
  await go('/live');
  await page.waitForFunction(() => document.body.dataset.live === 'connected');
  await publish('porch-door', { kind: 'battery_low', value: 0 });
  await page.waitForFunction(() => /battery OK/.test(document.querySelector('#events').textContent), null, { timeout: 10000 });
  assert.doesNotMatch(await page.textContent('#events'), /battery_low = 0/);
  await publish('fridge-door', { kind: 'contact', value: 1 });
  await page.waitForFunction(() => /Fridge door \(kitchen\): open/.test(document.querySelector('#events').textContent), null, { timeout: 10000 });
  // The session ends elsewhere (logged out in another tab).
  await page.evaluate(() => fetch('/api/v1/logout', { method: 'POST', headers: { 'X-CSRF-Token': S.csrf } }));
  await publish('fridge-door', { kind: 'contact', value: 0 });
  await page.waitForSelector('#session-expired', { timeout: 40000 });
  assert.match(await page.textContent('#session-expired'), /session has ended[\s\S]*Log in again/);
  assert.match(await page.textContent('#who-name'), /logged out/);
  await shot('field-05-session-expired-phone');
});

test('no script errors', () => {
  const bad = consoleErrors.filter(e => !/status of (400|401|403|409|422|503|501)/.test(e));
  assert.deepEqual(bad, []);
});
