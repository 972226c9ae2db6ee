// Which uplink delivered the alert (the first to acknowledge it), or that it
// is still queued in the gateway.
function route(a) {
  if (a.delivered_via) return 'delivered via ' + ({lorawan: 'LoRaWAN', arc: 'the alarm receiving centre'}[a.delivered_via] || 'MQTT') + ' ' + when(a.delivered_at);
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

function alertItem(a, onAck, history) {
  const acked = a.acked_by ? h('span.pill.ok', { text: 'acknowledged by ' + a.acked_by }) : null;
  const btn = !a.acked_by && a.open && !history ? h('button', { type: 'button', 'data-ack': a.id, onclick: () => onAck(a) }, 'Acknowledge') : null;
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
  // What needs a person comes first; the gateway's own health after it.
  const alerts = [h('h2', { id: 'overview-alerts' }, 'Open alerts (' + open.length + ')'),
    open.length ? h('div.grid', { id: 'overview-open' }, open.map(a => alertItem(a, x => ackAlert(x, pages.overview)))) : h('p.muted', {}, 'No open alerts.')];
  show(h('h1', {}, 'Overview'), alerts,
    h('h2', {}, 'Gateway'),
    h('div.grid', {},
      h('div.card', {}, h('h3', {}, 'Gateway'), h('div.big', { text: s.gateway || '—' }), h('div.muted', { text: 'version ' + (s.version || '?') })),
      h('div.card', {}, h('h3', {}, 'Uplinks'), upl.length ? upl : h('div.muted', {}, 'none configured')),
      h('div.card', {}, h('h3', {}, 'Zigbee coordinator'), h('div.big', { text: s.coordinator || 'off' })),
      h('div.card', {}, h('h3', {}, 'Backlog'), h('dl.kv', {}, Object.entries(backlog).map(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })]))),
      h('div.card', {}, h('h3', {}, 'Uptime'), h('div.big', { text: duration(s.uptime_s) }), h('div.muted', { text: 'time zone ' + (s.timezone || '?') })),
      h('div.card', {}, h('h3', {}, 'Clock'), h('div.big', { 'data-clock': '', text: clockText(s.clock) }), h('div.muted', { text: lastStep(s.clock) }))));
};

pages.alerts = async () => {
  const res = await api('GET', 'alerts');
  if (!res.ok) return show(h('p.error', { text: res.data.error }));
  const again = () => pages.alerts();
  // An alert shown under Open is not repeated under Recent (one card, one button).
  const openIds = new Set(res.data.open.map(a => a.id));
  const recent = res.data.recent.filter(a => !openIds.has(a.id));
  const dv = res.data.delivered;
  const names = { mqtt: 'MQTT', lorawan: 'LoRaWAN' };
  const paths = dv && typeof dv === 'object' ? Object.entries(dv).filter(([, v]) => typeof v === 'number').map(([k, v]) => (names[k] || k) + ' ' + v).join(' · ') : '';
  show(h('h1', {}, 'Alerts'),
    h('p.muted', { id: 'delivery', text: 'Alerts delivered upstream, by path: ' + (paths || '– (no per-path record in this gateway)') }),
    h('h2', {}, 'Open'), res.data.open.length ? h('div.grid', { id: 'open-alerts' }, res.data.open.map(a => alertItem(a, x => ackAlert(x, again)))) : h('p.muted', { id: 'open-alerts' }, 'No open alerts.'),
    h('h2', {}, 'Recent'), recent.length ? h('div.grid', { id: 'recent-alerts' }, recent.map(a => alertItem(a, x => ackAlert(x, again), true))) : h('p.muted', { id: 'recent-alerts' }, 'Nothing else since the gateway started.'));
  // Alerts still queued: look again shortly, so the card shows the path once delivered.
  clearTimeout(S.deliveryPoll);
  if ([...res.data.open, ...res.data.recent].some(a => a.delivery === 'waiting')) S.deliveryPoll = setTimeout(again, 3000);
};

