// End-to-end tests of the web UI in headless Chromium (Debian's
// /usr/bin/chromium driven by playwright-core; no browser download).
// Starts the e2e server (in-memory backend) and drives it through stdin:
// devices join, readings and alerts arrive, while the browser watches.
//
// Env: E2E_SERVER = path of the web_e2e_server binary (run.sh sets it),
//      E2E_SHOTS  = screenshot directory (default ../../target/e2e-screenshots).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const SERVER = process.env.E2E_SERVER || resolve(here, '../../target/debug/examples/web_e2e_server');
const SHOTS = process.env.E2E_SHOTS || resolve(here, '../../target/e2e-screenshots');
const PASSWORD = 'correct horse battery';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let server, base, dataDir, profile, ctx, page;
const consoleErrors = [];
const metrics = {};

function send(line) { server.stdin.write(line + '\n'); }

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
  await page.waitForSelector('body[data-ready="true"]', { timeout: 5000 });
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

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), 'cb-e2e-data-'));
  profile = mkdtempSync(join(tmpdir(), 'cb-e2e-profile-'));
  server = spawn(SERVER, [dataDir, '127.0.0.1:0'], { stdio: ['pipe', 'pipe', 'inherit'] });
  base = await new Promise((ok, fail) => {
    let out = '';
    server.stdout.on('data', d => {
      out += d;
      const m = out.match(/LISTENING (\S+)/);
      if (m) ok(m[1]);
    });
    server.on('exit', c => fail(new Error('server exited ' + c)));
    setTimeout(() => fail(new Error('server did not start')), 20000);
  });
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
  if (server) server.kill();
  rmSync(profile, { recursive: true, force: true });
  rmSync(dataDir, { recursive: true, force: true });
});

test('first boot: setup with the one-time code, wrong code named inline', async () => {
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
  const code = readFileSync(join(dataDir, 'setup-code'), 'utf8').trim();
  await page.fill('input[name=code]', code);
  await Promise.all([page.waitForURL(base + '/'), page.click('button[type=submit]')]);
  await page.waitForSelector('body[data-ready="true"]');
  assert.ok(m.bytes < 150 * 1024, 'setup page weight ' + m.bytes);
});

test('overview shows gateway health and fits the budgets', async () => {
  const m = await measure('/');
  const text = await page.textContent('main');
  for (const s of ['test-home', 'Uplinks', 'connected', 'Backlog', 'telemetry', 'Europe/London', 'No open alerts']) {
    assert.ok(text.includes(s), 'overview shows ' + s);
  }
  assert.ok(m.bytes < 150 * 1024, 'page weight ' + m.bytes);
  assert.ok(m.fcp_ms !== null && m.fcp_ms < 1000, 'first render ' + m.fcp_ms + ' ms');
  await shot('02-overview');
});

test('a device appears live on the devices page; pairing says the coordinator is missing', async () => {
  const m = await measure('/devices');
  assert.ok(m.bytes < 150 * 1024);
  assert.equal(await page.locator('#device-rows tr').count(), 3);
  assert.match(await page.textContent('tr[data-device="hall-motion"]'), /motion/, 'kind column');
  await page.waitForFunction(() => document.body.dataset.live === 'connected');
  send('device bedroom-motion bedroom Bedroom motion');
  await page.waitForSelector('tr[data-device="bedroom-motion"]', { timeout: 5000 });
  assert.match(await page.textContent('tr[data-device="bedroom-motion"]'), /Bedroom motion/);
  await page.click('#permit-join');
  await page.waitForSelector('#join-msg.notice');
  assert.equal(await page.textContent('#join-msg'), 'Zigbee coordinator not configured');
  await shot('03-devices');
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
  await page.waitForSelector('tr[data-device="front-door"]');
  assert.match(await page.textContent('tr[data-device="front-door"]'), /porch/);
});

test('an alert arrives live and is acknowledged', async () => {
  await measure('/alerts');
  await page.waitForFunction(() => document.body.dataset.live === 'connected');
  send('alert front-door Panic button pressed in the hall');
  const ack = page.locator('#open-alerts [data-ack]').first();
  await ack.waitFor({ timeout: 5000 });
  assert.equal(await page.textContent('#alert-count'), '1');
  await shot('05-alert-open');
  await ack.click();
  await page.waitForSelector('#open-alerts .pill.ok');
  assert.match(await page.textContent('#open-alerts'), /acknowledged by admin/);
  await page.waitForSelector('#alert-count[hidden]', { state: 'attached' });
  await shot('06-alert-acked');
});

