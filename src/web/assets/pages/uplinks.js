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
  // The alarm receiving centre: a manual test signal (Contact ID 601).
  const arcOut = h('p', { id: 'arc-test-result', role: 'status' });
  const arcTest = set.arc && installer() ? h('button.secondary', { type: 'button', id: 'arc-test', onclick: async ev => {
    ev.target.disabled = true; arcOut.className = 'muted'; arcOut.textContent = 'Sending a test signal…';
    const r = await api('POST', 'uplinks/arc/test');
    ev.target.disabled = false;
    if (!r.ok) { arcOut.className = 'error'; arcOut.textContent = r.data.error; return; }
    if (r.data.ok) { arcOut.className = 'ok'; arcOut.textContent = 'Acknowledged by the ' + r.data.receiver + ' receiver in ' + r.data.ms + ' ms.'; }
    else { arcOut.className = 'error'; arcOut.textContent = 'Not acknowledged: ' + r.data.error; }
  } }, 'Send test signal') : null;
  // LoRaWAN: whatever the status provides (join state, airtime today, …).
  const lora = st.lorawan || res.data.lorawan_status;
  show(h('h1', {}, 'Uplinks'),
    h('div.grid', {},
      h('div.card', { id: 'mqtt-card' }, h('h3', {}, 'MQTT'), set.mqtt ? kv(set.mqtt) : h('p', {}, 'not configured'),
        set.mqtt ? [h('h3', {}, 'State'), kv(st.mqtt), test, out] : null),
      h('div.card', { id: 'lorawan-card' }, h('h3', {}, 'LoRaWAN'), set.lorawan ? kv(set.lorawan) : h('p', {}, 'not configured'),
        set.lorawan ? [h('h3', {}, 'State'), lora ? kv(lora) : h('p.muted', {}, 'no state reported yet')] : null),
      set.arc ? h('div.card', { id: 'arc-card' }, h('h3', {}, 'Alarm receiving centre'), kv(set.arc),
        h('h3', {}, 'State'), st.arc ? kv(st.arc) : h('p.muted', {}, 'no state reported yet'), arcTest, arcOut) : null),
    h('p.muted', {}, 'Uplink settings are read-only here; they come from the configuration file.'));
};

