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

function alertItem(a, onAck) {
  const acked = a.acked_by ? h('span.pill.ok', { text: 'acknowledged by ' + a.acked_by }) : null;
  const btn = !a.acked_by && a.open ? h('button', { type: 'button', 'data-ack': a.id, onclick: () => onAck(a) }, 'Acknowledge') : null;
  return h('div.card.alert-item.' + a.severity + (a.acked_by ? '.acked' : ''), { 'data-alert': a.id },
    h('div', {}, h('strong', { text: a.message }), h('div.muted', {},
      a.severity + ' · ' + (a.room || 'no room') + ' · ' + a.device + ' · ' + when(a.at) + (a.open ? '' : ' · cleared'))),
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
      h('div.card', {}, h('h3', {}, 'Uptime'), h('div.big', { text: duration(s.uptime_s) }), h('div.muted', { text: 'time zone ' + (s.timezone || '?') }))),
    h('h2', {}, 'Open alerts (' + open.length + ')'),
    open.length ? h('div.grid', {}, open.map(a => alertItem(a, x => ackAlert(x, pages.overview)))) : h('p.muted', {}, 'No open alerts.'));
};

pages.alerts = async () => {
  const res = await api('GET', 'alerts');
  if (!res.ok) return show(h('p.error', { text: res.data.error }));
  const again = () => pages.alerts();
  show(h('h1', {}, 'Alerts'),
    h('h2', {}, 'Open'), res.data.open.length ? h('div.grid', { id: 'open-alerts' }, res.data.open.map(a => alertItem(a, x => ackAlert(x, again)))) : h('p.muted', { id: 'open-alerts' }, 'No open alerts.'),
    h('h2', {}, 'Recent'), res.data.recent.length ? h('div.grid', {}, res.data.recent.map(a => alertItem(a, x => ackAlert(x, again)))) : h('p.muted', {}, 'Nothing since the gateway started.'));
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
  const refresh = () => api('GET', 'devices').then(r => {
    const rows = $('#device-rows');
    if (!r.ok || !rows) return;
    rows.replaceChildren(...r.data.devices.map(deviceRow));
    const n = $('#no-devices'); if (n && r.data.devices.length) n.remove();
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
      if (!row.dataset.kinds.split(',').includes(ev.kind)) { clearTimeout(timer); timer = setTimeout(refresh, 500); }
      return;
    }
    // A new or changed device: refetch, at most twice a second.
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

pages.rules = async () => {
  const res = await api('GET', 'rules');
  show(h('h1', {}, 'Rules'), h('p.notice', { text: res.data.message || res.data.error || 'Rules editor arrives with the rule engine.' }));
};

pages.uplinks = async () => {
  const res = await api('GET', 'uplinks');
  if (!res.ok) return show(h('p.error', { text: res.data.error }));
  const set = res.data.settings || {}, st = res.data.state || {};
  const kv = o => h('dl.kv', {}, Object.entries(o || {}).map(([k, v]) => [h('dt', { text: k }), h('dd', { text: v === null ? '—' : typeof v === 'object' ? JSON.stringify(v) : v })]));
  show(h('h1', {}, 'Uplinks'),
    h('div.grid', {},
      h('div.card', {}, h('h3', {}, 'MQTT'), set.mqtt ? kv(set.mqtt) : h('p', {}, 'not configured'), h('h3', {}, 'State'), kv(st.mqtt)),
      h('div.card', {}, h('h3', {}, 'LoRaWAN'), set.lorawan ? kv(set.lorawan) : h('p', {}, 'not configured'))),
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
  const msg = h('p', { role: 'status' });
  const ota = h('input', { type: 'file', name: 'bundle' });
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
      h('div.card', {}, h('h3', {}, 'Configuration backup'), h('p', {}, h('a', { href: '/api/v1/system/backup', download: 'carebridge-backup.json' }, 'Download backup (JSON)'))),
      h('div.card', {}, h('h3', {}, 'Software update'), ota, h('button.secondary', { type: 'button', onclick: async () => {
        const res = await api('POST', 'system/ota'); msg.className = 'notice'; msg.textContent = res.data.error || 'uploaded';
      } }, 'Upload'), h('p.muted', {}, 'Over-the-air updates arrive with the OTA module.')),
      h('div.card', {}, h('h3', {}, 'Logs'), h('button.secondary', { type: 'button', onclick: async () => {
        const res = await api('GET', 'system/logs'); msg.className = 'notice'; msg.textContent = res.data.error || '';
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
