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
