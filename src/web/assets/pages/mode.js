// The household's mode on the Overview: home, away (she is out) or visitor
// (she has company). Away and visitor stand the stillness and absence rules
// down (panic, smoke, leak and fall never); they stand up by themselves at
// "until", or (away) when she is seen coming back. "out" is inferred.
function modeText(m) {
  if (!m || !m.mode) return 'home';
  const names = { home: 'Home', away: 'Away', visitor: 'Visitors', out: 'Probably out (guessed)' };
  let t = names[m.mode] || m.mode;
  if (m.until) t += ' until ' + when(m.until);
  if (m.source) t += ' — ' + m.source;
  return t;
}

function modeCard(m) {
  const until = h('input', { type: 'datetime-local', 'data-mode-until': '' });
  const set = async (mode) => {
    const body = { mode };
    if (mode !== 'home' && until.value) body.until = new Date(until.value).toISOString();
    const res = await api('POST', 'mode', body);
    if (!res.ok) return alert(res.data.error || 'could not set the mode');
    pages.overview();
  };
  const btn = (mode, label) => h('button', { type: 'button', 'data-mode': mode, onclick: () => set(mode) }, label);
  return h('div.card', { 'data-card': 'mode' }, h('h3', {}, 'Household mode'),
    h('div.big', { text: modeText(m) }),
    h('div.muted', { text: 'Away or visitors: no-movement, breakfast, routine and too-long-in-a-room checks stand down. Panic, smoke, leak and fall always alert.' }),
    h('label', {}, 'Until (optional) ', until),
    h('div', {}, btn('away', 'Away'), ' ', btn('visitor', 'Visitors'), ' ', btn('home', 'Home')));
}

const overviewWithoutMode = pages.overview;
pages.overview = async () => {
  await overviewWithoutMode();
  const res = await api('GET', 'status');
  if (!res.ok) return;
  const grid = main().querySelector('.grid');
  if (grid) grid.prepend(modeCard((res.data.status || {}).mode));
};
