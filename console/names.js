// Region (GB/T 2260) and industry (GB/T 4754) names from the tables zhida ships (data/*.tsv,
// served beside the console), so that charts show 杭州市, not only 3301.
const tables = { region: new Map(), industry: new Map() };

async function load(url, map) {
  try {
    const res = await fetch(url, { credentials: 'same-origin' });
    if (!res.ok) return;
    for (const line of (await res.text()).split('\n')) {
      if (!line || line.startsWith('#')) continue;
      const [code, name] = line.split('\t');
      if (code && name) map.set(code.trim(), name.trim());
    }
  } catch (e) {
    /* Names are a help: codes still show without them. */
  }
}

export function loadNames() {
  return Promise.all([load('regions-zj.tsv', tables.region), load('industries.tsv', tables.industry)]);
}

// "3301 杭州市", or the code alone when the table lacks it.
export function label(field, code) {
  const name = tables[field] && tables[field].get(code);
  return name ? code + ' ' + name : code;
}