test('live page streams events', async () => {
  await measure('/live');
  await page.waitForFunction(() => document.body.dataset.live === 'connected');
  send('reading kitchen-temp temperature 19.5');
  await page.waitForSelector('#events li');
  assert.match(await page.textContent('#events'), /kitchen-temp temperature = 19.5/);
});

test('commissioning walk-through turns a row green on the next event', async () => {
  const m = await measure('/commissioning');
  assert.ok(m.bytes < 150 * 1024);
  assert.match(await page.textContent('main'), /hall/);
  await page.waitForFunction(() => document.body.dataset.live === 'connected');
  await page.click('#walk');
  assert.equal(await page.getAttribute('tr[data-device="hall-motion"]', 'class'), 'waiting');
  send('reading hall-motion motion 1');
  await page.waitForSelector('tr[data-device="hall-motion"].green', { timeout: 5000 });
  assert.equal(await page.getAttribute('tr[data-device="kitchen-temp"]', 'class'), 'waiting');
  await shot('07-commissioning');
});

test('rules, uplinks and system pages say what is not built yet; audit log shows changes', async () => {
  await measure('/rules');
  assert.match(await page.textContent('main'), /rules editor arrives with the rule engine/);
  await measure('/uplinks');
  assert.match(await page.textContent('main'), /LoRaWAN\s*not configured/);
  await measure('/system');
  const audit = await page.textContent('#audit');
  for (const a of ['setup.complete', 'device.update', 'alert.ack']) assert.ok(audit.includes(a), 'audit has ' + a);
  await shot('08-system');
});

test('phone layout, logout and login again', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await measure('/');
  await shot('09-overview-phone');
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
  await shot('10-login-error');
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
  await measure('/system');
  assert.equal(await page.locator('#audit').count(), 0);
  assert.equal(await page.locator('#password-form').count(), 1, 'carers can change their password');
  await shot('11-carer-system');
});

test('every page measured: weight under 150 KB and first render under 1 s', () => {
  assert.ok(Object.keys(metrics).length >= 8, Object.keys(metrics).join(' '));
  for (const [path, m] of Object.entries(metrics)) {
    assert.ok(m.bytes <= 150 * 1024, path + ' weighs ' + m.bytes + ' bytes');
    assert.ok(m.fcp_ms !== null && m.fcp_ms <= 1000, path + ' first render ' + m.fcp_ms + ' ms');
  }
});

test('no CSP violations or script errors on any page', () => {
  const bad = consoleErrors.filter(e => !/status of (400|401|403|409|503|501)/.test(e));
  assert.deepEqual(bad, []);
});

test('over HTTPS (self-signed, per-device): setup and login work with the __Host- secure cookie', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cb-e2e-tls-'));
  const prof = mkdtempSync(join(tmpdir(), 'cb-e2e-tls-profile-'));
  const srv = spawn(SERVER, [dir, '127.0.0.1:0', '--tls'], { stdio: ['pipe', 'pipe', 'ignore'] });
  try {
    const url = await new Promise((ok, fail) => {
      let out = '';
      srv.stdout.on('data', d => { out += d; const m = out.match(/LISTENING (\S+)/); if (m) ok(m[1]); });
      setTimeout(() => fail(new Error('TLS server did not start')), 20000);
    });
    assert.match(url, /^https:/);
    const tctx = await chromium.launchPersistentContext(prof, {
      executablePath: '/usr/bin/chromium', headless: true, args: ARGS, ignoreHTTPSErrors: true,
    });
    const p = tctx.pages()[0] || await tctx.newPage();
    await p.goto(url + '/');
    assert.match(p.url(), /\/setup$/);
    await p.waitForSelector('body[data-ready="true"]');
    await p.fill('input[name=code]', readFileSync(join(dir, 'setup-code'), 'utf8').trim());
    await p.fill('input[name=username]', 'admin');
    await p.fill('input[name=password]', PASSWORD);
    await Promise.all([p.waitForURL(url + '/'), p.click('button[type=submit]')]);
    await p.waitForSelector('body[data-ready="true"]');
    assert.match(await p.textContent('main'), /test-home/);
    const [c] = (await tctx.cookies()).filter(c => c.name.startsWith('__Host-'));
    assert.ok(c && c.secure && c.httpOnly && c.sameSite === 'Strict', JSON.stringify(c));
    await tctx.close();
  } finally {
    srv.kill();
    rmSync(dir, { recursive: true, force: true });
    rmSync(prof, { recursive: true, force: true });
  }
});
