// What a device is, from its interview and the device library (when known):
// "carebridge-sim SIM-PIR · motion sensor".
function identity(d) {
  const def = d.definition || null;
  const who = [d.manufacturer || (def && def.vendor), d.model || (def && def.model)].filter(Boolean).join(' ');
  return [who, def && def.description].filter(Boolean).join(' · ');
}
// What it senses: the library's list, else the kinds it has reported.
function senses(d) {
  const def = d.definition || null;
  const k = def && Array.isArray(def.senses) && def.senses.length ? def.senses : (d.kinds || []);
  return k.map(x => String(x).replace(/_/g, ' ')).join(', ');
}
const isZigbee = d => /^zb-[0-9a-f]{16}$/.test(d.id) || !!d.ieee;

async function identifyDevice(d, out) {
  out.className = 'muted'; out.textContent = 'Asking ' + (d.name || d.id) + ' to identify…';
  const res = await api('POST', 'devices/' + encodeURIComponent(d.id) + '/identify', { seconds: 10 });
  if (res.ok) { out.className = 'ok'; out.textContent = 'Sent: ' + (d.name || d.id) + ' blinks or beeps for ' + res.data.seconds + ' s.'; }
  else { out.className = 'error'; out.textContent = res.data.error || 'identify failed'; }
}

function deviceRow(d) {
  const id = d.id;
  const what = identity(d);
  const msg = h('div', { 'data-col': 'msg', role: 'status' });
  const cells = [
    h('td.wide', { 'data-label': 'Device' }, h('strong', { text: d.name || id }), h('div.muted', { text: id }),
      what ? h('div.senses', { 'data-col': 'identity', text: what }) : null,
      h('div.event-now', { 'data-col': 'event' }), msg),
    h('td', { 'data-label': 'Room', text: d.room || '—' }),
    h('td', { 'data-label': 'Senses', text: senses(d) || '—' }),
    h('td', { 'data-label': 'Role', text: d.role || '—' }),
    h('td.hide-narrow', { 'data-label': 'Model', text: [d.manufacturer, d.model].filter(Boolean).join(' ') || '—' }),
    h('td', { 'data-label': 'Last seen', text: ago(d.last_seen), title: when(d.last_seen), 'data-col': 'seen' }),
    h('td', { 'data-label': 'Battery', text: d.battery === null || d.battery === undefined ? '—' : Math.round(d.battery) + ' %' }),
    h('td', { 'data-label': 'Link', text: d.lqi === null || d.lqi === undefined ? '—' : d.lqi })];
  if (installer()) cells.push(h('td.actions', {},
    h('button.secondary', { type: 'button', 'data-edit': id, onclick: () => editDevice(d) }, 'Edit'),
    isZigbee(d) ? h('button.secondary', { type: 'button', 'data-identify': id, onclick: () => identifyDevice(d, msg) }, 'Identify') : null));
  return h('tr', { 'data-device': id, 'data-kinds': (d.kinds || []).join(',') }, cells);
}

function editDevice(d) {
  const err = h('p.error', { role: 'alert' });
  const out = h('p', { role: 'status', id: 'identify-msg' });
  const def = d.definition || null;
  const facts = h('dl.kv', {},
    h('dt', {}, 'Id'), h('dd', { text: d.id }),
    h('dt', {}, 'Made by'), h('dd', { text: d.manufacturer || (def && def.vendor) || 'unknown' }),
    h('dt', {}, 'Model'), h('dd', { text: d.model || (def && def.model) || 'unknown' }),
    def && def.description ? [h('dt', {}, 'What it is'), h('dd', { text: def.description })] : null,
    h('dt', {}, 'Senses'), h('dd', { text: senses(d) || 'nothing reported yet' }),
    def && def.commissioning ? [h('dt', {}, 'To test it'), h('dd', { text: def.commissioning })] : null);
  const form = h('form.stack.card', { novalidate: true, id: 'device-form' },
    h('h2', { text: 'Edit ' + (d.name || d.id) }), facts,
    isZigbee(d) ? h('div.row', {}, h('button.secondary', { type: 'button', id: 'identify', onclick: () => identifyDevice(d, out) }, 'Identify (blink/beep 10 s)')) : null, out,
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
    // Only what changed: an unchanged room from the config file is not re-checked.
    const body = {};
    for (const [k, v] of Object.entries(formData(form))) if (v.trim() !== '' && v !== (d[k] || '')) body[k] = v;
    if (!Object.keys(body).length) return pages.devices();
    const res = await api('PUT', 'devices/' + encodeURIComponent(d.id), body);
    if (res.ok) pages.devices(); else formError(form, err, res);
  });
  show(form);
}

