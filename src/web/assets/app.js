// carebridge UI: renders the page named in <body data-page> from the JSON
// API. No framework, no inline code (CSP default-src 'self'); every value
// from the server goes into the DOM as text, never as HTML.
'use strict';

const S = { csrf: '', user: '', role: '', tz: '', es: null, handlers: [] };
const $ = (sel, root = document) => root.querySelector(sel);

// h('tag.class', {attr: v, onclick: f}, child, ...) -> element
function h(spec, attrs, ...kids) {
  const [tag, ...cls] = spec.split('.');
  const el = document.createElement(tag || 'div');
  if (cls.length) el.className = cls.join(' ');
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

async function api(method, path, body) {
  const opt = { method, credentials: 'same-origin', headers: {} };
  if (method !== 'GET') opt.headers['X-CSRF-Token'] = S.csrf;
  if (body !== undefined) {
    opt.headers['Content-Type'] = 'application/json';
    opt.body = JSON.stringify(body);
  }
  let res;
  try { res = await fetch('/api/v1/' + path, opt); } catch (e) {
    return { ok: false, status: 0, data: { error: 'the gateway did not answer (' + e.message + ')' } };
  }
  let data = {};
  try { data = await res.json(); } catch (e) { data = {}; }
  if (res.status === 401 && !['login', 'setup'].includes(page())) location.href = '/login';
  return { ok: res.ok, status: res.status, data };
}

// A raw body (file upload, restore document): same session/CSRF handling.
async function apiRaw(method, path, body, ctype) {
  let res;
  try {
    res = await fetch('/api/v1/' + path, { method, credentials: 'same-origin', body,
      headers: { 'X-CSRF-Token': S.csrf, 'Content-Type': ctype } });
  } catch (e) {
    return { ok: false, status: 0, data: { error: 'the gateway did not answer (' + e.message + ')' } };
  }
  let data = {};
  try { data = await res.json(); } catch (e) { data = {}; }
  return { ok: res.ok, status: res.status, data };
}

// Downloads an API response as a file, or returns its error message.
async function download(path, name) {
  const res = await fetch('/api/v1/' + path, { credentials: 'same-origin' });
  if (!res.ok) {
    let d = {}; try { d = await res.json(); } catch (e) { d = {}; }
    return d.error || ('download failed (HTTP ' + res.status + ')');
  }
  const url = URL.createObjectURL(await res.blob());
  const a = h('a', { href: url, download: name });
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  return '';
}

const page = () => document.body.dataset.page;
const main = () => $('#main');
function show(...nodes) { main().replaceChildren(...nodes.flat(2).filter(n => n !== null && n !== undefined && n !== false)); }
const installer = () => S.role === 'installer';

// Times are shown in the gateway's time zone (the home's), not the laptop's.
function when(t) {
  if (!t) return '—';
  const d = new Date(t);
  if (isNaN(d)) return String(t);
  try { return d.toLocaleString(undefined, S.tz ? { timeZone: S.tz } : {}); } catch (e) { return d.toLocaleString(); }
}
function ago(t) {
  if (!t) return 'never';
  const s = Math.round((Date.now() - new Date(t)) / 1000);
  if (s < 60) return s + ' s ago';
  if (s < 3600) return Math.round(s / 60) + ' min ago';
  if (s < 86400) return Math.round(s / 3600) + ' h ago';
  return Math.round(s / 86400) + ' d ago';
}
function duration(s) {
  if (s === undefined || s === null) return '—';
  const d = Math.floor(s / 86400), hh = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return (d ? d + ' d ' : '') + (d || hh ? hh + ' h ' : '') + m + ' min';
}

// Shows the server's message next to the field it names, or in `where`.
function formError(form, where, res) {
  form.querySelectorAll('.field-error').forEach(e => e.remove());
  form.querySelectorAll('[aria-invalid]').forEach(e => e.removeAttribute('aria-invalid'));
  where.textContent = '';
  const msg = res.data.error || ('request failed (HTTP ' + res.status + ')');
  const input = res.data.field && form.querySelector('[name="' + CSS.escape(res.data.field) + '"]');
  if (input) {
    input.setAttribute('aria-invalid', 'true');
    input.after(h('span.field-error', { role: 'alert', text: msg }));
    input.focus();
  } else {
    where.textContent = msg;
  }
}
const formData = form => Object.fromEntries(new FormData(form).entries());

// ---- live events (SSE) ----
function live(fn) {
  S.handlers.push(fn);
  if (S.es) return;
  S.es = new EventSource('/api/v1/events');
  S.es.addEventListener('live', e => {
    let ev; try { ev = JSON.parse(e.data); } catch (x) { return; }
    S.handlers.forEach(f => f(ev));
  });
  S.es.addEventListener('hello', () => document.body.dataset.live = 'connected');
}

// ---- pages ----
const pages = {};

pages.login = () => {
  const err = h('p.error', { role: 'alert' });
  const form = h('form.stack', { novalidate: true },
    h('label', {}, 'User name', h('input', { name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none' })),
    h('label', {}, 'Password', h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
    h('button', { type: 'submit' }, 'Log in'), err);
  form.addEventListener('submit', async e => {
    e.preventDefault();
    const res = await api('POST', 'login', formData(form));
    if (res.ok) location.href = '/'; else formError(form, err, res);
  });
  show(h('h1', {}, 'Log in'), form);
  api('GET', 'setup').then(r => { if (r.ok && r.data.needed) location.href = '/setup'; });
};

pages.setup = () => {
  const err = h('p.error', { role: 'alert' });
  const form = h('form.stack', { novalidate: true },
    h('label', {}, 'Setup code (on the gateway label)', h('input', { name: 'code', autocomplete: 'off', placeholder: 'XXXX-XXXX-XXXX', required: true })),
    h('label', {}, 'Installer user name', h('input', { name: 'username', autocomplete: 'username', autocapitalize: 'none', required: true })),
    h('label', {}, 'Password (at least 10 characters)', h('input', { name: 'password', type: 'password', autocomplete: 'new-password', required: true })),
    h('button', { type: 'submit' }, 'Create installer account'), err);
  form.addEventListener('submit', async e => {
    e.preventDefault();
    const res = await api('POST', 'setup', formData(form));
    if (res.ok) location.href = '/'; else formError(form, err, res);
  });
  show(h('h1', {}, 'First-time setup'),
    h('p', {}, 'This gateway has no accounts yet and no default password. Enter the one-time setup code printed on its label to create the installer account.'),
    form);
};

// Which uplink delivered the alert (the first to acknowledge it), or that it
// is still queued in the gateway.
function route(a) {
  if (a.delivered_via) return 'delivered via ' + (a.delivered_via === 'lorawan' ? 'LoRaWAN' : 'MQTT') + ' ' + when(a.delivered_at);
  if (a.delivery === 'waiting') return 'waiting for an uplink (kept in the gateway)';
  return 'delivery not recorded';
}

function clockText(c) {
  if (!c) return '?';
  return c.trusted ? (c.source === 'rtc' ? 'trusted (RTC)' : 'synchronised') : 'not synchronised';
}

function lastStep(c) {
  const st = c && c.last_step;
  if (!st) return 'no clock step since start';
  const s = st.delta_ms / 1000, a = Math.abs(s);
  const size = a >= 86400 ? (a / 86400).toFixed(1) + ' days' : a >= 3600 ? (a / 3600).toFixed(1) + ' h' : a.toFixed(1) + ' s';
  return 'last step ' + (s < 0 ? 'back ' : 'forwards ') + size + ' at ' + when(st.at);
}

function alertItem(a, onAck) {
  const acked = a.acked_by ? h('span.pill.ok', { text: 'acknowledged by ' + a.acked_by }) : null;
  const btn = !a.acked_by && a.open ? h('button', { type: 'button', 'data-ack': a.id, onclick: () => onAck(a) }, 'Acknowledge') : null;
  return h('div.card.alert-item.' + a.severity + (a.acked_by ? '.acked' : ''), { 'data-alert': a.id },
    h('div', {}, h('strong', { text: a.message }), h('div.muted', {},
      a.severity + ' · ' + (a.room || 'no room') + ' · ' + a.device + ' · ' + when(a.at) + (a.time_trusted === false ? ' (clock not yet synchronised: time may be off)' : '') + (a.open ? '' : ' · cleared')),
      h('div.muted', { 'data-col': 'route' }, 'rule ' + a.rule + ' · ' + route(a))),
    acked || btn);
}

async function ackAlert(a, after) {
  const res = await api('POST', 'alerts/' + a.id + '/ack');
  if (!res.ok) alert(res.data.error || 'acknowledge failed');
  after();
}

pages.overview = async () => {
  const res = await api('GET', 'status');
  if (!res.ok) return show(h('p.error', { text: res.data.error || 'status unavailable' }));
  const s = res.data.status || {};
  const up = (s.uplinks || {});
  const backlog = s.backlog || {};
  const upl = Object.entries(up).map(([k, v]) => h('div', {}, k + ': ',
    h('span.pill.' + (v.state === 'connected' ? 'ok' : 'bad'), { text: v.state || 'unknown' })));
  const open = res.data.open_alerts || [];
  show(h('h1', {}, 'Overview'),
    h('div.grid', {},
      h('div.card', {}, h('h3', {}, 'Gateway'), h('div.big', { text: s.gateway || '—' }), h('div.muted', { text: 'version ' + (s.version || '?') })),
      h('div.card', {}, h('h3', {}, 'Uplinks'), upl.length ? upl : h('div.muted', {}, 'none configured')),
      h('div.card', {}, h('h3', {}, 'Zigbee coordinator'), h('div.big', { text: s.coordinator || 'off' })),
      h('div.card', {}, h('h3', {}, 'Backlog'), h('dl.kv', {}, Object.entries(backlog).map(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })]))),
      h('div.card', {}, h('h3', {}, 'Uptime'), h('div.big', { text: duration(s.uptime_s) }), h('div.muted', { text: 'time zone ' + (s.timezone || '?') })),
      h('div.card', {}, h('h3', {}, 'Clock'), h('div.big', { 'data-clock': '', text: clockText(s.clock) }), h('div.muted', { text: lastStep(s.clock) }))),
    h('h2', {}, 'Open alerts (' + open.length + ')'),
    open.length ? h('div.grid', {}, open.map(a => alertItem(a, x => ackAlert(x, pages.overview)))) : h('p.muted', {}, 'No open alerts.'));
};

pages.alerts = async () => {
  const res = await api('GET', 'alerts');
  if (!res.ok) return show(h('p.error', { text: res.data.error }));
  const again = () => pages.alerts();
  const dv = res.data.delivered;
  const names = { mqtt: 'MQTT', lorawan: 'LoRaWAN' };
  const paths = dv && typeof dv === 'object' ? Object.entries(dv).filter(([, v]) => typeof v === 'number').map(([k, v]) => (names[k] || k) + ' ' + v).join(' · ') : '';
  show(h('h1', {}, 'Alerts'),
    h('p.muted', { id: 'delivery', text: 'Alerts delivered upstream, by path: ' + (paths || '– (no per-path record in this gateway)') }),
    h('h2', {}, 'Open'), res.data.open.length ? h('div.grid', { id: 'open-alerts' }, res.data.open.map(a => alertItem(a, x => ackAlert(x, again)))) : h('p.muted', { id: 'open-alerts' }, 'No open alerts.'),
    h('h2', {}, 'Recent'), res.data.recent.length ? h('div.grid', {}, res.data.recent.map(a => alertItem(a, x => ackAlert(x, again)))) : h('p.muted', {}, 'Nothing since the gateway started.'));
  // Alerts still queued: look again shortly, so the card shows the path once delivered.
  clearTimeout(S.deliveryPoll);
  if ([...res.data.open, ...res.data.recent].some(a => a.delivery === 'waiting')) S.deliveryPoll = setTimeout(again, 3000);
};

function deviceRow(d) {
  const id = d.id;
  const cells = [
    h('td', {}, h('strong', { text: d.name || id }), h('div.muted', { text: id })),
    h('td', { text: d.room || '—' }),
    h('td.hide-narrow', { text: (d.kinds || []).join(', ') || '—' }),
    h('td.hide-narrow', { text: d.role || '—' }),
    h('td.hide-narrow', { text: [d.manufacturer, d.model].filter(Boolean).join(' ') || '—' }),
    h('td', { text: ago(d.last_seen), title: when(d.last_seen), 'data-col': 'seen' }),
    h('td', { text: d.battery === null || d.battery === undefined ? '—' : Math.round(d.battery) + ' %' }),
    h('td.hide-narrow', { text: d.lqi === null || d.lqi === undefined ? '—' : d.lqi })];
  if (installer()) cells.push(h('td', {}, h('button.secondary', { type: 'button', onclick: () => editDevice(d) }, 'Edit')));
  return h('tr', { 'data-device': id, 'data-kinds': (d.kinds || []).join(',') }, cells);
}

function editDevice(d) {
  const err = h('p.error', { role: 'alert' });
  const form = h('form.stack.card', { novalidate: true },
    h('h2', { text: 'Edit ' + d.id }),
    h('label', {}, 'Name', h('input', { name: 'name', value: d.name || '', maxlength: 64 })),
    h('label', {}, 'Room (e.g. hall, kitchen)', h('input', { name: 'room', value: d.room || '', autocapitalize: 'none' })),
    h('label', {}, 'Role (e.g. front_door, bed)', h('input', { name: 'role', value: d.role || '', autocapitalize: 'none' })),
    h('div.row', {}, h('button', { type: 'submit' }, 'Save'),
      h('button.secondary', { type: 'button', onclick: () => pages.devices() }, 'Cancel'),
      h('button.danger', { type: 'button', onclick: async () => {
        if (!confirm('Remove ' + d.id + ' from this gateway?')) return;
        const res = await api('DELETE', 'devices/' + encodeURIComponent(d.id));
        if (res.ok) pages.devices(); else formError(form, err, res);
      } }, 'Remove')), err);
  form.addEventListener('submit', async e => {
    e.preventDefault();
    const body = {};
    for (const [k, v] of Object.entries(formData(form))) if (v.trim() !== '') body[k] = v;
    const res = await api('PUT', 'devices/' + encodeURIComponent(d.id), body);
    if (res.ok) pages.devices(); else formError(form, err, res);
  });
  show(form);
}

pages.devices = async () => {
  const res = await api('GET', 'devices');
  if (!res.ok) return show(h('p.error', { text: res.data.error }));
  const tbody = h('tbody', { id: 'device-rows' }, res.data.devices.map(deviceRow));
  const head = ['Device', 'Room', 'Kind', 'Role', 'Model', 'Last seen', 'Battery', 'Link'];
  if (installer()) head.push('');
  const joinMsg = h('p', { id: 'join-msg', role: 'status' });
  const join = installer() ? h('div.card.no-print', {}, h('h2', {}, 'Pair a Zigbee device'),
    h('div.row', {}, h('button', { type: 'button', id: 'permit-join', onclick: async ev => {
      const res = await api('POST', 'devices/permit-join', { seconds: 120 });
      if (!res.ok) { joinMsg.className = 'notice'; joinMsg.textContent = res.data.error; return; }
      let left = res.data.seconds; ev.target.disabled = true;
      const tick = () => { joinMsg.textContent = 'Pairing open: ' + left + ' s left. Put the device in pairing mode now.';
        if (left-- <= 0) { ev.target.disabled = false; joinMsg.textContent = 'Pairing closed.'; } else setTimeout(tick, 1000); };
      tick();
    } }, 'Permit join (2 min)')), joinMsg) : null;
  show(h('h1', {}, 'Devices'), join,
    h('div.scroll', {}, h('table', {}, h('thead', {}, h('tr', {}, head.map(t => h('th', { text: t })))), tbody)),
    res.data.devices.length ? null : h('p.muted', { id: 'no-devices' }, 'No devices yet. They appear here as soon as they report.'));
  let timer = null;
  const waiting = new Set();
  const refresh = (tries = 0) => api('GET', 'devices').then(r => {
    const rows = $('#device-rows');
    if (!r.ok || !rows) return;
    rows.replaceChildren(...r.data.devices.map(deviceRow));
    const n = $('#no-devices'); if (n && r.data.devices.length) n.remove();
    // A new device's event can arrive before its registry row is committed.
    for (const id of waiting) if (r.data.devices.some(d => d.id === id)) waiting.delete(id);
    if (waiting.size && tries < 5) { clearTimeout(timer); timer = setTimeout(() => refresh(tries + 1), 700); }
  });
  live(ev => {
    if (page() !== 'devices' || !$('#device-rows')) return;
    const id = ev.type === 'device' ? ev.id : ev.type === 'reading' ? ev.device : null;
    if (!id) return;
    const row = $('#device-rows').querySelector('[data-device="' + CSS.escape(id) + '"]');
    if (row && ev.type === 'reading') {
      // A known device reported: update in place, no request per event.
      const seen = row.querySelector('[data-col="seen"]');
      if (seen) { seen.textContent = 'just now'; seen.title = when(ev.at); }
      if (!row.dataset.kinds.split(',').includes(ev.kind)) { clearTimeout(timer); timer = setTimeout(() => refresh(), 500); }
      return;
    }
    // A new or changed device: refetch, at most twice a second.
    if (!row) waiting.add(id);
    clearTimeout(timer); timer = setTimeout(refresh, 300);
  });
};

function describe(ev) {
  switch (ev.type) {
    case 'reading': return ev.device + ' ' + ev.kind + ' = ' + ev.value;
    case 'alert': return 'ALERT ' + ev.state + ': ' + ev.message;
    case 'device': return 'device ' + ev.id + ' updated';
    case 'link': return 'link ' + ev.link + ' ' + (ev.up ? 'up' : 'down') + ': ' + ev.detail;
    case 'ack': return 'alert ' + ev.id + ' acknowledged by ' + ev.by;
    default: return JSON.stringify(ev);
  }
}

pages.live = () => {
  const list = h('ul.events', { id: 'events' });
  show(h('h1', {}, 'Live'), h('p.muted', {}, 'Events as they happen (newest first, last 200).'), list);
  live(ev => {
    list.prepend(h('li' + (ev.type === 'alert' ? '.alert' : ''), {}, new Date().toLocaleTimeString() + '  ' + describe(ev)));
    while (list.children.length > 200) list.lastChild.remove();
  });
};

// Moves the caret of `ta` to the start of 1-based `line`.
function gotoLine(ta, line) {
  const lines = ta.value.split('\n');
  let at = 0;
  for (let i = 0; i < Math.min(line - 1, lines.length); i++) at += lines[i].length + 1;
  ta.focus(); ta.setSelectionRange(at, at + (lines[line - 1] || '').length);
}

pages.rules = async () => {
  const res = await api('GET', 'rules');
  if (!res.ok) return show(h('h1', {}, 'Rules'), h('p.error', { text: res.data.error }));
  if (!res.data.available) return show(h('h1', {}, 'Rules'), h('p.notice', { text: res.data.message }));
  const a = res.data.active;
  const version = () => 'Active: version ' + a.version + ' · from ' + a.source + (a.applied_at && a.version ? ' · ' + when(a.applied_at) : '');
  const info = h('p.muted', { id: 'rules-version', text: version() });
  if (!installer()) return show(h('h1', {}, 'Rules'), info, h('pre.rules', { text: a.text }));
  const ta = h('textarea', { name: 'text', id: 'rules-text', spellcheck: 'false', rows: 22, autocapitalize: 'none' });
  ta.value = a.text;
  const problems = h('ul.problems', { id: 'rules-problems', role: 'alert' });
  const msg = h('p', { id: 'rules-msg', role: 'status' });
  const tried = h('div', { id: 'rules-try' });
  const clear = () => { problems.replaceChildren(); ta.removeAttribute('aria-invalid'); msg.textContent = ''; msg.className = ''; };
  const refused = r => {
    const list = r.data.problems || [];
    if (!list.length) { msg.className = 'error'; msg.textContent = r.data.error || ('failed (HTTP ' + r.status + ')'); return; }
    ta.setAttribute('aria-invalid', 'true');
    for (const p of list) {
      problems.append(h('li.field-error', { 'data-line': p.line || '', onclick: () => p.line && gotoLine(ta, p.line) },
        (p.line ? 'line ' + p.line + ': ' : '') + (p.key ? p.key + ': ' : '') + p.message));
    }
    if (list[0].line) gotoLine(ta, list[0].line);
  };
  const busy = on => form.querySelectorAll('button').forEach(b => { b.disabled = on; });
  const tryIt = async () => {
    clear(); tried.replaceChildren(h('p.muted', {}, 'Replaying the last 24 h…')); busy(true);
    const r = await api('POST', 'rules/try', { text: ta.value });
    busy(false);
    if (!r.ok) { tried.replaceChildren(); return refused(r); }
    const d = r.data;
    const note = [d.readings + ' readings replayed in ' + d.ms + ' ms', d.capped ? 'only the first readings (cap)' : '', d.timed_out ? 'stopped early (time budget)' : ''].filter(Boolean).join(' · ');
    tried.replaceChildren(h('h2', {}, 'Would have raised ' + d.total + ' alert' + (d.total === 1 ? '' : 's')),
      h('p.muted', { text: 'From ' + when(d.since) + ' to ' + when(d.until) + ' · ' + note }),
      d.alerts.length ? h('div.scroll', {}, h('table', { id: 'try-alerts' }, h('thead', {}, h('tr', {}, ['When', 'Rule', 'State', 'Device', 'Message'].map(t => h('th', { text: t })))),
        h('tbody', {}, d.alerts.map(x => h('tr', {}, h('td', { text: when(x.at) }), h('td', { text: x.rule }), h('td', { text: x.state }), h('td', { text: x.device }), h('td', { text: x.message })))))) : null);
  };
  const form = h('form.wide', { novalidate: true },
    h('label', {}, 'Rules (TOML, see RULES.md)', ta),
    h('div.row', {}, h('button', { type: 'submit', id: 'rules-apply' }, 'Apply'),
      h('button.secondary', { type: 'button', id: 'rules-try-btn', onclick: tryIt }, 'Try it on the last 24 h'),
      res.data.can_rollback ? h('button.secondary', { type: 'button', id: 'rules-rollback', onclick: async () => {
        if (!confirm('Go back to the previous rules?')) return;
        const r = await api('POST', 'rules/rollback');
        if (r.ok) pages.rules(); else { clear(); refused(r); }
      } }, 'Roll back') : null),
    problems, msg);
  form.addEventListener('submit', async e => {
    e.preventDefault(); clear(); busy(true);
    const r = await api('PUT', 'rules', { text: ta.value });
    busy(false);
    if (!r.ok) return refused(r);
    const x = r.data.applied;
    Object.assign(a, { version: x.version, source: x.source, applied_at: new Date().toISOString() });
    info.textContent = version();
    msg.className = 'ok';
    msg.textContent = x.unchanged ? 'No change: these rules are already active.' :
      'Applied without restart: version ' + x.version + ' (' + x.kept + ' kept, ' + x.fresh + ' new or changed, ' + x.removed + ' removed).';
  });
  show(h('h1', {}, 'Rules'), info, form, tried);
};

pages.uplinks = async () => {
  const res = await api('GET', 'uplinks');
  if (!res.ok) return show(h('p.error', { text: res.data.error }));
  const set = res.data.settings || {}, st = res.data.state || {};
  const kv = o => h('dl.kv', {}, Object.entries(o || {}).map(([k, v]) => [h('dt', { text: k }), h('dd', { text: v === null || v === undefined ? '–' : typeof v === 'object' ? JSON.stringify(v) : v })]));
  const out = h('p', { id: 'mqtt-test-result', role: 'status' });
  const test = set.mqtt && installer() ? h('button.secondary', { type: 'button', id: 'mqtt-test', onclick: async ev => {
    ev.target.disabled = true; out.className = 'muted'; out.textContent = 'Connecting…';
    const r = await api('POST', 'uplinks/mqtt/test');
    ev.target.disabled = false;
    if (!r.ok) { out.className = 'error'; out.textContent = r.data.error; return; }
    if (r.data.ok) { out.className = 'ok'; out.textContent = 'Connected to ' + r.data.url + ' in ' + r.data.ms + ' ms (as ' + r.data.client_id + ').'; }
    else { out.className = 'error'; out.textContent = 'Failed (' + r.data.stage + '): ' + r.data.error; }
  } }, 'Test connection') : null;
  // LoRaWAN: whatever the status provides (join state, airtime today, …).
  const lora = st.lorawan || res.data.lorawan_status;
  show(h('h1', {}, 'Uplinks'),
    h('div.grid', {},
      h('div.card', { id: 'mqtt-card' }, h('h3', {}, 'MQTT'), set.mqtt ? kv(set.mqtt) : h('p', {}, 'not configured'),
        set.mqtt ? [h('h3', {}, 'State'), kv(st.mqtt), test, out] : null),
      h('div.card', { id: 'lorawan-card' }, h('h3', {}, 'LoRaWAN'), set.lorawan ? kv(set.lorawan) : h('p', {}, 'not configured'),
        set.lorawan ? [h('h3', {}, 'State'), lora ? kv(lora) : h('p.muted', {}, 'no state reported yet')] : null)),
    h('p.muted', {}, 'Uplink settings are read-only here; they come from the configuration file.'));
};

function passwordCard() {
  const err = h('p.error', { role: 'alert' });
  const ok = h('p.ok', { role: 'status' });
  const form = h('form.stack', { novalidate: true, id: 'password-form' },
    h('label', {}, 'Current password', h('input', { name: 'current', type: 'password', autocomplete: 'current-password' })),
    h('label', {}, 'New password (at least 10 characters)', h('input', { name: 'new', type: 'password', autocomplete: 'new-password' })),
    h('button', { type: 'submit' }, 'Change password'), err, ok);
  form.addEventListener('submit', async e => {
    e.preventDefault();
    ok.textContent = '';
    const res = await api('POST', 'session/password', formData(form));
    if (res.ok) { form.reset(); formError(form, err, { data: { error: '' } }); err.textContent = ''; ok.textContent = 'Password changed.'; } else formError(form, err, res);
  });
  return h('div.card', {}, h('h3', {}, 'Your password'), form);
}

pages.system = async () => {
  if (!installer()) return show(h('h1', {}, 'System'), passwordCard());
  const [users, audit] = await Promise.all([api('GET', 'users'), api('GET', 'audit')]);
  const uerr = h('p.error', { role: 'alert' });
  const uform = h('form.stack', { novalidate: true },
    h('label', {}, 'User name', h('input', { name: 'name', autocapitalize: 'none' })),
    h('label', {}, 'Role', h('select', { name: 'role' }, h('option', { value: 'carer' }, 'carer'), h('option', { value: 'installer' }, 'installer'))),
    h('label', {}, 'Password', h('input', { name: 'password', type: 'password', autocomplete: 'new-password' })),
    h('button', { type: 'submit' }, 'Add user'), uerr);
  uform.addEventListener('submit', async e => {
    e.preventDefault();
    const res = await api('POST', 'users', formData(uform));
    if (res.ok) pages.system(); else formError(uform, uerr, res);
  });
  const msg = h('p', { role: 'status', id: 'system-msg' });
  const ota = h('input', { type: 'file', name: 'bundle', id: 'ota-file', accept: '.cbb,application/octet-stream' });
  const otaMsg = h('p', { role: 'status', id: 'ota-msg' });
  const restoreFile = h('input', { type: 'file', name: 'restore', id: 'restore-file', accept: '.json,application/json' });
  const restoreMsg = h('p', { role: 'status', id: 'restore-msg' });
  const rform = h('form.stack', { novalidate: true },
    h('label', {}, 'Type RESET to wipe accounts, devices and history', h('input', { name: 'confirm', autocomplete: 'off' })),
    h('button.danger', { type: 'submit' }, 'Factory reset'));
  const rerr = h('p.error', { role: 'alert' });
  rform.append(rerr);
  rform.addEventListener('submit', async e => {
    e.preventDefault();
    const res = await api('POST', 'system/factory-reset', formData(rform));
    if (res.ok) location.href = '/setup'; else formError(rform, rerr, res);
  });
  const urows = (users.data.users || []).map(u => h('tr', {}, h('td', { text: u.name }), h('td', { text: u.role }), h('td', { text: when(u.created) }),
    h('td', {}, u.name === S.user ? '' : h('button.secondary', { type: 'button', onclick: async () => {
      if (!confirm('Delete ' + u.name + '?')) return;
      const r = await api('DELETE', 'users/' + encodeURIComponent(u.name));
      if (r.ok) pages.system(); else alert(r.data.error);
    } }, 'Delete'))));
  const arows = (audit.data.entries || []).map(a => h('tr', {}, h('td', { text: when(a.at) }), h('td', { text: a.user }), h('td', { text: a.action }), h('td', { text: a.detail })));
  show(h('h1', {}, 'System'),
    h('div.grid', {},
      h('div.card', {}, h('h3', {}, 'Configuration backup'), h('p', {}, h('a', { href: '/api/v1/system/backup', download: 'carebridge-backup.json', id: 'backup' }, 'Download backup (JSON)')),
        h('p.muted', {}, 'Config, active rules, devices, users (no passwords) and the audit log.'),
        h('label', {}, 'Restore from a backup', restoreFile),
        h('button.secondary', { type: 'button', id: 'restore', onclick: async () => {
          const f = restoreFile.files[0];
          if (!f) { restoreMsg.className = 'error'; restoreMsg.textContent = 'Choose a backup file first.'; return; }
          if (!confirm('Restore rules and device names from ' + f.name + '?')) return;
          const r = await apiRaw('POST', 'system/restore', await f.text(), 'application/json');
          restoreMsg.className = r.ok ? 'ok' : 'error';
          restoreMsg.textContent = r.ok ? 'Restored: ' + r.data.done.join('; ') + (r.data.note ? '. ' + r.data.note : '') :
            (r.data.error || 'restore failed') + (r.data.problems ? ' ' + r.data.problems.map(p => (p.line ? 'line ' + p.line + ': ' : '') + p.key + ' ' + p.message).join('; ') : '');
        } }, 'Restore'), restoreMsg),
      h('div.card', {}, h('h3', {}, 'Software update'), h('label', {}, 'Signed bundle (.cbb)', ota), h('button.secondary', { type: 'button', id: 'ota-upload', onclick: async ev => {
        const f = ota.files[0];
        if (!f) { otaMsg.className = 'error'; otaMsg.textContent = 'Choose a bundle file first.'; return; }
        ev.target.disabled = true; otaMsg.className = 'muted'; otaMsg.textContent = 'Uploading and verifying ' + f.name + '…';
        const r = await apiRaw('POST', 'system/ota', f, 'application/octet-stream');
        ev.target.disabled = false;
        otaMsg.className = r.ok ? 'ok' : 'error';
        otaMsg.textContent = r.ok ? r.data.message : (r.data.error || ('upload failed (HTTP ' + r.status + ')'));
      } }, 'Upload and verify'), otaMsg),
      h('div.card', {}, h('h3', {}, 'Logs'), h('button.secondary', { type: 'button', id: 'logs', onclick: async () => {
        const err = await download('system/logs', 'carebridge-log.txt'); msg.className = err ? 'notice' : ''; msg.textContent = err;
      } }, 'Download logs'))),
    msg,
    h('h2', {}, 'Users'), h('div.scroll', {}, h('table', {}, h('thead', {}, h('tr', {}, ['Name', 'Role', 'Created', ''].map(t => h('th', { text: t })))), h('tbody', {}, urows))),
    h('div.card', {}, h('h3', {}, 'Add a user'), uform),
    h('h2', {}, 'Audit log'), h('div.scroll', {}, h('table', { id: 'audit' }, h('thead', {}, h('tr', {}, ['When', 'Who', 'What', 'Detail'].map(t => h('th', { text: t })))), h('tbody', {}, arows))),
    h('h2', {}, 'Your account'), passwordCard(),
    h('h2', {}, 'Factory reset'), h('div.card', {}, rform));
};

pages.commissioning = async () => {
  const res = await api('GET', 'commissioning');
  if (!res.ok) return show(h('p.error', { text: res.data.error }));
  const rows = {};
  let walking = false;
  const status = h('p', { role: 'status', id: 'walk-status' });
  const sections = res.data.rooms.map(r => h('section', {}, h('h2', { text: r.room }),
    h('div.scroll', {}, h('table', {}, h('thead', {}, h('tr', {}, ['Device', 'Role', 'Last event', 'Check'].map(t => h('th', { text: t })))),
      h('tbody', {}, r.devices.map(x => {
        const d = x.device, le = x.last_event;
        const check = h('td.check', { text: '—' });
        const last = h('td', { text: le ? le.kind + ' = ' + le.value + ' · ' + when(le.at) : 'none yet' });
        const tr = h('tr', { 'data-device': d.id }, h('td', {}, h('strong', { text: d.name || d.id }), h('div.muted', { text: d.id })), h('td', { text: d.role || '—' }), last, check);
        rows[d.id] = { tr, check, last };
        return tr;
      }))))));
  const start = h('button.no-print', { type: 'button', id: 'walk', onclick: () => {
    walking = true;
    for (const r of Object.values(rows)) { r.tr.className = 'waiting'; r.check.textContent = 'press the button now'; }
    status.textContent = 'Walk-through: trigger each device (press its button, open the door, wave at the sensor). Rows turn green as events arrive.';
  } }, 'Start walk-through');
  const print = h('button.secondary.no-print', { type: 'button', onclick: () => window.print() }, 'Print');
  show(h('h1', {}, 'Commissioning report'),
    h('p.muted', { text: 'Gateway ' + (res.data.gateway || '') + ' · generated ' + when(res.data.generated) }),
    h('div.row.no-print', {}, start, print), status,
    sections.length ? sections : h('p.muted', {}, 'No devices yet.'));
  live(ev => {
    const id = ev.type === 'reading' ? ev.device : ev.type === 'alert' ? ev.device : null;
    const r = id && rows[id];
    if (!r) return;
    if (ev.type === 'reading') r.last.textContent = ev.kind + ' = ' + ev.value + ' · ' + when(ev.at);
    if (walking) { r.tr.className = 'green'; r.check.textContent = '✓ event received ' + new Date().toLocaleTimeString(); }
  });
};

// ---- Wi-Fi device credentials (local broker) ----
// The QR code comes from the gateway as SVG markup it made itself (no text
// from outside in it); it is parsed as SVG, never assigned as HTML.
function svgNode(markup) {
  const doc = new DOMParser().parseFromString(markup, 'image/svg+xml');
  const el = doc.documentElement;
  return el && el.nodeName === 'svg' ? document.importNode(el, true) : h('p.error', { text: 'QR code unavailable' });
}

pages.credentials = async () => {
  const res = await api('GET', 'device-credentials');
  if (!res.ok) return show(h('h1', {}, 'Wi-Fi device credentials'), h('p.error', { text: res.data.error }));
  const d = res.data;
  const err = h('p.error', { role: 'alert' });
  const issued = h('div', { id: 'issued' });
  const form = h('form.stack.card', { novalidate: true, id: 'credential-form' },
    h('h3', {}, 'New credential'),
    h('label', {}, 'Device id (as it publishes: carebridge/in/<id>)', h('input', { name: 'device', autocapitalize: 'none', autocomplete: 'off' })),
    h('button', { type: 'submit' }, 'Make credential'), err);
  form.addEventListener('submit', async e => {
    e.preventDefault();
    const res = await api('POST', 'device-credentials', formData(form));
    if (!res.ok) return formError(form, err, res);
    form.reset(); formError(form, err, { data: { error: '' } }); err.textContent = '';
    const c = res.data;
    issued.replaceChildren(h('div.card', { id: 'issued-card' },
      h('h3', {}, 'Credential for ' + c.username + ' — shown once'),
      h('p', {}, 'Enter these in the device (or scan the code with its setup app). The password cannot be shown again: if it is lost, revoke it and make a new one.'),
      h('dl.kv', {}, h('dt', {}, 'User name'), h('dd.secret', { id: 'issued-user', text: c.username }),
        h('dt', {}, 'Password'), h('dd.secret', { id: 'issued-password', text: c.password }),
        c.topic ? [h('dt', {}, 'Publishes to'), h('dd', { text: c.topic })] : null,
        c.tls_sha256 ? [h('dt', {}, 'TLS certificate SHA-256'), h('dd', { text: c.tls_sha256 })] : null),
      h('div.qr', { id: 'issued-qr' }, svgNode(c.qr_svg))));
    refreshList();
  });
  const tbody = h('tbody', { id: 'credential-rows' });
  const refreshList = async () => {
    const r = await api('GET', 'device-credentials');
    if (!r.ok) return;
    tbody.replaceChildren(...r.data.credentials.map(c => {
      const user = c.holder.device || c.holder.service;
      return h('tr', { 'data-credential': user },
        h('td', {}, h('strong', { text: user }), h('div.muted', { text: c.holder.device ? 'device' : 'service account' })),
        h('td', { text: when(c.created_at) }), h('td', { text: c.created_by }),
        h('td', {}, h('button.danger', { type: 'button', 'data-revoke': user, onclick: async () => {
          if (!confirm('Revoke the credential of ' + user + '? The device can no longer connect.')) return;
          const x = await api('DELETE', 'device-credentials/' + encodeURIComponent(user));
          if (x.ok) { issued.replaceChildren(); refreshList(); } else alert(x.data.error);
        } }, 'Revoke')));
    }));
    const none = $('#no-credentials');
    if (none) none.hidden = r.data.credentials.length > 0;
  };
  const ha = h('button.secondary', { type: 'button', id: 'make-ha', onclick: async () => {
    const res = await api('POST', 'device-credentials', { service: 'homeassistant' });
    if (!res.ok) { err.textContent = res.data.error; return; }
    issued.replaceChildren(h('div.card', { id: 'issued-card' }, h('h3', {}, 'Home Assistant account — shown once'),
      h('dl.kv', {}, h('dt', {}, 'User name'), h('dd.secret', { id: 'issued-user', text: res.data.username }),
        h('dt', {}, 'Password'), h('dd.secret', { id: 'issued-password', text: res.data.password }))));
    refreshList();
  } }, 'Make the Home Assistant account');
  show(h('h1', {}, 'Wi-Fi device credentials'),
    h('p', { id: 'credentials-state', class: d.enabled ? 'muted' : 'notice',
      text: d.enabled ? 'Devices log in to the local broker (' + d.listen + (d.tls_listen ? ', TLS ' + d.tls_listen : '') + ') with these. A device may publish only to carebridge/in/<its id>.'
        : 'Device credentials are off: set device_credentials = true in [local_broker] for the broker to ask devices for them.' }),
    d.tls_sha256 ? h('p.muted', { id: 'tls-fingerprint', text: 'TLS certificate SHA-256: ' + d.tls_sha256 }) : null,
    h('div.grid', {}, form, h('div.card', {}, h('h3', {}, 'Home Assistant'), h('p.muted', {}, 'A read-only account for Home Assistant\'s MQTT integration (discovery and state topics).'), ha)),
    issued,
    h('h2', {}, 'Credentials'),
    h('div.scroll', {}, h('table', {}, h('thead', {}, h('tr', {}, ['Who', 'Made', 'By', ''].map(t => h('th', { text: t })))), tbody)),
    h('p.muted', { id: 'no-credentials' }, 'No credentials yet.'));
  refreshList();
};

// ---- start ----
async function start() {
  const p = page();
  if (p !== 'login' && p !== 'setup') {
    const res = await api('GET', 'session');
    if (!res.ok) return;
    Object.assign(S, { csrf: res.data.csrf, user: res.data.user, role: res.data.role, tz: res.data.timezone || '' });
    $('#nav').hidden = false;
    $('#who').hidden = false;
    $('#who-name').textContent = S.user + ' (' + S.role + ')';
    if (!installer()) document.querySelectorAll('.installer-only').forEach(e => e.remove());
    // Standing warnings (e.g. a local broker open to the whole network).
    for (const w of res.data.warnings || []) main().before(h('div.standing', { role: 'alert', 'data-warning': '' , text: w }));
    const cur = document.querySelector('[data-nav="' + p + '"]');
    if (cur) cur.classList.add('active');
    $('#logout').addEventListener('click', async () => { await api('POST', 'logout'); location.href = '/login'; });
    const count = $('#alert-count');
    const refresh = () => api('GET', 'alerts').then(r => {
      const n = r.ok ? r.data.open.filter(a => !a.acked_by).length : 0;
      count.hidden = n === 0; count.textContent = n;
    });
    refresh();
    live(ev => {
      if (ev.type === 'alert' || ev.type === 'ack') {
        refresh();
        if (p === 'alerts' || p === 'overview') pages[p]();
      }
    });
  }
  const fn = pages[p];
  if (fn) await fn();
  document.body.dataset.ready = 'true';
}
document.addEventListener('DOMContentLoaded', start);
