// Uplinks: what runs now (read-only, booleans as yes/no) and, for
// installers, the editor: fields named by their configuration keys (an
// error lands next to the key it names), secrets write-only, "Test
// connection" with the entered values before saving, versions with rollback.
const yesNo = v => v === true ? 'yes' : v === false ? 'no' : v === null || v === undefined || v === '' ? '–' : typeof v === 'object' ? JSON.stringify(v) : String(v);
function kvList(o) {
  return h('dl.kv', {}, Object.entries(o || {}).map(([k, v]) => [h('dt', { text: k.replace(/_/g, ' ') }),
    h('dd' + (v === true ? '.yes' : v === false ? '.no' : ''), { text: yesNo(v) })]));
}

function testLine(name, r) {
  if (!r) return null;
  if (r.ok) return h('li.ok', { text: name + ': connected' + (r.url ? ' to ' + r.url : r.port ? ' (modem on ' + r.port + ' answered OK)' : '') + ' in ' + r.ms + ' ms' });
  return h('li.error', { text: name + ': failed (' + r.stage + '): ' + r.error });
}

async function uplinkEditor() {
  const r = await api('GET', 'uplinks/settings');
  if (!r.ok) return h('p.muted', { id: 'uplinks-readonly', text: r.data.error || 'Uplink settings are read-only here.' });
  const v = r.data.values;
  const err = h('p.error', { role: 'alert' });
  const msg = h('p', { role: 'status', id: 'uplinks-msg' });
  const results = h('ul', { id: 'uplinks-test', role: 'status' });
  const field = (key, label, opt = {}) => h('label', {}, label,
    h('input', { name: key, value: opt.secret ? '' : (v[key] || ''), type: opt.secret ? 'password' : 'text', autocomplete: opt.secret ? 'new-password' : 'off', autocapitalize: 'none', spellcheck: 'false',
      placeholder: opt.secret ? (v[key] ? 'set (leave empty to keep)' : 'not set') : (opt.placeholder || '') }));
  const form = h('form.wide.card', { id: 'uplinks-form', novalidate: true },
    h('h2', {}, 'Edit uplink settings'),
    h('p.muted', { id: 'uplinks-version', text: 'Saved version ' + r.data.version + ' (from ' + r.data.source + ')' + (r.data.restart_needed ? ' · saved settings differ from the running ones: restart to use them' : '') }),
    h('h3', {}, 'Cloud (MQTT)'),
    field('uplink.mqtt.url', 'Broker URL (several: separate with commas)', { placeholder: 'mqtts://broker.example.org:8883' }),
    field('gateway.id', 'Gateway id'),
    field('uplink.mqtt.topic_prefix', 'Topic prefix'),
    field('uplink.mqtt.username', 'User name'),
    field('uplink.mqtt.password', 'Password', { secret: true }),
    field('uplink.mqtt.ca_file', 'CA certificate file', { placeholder: '/etc/carebridge/ca.pem' }),
    field('uplink.mqtt.cert_file', 'Client certificate file'),
    field('uplink.mqtt.key_file', 'Client key file'),
    h('h3', {}, 'LoRaWAN'),
    field('lorawan.port', 'Modem port', { placeholder: '/dev/carebridge-lora' }),
    field('lorawan.dev_eui', 'DevEUI (16 hex digits)'),
    field('lorawan.join_eui', 'JoinEUI (16 hex digits)'),
    field('lorawan.app_key', 'AppKey (32 hex digits)', { secret: true }),
    h('div.row', {},
      h('button.secondary', { type: 'button', id: 'uplinks-try', onclick: async ev => {
        ev.target.disabled = true; results.replaceChildren(h('li.muted', {}, 'Testing the entered settings…'));
        const t = await api('POST', 'uplinks/test', formData(form));
        ev.target.disabled = false;
        if (!t.ok) { results.replaceChildren(); return formError(form, err, t); }
        err.textContent = '';
        results.replaceChildren(...[testLine('MQTT', t.data.mqtt), testLine('LoRaWAN', t.data.lorawan)].filter(Boolean));
        if (!results.children.length) results.append(h('li.muted', {}, 'No uplink configured to test.'));
      } }, 'Test connection'),
      h('button', { type: 'submit', id: 'uplinks-save' }, 'Save'),
      h('button.secondary', { type: 'button', id: 'uplinks-rollback', onclick: async () => {
        msg.className = 'muted'; msg.textContent = 'Rolling back…';
        const b = await api('POST', 'uplinks/rollback');
        msg.className = ''; msg.textContent = '';
        if (!b.ok) return formError(form, err, b);
        await pages.uplinks();
        $('#uplinks-msg').className = 'ok';
        $('#uplinks-msg').textContent = 'Rolled back to version ' + b.data.version + '. Restart the gateway to use it.';
      } }, 'Roll back'),
      h('button.secondary', { type: 'button', id: 'uplinks-restart', onclick: async () => {
        if (!confirm('Restart the gateway now? Alerts are kept and sent after the restart.')) return;
        const b = await api('POST', 'uplinks/restart');
        msg.className = b.ok ? 'notice' : 'error'; msg.textContent = b.ok ? b.data.message : b.data.error;
      } }, 'Restart now')),
    results, err, msg);
  form.addEventListener('submit', async e => {
    e.preventDefault();
    msg.className = 'muted'; msg.textContent = 'Saving…';
    const s = await api('PUT', 'uplinks/settings', formData(form));
    msg.className = ''; msg.textContent = '';
    if (!s.ok) return formError(form, err, s);
    await pages.uplinks();
    $('#uplinks-msg').className = 'ok';
    $('#uplinks-msg').textContent = 'Saved as version ' + s.data.version + '. Restart the gateway to use it (or roll back).';
  });
  return form;
}