pages.devices = async () => {
  const res = await api('GET', 'devices');
  if (!res.ok) return show(h('p.error', { text: res.data.error }));
  const tbody = h('tbody', { id: 'device-rows' }, res.data.devices.map(deviceRow));
  const head = ['Device', 'Room', 'Senses', 'Role', 'Model', 'Last seen', 'Battery', 'Link'];
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
    } }, 'Permit join (2 min)')), joinMsg,
    h('p.muted', { id: 'find-hint' }, 'Which is which? Trigger a device now (press it, open it, walk past it): the row of the device that reported last is highlighted, so you name the right one. Identify makes a Zigbee device blink or beep.')) : null;
  show(h('h1', {}, 'Devices'), join,
    h('div.scroll', {}, h('table.cards', {}, h('thead', {}, h('tr', {}, head.map(t => h('th', { text: t })))), tbody)),
    res.data.devices.length ? null : h('p.muted', { id: 'no-devices' }, 'No devices yet. They appear here as soon as they report.'));
  let timer = null;
  const waiting = new Set();
  let newest = null;
  // The newest event, highlighted on its device's row (and kept there
  // across a refresh), so "trigger it now" finds the device.
  const mark = () => {
    const rows = $('#device-rows'); if (!rows || !newest) return;
    rows.querySelectorAll('tr.newest').forEach(r => { if (r.dataset.device !== newest.id) r.classList.remove('newest'); });
    const row = rows.querySelector('[data-device="' + CSS.escape(newest.id) + '"]');
    if (!row) return;
    row.classList.add('newest');
    const e = row.querySelector('[data-col="event"]');
    if (e) e.textContent = 'Just now: ' + reading(newest.kind, newest.value);
  };
  const refresh = (tries = 0) => api('GET', 'devices').then(r => {
    const rows = $('#device-rows');
    if (!r.ok || !rows) return;
    rows.replaceChildren(...r.data.devices.map(deviceRow));
    mark();
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
    // Routine reports (temperature, battery) do not steal the highlight
    // from a device someone just triggered.
    if (ev.type === 'reading' && !(UNITS[ev.kind] && newest && Date.now() - newest.t < 15000)) {
      newest = { id, kind: ev.kind, value: ev.value, t: Date.now() };
      mark();
    }
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

// Device names for the Live view (refreshed when a device changes).
const names = {};
async function loadNames() {
  const r = await api('GET', 'devices');
  if (r.ok) for (const d of r.data.devices) names[d.id] = { name: d.name, room: d.room };
}
function deviceName(id) {
  const n = names[id];
  if (!n) return id;
  return (n.name || id) + (n.room ? ' (' + n.room + ')' : '');
}

function describe(ev) {
  switch (ev.type) {
    case 'reading': return deviceName(ev.device) + ': ' + reading(ev.kind, ev.value);
    case 'alert': return (ev.state === 'cleared' ? 'Alert cleared: ' : 'ALERT: ') + ev.message;
    case 'device': return deviceName(ev.id) + ': details updated';
    case 'link': return 'Link ' + ev.link + (ev.up ? ' up' : ' down') + (ev.detail ? ': ' + ev.detail : '');
    case 'ack': return 'Alert acknowledged by ' + ev.by;
    default: return JSON.stringify(ev);
  }
}

pages.live = async () => {
  const list = h('ul.events', { id: 'events' });
  show(h('h1', {}, 'Live'), h('p.muted', {}, 'Events as they happen (newest first, last 200).'), list);
  await loadNames();
  live(ev => {
    if (ev.type === 'device' && !names[ev.id]) loadNames();
    if (ev.type === 'device' && names[ev.id]) { if (ev.name) names[ev.id].name = ev.name; if (ev.room) names[ev.id].room = ev.room; }
    list.prepend(h('li' + (ev.type === 'alert' ? '.alert' : ''), { 'data-device': ev.device || ev.id || '' }, new Date().toLocaleTimeString() + '  ' + describe(ev)));
    while (list.children.length > 200) list.lastChild.remove();
  });
};

// Moves the caret of `ta` to the start of 1-based `line`.