pages.uplinks = async () => {
  const res = await api('GET', 'uplinks');
  if (!res.ok) return show(h('p.error', { text: res.data.error }));
  const set = res.data.settings || {}, st = res.data.state || {};
  const out = h('p', { id: 'mqtt-test-result', role: 'status' });
  const test = set.mqtt && installer() ? h('button.secondary', { type: 'button', id: 'mqtt-test', onclick: async ev => {
    ev.target.disabled = true; out.className = 'muted'; out.textContent = 'Connecting…';
    const r = await api('POST', 'uplinks/mqtt/test');
    ev.target.disabled = false;
    if (!r.ok) { out.className = 'error'; out.textContent = r.data.error; return; }
    if (r.data.ok) { out.className = 'ok'; out.textContent = 'Connected to ' + r.data.url + ' in ' + r.data.ms + ' ms (as ' + r.data.client_id + ').'; }
    else { out.className = 'error'; out.textContent = 'Failed (' + r.data.stage + '): ' + r.data.error; }
  } }, 'Test running connection') : null;
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
  const editor = installer() ? await uplinkEditor() : h('p.muted', {}, 'Installers can change the uplink settings here.');
  show(h('h1', {}, 'Uplinks'),
    h('h2', {}, 'Running now'),
    h('div.grid', {},
      h('div.card', { id: 'mqtt-card' }, h('h3', {}, 'MQTT'), set.mqtt ? kvList(set.mqtt) : h('p', {}, 'not configured'),
        set.mqtt ? [h('h3', {}, 'State'), kvList(st.mqtt), test, out] : null),
      h('div.card', { id: 'lorawan-card' }, h('h3', {}, 'LoRaWAN'), set.lorawan ? kvList(set.lorawan) : h('p', {}, 'not configured'),
        set.lorawan ? [h('h3', {}, 'State'), lora ? kvList(lora) : h('p.muted', {}, 'no state reported yet')] : null),
      set.arc ? h('div.card', { id: 'arc-card' }, h('h3', {}, 'Alarm receiving centre'), kvList(set.arc),
        h('h3', {}, 'State'), st.arc ? kvList(st.arc) : h('p.muted', {}, 'no state reported yet'), arcTest, arcOut) : null),
    editor);
};
